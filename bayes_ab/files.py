"""Writing files so that readers see the old file or the new one, never half of either."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Callable


def write_atomically(path: Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it onto ``path``.

    The temporary name is unique, so concurrent writers of the same file do not clobber each
    other's half-written output; a failed write leaves ``path`` untouched and no temporary file.
    """
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
