"""Writing files so that readers see the old file or the new one, never half of either."""

from __future__ import annotations

import tempfile
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
