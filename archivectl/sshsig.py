"""Commit signatures checked in process, with the verdicts git itself gives.

`git log --format=%G?` runs `ssh-keygen -Y find-principals` and then
`ssh-keygen -Y verify` (or `-Y check-novalidate`) for every commit, ~8 ms each.
This module reproduces what git 2.39 and OpenSSH 9.2 decide together, for
ssh-ed25519 signatures, without a child process per commit:

- the signed payload is the commit object without its `gpgsig` header, split
  as git's parse_buffer_signed_by_header does;
- the key must be on an allowed-signers line valid at the committer time, as
  git passes it to ssh-keygen: formatted in the local time zone and read back
  by ssh-keygen with daylight saving time switched off (so in summer the key
  is checked one hour after the commit);
- git says 'G' with the principal only when ssh-keygen finds the key's first
  valid line and then verifies under one of its principals; 'U' when the
  signature is good but no line is valid for the key at that time; 'B' for
  everything else ssh-keygen rejects, with no fingerprint.

'E' means this checker does not reproduce git's answer for the commit (another
key type, an OpenPGP or X.509 signature, a committer time beyond year 9999):
ask git. Revocation files (gpg.ssh.revocationFile) are not supported.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import hashlib
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from archivectl import gitio
from archivectl.errors import ArchiveError
from archivectl.i18n import _

GOOD, UNKNOWN, BAD, NONE, CANNOT_CHECK = "G", "U", "B", "N", "E"

_NAMESPACE = b"git"
_ED25519 = b"ssh-ed25519"
_ARMOR_BEGIN = b"-----BEGIN SSH SIGNATURE-----"
_OTHER_FORMATS = (b"-----BEGIN PGP SIGNATURE-----", b"-----BEGIN PGP MESSAGE-----", b"-----BEGIN SIGNED MESSAGE-----")
_HASHES = {b"sha256": hashlib.sha256, b"sha512": hashlib.sha512}
# Key types OpenSSH 9.2 knows besides ssh-ed25519: git would ask ssh-keygen about them, we cannot.
_OTHER_KEY_TYPES = {
    b"ssh-ed25519-cert-v01@openssh.com",
    b"sk-ssh-ed25519@openssh.com",
    b"sk-ssh-ed25519-cert-v01@openssh.com",
    b"ecdsa-sha2-nistp256",
    b"ecdsa-sha2-nistp384",
    b"ecdsa-sha2-nistp521",
    b"ecdsa-sha2-nistp256-cert-v01@openssh.com",
    b"ecdsa-sha2-nistp384-cert-v01@openssh.com",
    b"ecdsa-sha2-nistp521-cert-v01@openssh.com",
    b"sk-ecdsa-sha2-nistp256@openssh.com",
    b"sk-ecdsa-sha2-nistp256-cert-v01@openssh.com",
    b"webauthn-sk-ecdsa-sha2-nistp256@openssh.com",
    b"ssh-rsa",
    b"rsa-sha2-256",
    b"rsa-sha2-512",
    b"ssh-rsa-cert-v01@openssh.com",
    b"rsa-sha2-256-cert-v01@openssh.com",
    b"rsa-sha2-512-cert-v01@openssh.com",
    b"ssh-dss",
    b"ssh-dss-cert-v01@openssh.com",
    b"ssh-xmss@openssh.com",
    b"ssh-xmss-cert-v01@openssh.com",
}
_OTHER_SHORT_NAMES = {b"ed25519-sk", b"ecdsa", b"ecdsa-sk", b"rsa", b"dsa", b"xmss"}
_ORDER = 2**252 + 0x14DEF9DEA2F79CD65812631A5CF5D3ED  # L, the order of the Ed25519 base point (RFC 8032)
_END_OF_YEAR_9999 = 253402300799  # later times have five-digit years, which this module does not follow


@dataclass(frozen=True)
class AllowedSigner:
    """One line of an ssh allowed-signers file, for ssh-ed25519 keys.

    principals: the line's first field: usually one staff id; a comma-separated
    list of patterns (`*`, `?`, `!negation`) as ssh-keygen allows.
    key: "ssh-ed25519 AAAA..." (a comment after it is ignored).
    namespaces: the namespaces="..." pattern list, or None for no restriction.
    valid_after, valid_before: Unix times, or None; as in the file, a line
    whose times are not positive or not in order is ignored.
    """

    principals: str
    key: str
    namespaces: str | None = None
    valid_after: int | None = None
    valid_before: int | None = None


@dataclass(frozen=True)
class SignatureVerdict:
    """What git's %G?, %GF and %GS say about one commit (None where git prints nothing).

    key, "ssh-ed25519 AAAA...", is given exactly when fingerprint is.
    """

    status: str
    fingerprint: str | None = None
    principal: str | None = None
    key: str | None = None


class _Rejected(Exception):
    """ssh-keygen says no: the signature is bad ('B'), or it skips the allowed-signers line."""


class _NotReproduced(Exception):
    """git would ask a program whose answer this module does not reproduce."""


def split_signed_commit(raw_commit: bytes, object_format: str = "sha1") -> tuple[bytes, bytes | None]:
    """(payload, signature) of a raw commit object as git splits them; signature None when unsigned.

    Follows git's parse_buffer_signed_by_header: the `gpgsig` header (`gpgsig-sha256`
    in a sha256 repository) and its continuation lines are the signature; any other
    header starting with "gpgsig" is dropped from the payload with its continuation
    lines; the rest is kept byte for byte.
    """
    header = b"gpgsig " if object_format == "sha1" else b"gpgsig-sha256 "
    payload = bytearray()
    signature = bytearray()
    saw_signature = in_signature = other_signature = False
    pos, end = 0, len(raw_commit)
    while pos < end:
        newline = raw_commit.find(b"\n", pos)
        nxt = newline + 1 if newline >= 0 else end
        line = raw_commit[pos:nxt]
        sig_start = -1
        if in_signature and line[:1] == b" ":
            sig_start = 1
        elif line.startswith(header):
            sig_start = len(header)
            other_signature = False
        elif line.startswith(b"gpgsig"):
            other_signature = True
        elif other_signature and line[:1] != b" ":
            other_signature = False
        if sig_start >= 0:
            signature += line[sig_start:]
            saw_signature = in_signature = True
        else:
            if line[:1] == b"\n":  # end of the headers: the message is kept whole
                payload += raw_commit[pos:]
                break
            if not other_signature:
                payload += line
            in_signature = False
        pos = nxt
    return bytes(payload), bytes(signature) if saw_signature else None


def parse_allowed_signers(text: str) -> list[AllowedSigner]:
    """The ssh-ed25519 lines of an allowed-signers file that ssh-keygen would accept, in order.

    Times without a Z or UTC suffix are read in the local time zone with daylight
    saving time off, as ssh-keygen reads them. Lines ssh-keygen rejects, comments,
    cert-authority lines and other key types are left out: none can match an
    ssh-ed25519 signature.
    """
    signers = []
    for line in text.encode("utf-8").split(b"\n"):
        try:
            signer = _parse_signer_line(line.split(b"\0", 1)[0])
        except _Rejected:
            continue
        if signer is not None:
            signers.append(signer)
    return signers


def check_commit_signature(
    raw_commit: bytes,
    allowed: Sequence[AllowedSigner],
    *,
    object_format: str = "sha1",
    now: float | None = None,
) -> SignatureVerdict:
    """Git's verdict (%G?, %GF, %GS) on a raw commit object, given the allowed-signers lines in file order.

    now stands for the clock ssh-keygen reads when the committer line has no
    usable time (default: the current time).
    """
    return _decide(prepare(raw_commit, object_format), _SignerIndex(allowed), time.time() if now is None else now)


def check_commits(repo: Path, commits: Sequence[str], allowed: Sequence[AllowedSigner]) -> dict[str, SignatureVerdict]:
    """Verdicts for many commits (full ids) of repo, their objects read through one `git cat-file --batch`."""
    checker = SignatureChecker(allowed, gitio.layout(repo).object_format)
    verdicts: dict[str, SignatureVerdict] = {}
    missing = []
    with gitio.BlobReader(repo) as reader:
        # Read every answer before complaining: the reader's feeding thread must finish.
        for commit, raw in zip(commits, reader.read_many(list(commits)), strict=True):
            if raw is None:
                missing.append(commit)
            else:
                verdicts[commit] = checker.verdict(raw)
    if missing:
        raise ArchiveError(_("commit {missing} is not in the repository").format(missing=missing[0]))
    return verdicts


class SignatureChecker:
    """Git's verdicts on raw commit objects against one allowed-signers list, for callers that read the objects."""

    def __init__(self, allowed: Sequence[AllowedSigner], object_format: str = "sha1", now: float | None = None):
        self._index = _SignerIndex(allowed)
        self._object_format = object_format
        self._now = time.time() if now is None else now

    def verdict(self, raw_commit: bytes) -> SignatureVerdict:
        """What git's %G?, %GF and %GS say about this commit object."""
        return _decide(prepare(raw_commit, self._object_format), self._index, self._now)

    def decide(self, prepared: Prepared) -> SignatureVerdict:
        """verdict() for a commit prepare() has read (perhaps in another process)."""
        return _decide(prepared, self._index, self._now)


