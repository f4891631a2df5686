"""YAML files read with the guards a file named by someone else needs: specs and learned-prior files.

A spec is written by whoever sets up an experiment and may name a prior file; both are read by a scheduled
job that trusts neither. So every YAML file bayes-ab reads is

- a regular file (``/dev/zero`` or a named pipe would be read forever, or hang before the first byte);
- at most :data:`MAX_YAML_BYTES` long, read no further than that (a file that grows while it is read too);
- UTF-8 text;
- parsed by PyYAML's safe loader with aliases refused: neither file format uses them, and nested aliases
  ("billion laughs") make a few hundred bytes expand to billions of values for whatever walks them.

Every refusal is one :class:`~bayes_ab.errors.SpecError` line naming the file.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import yaml

from bayes_ab.errors import SpecError

MAX_YAML_BYTES = 1_000_000
"""A spec is a page of YAML and a prior file a few kilobytes; a megabyte is neither."""


class NoAliasLoader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses aliases (``*name``) where they are used."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.events.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, f"aliases (*{event.anchor}) are not allowed here; "
                                              "write the value out", event.start_mark)
        return super().compose_node(parent, index)


def read_yaml_file(path: str | Path, what: str, *, max_bytes: int = MAX_YAML_BYTES) -> Any:
    """The YAML document in ``path`` (``what`` names the kind of file in messages, e.g. ``"spec file"``).

    Raises
    ------
    SpecError
        Missing, not a regular file, too large, unreadable, not UTF-8 or not valid YAML (aliases included).
    """
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise SpecError(f"{path}: {what} not found") from None
    except OSError as exc:
        raise SpecError(f"{path}: cannot read {what} ({exc.strerror})") from None
    if not stat.S_ISREG(info.st_mode):
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else "a device, pipe or socket"
        raise SpecError(f"{path}: {what} is {kind}, not a regular file")
    if info.st_size > max_bytes:
        raise SpecError(f"{path}: {what} is larger than {max_bytes:,} bytes ({info.st_size:,})")
    try:
        with open(path, "rb", opener=_no_blocking) as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise SpecError(f"{path}: cannot read {what} ({exc.strerror})") from None
    if len(data) > max_bytes:
        raise SpecError(f"{path}: {what} is larger than {max_bytes:,} bytes (it grew while being read)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})") from None
    try:
        return yaml.load(text, Loader=NoAliasLoader)
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None


def _no_blocking(path: str, flags: int) -> int:
    """Open without blocking: a path swapped for a named pipe after the check must not hang the reader."""
    return os.open(path, flags | getattr(os, "O_NONBLOCK", 0))


def inside_allowed_folders(path: Path, folders: list[Path]) -> bool:
    """Whether ``path``, with every symbolic link resolved, lies in one of ``folders`` (also resolved)."""
    resolved = path.resolve()
    return any(resolved.is_relative_to(folder.resolve()) for folder in folders)
