"""The keystore on a server the office already runs, reached by SFTP through the system ssh.

Why the ssh binary and not an SSH library: each person's ~/.ssh/config (HostName, Port,
User, IdentityFile), known_hosts and ssh-agent are then honoured exactly as `ssh` honours
them, and archivectl needs no new dependency. This module speaks SFTP version 3
(draft-ietf-secsh-filexfer-02) to the remote sftp-server over the pipes of
`ssh -s HOST sftp`, plus two OpenSSH extensions (OpenSSH's PROTOCOL file):
posix-rename@openssh.com for atomic replacement and fsync@openssh.com for durability.

Requests are pipelined: an operation is a generator that yields one request at a time and
receives its reply, and `_Session.run` keeps up to WINDOW operations in flight. A create is
four requests (OPEN, WRITE, fsync, CLOSE); 20,000 of them one by one would wait for 80,000
round trips, pipelined they wait for about 80,000 / WINDOW (and at most WINDOW handles are
open on the server at once).

Nothing is written to the local disk here: no temporary files, caches or logs. Key bytes
live only in memory, and ssh's stderr is kept in memory and only used to word an error.
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import stat
import struct
import subprocess
import threading
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, BinaryIO, TypeVar
from urllib.parse import unquote, urlsplit

from archivectl.errors import ArchiveError, UsageError
from archivectl.i18n import _

# Packet types (draft-ietf-secsh-filexfer-02, section 3).
FXP_INIT = 1
FXP_VERSION = 2
FXP_OPEN = 3
FXP_CLOSE = 4
FXP_READ = 5
FXP_WRITE = 6
FXP_LSTAT = 7
FXP_FSTAT = 8
FXP_OPENDIR = 11
FXP_READDIR = 12
FXP_REMOVE = 13
FXP_MKDIR = 14
FXP_STAT = 17
FXP_STATUS = 101
FXP_HANDLE = 102
FXP_DATA = 103
FXP_NAME = 104
FXP_ATTRS = 105
FXP_EXTENDED = 200
FXP_EXTENDED_REPLY = 201

# Status codes (section 7).
FX_OK = 0
FX_EOF = 1
FX_NO_SUCH_FILE = 2
FX_PERMISSION_DENIED = 3
FX_FAILURE = 4

# Open flags (section 6.3).
FXF_READ = 0x01
FXF_WRITE = 0x02
FXF_CREAT = 0x08
FXF_EXCL = 0x20

# Attribute flags (section 5).
ATTR_SIZE = 0x01
ATTR_UIDGID = 0x02
ATTR_PERMISSIONS = 0x04
ATTR_ACMODTIME = 0x08
ATTR_EXTENDED = 0x80000000

POSIX_RENAME = "posix-rename@openssh.com"
FSYNC = "fsync@openssh.com"

WINDOW = 64  # operations in flight at once; also the most handles open on the server
CHUNK = 32768  # every SFTP server must accept reads and writes of this size
MAX_PACKET = 256 * 1024 + 1024  # OpenSSH's limit is 256 KiB; longer means it is not SFTP
STDERR_KEPT = 64 * 1024  # enough of ssh's stderr to word an error; the rest is dropped
SUBFOLDERS = ("keys", "numbers")

T = TypeVar("T")
_Request = tuple[int, bytes]  # packet type and body, without the request id


# --- encoding ---------------------------------------------------------------------------


def _u32(value: int) -> bytes:
    return struct.pack(">I", value)


def _u64(value: int) -> bytes:
    return struct.pack(">Q", value)


def _string(value: bytes | str) -> bytes:
    raw = value.encode() if isinstance(value, str) else value
    return _u32(len(raw)) + raw


def _mode_attrs(mode: int | None) -> bytes:
    """ATTRS carrying only permissions, or no attributes at all."""
    if mode is None:
        return _u32(0)
    return _u32(ATTR_PERMISSIONS) + _u32(mode)


def _open(path: str, flags: int, mode: int | None = None) -> _Request:
    return FXP_OPEN, _string(path) + _u32(flags) + _mode_attrs(mode)


def _close(handle: bytes) -> _Request:
    return FXP_CLOSE, _string(handle)


def _read(handle: bytes, offset: int) -> _Request:
    return FXP_READ, _string(handle) + _u64(offset) + _u32(CHUNK)


def _write(handle: bytes, offset: int, data: bytes) -> _Request:
    return FXP_WRITE, _string(handle) + _u64(offset) + _string(data)


def _path_request(kind: int, path: str) -> _Request:
    """LSTAT, STAT, OPENDIR, REMOVE: requests whose body is one path."""
    return kind, _string(path)


def _handle_request(kind: int, handle: bytes) -> _Request:
    """FSTAT, READDIR: requests whose body is one handle."""
    return kind, _string(handle)


def _mkdir(path: str, mode: int) -> _Request:
    return FXP_MKDIR, _string(path) + _mode_attrs(mode)


def _extended(name: str, *fields: bytes | str) -> _Request:
    return FXP_EXTENDED, _string(name) + b"".join(_string(f) for f in fields)


# --- decoding ---------------------------------------------------------------------------


class _Reader:
    """Reads the fields of one received packet in order."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, count: int) -> bytes:
        if self.pos + count > len(self.data):
            raise ValueError("packet too short")
        chunk = self.data[self.pos : self.pos + count]
        self.pos += count
        return chunk

    def u32(self) -> int:
        return struct.unpack(">I", self.take(4))[0]

    def u64(self) -> int:
        return struct.unpack(">Q", self.take(8))[0]

    def string(self) -> bytes:
        return self.take(self.u32())

    def done(self) -> bool:
        return self.pos >= len(self.data)

    def attrs(self) -> _Attrs:
        flags = self.u32()
        attrs = _Attrs()
        if flags & ATTR_SIZE:
            attrs.size = self.u64()
        if flags & ATTR_UIDGID:
            self.u32(), self.u32()
        if flags & ATTR_PERMISSIONS:
            attrs.permissions = self.u32()
        if flags & ATTR_ACMODTIME:
            self.u32()
            attrs.mtime = self.u32()
        if flags & ATTR_EXTENDED:
            for _ in range(self.u32()):
                self.string(), self.string()
        return attrs


