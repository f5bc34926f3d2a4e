"""Opening age files for a staff member's ssh key with `cryptography`'s primitives, where that is quick (issue 30).

Why not only pyrage, which stays the judge of every file: approving an import
unwraps every household's record key with the approver's ssh key, and pyrage
takes 172-197 us a key (bench machine) where the two X25519 exchanges it needs
are 31 us each: for every file it turns the Ed25519 key into its X25519 form
and works out the key's tweak again. Here both are worked out once (agewrite
does the same for writing), and a file is opened only in the one shape
archivectl and the age tools write it:

    age-encryption.org/v1, stanzas of canonical base64 lines of 64 columns,
    the header's MAC, the STREAM payload in 64 KiB chunks (armored or not)

This module never says no. Anything it does not take exactly as the spec
writes it (https://age-encryption.org/v1 and its ssh-ed25519 extension), a
stanza that is not the reader's, a MAC or a chunk that does not verify, makes
it answer None, and the caller asks pyrage, whose answer and refusals stand
(crypto.unwrap_record_key, crypto.open_sealed). So it can only open what
pyrage opens, to the same bytes: tests/test_ageread.py holds both to that.

A sealed block is opened with its record key by pyrage: that key is new for
each household, and cryptography works out its public half on loading it
(39 us), so an opening here would cost what pyrage's does (105 us).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_ssh_private_key

from archivectl import crypto
from archivectl.agewrite import CHUNK, SSH_LABEL, TAG, VERSION_LINE, chunk_nonce, hkdf, recipient

ARMOR_BEGIN = crypto.ARMOR_BEGIN.encode("ascii")
ARMOR_END = b"-----END AGE ENCRYPTED FILE-----"


class _LeftToPyrage(Exception):
    """A stanza of the reader's type that age would refuse the whole file for (a malformed one, or one
    whose tag names the reader and does not open): decrypt() answers None, and pyrage says why."""


class SshReader:
    """A staff member's ssh-ed25519 key, as age's ssh-ed25519 recipient type opens for it."""

    kind = b"ssh-ed25519"

    def __init__(self, private_openssh: bytes):
        key = load_ssh_private_key(private_openssh, None)
        seed = key.private_bytes_raw()  # type: ignore[union-attr]  # Ed25519 only: crypto loaded it as one
        # The public key's Montgomery u, stanza tag and tweak, as agewrite works them out to write to it.
        public = recipient(key.public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode("ascii"))
        self.pk, self.tag, self.tweak = public.pk, public.args.rstrip(b" "), public.tweak  # type: ignore[attr-defined]
        self.scalar = X25519PrivateKey.from_private_bytes(hashlib.sha512(seed).digest()[:32])

    def file_key(self, args: list[bytes], body: bytes) -> bytes | None:
        share = _raw_b64(args[1], 32) if len(args) == 2 else None
        if share is None or len(body) != 32:
            raise _LeftToPyrage
        if args[0] != self.tag:
            return None  # another reader's
        try:
            shared = self.tweak.exchange(
                X25519PublicKey.from_public_bytes(self.scalar.exchange(X25519PublicKey.from_public_bytes(share)))
            )
        except ValueError:  # an all-zero secret: a share of small order
            raise _LeftToPyrage from None
        file_key = _unwrap(hkdf(shared, share + self.pk, SSH_LABEL), body)
        if file_key is None:  # the tag is this reader's and the stanza does not open: age refuses the file
            raise _LeftToPyrage
        return file_key


def decrypt(data: bytes, reader: SshReader) -> bytes | None:
    """The plaintext of an age file (armored or binary) reader opens, or None: pyrage decides then."""
    if data.startswith(ARMOR_BEGIN):
        data = _dearmor(data)  # type: ignore[assignment]
        if data is None:
            return None
    if not data.startswith(VERSION_LINE):
        return None
    end = data.find(b"\n---", len(VERSION_LINE) - 1)
    if end < 0:
        return None
    header = data[: end + 4]
    line_end = data.find(b"\n", end + 4)
    if line_end < 0 or data[end + 4 : end + 5] != b" ":
        return None
    mac = _raw_b64(data[end + 5 : line_end], 32)
    stanzas = _stanzas(header[len(VERSION_LINE) : -3])
    if mac is None or not stanzas or any(kind == b"scrypt" for kind, _, _ in stanzas):
        return None
    try:
        file_key = next(
            (key for kind, args, body in stanzas if kind == reader.kind and (key := reader.file_key(args, body))),
            None,
        )
    except _LeftToPyrage:
        return None
    if file_key is None or not hmac.compare_digest(hmac.digest(hkdf(file_key, b"", b"header"), header, "sha256"), mac):
        return None
    return _payload(data[line_end + 1 :], file_key)


def _stanzas(text: bytes) -> list[tuple[bytes, list[bytes], bytes]] | None:
    """The header's stanzas as (type, arguments, body), or None where one is not written as the spec says."""
    out: list[tuple[bytes, list[bytes], bytes]] = []
    lines = text.split(b"\n")
    if lines[-1] != b"":  # the text ends with the last body line's newline
        return None
    i, count = 0, len(lines) - 1
    while i < count:
        if not _ARGUMENTS.fullmatch(lines[i]):
            return None
        first = lines[i].split(b" ")
        i += 1
        body = bytearray()
        while True:
            if i >= count:
                return None
            line = lines[i]
            i += 1
            piece = _raw_b64(line, None) if len(line) <= 64 else None
            if piece is None:
                return None
            body += piece
            if len(line) < 64:
                break
        out.append((first[1], first[2:], bytes(body)))
    return out


