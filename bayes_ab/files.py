"""Writing files so that readers see the old file or the new one, never half of either."""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from bayes_ab.errors import SpecError

_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)-(?P<token>[0-9a-f]{8})\.tmp$")


def temporary_path(path: Path) -> Path:
    """A hidden temporary name beside ``path`` that names the writing process.

    ``.<name>.<pid>-<token>.tmp``: unique, so concurrent writers never clobber each other, and stale once its
    process is gone, so :func:`remove_stale_temporaries` can tell a killed writer's leftovers from the
    half-written output of a writer still running.
    """
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")


def temporary_target(path: Path) -> Path | None:
    """The path a temporary of :func:`temporary_path` was to become (``None`` for any other name)."""
    match = _TEMPORARY.match(path.name)
    return path.with_name(match["name"]) if match else None


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the temporaries in ``folder`` left by processes that no longer run (a ``kill -9``, a crash).

    Returns what was removed. A temporary of a live process (a concurrent writer) is left alone.
    """
    removed = []
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        if not is_stale_temporary(entry):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def is_stale_temporary(path: Path) -> bool:
    """Whether ``path`` is a temporary of :func:`temporary_path` whose writing process no longer runs."""
    match = _TEMPORARY.match(path.name)
    return match is not None and not _running(int(match["pid"]))


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:       # another user's process: alive
        return True
    return True


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file's bytes, as hex (what stored outputs are checked against)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_atomically(path: Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it onto ``path``.

    The temporary name is unique, so concurrent writers of the same file do not clobber each
    other's half-written output; a failed write leaves ``path`` untouched and no temporary file, and a
    killed writer's leftover is recognisable (:func:`remove_stale_temporaries`).
    """
    tmp = temporary_path(path)
    try:
        write(tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def unwritable_reason(folder: Path) -> str | None:
    """Why files cannot be written in ``folder`` (created if missing), or ``None`` when they can.

    Checked by writing a temporary file there, since permissions, read-only mounts and full disks all
    show up only on a real write.
    """
    if folder.exists() and not folder.is_dir():
        return "is a file, not a folder"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        return f"cannot be written ({exc.strerror or exc})"
    return None


LOCK_FILE = ".writer.lock"
LOCK_WAIT_SECONDS = 600.0
"""How long a writer waits for another to finish with the same folder before it refuses."""


@contextmanager
def one_writer(folder: Path, wait: float = LOCK_WAIT_SECONDS) -> Iterator[None]:
    """Hold ``folder`` for one writing process at a time; another waits (up to ``wait`` seconds) or refuses.

    Why: two runs writing one experiment's outputs at once interleave their files, and each would list the
    other's in its manifest -- a mixed folder that looks complete. The lock is an ``flock`` on a file in the
    folder: the operating system releases it when its process ends, so a killed or crashed writer never
    leaves it stuck. The file names the holder's process id for the message of one that gives up.
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    handle = open(path, "a+")
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    handle.seek(0)
                    holder = handle.read().strip() or "unknown"
                    raise SpecError(f"{folder}: another bayes-ab process (pid {holder}) is writing here; waited "
                                    f"{wait:g} s -- run again when it has finished") from None
                time.sleep(0.05)
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()          # closing the descriptor releases the lock
