"""Writing files safely: atomically, durably, and never over a device or pipe."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from archivectl.errors import ArchiveError


def shred(path: Path) -> None:
    """Overwrite a file with zeros, sync, and remove it (best effort below the file system)."""
    try:
        size = path.stat().st_size
        with open(path, "r+b") as fh:
            fh.write(b"\0" * size)
            fh.flush()
            os.fsync(fh.fileno())
        path.unlink()
    except FileNotFoundError:
        return
    fsync_dir(path.parent)


def write_atomic(path: Path, data: bytes, mode: int = 0o644, durable: bool = True) -> None:
    """Write via a temporary file and rename, so a crash leaves old or new, never half.

    durable also fsyncs file and directory: for keys, which exist nowhere else.
    """
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ArchiveError(f"cannot write {path}: {exc.strerror}") from None
    if durable:
        fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink in path durable."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_output(path: Path, data: bytes) -> None:
    """Write a user-named output: atomically for a regular file, in place for /dev/stdout, a pipe or a device."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise ArchiveError(f"cannot write {path}: {exc.strerror}") from None
    if mode is not None and not stat.S_ISREG(mode):
        if stat.S_ISDIR(mode):
            raise ArchiveError(f"cannot write {path}: it is a directory")
        try:
            with open(path, "wb") as fh:
                fh.write(data)
        except OSError as exc:
            raise ArchiveError(f"cannot write {path}: {exc.strerror}") from None
        return
    write_atomic(path, data)


@contextlib.contextmanager
def private_output(path: Path) -> Iterator[BinaryIO]:
    """A file readable by its owner only, that appears at path only if the block completes.

    For exports, backups and opened scans: a failure leaves nothing half-written behind.
    """
    partial = path.with_name(f".{path.name}.partial")
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            yield fh
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
