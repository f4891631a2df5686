"""Progress of long steps on a terminal: which metric is compiling or sampling, and for how long.

A command that works for tens of seconds without a word looks hung. On an interactive terminal each long
step shows one status line on stderr, with its elapsed time refreshed while it runs; in pipes, files and CI
logs (``CI`` set) nothing is written, so output stays machine-readable. ``BAYES_AB_PROGRESS=1`` or ``0``
forces it on or off.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from contextlib import contextmanager
from typing import Iterator, TextIO

PROGRESS_ENV = "BAYES_AB_PROGRESS"
REFRESH_SECONDS = 0.5


def enabled(stream: TextIO | None = None) -> bool:
    """Whether progress lines are shown on ``stream`` (stderr by default)."""
    forced = os.environ.get(PROGRESS_ENV)
    if forced is not None:
        return forced.strip().lower() not in ("", "0", "false", "no", "off")
    stream = sys.stderr if stream is None else stream
    if os.environ.get("CI"):
        return False
    return _isatty(stream)


@contextmanager
def progress(message: str, stream: TextIO | None = None) -> Iterator[None]:
    """Show ``message`` with its elapsed time while the block runs; a final line with the time it took."""
    stream = sys.stderr if stream is None else stream
    if not enabled(stream):
        yield
        return
    start = time.perf_counter()
    done = threading.Event()
    interactive = _isatty(stream)

    def show(final: str = "") -> None:
        elapsed = time.perf_counter() - start
        text = f"{message} ... {elapsed:.1f} s{final}"
        stream.write(f"\r\x1b[K{text}" if interactive else (text + "\n" if final else ""))
        stream.flush()

    def refresh() -> None:
        while not done.wait(REFRESH_SECONDS):
            show()

    ticker = threading.Thread(target=refresh, daemon=True) if interactive else None
    if ticker is not None:
        show()
        ticker.start()
    try:
        yield
    except BaseException:
        done.set()
        show(" (failed)\n" if interactive else " (failed)")
        raise
    done.set()
    if ticker is not None:
        ticker.join()
    show("\n" if interactive else " done")


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