def _fingerprint(key_blob: bytes) -> str:
    return "SHA256:" + base64.b64encode(hashlib.sha256(key_blob).digest()).decode().rstrip("=")


# --- the decision, step by step as git and ssh-keygen take it -------------------------------------------------


class Prepared(NamedTuple):
    """What a commit's signature says before any allowed-signers list is consulted (prepare()).

    Plain values only, so that a worker process can send it through a pipe (marshal):
    status is a verdict already reached (N, E: no list can change it), else None;
    failure is the verdict reading the SSHSIG blob reached (B or E), given only after
    the committer time has been checked, as ssh-keygen checks them; verified is True
    when the signature is good over the payload for public_key, trust aside.
    """

    status: str | None
    timestamp: int = 0
    public_key: bytes = b""
    failure: str | None = None
    verified: bool = False


def prepare(raw_commit: bytes, object_format: str = "sha1") -> Prepared:
    """Everything of a commit's verdict that needs no allowed signers: the payload split off, the armor and the
    SSHSIG blob read, the ed25519 signature checked. _decide() finishes it for one allowed-signers list."""
    payload, signature = split_signed_commit(raw_commit, object_format)
    if signature is None:
        return Prepared(NONE)
    if not signature.startswith(_ARMOR_BEGIN) and not signature.startswith(_OTHER_FORMATS):
        return Prepared(CANNOT_CHECK)  # git dies: "bad/incompatible signature"
    timestamp = _committer_timestamp(payload)
    if timestamp is None:
        return Prepared(NONE)  # git gives up before looking at the signature
    if not signature.startswith(_ARMOR_BEGIN):
        return Prepared(CANNOT_CHECK)  # git would run gpg or gpgsm
    try:
        blob = _dearmor(signature)
        public_key = _signature_public_key(blob)
    except _NotReproduced:
        return Prepared(None, timestamp, failure=CANNOT_CHECK)
    except _Rejected:
        return Prepared(None, timestamp, failure=BAD)
    return Prepared(None, timestamp, public_key, None, _verifies(blob, payload))