@dataclass
class _Attrs:
    size: int | None = None
    permissions: int | None = None
    mtime: int | None = None

    def is_file(self) -> bool:
        return self.permissions is not None and stat.S_ISREG(self.permissions)

    def is_dir(self) -> bool:
        return self.permissions is not None and stat.S_ISDIR(self.permissions)


@dataclass
class _Reply:
    """A server reply, decoded at once so operations can look at it as often as they like."""

    kind: int
    code: int = -1  # STATUS only
    message: str = ""  # STATUS only
    handle: bytes = b""  # HANDLE only
    data: bytes = b""  # DATA only
    attrs: _Attrs | None = None  # ATTRS only
    names: list[tuple[str, _Attrs]] = field(default_factory=list)  # NAME only

    def is_status(self, code: int) -> bool:
        return self.kind == FXP_STATUS and self.code == code

    @property
    def ok(self) -> bool:
        return self.is_status(FX_OK)

    def describe(self) -> str:
        """The server's words for a failure, on one line."""
        if self.kind != FXP_STATUS:
            return f"unexpected reply (type {self.kind})"
        words = " ".join(self.message.split()) or f"status {self.code}"
        return words[:200]


def _decode_reply(kind: int, body: _Reader) -> _Reply:
    reply = _Reply(kind)
    if kind == FXP_STATUS:
        reply.code = body.u32()
        reply.message = body.string().decode(errors="replace") if not body.done() else ""
    elif kind == FXP_HANDLE:
        reply.handle = body.string()
    elif kind == FXP_DATA:
        reply.data = body.string()
    elif kind == FXP_ATTRS:
        reply.attrs = body.attrs()
    elif kind == FXP_NAME:
        for _ in range(body.u32()):
            filename = body.string().decode(errors="surrogateescape")
            body.string()  # the ls -l style long name, meant for people
            reply.names.append((filename, body.attrs()))
    return reply


