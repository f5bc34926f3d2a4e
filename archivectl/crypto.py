"""age encryption: sealed blocks, record keys wrapped for readers, attachment streams.

A household's record key is an age X25519 identity. Its sealed fields and
attachments are encrypted to that key only; the key itself is encrypted to the
SSH ed25519 keys of the building's readers. Everything written here opens with
the reference `age` CLI.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import os
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from archivectl.errors import ArchiveError, UsageError
from archivectl.i18n import _

ARMOR_BEGIN = "-----BEGIN AGE ENCRYPTED FILE-----"
_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_BECH32_SET = frozenset(_BECH32)
_FIVE_BITS = str.maketrans(_BECH32, "0123456789abcdefghijklmnopqrstuv")  # bech32 digits as base-32 ones


def _pyrage() -> Any:
    import pyrage

    return pyrage


def _ageread() -> Any:
    """archivectl.ageread, imported only by a process that opens many keys (QUICK_FROM)."""
    from archivectl import ageread

    return ageread


def recipient_of(public_key: str) -> Any:
    """The age recipient for a staff member's 'ssh-ed25519 AAAA...' key (or the recovery 'age1...')."""
    if public_key.startswith("age1"):
        return record_recipient(public_key)
    try:
        return _pyrage().ssh.Recipient.from_str(" ".join(public_key.split()[:2]))
    except Exception:
        raise UsageError(_("not a usable ssh-ed25519 public key")) from None


@functools.lru_cache(maxsize=1024)
def _reader_recipient(public_key: str) -> Any:
    """recipient_of, parsed once per key: an import wraps thousands of keys to the same few readers."""
    return recipient_of(public_key)


class _WouldAsk(Exception):
    """Opening the key needs a passphrase typed by the person (load_identity with ask=False)."""


def load_identity(path: Path, ask: bool = True) -> Any:
    """A staff member's SSH private key as an age identity (asks for its passphrase if it has one).

    ask=False: raise _WouldAsk instead of asking (load_identity_unasked).
    """
    try:
        data = path.expanduser().read_bytes()
    except FileNotFoundError:
        raise ArchiveError(
            _("identity {path} does not exist (use --identity or ARCHIVECTL_IDENTITY)").format(path=path)
        ) from None
    except OSError as exc:
        raise ArchiveError(
            _("identity {path} cannot be read: {strerror}").format(path=path, strerror=exc.strerror)
        ) from None
    if len(data) > 64 * 1024:
        raise ArchiveError(_("identity {path} is not an SSH private key").format(path=path))
    try:
        return _with_reader(_pyrage().ssh.Identity.from_buffer(data), data)
    except Exception as exc:  # pyrage raises IdentityError with a short reason
        if "decrypted" not in str(exc):
            raise ArchiveError(_("identity {path} is not an SSH ed25519 private key").format(path=path)) from None
    unlocked = _unlock_protected(path, data, ask)
    return _with_reader(_pyrage().ssh.Identity.from_buffer(unlocked), unlocked)


# Identities this process loaded, by id(), with the ageread reader that opens files for them (their key
# file until QUICK_FROM). The entry holds the identity, so its id is not reused while it is here; the
# longest unused go first.
# The desk serves requests in threads: the lock keeps a look-up and an eviction apart.
_READERS: collections.OrderedDict[int, tuple[Any, Any]] = collections.OrderedDict()
_READERS_KEPT = 16
_READERS_LOCK = threading.Lock()


def _remember(key: Any, reader: Any) -> Any:
    with _READERS_LOCK:
        _READERS[id(key)] = (key, reader)
        while len(_READERS) > _READERS_KEPT:
            _READERS.popitem(last=False)
    return key


def forget_keys() -> None:
    """Let go of every key and reader held for ageread: at the end of a command and of each desk request,
    so that no identity (or unlocked key file) outlives what it was loaded for."""
    with _READERS_LOCK:
        _READERS.clear()