def _decide(prepared: Prepared, index: _SignerIndex, now: float) -> SignatureVerdict:
    if prepared.status is not None:
        return SignatureVerdict(prepared.status)
    try:
        return _check_ssh(prepared, index, now)
    except _NotReproduced:
        return SignatureVerdict(CANNOT_CHECK)
    except _Rejected:
        return SignatureVerdict(BAD)


def _check_ssh(prepared: Prepared, index: _SignerIndex, now: float) -> SignatureVerdict:
    verify_time = _verify_time(prepared.timestamp, now)
    if verify_time is None:
        raise _Rejected  # ssh-keygen refuses the -Overify-time git passes, in both of its calls
    if prepared.failure == CANNOT_CHECK:
        raise _NotReproduced
    if prepared.failure is not None or not prepared.verified:
        raise _Rejected  # whichever ssh-keygen command git runs then, it says no: 'B'
    public_key = prepared.public_key
    key_blob = _string(_ED25519) + _string(public_key)
    principals = index.find_principals(public_key, verify_time)
    if not principals:
        # git then runs `ssh-keygen -Y check-novalidate`: a good signature by a key it does not trust
        return SignatureVerdict(UNKNOWN, _fingerprint(key_blob), None, _key_text(key_blob))
    for principal in principals:
        if index.allows(principal, public_key, verify_time):
            name = principal.decode("utf-8", "replace")
            return SignatureVerdict(GOOD, _fingerprint(key_blob), name, _key_text(key_blob))
    raise _Rejected  # `ssh-keygen -Y verify -I principal` said "Could not verify signature." for each


