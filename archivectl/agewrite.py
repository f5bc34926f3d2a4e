"""Writing age files to ssh-ed25519 and X25519 recipients with `cryptography`'s primitives (issue 14).

Why not pyrage, which reads every file archivectl has: an import wraps
thousands of record keys to the same few readers, and for each ssh-ed25519
recipient rage turns the Ed25519 key into its X25519 form and multiplies by the
key's tweak again, three scalar multiplications a stanza where two do (568 us
against 323 us for four readers on the bench machine). Here what depends only
on the reader is worked out once:

    shared = X25519(tweak, X25519(esk, pk))   the age spec, per stanza
           = X25519(esk, X25519(tweak, pk))   scalar multiplication commutes

so each stanza costs one fresh ephemeral key and one exchange with the
reader's precomputed point. Everything else is as the spec writes it
(https://age-encryption.org/v1 and its ssh-ed25519 extension): a fresh file
key, a fresh ephemeral share per stanza, the header MAC, the STREAM payload.
Only writing is here (ageread opens files for a staff key with the same reader's
values, pyrage everything else); the tests open what this writes with pyrage
and with the reference `age` CLI.

encrypt_stream writes an attachment a chunk at a time (issue 30): each 64 KiB
of the scan is read, sealed and handed on, so memory stays flat whatever the
size, and the caller can hash and store the ciphertext in the same pass.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from archivectl.crypto import key_bytes
from archivectl.errors import UsageError
from archivectl.i18n import _

VERSION_LINE = b"age-encryption.org/v1\n"
SSH_LABEL = b"age-encryption.org/v1/ssh-ed25519"
X25519_LABEL = b"age-encryption.org/v1/X25519"
CHUNK = 64 * 1024  # plaintext bytes per payload chunk
TAG = 16  # the Poly1305 tag each sealed chunk carries
_P = 2**255 - 19
_D = -121665 * pow(121666, -1, _P) % _P  # the Edwards curve's d


def hkdf(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    """HKDF-SHA256 (RFC 5869) of 32 bytes: one HMAC to extract, one to expand."""
    prk = hmac.digest(salt, ikm, "sha256")  # an empty salt is HashLen zeros, as HMAC pads its key
    return hmac.digest(prk, info + b"\x01", "sha256")


def _b64(data: bytes) -> bytes:
    return base64.b64encode(data).rstrip(b"=")


class _Recipient:
    """One reader, with what its stanzas share worked out once."""

    kind: bytes
    label: bytes
    args: bytes  # the stanza's arguments before the ephemeral share (the ssh key's tag), with a trailing space
    pk: bytes  # the reader's X25519 public key, as the HKDF salt takes it
    point: X25519PublicKey  # what each stanza's ephemeral key is exchanged with

    def stanza(self, file_key: bytes) -> bytes:
        ephemeral = X25519PrivateKey.from_private_bytes(os.urandom(32))
        share = ephemeral.public_key().public_bytes_raw()
        key = hkdf(ephemeral.exchange(self.point), share + self.pk, self.label)  # refuses an all-zero secret
        body = ChaCha20Poly1305(key).encrypt(bytes(12), file_key, None)
        return b"-> " + self.kind + b" " + self.args + _b64(share) + b"\n" + _body_lines(body)


class _SshEd25519(_Recipient):
    kind, label = b"ssh-ed25519", SSH_LABEL

    def __init__(self, wire: bytes):
        # The key's wire form ends in the 32-byte Ed25519 point: y, little-endian, the top bit x's sign.
        y = int.from_bytes(wire[-32:], "little") & ((1 << 255) - 1)
        if len(wire) != 51 or not _on_curve(y):
            raise UsageError(_("not a usable ssh-ed25519 public key"))
        self.pk = ((1 + y) * pow(1 - y, -1, _P) % _P).to_bytes(32, "little")  # the Montgomery u of the point
        self.args = _b64(hashlib.sha256(wire).digest()[:4]) + b" "
        self.tweak = tweak = X25519PrivateKey.from_private_bytes(hkdf(b"", wire, SSH_LABEL))  # ageread's too
        try:
            tweaked = tweak.exchange(X25519PublicKey.from_public_bytes(self.pk))
        except ValueError:  # a point of small order: every secret made with it would be all zeros
            raise UsageError(_("not a usable ssh-ed25519 public key")) from None
        self.point = X25519PublicKey.from_public_bytes(tweaked)


def _on_curve(y: int) -> bool:
    """Whether y is a canonical Ed25519 point's: x*x = (y*y - 1) / (d*y*y + 1) has a root; not 1 (the neutral point).

    pyrage 1.4.0 takes any 32 bytes as an ssh-ed25519 key and wraps to them;
    Go's age refuses what does not decode to a point, and so does this.
    """
    if y >= _P or y == 1:
        return False
    x2 = (y * y - 1) * pow(_D * y * y + 1, -1, _P) % _P
    return pow(x2, (_P - 1) // 2, _P) in (0, 1)


class _X25519(_Recipient):
    kind, label, args = b"X25519", X25519_LABEL, b""

    def __init__(self, pk: bytes):
        self.pk = pk
        self.point = X25519PublicKey.from_public_bytes(pk)
        try:  # a point of small order gives an all-zero secret whatever the scalar (clamped to a multiple of 8)
            X25519PrivateKey.generate().exchange(self.point)
        except ValueError:
            raise UsageError(_("not a usable age X25519 recipient")) from None


def _body_lines(body: bytes) -> bytes:
    """A stanza body in base64 lines of 64 columns; the last is shorter (empty when the rest fill theirs)."""
    text = _b64(body)
    return b"".join(text[i : i + 64] + b"\n" for i in range(0, len(text) + 1, 64))


@functools.lru_cache(maxsize=1024)
def recipient(public_key: str) -> _Recipient:
    """'ssh-ed25519 AAAA...' or 'age1...', already accepted by pyrage (crypto.recipient_of)."""
    if public_key.startswith("age1"):
        return _X25519(key_bytes(public_key))
    return _SshEd25519(base64.b64decode(public_key.split()[1]))


def _start(public_keys: Iterable[str]) -> tuple[bytes, ChaCha20Poly1305]:
    """The header (with its MAC) and payload nonce of a fresh file, and the payload's cipher."""
    file_key = os.urandom(16)
    header = VERSION_LINE + b"".join(recipient(k).stanza(file_key) for k in public_keys) + b"---"
    mac = hmac.digest(hkdf(file_key, b"", b"header"), header, "sha256")
    nonce = os.urandom(16)
    return header + b" " + _b64(mac) + b"\n" + nonce, ChaCha20Poly1305(hkdf(file_key, nonce, b"payload"))