def _known(key: Any) -> Any | None:
    """What _READERS holds for key: an ageread reader, a _Pending identity, or None."""
    with _READERS_LOCK:
        known = _READERS.get(id(key))
        if known is None or known[0] is not key:
            return None
        _READERS.move_to_end(id(key))  # the reader's identity, asked for each household, stays
        return known[1]


def _reader_of(key: Any) -> Any | None:
    """key's ageread reader, or None: pyrage opens for it."""
    known = _known(key)
    return None if isinstance(known, _Pending) else known


# A command that opens a household or two leaves it all to pyrage: ageread and the parts of cryptography
# it needs take some 16 ms to import, an opening by pyrage 0.1-0.2 ms more than by ageread. From the
# identity's this many-th record key on (an approval, review --open, keys fsck --deep), ageread opens.
QUICK_FROM = 32


class _Pending:
    """An identity's key file, until it has opened QUICK_FROM record keys and its SshReader is made."""

    __slots__ = ("opened", "private")

    def __init__(self, private_openssh: bytes):
        self.private, self.opened = private_openssh, 0


def _with_reader(identity: Any, private_openssh: bytes) -> Any:
    return _remember(identity, _Pending(private_openssh))


def _ssh_reader(identity: Any) -> Any | None:
    """identity's ageread.SshReader once it has opened QUICK_FROM keys, else None (pyrage opens)."""
    known = _known(identity)
    if not isinstance(known, _Pending):
        return known
    known.opened += 1
    if known.opened < QUICK_FROM:
        return None
    try:
        reader = _ageread().SshReader(known.private)
    except Exception:  # a key pyrage takes and cryptography does not: every file is opened by pyrage
        with _READERS_LOCK:
            _READERS.pop(id(identity), None)
        return None
    _remember(identity, reader)
    return reader


def load_identity_unasked(path: Path) -> Any | None:
    """load_identity(path) where that asks the person nothing (a key without a passphrase, or
    ARCHIVECTL_KEY_PASSPHRASE set); None otherwise, whatever the reason (load_identity says it later)."""
    try:
        return load_identity(path, ask=False)
    except (ArchiveError, _WouldAsk):
        return None


def _unlock_protected(path: Path, data: bytes, ask: bool = True) -> bytes:
    """The key without its passphrase, in memory only (pyrage cannot open protected keys itself)."""
    passphrase = os.environ.get("ARCHIVECTL_KEY_PASSPHRASE")
    if passphrase is None:
        if not ask:
            raise _WouldAsk
        passphrase = _ask_passphrase(path)
    try:
        from cryptography.hazmat.primitives.serialization import (
            Encoding,
            NoEncryption,
            PrivateFormat,
            load_ssh_private_key,
        )
    except ImportError:
        raise ArchiveError(_("opening a passphrase-protected key needs the cryptography package")) from None
    try:
        key = load_ssh_private_key(data, passphrase.encode("utf-8"))
    except ValueError:
        raise ArchiveError(_("wrong passphrase for identity {path}").format(path=path)) from None
    return key.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption())


def _ask_passphrase(path: Path) -> str:
    import getpass

    try:
        with open("/dev/tty"):
            pass
    except OSError:
        raise ArchiveError(
            _(
                "identity {path} has a passphrase and there is no terminal to ask it on "
                "(set ARCHIVECTL_KEY_PASSPHRASE for unattended use)"
            ).format(path=path)
        ) from None
    return getpass.getpass(f"Passphrase for {path}: ")


def key_bytes(text: str) -> bytes:
    """The 32 bytes an 'age1...' recipient or an 'AGE-SECRET-KEY-1...' identity carries (BIP 173 bech32).

    The checksum (the last six characters) is not checked here: pyrage parsed the key first. ValueError
    if what is between the prefix and the checksum is not 32 bytes of bech32.
    """
    data = text.strip().rpartition("1")[2][:-6].lower()
    if len(data) != 52 or not _BECH32_SET.issuperset(data):  # 260 bits: 32 bytes and 4 bits of padding
        raise ValueError("not an age X25519 key")
    return (int(data.translate(_FIVE_BITS), 32) >> 4).to_bytes(32, "big")  # int() reads the 5-bit groups