def _committer_timestamp(payload: bytes) -> int | None:
    """The committer time git hands ssh-keygen (0: none, ssh-keygen uses its clock); None: git reports 'N'."""
    # git's find_commit_header and split_ident_line, on a C string: it ends at the first NUL.
    text = payload.split(b"\0", 1)[0]
    value = None
    for line in text.split(b"\n"):
        if not line:
            break
        if len(line) > len(b"committer") and line.startswith(b"committer "):
            value = line[len(b"committer ") :]
            break
    if not value:
        return None
    mail_begin = value.find(b"<")
    if mail_begin < 0 or value.find(b">", mail_begin + 1) < 0:
        return None
    match = re.match(rb"[ \t\n\r]*([0-9]+)[ \t\n\r]*[+-][0-9]", value[value.rfind(b">") + 1 :])
    if match is None:
        return 0
    return min(int(match.group(1)), 2**64 - 1)  # strtoumax saturates


def _verify_time(timestamp: int, now: float) -> int | None:
    """The time ssh-keygen checks key validity at, or None if it rejects git's -Overify-time."""
    if timestamp == 0:
        return int(now)
    if timestamp > _END_OF_YEAR_9999:
        raise _NotReproduced
    # git prints the time as local "%Y%m%d%H%M%S"; ssh-keygen reads it back with tm_isdst=0.
    local = time.localtime(timestamp)
    if 1000 <= local.tm_year <= 9999:  # every field printed at its full width: the text reads back as these numbers
        fields = (local.tm_year, local.tm_mon, local.tm_mday, local.tm_hour, local.tm_min, local.tm_sec)
        try:
            stamp = int(time.mktime((*fields, 0, 1, 0)))
        except (OverflowError, ValueError):
            return None
        return stamp if stamp > 0 else None
    return _parse_absolute_time(time.strftime("%Y%m%d%H%M%S", local))


