"""The keystore: record keys outside git, addressed by household and record recipient.

One file per (household, record key): `keys/<archive-no>.<age1 recipient>.age`,
the household's record key (an age identity) encrypted to the readers staff.yaml
on main names plus the company's recovery recipient. A key at an address is
never replaced by another key: a rotation makes a new address, so a branch that
is never merged can not take a key away from main. Only its wrapping is
refreshed (`replace`), and only by a writer who opened it and found the key the
address promises.

Archive numbers are reserved by creating `numbers/<archive-no>` exclusively, so
two clerks on two branches (or two machines) can never take the same number.

Destroying a key is what purge and rotation mean in the end: every copy of the
data sealed to it, in git history or in a backup, becomes unreadable. That
happens only through `keys shred`, after the change is approved on main.

Where the keys are is a URL (archive.yaml `keystore:`, or ARCHIVECTL_KEYSTORE):
a directory on this machine (the default, `<archive>.keys`) or `sftp://host/path`
on a server the office runs (archivectl.sftp). A remote keystore's keys are
fetched into memory per command; nothing of them is written on the workstation.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from archivectl.errors import ArchiveError, UsageError
from archivectl.i18n import _
from archivectl.layout import ARCHIVE_NO_PATTERN, RECIPIENT_PATTERN

T = TypeVar("T")
R = TypeVar("R")

KEYS = "keys"
NUMBERS = "numbers"
LEGACY = re.compile(rf"(?P<no>{ARCHIVE_NO_PATTERN})\.age")
ADDRESSED = re.compile(rf"(?P<no>{ARCHIVE_NO_PATTERN})\.(?P<recipient>{RECIPIENT_PATTERN})\.age")
NUMBER_FILE = re.compile(rf"(?P<no>{ARCHIVE_NO_PATTERN})")


@dataclass(frozen=True, order=True)
class KeyAddress:
    """Where one record key lives: the household and the record key's public half.

    recipient None is a key stored before keys were addressed (`<archive-no>.age`
    at the keystore's top); `keys migrate` gives it its address.
    """

    archive_no: str
    recipient: str | None

    @property
    def name(self) -> str:
        if self.recipient is None:
            return f"{self.archive_no}.age"
        return f"{KEYS}/{self.archive_no}.{self.recipient}.age"

    def __str__(self) -> str:
        return f"{self.archive_no} ({self.recipient[:16]}...)" if self.recipient else self.archive_no


class Backend(Protocol):
    """What a place that holds keys must do: small files, created exclusively, replaced atomically."""

    url: str

    def check(self) -> None: ...
    def makedirs(self) -> None: ...
    def create(self, name: str, data: bytes) -> bool: ...
    def create_many(self, items: list[tuple[str, bytes]]) -> list[bool]: ...
    def replace(self, name: str, data: bytes) -> None: ...
    def read(self, name: str) -> bytes | None: ...
    def read_many(self, names: list[str]) -> list[bytes | None]: ...
    # What a backup copies: the entries as the backend keeps them. A file backend keeps the wrapped key
    # itself (read_many); a key server may keep it sealed once more (OpenBao: with the household's transit key).
    def sealed_many(self, names: list[str]) -> list[bytes | None]: ...
    def list(self, folder: str) -> list[tuple[str, float]]: ...
    def names(self, folder: str) -> list[str]: ...  # list()'s names, by the cheapest listing the place has
    def remove(self, name: str) -> bool: ...
    def close(self) -> None: ...


class DirectoryBackend:
    """A directory on this machine (one desk, or a file system the office mounts)."""

    def __init__(self, path: Path):
        self.path = path
        self.url = str(path)
        self.flush_later = False  # set by Keystore.one_flush(): create_many leaves the flush to it

    def _file(self, name: str) -> Path:
        return self.path / _key_name(name)

    def check(self) -> None:
        if not self.path.is_dir():
            raise ArchiveError(
                _("keystore {path} is missing (set keystore: in archive.yaml or ARCHIVECTL_KEYSTORE)").format(
                    path=self.path
                )
            )

    def makedirs(self) -> None:
        for folder in (self.path, self.path / KEYS, self.path / NUMBERS):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)

    def create(self, name: str, data: bytes) -> bool:
        from archivectl.files import fsync_dir

        target = self._file(name)
        if not self._link_new(target, data, sync=True):
            return False
        fsync_dir(target.parent)
        return True

    def create_many(self, items: list[tuple[str, bytes]]) -> list[bool]:
        """Many creates (an import): each file written and linked as in create, then one sync for all.

        Each folder is made once, not once per file, and the sync is of the
        keystore's own file system only (syncfs), not of every file system the
        machine has mounted.
        """
        if len(items) < 8:
            return [self.create(name, data) for name, data in items]
        top = str(self.path)
        folders: set[str] = set()
        done = []
        for name, data in items:
            folder, _sep, _leaf = _key_name(name).rpartition("/")
            if folder not in folders:
                (self.path / folder).mkdir(mode=0o700, exist_ok=True)
                folders.add(folder)
            target = f"{top}/{name}"  # a string: an import stores some 40,000 names
            linked = _link_unnamed(target, data, sync=False)
            done.append(linked if linked is not None else self._link_new(Path(target), data, sync=False, made=True))
        if not self.flush_later:
            sync_file_system(self.path)  # one flush of files and folders, instead of two fsyncs per key
        return done

    def _link_new(self, target: Path, data: bytes, sync: bool, made: bool = False) -> bool:
        """Write data under a private name, then link it as target: the name appears whole or not at all.

        False (nothing left behind) when target exists already. made: the folder exists.
        """
        if not made:
            target.parent.mkdir(mode=0o700, exist_ok=True)
        linked = _link_unnamed(target, data, sync)
        if linked is not None:
            return linked
        staged = _staged(target)
        _write_durably(staged, data, sync=sync)
        try:
            os.link(staged, target)
        except FileExistsError:
            return False
        finally:
            staged.unlink(missing_ok=True)
        return True

    def replace(self, name: str, data: bytes) -> None:
        from archivectl.files import fsync_dir

        target = self._file(name)
        staged = _staged(target)
        _write_durably(staged, data)
        os.replace(staged, target)
        fsync_dir(target.parent)

    def read(self, name: str) -> bytes | None:
        return self.read_many([name])[0]

    def read_many(self, names: list[str]) -> list[bytes | None]:
        """read() of each name, by plain os calls: a backup or fsck reads two files a household, and pathlib's
        join and read_bytes were half of that (1.9 s of 40,000 files in a profile, issue 30)."""
        top = str(self.path)
        found: list[bytes | None] = []
        for name in names:
            try:
                fd = os.open(f"{top}/{_key_name(name)}", os.O_RDONLY | os.O_CLOEXEC)
            except (FileNotFoundError, NotADirectoryError):
                found.append(None)
                continue
            try:
                found.append(_read_all(fd))
            finally:
                os.close(fd)
        return found

    def sealed_many(self, names: list[str]) -> list[bytes | None]:
        return self.read_many(names)

    def list(self, folder: str) -> list[tuple[str, float]]:
        where = self._file(folder) if folder else self.path
        try:
            entries = list(os.scandir(where))
        except (FileNotFoundError, NotADirectoryError):
            return []
        return [(e.name, e.stat().st_mtime) for e in entries if e.is_file(follow_symlinks=False)]

    def names(self, folder: str) -> list[str]:
        """The names list() gives, without a stat() of each (20,000 numbers: one call, not 20,001)."""
        try:
            return [
                e.name
                for e in os.scandir(self._file(folder) if folder else self.path)
                if e.is_file(follow_symlinks=False)
            ]
        except (FileNotFoundError, NotADirectoryError):
            return []

    def tidy(self) -> int:
        """Shred staged files (.new-<pid>-...) whose writer is dead: each may be a wrapped copy of a key."""
        from archivectl.files import shred

        removed = 0
        for folder in (self.path / KEYS, self.path / NUMBERS):
            for staged in folder.glob(f"{STAGED_PREFIX}*") if folder.is_dir() else []:
                pid = staged.name.removeprefix(STAGED_PREFIX).split("-")[0]
                if pid.isdigit() and _alive(int(pid)):
                    continue
                shred(staged)
                removed += 1
        return removed

    def remove(self, name: str) -> bool:
        from archivectl.files import shred

        path = self._file(name)
        if not path.exists():
            return False
        shred(path)
        return True

    def remove_many(self, names: list[str], secret: bool = True) -> list[bool]:
        """remove() of many (an undone import's keys and numbers): each overwritten with zeros, one flush, each
        unlinked, one flush; not two fsyncs a file (3,000 keys and numbers took 30 s on a busy disk).
        secret=False (number reservations: a date and a pid) unlinks without zeroing first.

        The files are zeroed and unlinked by several threads at once: on a busy
        machine or a mounted file system each call waits, and 8 wait together
        (2,000 unlinks: 5.7 s one at a time, 0.35 s on 4 threads, load 24 on 2 cores).
        """
        if len(names) < 8 and secret:
            return [self.remove(name) for name in names]
        paths = [self._file(name) for name in names]
        if not secret:
            found = in_threads(_unlinked, paths)
            if any(found):
                sync_file_system(self.path)
            return found
        found = in_threads(_zeroed, paths)
        if any(found):
            sync_file_system(self.path)  # the zeros on disk before any name goes
            in_threads(_unlinked, [p for p, there in zip(paths, found, strict=True) if there])
            sync_file_system(self.path)
        return found

    def close(self) -> None:
        return None


def close_remote() -> None:
    """Close the connections of every remote backend this thread made: a command's end.

    An SFTP session is an ssh process with a thread draining its stderr; left open, it lives on in a
    process that runs several commands (tests, the desk) until collected, and a live thread rules out
    forked.in_child. A backend used again connects again.
    """
    made = _remote.__dict__.pop("made", [])
    for backend in made:
        with contextlib.suppress(OSError, ArchiveError):
            backend.close()


def in_threads(work: Callable[[T], R], items: list[T], threads: int = 8) -> list[R]:
    """[work(item) for item in items], by several threads each taking a slice: for calls that wait on the file system.

    A slice a thread, not a future an item: with 20,000 items the futures cost
    more than the calls (8 s of a 26 s undo on a busy machine).
    """
    if len(items) < 2 * threads:
        return [work(item) for item in items]
    import threading

    step = -(-len(items) // threads)
    slices = [items[i : i + step] for i in range(0, len(items), step)]
    results: list[list[R]] = [[] for _ in slices]
    failed: list[BaseException] = []

    def run(i: int) -> None:
        try:
            results[i] = [work(item) for item in slices[i]]
        except BaseException as exc:  # raised in the caller's thread below
            failed.append(exc)

    workers = [threading.Thread(target=run, args=(i,), name=f"archivectl-files-{i}") for i in range(len(slices))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if failed:
        raise failed[0]
    return [result for part in results for result in part]


def _zeroed(path: Path) -> bool:
    """Overwrite a file with zeros (not flushed); False if it is not there."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
    except (FileNotFoundError, NotADirectoryError):
        return False
    try:
        os.write(fd, b"\0" * os.fstat(fd).st_size)
    finally:
        os.close(fd)
    return True


def _unlinked(path: Path) -> bool:
    try:
        path.unlink()
    except (FileNotFoundError, NotADirectoryError):
        return False
    return True


STAGED_PREFIX = ".new-"  # .new-<pid>-<random>: a writer's private copy, until it is linked or renamed in


def _staged(target: Path) -> Path:
    """The private name a file is written under before it appears as target (tidy() reads the pid back)."""
    return target.with_name(f"{STAGED_PREFIX}{os.getpid()}-{os.urandom(4).hex()}")


_unnamed_files = hasattr(os, "O_TMPFILE")  # until the file system or the kernel says otherwise


def _read_all(fd: int) -> bytes:
    """The whole of an open file (a key file is a few hundred bytes: one read, and one more that finds the end)."""
    parts = []
    while part := os.read(fd, 1 << 16):
        parts.append(part)
    return b"".join(parts)


def _key_name(name: str) -> str:
    """name, if it names a file inside the keystore; else UsageError."""
    if not name or name.startswith("/") or any(part in ("", ".", "..") for part in name.split("/")):
        raise UsageError(_("keystore: {name!r} is not a key name").format(name=name))
    return name


def _link_unnamed(target: str | Path, data: bytes, sync: bool) -> bool | None:
    """Write data into a file with no name in target's folder, then link it as target; None: not supported here.

    Like a staged file, the key appears whole or not at all, but nothing is
    named meanwhile: a kill leaves no copy of the wrapped key to tidy, and it
    costs one link instead of a create, a link and an unlink (an import makes
    two keystore files a household: at 20,000, 4 s of 40 on a busy machine).
    """
    global _unnamed_files
    if not _unnamed_files:
        return None
    try:
        fd = os.open(os.path.dirname(target), os.O_WRONLY | os.O_TMPFILE, 0o600)
    except OSError:  # a file system without unnamed files (EOPNOTSUPP), an old kernel (EISDIR)
        _unnamed_files = False
        return None
    try:
        os.write(fd, data)
        if sync:
            os.fsync(fd)
        # The file is reachable only as /proc/self/fd/N, a link that linkat must follow; os.link calls
        # linkat (not link, which would refuse it) when given a folder fd, ignored for an absolute path.
        os.link(f"/proc/self/fd/{fd}", target, src_dir_fd=fd, follow_symlinks=True)
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.EXDEV, errno.EPERM, errno.ENOTDIR):
            raise
        _unnamed_files = False  # no /proc to link from: stage under a private name instead
        return None
    finally:
        os.close(fd)
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sync_file_system(path: Path) -> None:
    """Flush everything written to the file system that holds path (Linux syncfs), else to every one (sync).

    Python 3.11's os has no syncfs; libc has had it since glibc 2.14.
    """
    try:
        import ctypes

        syncfs = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):  # not Linux, or a libc without it
        os.sync()
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        if syncfs(fd) != 0:
            err = ctypes.get_errno()
            if err != errno.ENOSYS:
                raise ArchiveError(
                    _("keystore {path}: cannot flush it to disk ({strerror})").format(
                        path=path, strerror=os.strerror(err)
                    )
                )
            os.sync()
    finally:
        os.close(fd)