def new_record_key() -> Any:
    """A fresh age X25519 identity for one household."""
    return _pyrage().x25519.Identity.generate()


def record_key_from_text(text: str) -> Any:
    """Parse 'AGE-SECRET-KEY-1...' (as stored in the keystore) into an identity."""
    line = next((ln.strip() for ln in text.splitlines() if ln.startswith("AGE-SECRET-KEY-")), "")
    try:
        return _pyrage().x25519.Identity.from_str(line)
    except Exception:
        raise ArchiveError(_("record key file does not hold an age identity")) from None


def wrap_record_key(record_key: Any, reader_keys: Iterable[str]) -> bytes:
    """The record key as a keystore file: an age identity file encrypted to readers."""
    reader_keys = list(reader_keys)
    for key in reader_keys:
        _reader_recipient(key)  # pyrage's parse refuses a key that is not usable, before agewrite reads it
    if not reader_keys:
        raise ArchiveError(_("no active reader for this building: add a manager or gm to staff.yaml"))
    from archivectl import agewrite

    body = f"# archivectl record key\n{record_key}\n".encode()
    return agewrite.encrypt(body, reader_keys)  # the same age file pyrage writes, in half the time (agewrite)


def ssh_tag(public_key: str) -> str:
    """The tag an age header gives an ssh-ed25519 recipient: who a wrapped key opens for, without opening it."""
    import base64
    import hashlib

    try:
        wire = base64.b64decode(public_key.split()[1])
    except (IndexError, ValueError):
        raise UsageError(_("not a usable ssh-ed25519 public key")) from None
    return base64.b64encode(hashlib.sha256(wire).digest()[:4]).decode().rstrip("=")


def wrapped_for(blob: bytes) -> tuple[set[str], int]:
    """Whom a wrapped key opens for, read from its age header: the ssh-ed25519 tags, and how many X25519 stanzas."""
    tags, x25519 = set(), 0
    for line in blob.split(b"\n---", 1)[0].split(b"\n")[1:]:
        parts = line.decode("ascii", "replace").split()
        if parts[:2] == ["->", "ssh-ed25519"] and len(parts) >= 3:
            tags.add(parts[2])
        elif parts[:2] == ["->", "X25519"]:
            x25519 += 1
    return tags, x25519


def unwrap_record_key(blob: bytes, identity: Any) -> Any:
    """The record key from a keystore file, or ArchiveError if identity is not a reader."""
    if not blob.startswith(b"age-encryption.org/v1\n"):
        raise ArchiveError(_("the record key file is corrupted (not an age file); restore it from a backup"))
    reader = _ssh_reader(identity)
    body = _ageread().decrypt(blob, reader) if reader is not None else None
    if body is None:  # not opened by ageread: pyrage decides, and says why not
        try:
            body = _pyrage().decrypt(blob, [identity])
        except Exception:
            raise ArchiveError(_("your key is not one of this household's readers")) from None
    return record_key_from_text(body.decode("utf-8", "replace"))


def seal(plaintext: bytes, recipient: Any) -> str:
    """An ASCII-armored age block encrypted to a record key's public half (record_key.to_public())."""
    return _pyrage().encrypt(plaintext, [recipient], armored=True).decode("ascii")


def seal_to(plaintext: bytes, public_keys: Iterable[str]) -> str:
    """An ASCII-armored age block for several readers at once (ssh-ed25519 staff keys, the age1 recovery key)."""
    recipients = [_reader_recipient(k) for k in public_keys]
    if not recipients:
        raise ArchiveError(_("nobody to seal to: add an active manager or gm to staff.yaml"))
    return _pyrage().encrypt(plaintext, recipients, armored=True).decode("ascii")