def chunk_nonce(n: int, last: bool) -> bytes:
    return n.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


def encrypt(plaintext: bytes, public_keys: Iterable[str]) -> bytes:
    """An age v1 file (binary, not armored) that each of public_keys opens."""
    head, aead = _start(public_keys)
    chunks = [plaintext[i : i + CHUNK] for i in range(0, len(plaintext), CHUNK)] or [b""]
    payload = b"".join(
        aead.encrypt(chunk_nonce(n, n == len(chunks) - 1), chunk, None) for n, chunk in enumerate(chunks)
    )
    return head + payload


def payload_chunks(size: int) -> int:
    """How many chunks a payload of size bytes is sealed in (an empty one is one empty final chunk)."""
    return max(1, -(-size // CHUNK))


class SourceChanged(Exception):
    """The file being encrypted was not the size it had when encrypt_stream began (written to meanwhile)."""


def encrypt_stream(source: BinaryIO, size: int, public_keys: Iterable[str]) -> tuple[int, Iterator[bytes]]:
    """Encrypt exactly size bytes of source into an age v1 file: (its length, its bytes piece by piece).

    The length is known before the first byte is taken, so a caller can hash
    the file as git will, in the same pass. The pieces are the header, then
    each sealed chunk; only ciphertext is ever handed out, the clear text lives
    in one reused 64 KiB buffer. A source shorter or longer than size raises
    SourceChanged once what it had is out, so the caller must throw that away.
    """
    head, aead = _start(public_keys)
    return encrypted_size(len(head), size), _sealed_pieces(source, size, head, aead)


def _sealed_pieces(source: BinaryIO, size: int, head: bytes, aead: ChaCha20Poly1305) -> Iterator[bytes]:
    yield head
    chunks = payload_chunks(size)
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    for n in range(chunks):
        want = min(CHUNK, size - n * CHUNK)
        got = 0
        while got < want:
            read = source.readinto(view[got:want])  # type: ignore[attr-defined]
            if not read:
                raise SourceChanged("the file became shorter while it was read")
            got += read
        yield aead.encrypt(chunk_nonce(n, n == chunks - 1), view[:want], None)
    if source.read(1):
        raise SourceChanged("the file grew while it was read")


def encrypted_size(head_size: int, size: int) -> int:
    """The length of an age file with a head_size header (with its nonce) around size bytes of payload."""
    return head_size + size + TAG * payload_chunks(size)