def _parse_absolute_time(text: str) -> int | None:
    """OpenSSH's parse_absolute_time (YYYYMMDD[HHMM[SS]], optional Z/UTC) as used there; None when refused or <= 0."""
    is_utc = False
    length = len(text)
    if length > 1 and text[-1] in "zZ":
        is_utc, length = True, length - 1
    elif length > 3 and text[-3:].upper() == "UTC":
        is_utc, length = True, length - 3
    widths = {8: (4, 2, 2), 12: (4, 2, 2, 2, 2), 14: (4, 2, 2, 2, 2, 2)}.get(length)
    if widths is None:
        return None
    chunks, start = [], 0
    for width in widths:
        chunks.append(text[start : start + width])
        start += width
    # OpenSSH joins the pieces as "Y-m-dTH:M:S" for glibc's strptime.
    fields = _strptime_fields(chunks)
    if fields is None:
        return None
    year, month, day, hour, minute, second = [*fields, 0, 0, 0][:6]
    try:
        if is_utc:
            stamp = calendar.timegm((year, month, day, hour, minute, second))
        else:
            stamp = int(time.mktime((year, month, day, hour, minute, second, 0, 1, 0)))
    except (OverflowError, ValueError):
        return None
    return stamp if stamp > 0 else None


_STRPTIME_RANGES = ((0, 9999), (1, 12), (1, 31), (0, 23), (0, 59), (0, 61))


def _strptime_fields(chunks: list[str]) -> list[int] | None:
    """glibc strptime's numbers for the fixed-width pieces (leading spaces allowed, digits greedy but bounded)."""
    values = []
    for chunk, (low, high), width in zip(chunks, _STRPTIME_RANGES, (4, 2, 2, 2, 2, 2), strict=False):
        pos = 0
        while pos < len(chunk) and chunk[pos] in " \t\n\v\f\r":
            pos += 1
        if pos >= len(chunk) or not chunk[pos].isascii() or not chunk[pos].isdigit():
            return None
        value, count = 0, 0
        while True:
            value = value * 10 + int(chunk[pos])
            pos += 1
            count += 1
            if count >= width or value * 10 > high or pos >= len(chunk) or chunk[pos] not in "0123456789":
                break
        if not low <= value <= high or pos != len(chunk):
            return None  # what is left must be the separator OpenSSH put after the piece
        values.append(value)
    return values


# --- the SSHSIG format ------------------------------------------------------------------------------------------


def _dearmor(signature: bytes) -> bytes:
    """The SSHSIG blob of an armored signature, as OpenSSH's sshsig_dearmor reads it."""
    begin = _ARMOR_BEGIN + b"\n"
    if not signature.startswith(begin):
        raise _Rejected
    body = signature[len(begin) :]
    end = body.find(b"\n-----END SSH SIGNATURE-----")
    if end < 0:
        raise _Rejected
    text = body[:end]
    nul = text.find(b"\0")
    if nul >= 0:
        if nul != len(text) - 1:
            raise _Rejected
        text = text[:-1]
    return _b64_pton(text)


_B64 = re.compile(rb"[A-Za-z0-9+/]*")


def _b64_pton(text: bytes) -> bytes:
    """OpenSSH's strict base64: whitespace anywhere, exact padding, zero spare bits."""
    compact = text.translate(None, b" \t\n\v\f\r")
    data = _B64.match(compact).group()  # type: ignore[union-attr]  # matches the empty string at least
    padding = compact[len(data) :]
    spare = {0: b"", 2: b"==", 3: b"="}.get(len(data) % 4)
    if spare is None or padding != spare:
        raise _Rejected
    if spare:
        last = _B64_VALUE[data[-1]]
        if last & (0x0F if spare == b"==" else 0x03):
            raise _Rejected
    return binascii.a2b_base64(data + padding)