def open_sealed(armored: str, record_key: Any) -> bytes:
    """The plaintext of a sealed block."""
    data = armored.encode("ascii")
    reader = _reader_of(record_key)  # a staff identity's (a block sealed to staff keys): ageread opens it
    body = _ageread().decrypt(data, reader) if reader is not None else None
    if body is not None:
        return body
    try:
        return _pyrage().decrypt(data, [record_key])
    except Exception as exc:
        if "No matching keys" in str(exc):
            raise ArchiveError(
                _("the sealed block was opened with a key that is not this household's: check the keystore")
            ) from None
        raise ArchiveError(_("the sealed block is damaged and cannot be decrypted; restore it from history")) from None


def public_key_of_private(path: Path) -> str:
    """The public half of an SSH private key file, via ssh-keygen -y."""
    proc = subprocess.run(
        ["ssh-keygen", "-y", "-P", "", "-f", str(path)],
        capture_output=True,
        text=True,
        env={**os.environ, "SSH_ASKPASS": "", "DISPLAY": ""},
        stdin=subprocess.DEVNULL,
    )
    if proc.returncode != 0:
        raise ArchiveError(_("cannot read the public half of {path}; put the .pub file beside it").format(path=path))
    return proc.stdout.strip()


def check_recovery_key(public_key: str) -> None:
    """Refuse an offline recovery recipient that no record key could be wrapped to: a bad checksum, a weak point.

    pyrage takes any 32 bytes with a valid checksum, among them the points of
    small order every wrapping to which would be readable by anyone; agewrite,
    which does the wrapping, refuses those.
    """
    from archivectl import agewrite

    try:
        _pyrage().x25519.Recipient.from_str(public_key)
        agewrite.recipient(public_key)
    except Exception:
        raise UsageError(
            _("--recovery-key {public_key} is not a usable age public key (age1...)").format(public_key=public_key)
        ) from None


def record_recipient(recipient: str) -> Any:
    """A household's public record key ('age1...'), as stored in its record."""
    try:
        return _pyrage().x25519.Recipient.from_str(recipient)
    except Exception:
        raise ArchiveError(_("the record's recipient is not an age public key")) from None


def _encrypt_into(clear: Any, target: Path, recipient: Any) -> None:
    """Encrypt a readable stream into target, durably (memory stays flat whatever the size)."""
    with open(target, "wb") as dst:
        _pyrage().encrypt_io(clear, dst, [recipient])
        dst.flush()
        os.fsync(dst.fileno())


def encrypt_file(source: Path, target: Path, recipient: Any, repo: Path | None = None) -> str | None:
    """Stream a file into an age file in one pass; with repo, into its object store too: the blob id (else None).

    The file is read and sealed 64 KiB at a time (agewrite.encrypt_stream) and
    the sealed pieces written out a batch (~1 MiB) at a time to target; with
    repo, a second thread stores the same batches as a git blob hashed on the
    way (gitio.LooseBlob), so committing it reads nothing again. Memory stays
    flat whatever the size (a few batches in flight) and no clear byte is
    written anywhere. Both files are made durable: their write-back is started
    as they grow (_WriteBack) and each is fsynced on its own thread at the
    end, so the two waits overlap. A file that changes size while it is read
    is refused, and nothing is left of it.
    """
    from archivectl import agewrite, gitio

    store: _BlobThread | None = None
    try:
        with open(source, "rb") as src, open(target, "wb", buffering=0) as dst:
            length, pieces = agewrite.encrypt_stream(src, os.fstat(src.fileno()).st_size, [str(recipient)])
            blob = gitio.LooseBlob.open(repo, length) if repo is not None else None
            store = _BlobThread(blob) if blob is not None else None
            fd = dst.fileno()
            back = _WriteBack(fd, length)
            for batch in _batches(pieces):
                if store is not None:
                    store.put(batch)
                back.wrote(_writev_all(fd, batch))
            os.fsync(fd)
            return store.finish() if store is not None else None
    except OSError as exc:
        target.unlink(missing_ok=True)
        raise ArchiveError(
            _("cannot encrypt {name}: {strerror}").format(name=source.name, strerror=exc.strerror)
        ) from None
    except agewrite.SourceChanged:
        target.unlink(missing_ok=True)
        raise ArchiveError(
            _("{name} changed while it was being encrypted; attach it again once it is complete").format(
                name=source.name
            )
        ) from None
    finally:
        if store is not None:
            store.abort()  # nothing once finished