def _payload(data: bytes, file_key: bytes) -> bytes | None:
    """The STREAM payload opened: its nonce, then chunks of 64 KiB and a last one marked as such."""
    if len(data) < 16 + TAG:
        return None
    aead = ChaCha20Poly1305(hkdf(file_key, data[:16], b"payload"))
    out = []
    position, n, size = 16, 0, CHUNK + TAG
    while True:
        last = len(data) - position <= size
        chunk = data[position : position + size]
        try:
            clear = aead.decrypt(chunk_nonce(n, last), chunk, None)
        except Exception:  # cryptography's InvalidTag: not this file's chunk
            return None
        if last and not clear and n > 0:  # an empty last chunk only where the whole payload is empty
            return None
        out.append(clear)
        if last:
            return b"".join(out)
        position, n = position + size, n + 1


def _dearmor(data: bytes) -> bytes | None:
    """The binary file inside an armored one written as age writes it (64-column lines, padded base64)."""
    lines = data.rstrip(b"\n").split(b"\n")
    if len(lines) < 3 or lines[0] != ARMOR_BEGIN or lines[-1] != ARMOR_END:
        return None
    body = lines[1:-1]
    if any(len(line) != 64 for line in body[:-1]) or not 0 < len(body[-1]) <= 64:
        return None
    text = b"".join(body)
    try:
        raw = base64.b64decode(text, validate=True)
    except binascii.Error:
        return None
    return raw if base64.b64encode(raw) == text else None


def _raw_b64(text: bytes, size: int | None) -> bytes | None:
    """Canonical unpadded base64 (as the spec requires), of size bytes if given; None otherwise."""
    try:
        raw = base64.b64decode(text + b"=" * (-len(text) % 4), validate=True)
    except binascii.Error:
        return None
    if base64.b64encode(raw).rstrip(b"=") != text or (size is not None and len(raw) != size):
        return None
    return raw


_ARGUMENTS = re.compile(rb"-> [\x21-\x7e]+(?: [\x21-\x7e]+)*")  # a stanza's first line: printable words


def _unwrap(key: bytes, body: bytes) -> bytes | None:
    try:
        file_key = ChaCha20Poly1305(key).decrypt(bytes(12), body, None)
    except Exception:  # InvalidTag: the stanza is not for this key
        return None
    return file_key if len(file_key) == 16 else None