def _write_durably(path: Path, data: bytes, sync: bool = True) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


_remote = threading.local()  # the remote backends this thread made (close_remote)


def backend_for(url: str) -> Backend:
    """The backend a keystore URL names: sftp://..., openbao://... (or vault://...), or a directory path."""
    remote: Backend | None = None
    if url.startswith("sftp://"):
        from archivectl.sftp import SftpBackend

        remote = SftpBackend(url)
    elif url.split("://", 1)[0] in ("openbao", "openbao+http", "vault", "vault+http"):
        from archivectl.openbao import OpenBaoBackend

        remote = OpenBaoBackend(url)
    if remote is not None:
        _remote.__dict__.setdefault("made", []).append(remote)
        return remote
    if "://" in url:
        raise UsageError(
            _("keystore {url}: only a directory, sftp://host/path or openbao://host:port/mount is supported").format(
                url=url
            )
        )
    return DirectoryBackend(Path(url))


class Keystore:
    """The record keys of one archive, wherever they are kept."""

    def __init__(self, backend: Backend):
        self.backend = backend

    @property
    def url(self) -> str:
        return self.backend.url

    @property
    def path(self) -> Path | None:
        """The directory, for a keystore on this machine; None for a remote one."""
        return self.backend.path if isinstance(self.backend, DirectoryBackend) else None

    def require(self) -> None:
        """Refuse to work without the keystore."""
        self.backend.check()

    @contextlib.contextmanager
    def one_flush(self) -> Iterator[None]:
        """Bulk creations (an import's numbers, series by series) flushed to disk once, on leaving, not each time.

        Nothing created here is used before that flush: a commit that uses it comes after.
        """
        backend = self.backend
        if not isinstance(backend, DirectoryBackend) or backend.flush_later:
            yield
            return
        backend.flush_later = True
        try:
            yield
        finally:
            backend.flush_later = False
        sync_file_system(backend.path)

    # -- numbers

    def reserved(self) -> set[str]:
        """Every archive number ever reserved here."""
        return {n for n in self.backend.names(NUMBERS) if NUMBER_FILE.fullmatch(n)}

    def reserve_many(self, series: str, at_least: int, count: int, note: bytes = b"") -> list[str]:
        """count numbers of one series, each taken by exclusive creation (P3: no two households share one).

        The first try is from at_least on (this branch's next serial), without
        listing the keystore: on one desk, or an up-to-date clone, that is all it
        costs. Only when one is taken already does it list what is reserved and
        go on past the highest.
        """
        taken: list[str] = []
        serial, listed = at_least, False
        while len(taken) < count:
            wanted = [f"{series}-{s:05d}" for s in range(serial, serial + count - len(taken))]
            if serial + len(wanted) - 1 > 99999:
                raise ArchiveError(_("archive numbers for {series} are exhausted").format(series=series))
            got = self.backend.create_many([(f"{NUMBERS}/{n}", note) for n in wanted])
            taken += [n for n, ok in zip(wanted, got, strict=True) if ok]
            serial += len(wanted)
            if not all(got) and not listed:  # others are ahead: go on past the highest reserved
                used = [int(n.rsplit("-", 1)[1]) for n in self.reserved() if n.startswith(series + "-")]
                serial, listed = max([serial - 1, *used]) + 1, True
        return taken

    # -- keys

    def addresses(self) -> list[KeyAddress]:
        """Every key held, addressed ones and any from before addressing."""
        found = []
        for name in self.backend.names(KEYS):
            m = ADDRESSED.fullmatch(name)
            if m:
                found.append(KeyAddress(m["no"], m["recipient"]))
        for name in self.backend.names(""):
            m = LEGACY.fullmatch(name)
            if m:
                found.append(KeyAddress(m["no"], None))
        return sorted(found, key=lambda a: (a.archive_no, a.recipient or ""))

    def ages(self) -> dict[KeyAddress, float]:
        """When each addressed key was written (seconds since the epoch), for orphans' grace period."""
        out = {}
        for name, mtime in self.backend.list(KEYS):
            m = ADDRESSED.fullmatch(name)
            if m:
                out[KeyAddress(m["no"], m["recipient"])] = mtime
        return out

    def read(self, archive_no: str, recipient: str | None = None) -> bytes:
        """The wrapped record key of a household (the one sealed to recipient), or ArchiveError."""
        self.require()
        blob = self.backend.read(KeyAddress(archive_no, recipient).name) if recipient else None
        if blob is None:
            blob = self.backend.read(KeyAddress(archive_no, None).name)  # kept from before addressing
        if blob is None:
            raise ArchiveError(
                _(
                    "{archive_no}: record key is missing from the keystore {url} (check keystore: in "
                    "archive.yaml, ARCHIVECTL_KEYSTORE, or `archivectl keys fsck`)"
                ).format(archive_no=archive_no, url=self.url)
            )
        return blob

    def read_many(
        self, wanted: Iterable[tuple[str, str | None]], fallback: bool = True, opened: bool = True
    ) -> dict[tuple[str, str | None], bytes | None]:
        """Several wrapped keys in one go (pipelined on a remote keystore); None where missing.

        fallback: where a key has no address yet, the household's key from before addressing.
        opened=False: only whom each key is wrapped to is wanted (crypto.wrapped_for), and a
        key server that can say so without opening the key (OpenBao's wrappings_many: no
        transit decrypt) answers that instead of the key.
        """
        wanted = list(wanted)
        read = self.backend.read_many if opened else getattr(self.backend, "wrappings_many", self.backend.read_many)
        blobs = read([KeyAddress(n, r).name for n, r in wanted])
        out = dict(zip(wanted, blobs, strict=True))
        legacy = [w for w in wanted if out[w] is None and w[1] is not None] if fallback else []
        if legacy:
            for w, blob in zip(legacy, read([KeyAddress(w[0], None).name for w in legacy]), strict=True):
                out[w] = blob
        return out

    def put(self, address: KeyAddress, blob: bytes) -> None:
        """Store a new key; an address already taken is refused (a key is never overwritten)."""
        if not self.backend.create(address.name, blob):
            raise ArchiveError(
                _("{address}: a record key is already stored under this address; nothing was replaced").format(
                    address=address
                )
            )

    def put_many(self, items: list[tuple[KeyAddress, bytes]]) -> None:
        """Store many new keys at once (an import)."""
        done = self.backend.create_many([(a.name, b) for a, b in items])
        clash = next((a for (a, _), ok in zip(items, done, strict=True) if not ok), None)
        if clash is not None:
            raise ArchiveError(
                _("{clash}: a record key is already stored under this address; nothing was replaced").format(
                    clash=clash
                )
            )

    def rewrap(self, address: KeyAddress, blob: bytes) -> None:
        """Replace the wrapping of a key (same key, other readers): the caller opened it and checked it."""
        self.backend.replace(address.name, blob)

    def destroy(self, address: KeyAddress) -> bool:
        """Overwrite and delete one key (crypto-shredding); False if it was gone."""
        return self.backend.remove(address.name)

    def tidy(self) -> int:
        """Shred what a killed writer left half-done on this machine (a staged copy of a key); how many."""
        tidy = getattr(self.backend, "tidy", None)
        return tidy() if tidy else 0

    def close(self) -> None:
        self.backend.close()