_BATCH = 1 << 20  # bytes of sealed pieces written (and handed to the blob thread) at once


def _batches(pieces: Iterator[bytes]) -> Iterator[list[bytes]]:
    """The pieces in lists of about _BATCH bytes: one writev and one queue hand-over each, not one per 64 KiB."""
    batch: list[bytes] = []
    size = 0
    for piece in pieces:
        batch.append(piece)
        size += len(piece)
        if size >= _BATCH:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _writev_all(fd: int, parts: list[bytes]) -> int:
    """Write every part, in order, to fd (writev, then what a short write left); the bytes written."""
    total = sum(len(p) for p in parts)
    done = os.writev(fd, parts)
    if done != total:
        rest = memoryview(b"".join(parts))[done:]
        while rest:
            rest = rest[os.write(fd, rest) :]
    return total


class _WriteBack:
    """Write a large file's pages out while it is still being written, and let go of them (Linux sync_file_range).

    Every 8 MiB, write-out of the last 8 MiB is started, and the 8 MiB before
    them, written out by then, are dropped from the page cache: the disk works
    while the next megabytes are sealed, the closing fsync waits for the last
    few megabytes rather than all of them, and the file takes a few megabytes
    of page cache, not its size. Fresh page-cache pages cost (a 200 MB scan
    written into cache that stays full: 0.9-1.1 s of system time for its two
    copies on the bench VM, against 0.2-0.4 s recycling 16 MiB). fsync still
    makes the file durable; nothing here is relied on for that. The price: the
    next read of the file (git's first look at it, an `open`) comes from disk.
    Anywhere without the call, or for a small file, it does nothing.
    """

    _STEP = 8 << 20  # bytes between two calls
    _WRITE = 2  # SYNC_FILE_RANGE_WRITE: start write-out of the dirty pages in the range
    _WAIT_WRITE_WAIT = 7  # ... WAIT_BEFORE | WRITE | WAIT_AFTER: and wait until the range is on the disk

    def __init__(self, fd: int, size: int) -> None:
        self._fd = fd
        self._at = 0  # bytes written so far
        self._started = 0  # write-out started up to here
        self._dropped = 0  # pages dropped from the cache up to here
        self._call = _sync_file_range() if size >= 2 * self._STEP else None

    def wrote(self, count: int) -> None:
        self._at += count
        if self._call is None or self._at - self._started < self._STEP:
            return
        if self._started > self._dropped:  # its write-out was started a step ago: done by now, mostly
            self._call(self._fd, self._dropped, self._started - self._dropped, self._WAIT_WRITE_WAIT)
            with contextlib.suppress(OSError, AttributeError):  # advice only: a file system may refuse it
                os.posix_fadvise(self._fd, self._dropped, self._started - self._dropped, os.POSIX_FADV_DONTNEED)
            self._dropped = self._started
        self._call(self._fd, self._started, self._at - self._started, self._WRITE)
        self._started = self._at


