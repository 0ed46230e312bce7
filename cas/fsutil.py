"""Durable file-system steps: temp file in the same folder tree, fsync, atomic rename.

A rename is atomic only within one file system, so temp files live under the
store root; the directory is fsynced after a rename so the new name survives a
power cut, not just the bytes.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO


def fsync_dir(path: Path) -> None:
    """Persist the directory entry changes of ``path`` (no-op where unsupported)."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    try:
        fd = os.open(path, flags)
    except OSError:  # e.g. Windows cannot open a directory; rename is still atomic there
        return
    try:
        with contextlib.suppress(OSError):  # some file systems refuse fsync on directories
            os.fsync(fd)
    finally:
        os.close(fd)


def ensure_dir(path: Path) -> None:
    """Create ``path`` (and parents); fsync the parent when the folder is new."""
    if path.is_dir():
        return
    path.mkdir(parents=True, exist_ok=True)
    fsync_dir(path.parent)


def open_temp(directory: Path, *, suffix: str = ".tmp") -> tuple[BinaryIO, Path]:
    """A new, uniquely named, writable temp file in ``directory`` (exclusive create)."""
    fd, name = tempfile.mkstemp(dir=directory, prefix="put-", suffix=suffix)
    return os.fdopen(fd, "wb"), Path(name)


def commit_temp(handle: BinaryIO, temp: Path, final: Path, *, sync_dir: bool = True) -> None:
    """Flush and fsync ``handle``, close it, then atomically rename ``temp`` to ``final``.

    ``sync_dir=False`` lets a caller batch several renames into one folder under a
    single directory fsync done by the last of them.
    """
    handle.flush()
    os.fsync(handle.fileno())
    handle.close()
    os.replace(temp, final)
    if sync_dir:
        fsync_dir(final.parent)


def discard_temp(handle: BinaryIO, temp: Path) -> None:
    """Close and remove a temp file that will not be committed."""
    with contextlib.suppress(OSError):
        handle.close()
    with contextlib.suppress(FileNotFoundError):
        temp.unlink()


def write_atomic(final: Path, data: bytes, temp_dir: Path, *, sync_dir: bool = True) -> None:
    """Write ``data`` to ``final`` so readers see either the old file or the whole new one."""
    handle, temp = open_temp(temp_dir)
    try:
        handle.write(data)
        commit_temp(handle, temp, final, sync_dir=sync_dir)
    except BaseException:
        discard_temp(handle, temp)
        raise
