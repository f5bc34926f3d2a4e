"""Writing files safely: atomically, durably, and never over a device or pipe."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from archivectl.errors import ArchiveError, UsageError
from archivectl.i18n import _


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


def write_atomic(
    path: Path, data: bytes, mode: int = 0o644, durable: bool = True, staged: Path | str | None = None
) -> None:
    """Write via a temporary file and rename, so a crash leaves old or new, never half.

    durable also fsyncs file and directory: for keys, which exist nowhere else.
    staged: a new file to write first (a write transaction's journal folder, so
    that a kill leaves nothing stray beside path); when it is on another file
    system than path, the temporary file is made beside path instead. Plain
    system calls on strings: an import writes some 20,000 files through here.
    """
    tmp = os.fspath(staged) if staged is not None else f"{path.parent}/.{path.name}.tmp{os.getpid()}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_EXCL if staged else os.O_TRUNC)  # never through a link
    try:
        fd = os.open(tmp, flags, mode)
        try:
            view = memoryview(data)
            while view:  # a short write (a full disk) is followed by the error on the next one
                view = view[os.write(fd, view) :]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if staged is not None and exc.errno == errno.EXDEV:  # .git on another file system than the tree
            return write_atomic(path, data, mode, durable)
        raise ArchiveError(_("cannot write {path}: {strerror}").format(path=path, strerror=exc.strerror)) from None
    if durable:
        fsync_dir(path.parent)


def keep(path: Path, data: bytes) -> None:
    """Write a file of what can be found again (a cache, a memo), best effort: a failure changes nothing.

    A read-only repository (cron as another user) simply finds it missing and reads again next time.
    """
    with contextlib.suppress(OSError, ArchiveError):
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, data, durable=False)


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
        raise ArchiveError(_("cannot write {path}: {strerror}").format(path=path, strerror=exc.strerror)) from None
    if mode is not None and not stat.S_ISREG(mode):
        if stat.S_ISDIR(mode):
            raise ArchiveError(_("cannot write {path}: it is a directory").format(path=path))
        try:
            with open(path, "wb") as fh:
                fh.write(data)
        except OSError as exc:
            raise ArchiveError(_("cannot write {path}: {strerror}").format(path=path, strerror=exc.strerror)) from None
        return
    write_atomic(path, data)


@contextlib.contextmanager
def private_output(path: Path) -> Iterator[BinaryIO]:
    """A file readable by its owner only, that appears at path only if the block completes.

    For exports, backups and opened scans: a failure leaves nothing half-written
    behind, and nothing is written through a symbolic link (one planted in a
    shared folder would send a decrypted scan wherever it points). The folder
    is opened once without following links, and every step is taken inside it.
    """
    name = path.name
    if not name or name in (".", ".."):
        raise UsageError(_("{path}: name a file to write").format(path=path))
    directory = _open_real_directory(path.parent)
    partial = f".{name}.partial"
    created = False
    try:
        try:
            if stat.S_ISLNK(os.lstat(name, dir_fd=directory).st_mode):
                raise UsageError(
                    _("{path} is a symbolic link; archivectl does not write through links").format(path=path)
                )
        except FileNotFoundError:
            pass
        try:
            fd = os.open(
                partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=directory
            )
        except FileExistsError:
            raise UsageError(
                _("{parent} already exists (a link, or left by an interrupted run); remove it first").format(
                    parent=path.parent / partial
                )
            ) from None
        except OSError as exc:
            raise ArchiveError(_("cannot write {path}: {strerror}").format(path=path, strerror=exc.strerror)) from None
        created = True
        with os.fdopen(fd, "wb") as fh:
            yield fh
        os.replace(partial, name, src_dir_fd=directory, dst_dir_fd=directory)  # replaces a link, never follows it
        created = False
    finally:
        if created:
            with contextlib.suppress(OSError):
                os.unlink(partial, dir_fd=directory)
        os.close(directory)


def _open_real_directory(path: Path) -> int:
    """A descriptor of an existing directory that is not itself a symbolic link, or a one-line error."""
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if os.path.islink(path):
            raise UsageError(_("{path} is a symbolic link; give the real folder").format(path=path)) from None
        if isinstance(exc, FileNotFoundError):
            raise UsageError(_("{path}: no such directory").format(path=path)) from None
        if isinstance(exc, NotADirectoryError):
            raise UsageError(_("{path}: not a directory").format(path=path)) from None
        raise ArchiveError(_("cannot write into {path}: {strerror}").format(path=path, strerror=exc.strerror)) from None