@functools.lru_cache(maxsize=1)
def _sync_file_range() -> Any:
    """libc's sync_file_range, or None (not Linux, or not found)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        call = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    call.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    call.restype = ctypes.c_int
    return call


class _BlobThread:
    """A LooseBlob written, then made durable, on its own thread (hashing and writing let go of the GIL).

    A few batches are queued at most. finish() waits for the object's fsync,
    done here while the caller fsyncs its own file.
    """

    def __init__(self, blob: Any) -> None:
        import queue
        import threading

        self._blob = blob
        self._queue: queue.Queue[list[bytes] | None] = queue.Queue(maxsize=2)
        self._failed: list[BaseException] = []
        self._done = False
        self._id: str | None = None
        self._thread = threading.Thread(target=self._run, name="archivectl-blob", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        back = _WriteBack(self._blob.fileno(), self._blob.size)
        while (batch := self._queue.get()) is not None:
            if not self._failed:
                try:
                    back.wrote(self._blob.write_many(batch))
                    if self._blob.complete():  # its fsync while the caller writes its last batch and fsyncs
                        self._id = str(self._blob.finish())
                except BaseException as exc:  # raised on the caller's thread at its next put or finish
                    self._failed.append(exc)

    def put(self, batch: list[bytes]) -> None:
        if self._failed:
            raise self._failed[0]
        self._queue.put(batch)

    def _stop(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def finish(self) -> str:
        self._stop()
        if self._failed:
            raise self._failed[0]
        if self._id is None:
            raise ArchiveError(_("internal: a blob's bytes are not the size it announced"))
        self._done = True
        return self._id

    def abort(self) -> None:
        """Stop the thread; the blob is thrown away unless finish() returned it."""
        self._stop()
        if not self._done:
            self._blob.abort()


def reencrypt_file(source: Path, target: Path, record_key: Any, recipient: Any) -> None:
    """Re-encrypt an age file to another recipient; its plaintext never touches a disk.

    One thread decrypts into a pipe while this one encrypts from it, a chunk at
    a time, so memory stays flat however large the scan. A decryption that
    fails halfway is never mistaken for a short file: the output is removed.
    """
    import threading

    read_end, write_end = os.pipe()
    failed: list[BaseException] = []

    def decrypt() -> None:
        try:
            with open(write_end, "wb") as sink:
                decrypt_stream(source, sink, record_key)
        except BaseException as exc:  # reported by the caller once the thread is done
            failed.append(exc)

    worker = threading.Thread(target=decrypt, name="archivectl-decrypt", daemon=True)
    worker.start()
    problem: str | None = None
    try:
        with open(read_end, "rb") as clear:
            _encrypt_into(clear, target, recipient)
    except OSError as exc:
        problem = exc.strerror or "encryption failed"
    except Exception:
        problem = "encryption failed"
    finally:
        worker.join()
    if problem is None and not failed:
        return
    target.unlink(missing_ok=True)
    if problem is None and isinstance(failed[0], ArchiveError):
        raise failed[0]
    raise ArchiveError(
        _("cannot re-encrypt {name}: {problem}").format(name=source.name, problem=problem or "decryption failed")
    )


class _Discard:
    """A writable that throws bytes away: for checking a whole age file before using it."""

    def write(self, data: bytes) -> int:
        return len(data)

    def flush(self) -> None:
        return None


def check_decrypts(source: Path, record_key: Any) -> None:
    """ArchiveError unless the whole file decrypts (age authenticates every chunk)."""
    decrypt_stream(source, _Discard(), record_key)


def decrypt_stream(source: Path, sink: Any, record_key: Any) -> None:
    """Stream an age file's plaintext into a writable binary file object."""
    try:
        with open(source, "rb") as src:
            _pyrage().decrypt_io(src, sink, [record_key])
    except FileNotFoundError:
        raise ArchiveError(_("{name} is missing from the work tree").format(name=source.name)) from None
    except OSError as exc:
        if exc.errno is None:  # pyrage reports a failed decryption as a bare OSError
            raise ArchiveError(
                _("{name} cannot be decrypted with the record key (corrupted?)").format(name=source.name)
            ) from None
        raise ArchiveError(_("cannot write the decrypted file: {strerror}").format(strerror=exc.strerror)) from None
    except Exception:
        raise ArchiveError(
            _("{name} cannot be decrypted with the record key (corrupted?)").format(name=source.name)
        ) from None