# --- the ssh process --------------------------------------------------------------------


class _StderrCollector:
    """Keeps what ssh writes to stderr in memory (never on a terminal or a disk)."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._kept = bytearray()
        self._thread = threading.Thread(target=self._collect, name="ssh-stderr", daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        """Drain the pipe so ssh never blocks on a full stderr, keeping only its start."""
        while chunk := self._stream.read1(4096):  # type: ignore[attr-defined]
            room = STDERR_KEPT - len(self._kept)
            if room > 0:
                self._kept += chunk[:room]

    def text(self, wait: float = 2.0) -> str:
        self._thread.join(wait)
        return bytes(self._kept).decode(errors="replace")


def _ssh_error(url: str, host: str, stderr: str, established: bool) -> ArchiveError:
    """Word a failed or lost ssh connection from what ssh said on stderr."""
    if any(
        sign in stderr
        for sign in (
            "Host key verification failed",
            "REMOTE HOST IDENTIFICATION HAS CHANGED",
            "host key is known",
            "has changed and you have requested strict checking",
        )
    ):
        return ArchiveError(
            _(
                "keystore {url}: the host key of {host} is unknown or has changed; check it with the IT person "
                "and add it to ~/.ssh/known_hosts (nothing was changed)"
            ).format(url=url, host=host)
        )
    if "Permission denied" in stderr:
        return ArchiveError(
            _("keystore {url}: {host} refused your SSH key (ask the IT person to add it)").format(url=url, host=host)
        )
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    said = lines[0][:200] if lines else "ssh said nothing"
    if established:
        return ArchiveError(
            _("keystore {url}: the connection to {host} was lost ({said})").format(url=url, host=host, said=said)
        )
    return ArchiveError(_("keystore {url}: cannot reach {host} ({said})").format(url=url, host=host, said=said))


class _Session:
    """One `ssh -s HOST sftp` process, the SFTP packets over its pipes, and the pipelining."""

    def __init__(self, command: list[str], url: str, host: str) -> None:
        self.url = url
        self.host = host
        self._next_id = 0
        self._established = False
        try:
            self._proc = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
        except OSError as exc:
            raise ArchiveError(
                _("keystore {url}: cannot run {command} ({strerror})").format(
                    url=url, command=command[0], strerror=exc.strerror
                )
            ) from None
        assert self._proc.stdin and self._proc.stdout and self._proc.stderr
        self._stdin = self._proc.stdin
        self._stdout = self._proc.stdout
        self._stderr = _StderrCollector(self._proc.stderr)
        self.alive = True
        self.extensions = self._handshake()
        self._established = True

    def _handshake(self) -> dict[str, bytes]:
        """Send INIT, read VERSION: the extensions the server offers, by name."""
        self._write_packet(FXP_INIT, _u32(3))
        kind, body = self._read_packet()
        if kind != FXP_VERSION:
            raise self._broken(f"the server's first reply is not SFTP (type {kind})")
        try:
            version = body.u32()
            extensions = {}
            while not body.done():
                name = body.string().decode(errors="replace")
                extensions[name] = body.string()
        except ValueError:
            raise self._broken("the server's first reply is not SFTP (malformed)") from None
        if version < 3:
            raise self._broken(f"the server speaks SFTP version {version}; version 3 is needed")
        return extensions

    # packets

    def _write_packet(self, kind: int, body: bytes) -> None:
        try:
            self._stdin.write(_u32(len(body) + 1) + bytes([kind]) + body)
        except (BrokenPipeError, ValueError):
            raise self._lost() from None

    def _flush(self) -> None:
        try:
            self._stdin.flush()
        except (BrokenPipeError, ValueError):
            raise self._lost() from None

    def _read_exact(self, count: int) -> bytes:
        data = self._stdout.read(count)
        if len(data) < count:
            raise self._lost()
        return data

    def _read_packet(self) -> tuple[int, _Reader]:
        self._flush()
        (length,) = struct.unpack(">I", self._read_exact(4))
        if not 1 <= length <= MAX_PACKET:
            # A login script on the server printing text breaks SFTP exactly like this.
            raise self._broken("the server's reply is not SFTP (does a login script on the server print text?)")
        data = self._read_exact(length)
        return data[0], _Reader(data[1:])

    def send(self, request: _Request) -> int:
        """Queue one request (written at the next flush); its request id."""
        request_id = self._next_id
        self._next_id = (self._next_id + 1) & 0xFFFFFFFF
        kind, body = request
        self._write_packet(kind, _u32(request_id) + body)
        return request_id

    def receive(self) -> tuple[int, _Reply]:
        """The next reply and the id of the request it answers."""
        kind, body = self._read_packet()
        try:
            request_id = body.u32()
            return request_id, _decode_reply(kind, body)
        except ValueError:
            raise self._broken(f"the server sent a malformed reply (type {kind})") from None

    # pipelining

    def run(self, operations: list[Generator[_Request, _Reply, T]]) -> list[T]:
        """Drive operations concurrently, at most WINDOW in flight; their results in order.

        Each operation has at most one request outstanding. If one fails, no new ones start,
        those in flight finish (closing their handles), and then the first error is raised.
        """
        results: list[Any] = [None] * len(operations)
        waiting: dict[int, int] = {}  # request id -> index of the operation that sent it
        failure: ArchiveError | None = None
        started = 0

        def advance(index: int, reply: _Reply | None) -> None:
            nonlocal failure
            try:
                request = operations[index].send(reply)  # type: ignore[arg-type]
            except StopIteration as finished:
                results[index] = finished.value
            except ArchiveError as error:
                failure = failure or error
            else:
                waiting[self.send(request)] = index

        try:
            while waiting or (failure is None and started < len(operations)):
                while failure is None and started < len(operations) and len(waiting) < WINDOW:
                    started += 1
                    advance(started - 1, None)
                if waiting:
                    request_id, reply = self.receive()
                    if request_id not in waiting:
                        raise self._broken(f"the server answered a request never sent ({request_id})")
                    advance(waiting.pop(request_id), reply)
        except BaseException:
            self.close()  # replies still on their way would confuse the next operation
            raise
        if failure is not None:
            raise failure
        return results

    def run_one(self, operation: Generator[_Request, _Reply, T]) -> T:
        return self.run([operation])[0]

    # ending

    def _broken(self, reason: str) -> ArchiveError:
        """Give up on a connection that no longer speaks SFTP."""
        self.close()
        return ArchiveError(_("keystore {url}: {reason}").format(url=self.url, reason=reason))

    def _lost(self) -> ArchiveError:
        """The ssh process went away: say why, from its stderr."""
        self.close()
        return _ssh_error(self.url, self.host, self._stderr.text(), self._established)

    def close(self) -> None:
        """End of input makes sftp-server exit and ssh with it; wait for that, then insist."""
        if not self.alive:
            return
        self.alive = False
        try:
            self._stdin.close()
        except (BrokenPipeError, OSError):
            pass
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._stdout.close()
        self._stderr.text()


# --- URLs and names ---------------------------------------------------------------------


def _ssh_program() -> list[str]:
    """ARCHIVECTL_SSH (split like a shell would, e.g. "ssh -F /path/config") or plain ssh."""
    return shlex.split(os.environ.get("ARCHIVECTL_SSH", "")) or ["ssh"]


def _parse_url(url: str) -> tuple[str, int | None, str | None, str]:
    """sftp://[user@]host[:port]/path -> host, port, user, remote root.

    /~/x is relative to the login's home: sftp-server resolves relative paths against it.
    """
    parts = urlsplit(url)
    if parts.scheme != "sftp" or not parts.hostname:
        raise UsageError(_("keystore {url}: expected sftp://[user@]host[:port]/path").format(url=url))
    if not re.fullmatch(r"[A-Za-z0-9_.:%-]+", parts.hostname) or parts.hostname.startswith("-"):
        raise UsageError(_("keystore {url}: {hostname!r} is not a host name").format(url=url, hostname=parts.hostname))
    if parts.password is not None:
        raise UsageError(_("keystore URL: put no password in it; sftp:// uses your SSH key"))
    if parts.query or parts.fragment:
        raise UsageError(_("keystore {url}: a keystore URL has no ?query or #fragment").format(url=url))
    try:
        port = parts.port
    except ValueError:
        raise UsageError(_("keystore {url}: the port is not a number from 1 to 65535").format(url=url)) from None
    path = unquote(parts.path)
    if path == "/~" or path.startswith("/~/"):
        root = path[3:].strip("/") or "."
    elif path.startswith("/~"):
        raise UsageError(_("keystore {url}: only ~/ (your own home) is understood, not ~user").format(url=url))
    else:
        root = "/" + path.strip("/")
    if root == "/":
        raise UsageError(
            _("keystore {url}: name the keystore directory, e.g. sftp://host/srv/estate.keys").format(url=url)
        )
    user = unquote(parts.username) if parts.username else None
    return parts.hostname, port, user, root


def _check_name(name: str) -> None:
    """A name is a relative POSIX path under the keystore root, nothing that could climb out."""
    parts = name.split("/")
    if not name or name.startswith("/") or "\0" in name or any(p in ("", ".", "..") for p in parts):
        raise UsageError(
            _("keystore name {name!r} must be a relative path without '..' or empty parts").format(name=name)
        )


# --- the backend ------------------------------------------------------------------------


class SftpBackend:
    """The keystore as a directory on an SFTP server: root/keys/... and root/numbers/...."""

    def __init__(self, url: str) -> None:
        """Parse only: the connection is made on first use."""
        self.url = url
        self.host, self.port, self.user, self.root = _parse_url(url)
        self._session: _Session | None = None
        self._listed: dict[str, list[tuple[str, float]]] = {}  # list()'s answers until this process writes

    def __enter__(self) -> SftpBackend:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def command(self) -> list[str]:
        """The ssh command line: BatchMode so it never asks anything on a terminal."""
        command = [*_ssh_program(), "-oBatchMode=yes"]
        if self.port is not None:
            command += ["-p", str(self.port)]
        if self.user is not None:
            command += ["-l", self.user]
        return [*command, "-s", "--", self.host, "sftp"]

    def _connected(self) -> _Session:
        if self._session is None or not self._session.alive:
            self._session = _Session(self.command(), self.url, self.host)
        return self._session

    def close(self) -> None:
        """End the ssh process cleanly."""
        self._listed.clear()
        if self._session is not None:
            self._session.close()
            self._session = None

    def _path(self, name: str) -> str:
        _check_name(name)
        return f"{self.root}/{name}"

    def _failed(self, operation: str, name: str, reply: _Reply) -> ArchiveError:
        return ArchiveError(
            _("keystore {url}: {operation} {name} failed: {describe}").format(
                url=self.url, operation=operation, name=name, describe=reply.describe()
            )
        )

    # public operations

    def check(self) -> None:
        """Connect, and refuse unless the root directory exists."""
        self._connected().run_one(self._check_op())

    def makedirs(self) -> None:
        """Create root, root/keys and root/numbers (mode 0700); fine if they exist."""
        session = self._connected()
        session.run_one(self._mkdir_op(self.root, self.root))
        session.run([self._mkdir_op(self._path(sub), sub) for sub in SUBFOLDERS])

    def create(self, name: str, data: bytes) -> bool:
        """Write a new file; False (nothing written) if the name exists already."""
        return self.create_many([(name, data)])[0]

    def create_many(self, items: list[tuple[str, bytes]]) -> list[bool]:
        """create() for each item, pipelined."""
        self._listed.clear()
        # Building the list checks every name (self._path) before anything is sent.
        operations = [self._create_op(self._path(name), data, name, "create") for name, data in items]
        return self._connected().run(operations)

    def replace(self, name: str, data: bytes) -> None:
        """Write data under name atomically: readers see the old bytes or the new, never half."""
        self._listed.clear()
        path = self._path(name)
        session = self._connected()
        if POSIX_RENAME not in session.extensions:
            raise ArchiveError(
                _(
                    "keystore {url}: the server cannot replace a file atomically (no {POSIX_RENAME}); it needs "
                    "OpenSSH's sftp-server"
                ).format(url=self.url, POSIX_RENAME=POSIX_RENAME)
            )
        session.run_one(self._replace_op(path, data, name))

    def read(self, name: str) -> bytes | None:
        """The file's bytes, or None if it does not exist."""
        return self.read_many([name])[0]

    def read_many(self, names: list[str]) -> list[bytes | None]:
        """read() for each name, pipelined."""
        # Building the list checks every name (self._path) before anything is sent.
        operations = [self._read_op(self._path(name), name) for name in names]
        return self._connected().run(operations)

    def sealed_many(self, names: list[str]) -> list[bytes | None]:
        """As read_many: the server keeps the wrapped keys as they are."""
        return self.read_many(names)

    def list(self, folder: str) -> list[tuple[str, float]]:
        """(name, mtime) of the regular files in root/folder ("" = root); [] if it is missing.

        Asked once per folder until this process writes (`keys fsck` looks at keys/ three times).
        """
        path = self.root if folder == "" else self._path(folder)
        if folder not in self._listed:
            self._listed[folder] = self._connected().run_one(self._list_op(path, folder or "."))
        return list(self._listed[folder])

    def names(self, folder: str) -> list[str]:
        """list()'s names: SFTP's directory listing carries each entry's time anyway."""
        return [name for name, _ in self.list(folder)]

    def remove(self, name: str) -> bool:
        """Overwrite the file's bytes with random ones, sync, then delete; False if it was gone."""
        self._listed.clear()
        path = self._path(name)  # refuse a bad name before connecting
        return self._connected().run_one(self._remove_op(path, name))

    # operations, as generators of requests (see _Session.run)

    def _check_op(self) -> Generator[_Request, _Reply, None]:
        reply = yield _path_request(FXP_STAT, self.root)
        if reply.kind == FXP_ATTRS and reply.attrs is not None and reply.attrs.is_dir():
            return
        if reply.kind == FXP_ATTRS or reply.is_status(FX_NO_SUCH_FILE):
            raise ArchiveError(
                _(
                    "keystore {url} is missing on the server (run archivectl init --keystore URL, or ask the IT person)"
                ).format(url=self.url)
            )
        raise self._failed("check", self.root, reply)

    def _mkdir_op(self, path: str, name: str) -> Generator[_Request, _Reply, None]:
        reply = yield _mkdir(path, 0o700)
        if reply.ok:
            return
        # OpenSSH reports "exists" as a bare failure: look before complaining.
        probe = yield _path_request(FXP_STAT, path)
        if probe.kind == FXP_ATTRS and probe.attrs is not None and probe.attrs.is_dir():
            return
        raise self._failed("mkdir", name, reply)

    def _create_op(self, path: str, data: bytes, name: str, operation: str) -> Generator[_Request, _Reply, bool]:
        reply = yield _open(path, FXF_WRITE | FXF_CREAT | FXF_EXCL, 0o600)
        if reply.kind != FXP_HANDLE:
            if reply.is_status(FX_FAILURE):
                # OpenSSH's sftp-server maps EEXIST to the generic failure; tell them apart.
                probe = yield _path_request(FXP_LSTAT, path)
                if probe.kind == FXP_ATTRS:
                    return False
            raise self._failed(operation, name, reply)
        problem = yield from self._write_all(reply.handle, data)
        closed = yield _close(reply.handle)
        problem = problem or (None if closed.ok else closed)
        if problem is not None:
            yield _path_request(FXP_REMOVE, path)  # never leave a half-written key behind
            raise self._failed(operation, name, problem)
        return True

    def _write_all(self, handle: bytes, data: bytes) -> Generator[_Request, _Reply, _Reply | None]:
        """Write data at offset 0 and fsync if the server can; the failing reply, if any."""
        for offset in range(0, len(data), CHUNK):
            reply = yield _write(handle, offset, data[offset : offset + CHUNK])
            if not reply.ok:
                return reply
        if self._session is not None and FSYNC in self._session.extensions:
            reply = yield _extended(FSYNC, handle)
            if not reply.ok:
                return reply
        return None

    def _replace_op(self, path: str, data: bytes, name: str) -> Generator[_Request, _Reply, None]:
        folder, _sep, base = path.rpartition("/")
        temporary = f"{folder}/.{base}.{secrets.token_hex(8)}.tmp"
        if not (yield from self._create_op(temporary, data, name, "replace")):
            raise ArchiveError(
                _("keystore {url}: replace {name} failed: its temporary name was taken").format(url=self.url, name=name)
            )
        reply = yield _extended(POSIX_RENAME, temporary, path)
        if not reply.ok:
            yield _path_request(FXP_REMOVE, temporary)
            raise self._failed("replace", name, reply)

    def _read_op(self, path: str, name: str) -> Generator[_Request, _Reply, bytes | None]:
        reply = yield _open(path, FXF_READ)
        if reply.is_status(FX_NO_SUCH_FILE):
            return None
        if reply.kind != FXP_HANDLE:
            raise self._failed("read", name, reply)
        chunks: list[bytes] = []
        offset = 0
        problem = None
        while True:
            got = yield _read(reply.handle, offset)
            if got.kind == FXP_DATA:
                chunks.append(got.data)
                offset += len(got.data)
                continue
            if not got.is_status(FX_EOF):
                problem = got
            break
        closed = yield _close(reply.handle)
        problem = problem or (None if closed.ok else closed)
        if problem is not None:
            raise self._failed("read", name, problem)
        return b"".join(chunks)

    def _list_op(self, path: str, name: str) -> Generator[_Request, _Reply, list[tuple[str, float]]]:
        reply = yield _path_request(FXP_OPENDIR, path)
        if reply.is_status(FX_NO_SUCH_FILE):
            return []
        if reply.kind != FXP_HANDLE:
            raise self._failed("list", name, reply)
        found: list[tuple[str, float]] = []
        problem = None
        while True:
            got = yield _handle_request(FXP_READDIR, reply.handle)
            if got.kind != FXP_NAME:
                problem = None if got.is_status(FX_EOF) else got
                break
            for filename, attrs in got.names:
                if filename not in (".", "..") and attrs.is_file():
                    found.append((filename, float(attrs.mtime or 0)))
        closed = yield _close(reply.handle)
        problem = problem or (None if closed.ok else closed)
        if problem is not None:
            raise self._failed("list", name, problem)
        return sorted(found)

    def _remove_op(self, path: str, name: str) -> Generator[_Request, _Reply, bool]:
        probe = yield _path_request(FXP_LSTAT, path)
        if probe.is_status(FX_NO_SUCH_FILE):
            return False
        if probe.kind != FXP_ATTRS:
            raise self._failed("remove", name, probe)
        if probe.attrs is None or not probe.attrs.is_file() or probe.attrs.size is None:
            # Never write through a link or into a device: only a plain file is overwritten.
            raise ArchiveError(
                _("keystore {url}: remove {name} failed: not a regular file").format(url=self.url, name=name)
            )
        reply = yield _open(path, FXF_WRITE)
        if reply.is_status(FX_NO_SUCH_FILE):
            return False
        if reply.kind != FXP_HANDLE:
            raise self._failed("remove", name, reply)
        problem = yield from self._write_all(reply.handle, os.urandom(probe.attrs.size))
        closed = yield _close(reply.handle)
        problem = problem or (None if closed.ok else closed)
        if problem is not None:
            raise self._failed("remove", name, problem)
        removed = yield _path_request(FXP_REMOVE, path)
        if removed.is_status(FX_NO_SUCH_FILE):
            return False
        if not removed.ok:
            raise self._failed("remove", name, removed)
        return True
