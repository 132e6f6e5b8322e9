"""Writing what tuner draws: a file appears whole, or what was there stays."""

from __future__ import annotations

import os
from pathlib import Path

from tuner.errors import BadInput, TunerError


def check_destination(path: Path) -> None:
    """BadInput unless a file can be written at ``path``: checked before anything is read or
    drawn."""
    folder = path.parent
    if not folder.is_dir():
        raise BadInput(f"cannot write {path}: there is no folder {folder}")
    if path.is_dir():
        raise BadInput(f"cannot write {path}: it is a folder; give a file's name")
    if not os.access(folder, os.W_OK):
        raise BadInput(f"cannot write {path}: its folder is read-only")


def write_whole(content: str | bytes, path: Path) -> None:
    """Write ``content`` to ``path`` whole, or leave what was there: it is written beside,
    then renamed over it."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    data = content.encode() if isinstance(content, str) else content
    try:
        with partial.open("xb") as out:
            out.write(data)
        partial.replace(path)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise TunerError(f"cannot write {path}: {error.strerror or error}") from None