_B64_VALUE = {c: i for i, c in enumerate(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}


class _Reader:
    """SSH wire format: big-endian u32 lengths, strings, C strings (a NUL only as the last byte)."""

    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def u32(self) -> int:
        if self.pos + 4 > len(self.data):
            raise _Rejected
        value = int.from_bytes(self.data[self.pos : self.pos + 4], "big")
        self.pos += 4
        return value

    def string(self) -> bytes:
        length = self.u32()
        if self.pos + length > len(self.data):
            raise _Rejected
        value = self.data[self.pos : self.pos + length]
        self.pos += length
        return value

    def cstring(self) -> bytes:
        value = self.string()
        nul = value.find(b"\0")
        if nul >= 0:
            if nul != len(value) - 1:
                raise _Rejected
            value = value[:-1]
        return value

    def done(self) -> bool:
        return self.pos == len(self.data)


def _string(value: bytes) -> bytes:
    return len(value).to_bytes(4, "big") + value


def _preamble(blob: bytes) -> _Reader:
    reader = _Reader(blob)
    if blob[:6] != b"SSHSIG":
        raise _Rejected
    reader.pos = 6
    if reader.u32() > 1:  # OpenSSH refuses only versions above its own
        raise _Rejected
    return reader


def _ed25519_public_key(key_blob: bytes) -> bytes:
    """The 32-byte key of an ssh-ed25519 key blob (OpenSSH also takes the short type name "ed25519")."""
    reader = _Reader(key_blob)
    key_type = reader.cstring()
    if key_type != _ED25519 and key_type.lower() != b"ed25519":
        if key_type in _OTHER_KEY_TYPES or key_type.lower() in _OTHER_SHORT_NAMES:
            raise _NotReproduced
        raise _Rejected
    public_key = reader.string()
    if len(public_key) != 32 or not reader.done():
        raise _Rejected
    return public_key


def _signature_public_key(blob: bytes) -> bytes:
    """The signer's key, all `ssh-keygen -Y find-principals` reads of the blob."""
    return _ed25519_public_key(_preamble(blob).string())


def _verifies(blob: bytes, payload: bytes) -> bool:
    """True when `ssh-keygen -Y verify -n git` accepts the signature over payload (key trust aside)."""
    try:
        reader = _preamble(blob)
        public_key = _ed25519_public_key(reader.string())
        namespace = reader.cstring()
        reader.string()  # reserved
        hash_name = reader.cstring()
        wrapped = reader.string()
        if not reader.done() or hash_name not in _HASHES or namespace != _NAMESPACE:
            return False
        inner = _Reader(wrapped)
        if inner.cstring() != _ED25519:
            return False
        raw = inner.string()
        if not inner.done() or len(raw) != 64:
            return False
    except _Rejected:
        return False
    digest = _HASHES[hash_name](payload).digest()
    message = b"SSHSIG" + _string(_NAMESPACE) + _string(b"") + _string(hash_name) + _string(digest)
    return _ed25519_verify(public_key, raw, message)


def _ed25519_verify(public_key: bytes, raw: bytes, message: bytes) -> bool:
    """Ed25519 as OpenSSH's bundled ref10 code checks it.

    ref10 refuses an S with any of its top three bits set but otherwise reduces
    S modulo L; OpenSSL refuses any S >= L. Reducing first gives ref10's answer.
    """
    if raw[63] & 0xE0:
        return False
    s = int.from_bytes(raw[32:], "little")
    if s >= _ORDER:
        raw = raw[:32] + (s % _ORDER).to_bytes(32, "little")
    try:
        key = _PUBLIC_KEYS.get(public_key)
        if key is None:
            key = _PUBLIC_KEYS[public_key] = Ed25519PublicKey.from_public_bytes(public_key)
        key.verify(raw, message)
    except (InvalidSignature, ValueError):
        return False
    return True


_PUBLIC_KEYS: dict[bytes, Ed25519PublicKey] = {}  # a signer's key, parsed once per process


def _key_text(key_blob: bytes) -> str:
    return "ssh-ed25519 " + base64.b64encode(key_blob).decode()


# --- allowed signers --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Line:
    position: int
    principals: bytes
    namespaces: bytes | None
    valid_after: int
    valid_before: int

    def valid_at(self, moment: int) -> bool:
        if self.valid_after and moment < self.valid_after:
            return False
        return not (self.valid_before and moment > self.valid_before)


class _SignerIndex:
    """Allowed-signers lines by public key, in file order: the lookups ssh-keygen makes."""

    def __init__(self, allowed: Sequence[AllowedSigner]):
        self._by_key: dict[bytes, list[_Line]] = {}
        for position, signer in enumerate(allowed):
            line = _usable_line(position, signer)
            if line is not None:
                self._by_key.setdefault(line[0], []).append(line[1])

    def find_principals(self, public_key: bytes, moment: int) -> list[bytes]:
        """`ssh-keygen -Y find-principals`: the first line for the key valid at moment, split at commas."""
        for line in self._by_key.get(public_key, ()):
            if line.valid_at(moment):
                found = []
                for principal in line.principals.split(b","):
                    if not principal:
                        break  # strsep loop in ssh-keygen stops at an empty field
                    found.append(principal)
                return found
        return []

    def allows(self, principal: bytes, public_key: bytes, moment: int) -> bool:
        """`ssh-keygen -Y verify -I principal -n git`'s allowed-signers check."""
        for line in self._by_key.get(public_key, ()):
            if _match_pattern_list(principal, line.principals) != 1:
                continue
            if line.namespaces is not None and _match_pattern_list(_NAMESPACE, line.namespaces) != 1:
                continue
            if line.valid_at(moment):
                return True
        return False


def _usable_line(position: int, signer: AllowedSigner) -> tuple[bytes, _Line] | None:
    """(public key, line) for a signer ssh-keygen would use, or None."""
    fields = signer.key.encode("utf-8").split()
    if len(fields) < 2 or fields[0] != _ED25519:
        return None
    try:
        public_key = _ed25519_public_key(_b64_pton(fields[1]))
    except (_Rejected, _NotReproduced):
        return None
    after, before = signer.valid_after, signer.valid_before
    if (after is not None and after <= 0) or (before is not None and before <= 0):
        return None
    if after and before and before <= after:
        return None
    namespaces = None if signer.namespaces is None else signer.namespaces.encode("utf-8")
    return public_key, _Line(position, signer.principals.encode("utf-8"), namespaces, after or 0, before or 0)


def _match_pattern_list(text: bytes, patterns: bytes) -> int:
    """OpenSSH's match_pattern_list: 1 on a match, -1 on a negated match, 0 otherwise."""
    positive = 0
    for pattern in patterns.split(b","):
        negated = pattern.startswith(b"!")
        if negated:
            pattern = pattern[1:]
        if len(pattern) >= 1023:
            return 0
        if _glob(pattern).fullmatch(text):
            if negated:
                return -1
            positive = 1
    return positive


_GLOBS: dict[bytes, re.Pattern[bytes]] = {}
_GLOB_PARTS = {ord("*"): b".*", ord("?"): b"."}


def _glob(pattern: bytes) -> re.Pattern[bytes]:
    compiled = _GLOBS.get(pattern)
    if compiled is None:
        parts = [_GLOB_PARTS.get(byte) or re.escape(bytes([byte])) for byte in pattern]
        compiled = _GLOBS[pattern] = re.compile(b"".join(parts), re.DOTALL)
    return compiled


def _parse_signer_line(line: bytes) -> AllowedSigner | None:
    """One allowed-signers line as OpenSSH's parse_principals_key_and_options reads it."""
    rest = line.lstrip(b" \t")
    if not rest or rest.startswith(b"#"):
        return None
    principals, rest = _first_word(rest)
    options = b""
    key = _read_key(rest)
    if key is None:
        end, quoted = 0, False
        while end < len(rest) and (quoted or rest[end : end + 1] not in (b" ", b"\t")):
            if rest[end : end + 2] == b'\\"':
                end += 1
            elif rest[end : end + 1] == b'"':
                quoted = not quoted
            end += 1
        if end >= len(rest):
            raise _Rejected  # missing key (or an unterminated quote)
        options, rest = rest[:end], rest[end + 1 :].lstrip(b" \t")
        key = _read_key(rest)
        if key is None:
            raise _Rejected
    if key[0] != _ED25519:
        return None
    certificate_authority, namespaces, after, before = _parse_options(options)
    if certificate_authority:
        return None  # a CA line never matches a plain key
    text = "ssh-ed25519 " + base64.b64encode(key[1]).decode()
    return AllowedSigner(
        principals.decode("utf-8", "replace"),
        text,
        None if namespaces is None else namespaces.decode("utf-8", "replace"),
        after,
        before,
    )


_WHITESPACE = b" \t\r\n"


def _first_word(text: bytes) -> tuple[bytes, bytes]:
    """OpenSSH's strdelimw: a word ending at whitespace, with a "quoted part" kept whole."""
    for pos, byte in enumerate(text):
        if byte in _WHITESPACE:
            return text[:pos], text[pos + 1 :].lstrip(_WHITESPACE)
        if byte == 0x22:  # '"'
            close = text.find(b'"', pos + 1)
            if close < 0:
                raise _Rejected
            return text[:pos] + text[pos + 1 : close], text[close + 1 :].lstrip(_WHITESPACE)
    raise _Rejected  # nothing after the principals


def _read_key(text: bytes) -> tuple[bytes, bytes] | None:
    """(type, blob) of a "type base64" key as OpenSSH's sshkey_read takes it, or None."""
    fields = re.match(rb"([^ \t]+)[ \t]+([^ \t]+)", text)
    if fields is None:
        return None
    key_type, encoded = fields.groups()
    if key_type != _ED25519 and key_type not in _OTHER_KEY_TYPES:
        return None
    try:
        blob = _b64_pton(encoded)
    except _Rejected:
        return None
    if key_type != _ED25519:
        return key_type, blob  # a key that can never match an ssh-ed25519 signature
    try:
        public_key = _ed25519_public_key(blob)
    except (_Rejected, _NotReproduced):
        return None
    return key_type, _string(_ED25519) + _string(public_key)


def _parse_options(options: bytes) -> tuple[bool, bytes | None, int | None, int | None]:
    """OpenSSH's sshsigopt_parse: (cert-authority, namespaces, valid-after, valid-before)."""
    certificate_authority = False
    namespaces: bytes | None = None
    times: dict[bytes, int] = {}
    rest = options
    while rest and rest[:1] not in (b" ", b"\t"):
        lowered = rest.lower()
        if lowered.startswith(b"cert-authority"):
            certificate_authority = True
            rest = rest[len(b"cert-authority") :]
        else:
            for name in (b"namespaces", b"valid-after", b"valid-before"):
                if lowered.startswith(name + b"="):
                    value, rest = _dequote(rest[len(name) + 1 :])
                    if name == b"namespaces":
                        if namespaces is not None:
                            raise _Rejected
                        namespaces = value
                    else:
                        if times.get(name):
                            raise _Rejected
                        stamp = _parse_absolute_time(value.decode("latin-1"))
                        if stamp is None:
                            raise _Rejected
                        times[name] = stamp
                    break
        if not rest or rest[:1] in (b" ", b"\t"):
            break
        if rest[:1] != b",":
            raise _Rejected  # unknown option
        rest = rest[1:]
        if not rest:
            raise _Rejected
    after, before = times.get(b"valid-after"), times.get(b"valid-before")
    if after and before and before <= after:
        raise _Rejected
    return certificate_authority, namespaces, after, before


def _dequote(text: bytes) -> tuple[bytes, bytes]:
    """OpenSSH's opt_dequote: a "value" with \\" escapes; (value, rest)."""
    if not text.startswith(b'"'):
        raise _Rejected
    value = bytearray()
    pos = 1
    while pos < len(text) and text[pos : pos + 1] != b'"':
        if text[pos : pos + 2] == b'\\"':
            pos += 1
        value += text[pos : pos + 1]
        pos += 1
    if pos >= len(text):
        raise _Rejected
    return bytes(value), text[pos + 1 :]
