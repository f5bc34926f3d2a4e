"""Keyed fingerprints of sealed fields: which sealed field changed, visible without a key (issue 26).

A record's clear part carries `sealed_fingerprints`: for every field path in
its sealed block (`customers.0.phone`), a truncated HMAC-SHA256 of the path and
the value's canonical JSON. The HMAC key is derived (HKDF-SHA256) from the
household's record key, so
- a forge's diff of the clear part shows which sealed fields changed and that
  nothing else did, to anyone, without a key;
- the same phone number in two households has unrelated fingerprints, and
  without the record key no value can be tried against one;
- once the record key is shredded (P14) the fingerprints are meaningless;
- a reader, who holds the record key, recomputes them and so notices a sealed
  block changed by hand behind fingerprints left as they were (check()).
Pure functions; the record key is the age X25519 identity (crypto.new_record_key).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any

from archivectl import crypto

INFO = b"archivectl sealed-field fingerprint v1"
DIGEST_BYTES = 8  # 16 hex digits: a change goes unnoticed by chance once in 2**64
_SECRET_PREFIX = "AGE-SECRET-KEY-1"  # noqa: S105 (the bech32 prefix, not a secret)
_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))
_CANONICAL = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def _secret_bytes(record_key: Any) -> bytes:
    """The 32 secret bytes of an age X25519 identity ('AGE-SECRET-KEY-1...', bech32; pyrage checked it)."""
    text = str(record_key).strip()
    if not text.startswith(_SECRET_PREFIX):
        raise ValueError("not an age X25519 identity")
    return crypto.key_bytes(text)


def fingerprint_key(record_key: Any) -> bytes:
    """HKDF-SHA256 (RFC 5869, no salt) of the record key's secret bytes, for this one purpose (INFO)."""
    prk = hmac.digest(b"\x00" * 32, _secret_bytes(record_key), "sha256")
    return hmac.digest(prk, INFO + b"\x01", "sha256")


def canonical(value: Any) -> bytes:
    """A value's canonical JSON: sorted keys, no spaces, UTF-8 (dates are kept as strings by yamlio)."""
    return _CANONICAL.encode(value).encode("utf-8")


def leaves(sealed: Any, prefix: str = "") -> dict[str, Any]:
    """Field path -> value for everything a sealed part holds, as --set names fields.

    Mappings and lists of mappings are walked (`customers.0.phone`); any other
    value, a list of words (`customers.0.hobbies`) among them, is one field.
    A list item with nothing sealed (None) has no field.
    """
    if isinstance(sealed, dict):
        out: dict[str, Any] = {}
        for key, value in sealed.items():
            out.update(leaves(value, f"{prefix}{key}."))
        return out
    if isinstance(sealed, list) and sealed and all(isinstance(v, dict) or v is None for v in sealed):
        out = {}
        for i, value in enumerate(sealed):
            if value is not None:
                out.update(leaves(value, f"{prefix}{i}."))
        return out
    return {prefix.rstrip("."): sealed} if prefix else {}


def of(sealed: dict, record_key: Any) -> dict[str, str]:
    """The fingerprint of every sealed field path, sorted by path: HMAC-SHA256(key, path NUL canonical JSON)."""
    # HMAC (RFC 2104) with its two padded key blocks hashed once per household and copied per field:
    # the same bytes as hmac.digest, in a third of the time (an import fingerprints every household).
    key = fingerprint_key(record_key).ljust(64, b"\x00")
    inner, outer = hashlib.sha256(key.translate(_IPAD)), hashlib.sha256(key.translate(_OPAD))
    found = {}
    for path, value in sorted(leaves(sealed).items()):
        mac_in = inner.copy()
        mac_in.update(path.encode("utf-8") + b"\x00" + canonical(value))
        mac = outer.copy()
        mac.update(mac_in.digest())
        found[path] = mac.digest()[:DIGEST_BYTES].hex()
    return found


def changed(old: dict | None, new: dict | None) -> list[str]:
    """The sealed field paths whose fingerprints differ between two stored records' `sealed_fingerprints`.

    Keyless: what a reviewer without the record key may learn. Paths only, sorted.
    """
    before = old if isinstance(old, dict) else {}
    after = new if isinstance(new, dict) else {}
    return sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))


@dataclass(frozen=True)
class Mismatch:
    """What a reader's recomputation found: field paths only, never values."""

    mismatched: list[str] = field(default_factory=list)  # the sealed value is not what its fingerprint says
    missing: list[str] = field(default_factory=list)  # in the sealed block, without a fingerprint
    extra: list[str] = field(default_factory=list)  # a fingerprint for a field the sealed block does not hold

    def __bool__(self) -> bool:
        return bool(self.mismatched or self.missing or self.extra)

    def message(self) -> str:
        """One line naming the paths, for a finding or an error."""
        from archivectl.i18n import _

        parts = []
        for words, paths in (
            (_("{paths} differ from their fingerprints"), self.mismatched),
            (_("{paths} have no fingerprint"), self.missing),
            (_("{paths} are fingerprinted but not sealed"), self.extra),
        ):
            if paths:
                parts.append(words.format(paths=", ".join(paths)))
        if not parts:
            return _("fingerprints match the sealed block")
        return _("sealed fields {problems}").format(problems="; ".join(parts))


def check(sealed: dict, stored_fingerprints: Any, record_key: Any) -> Mismatch:
    """Recompute the fingerprints of an opened sealed block and compare them with those stored in clear.

    A record written before fingerprints existed (none stored) is not a mismatch:
    it gets them on its next write. Anything else stored must match exactly.
    """
    if stored_fingerprints is None:
        return Mismatch()
    stored = stored_fingerprints if isinstance(stored_fingerprints, dict) else {}
    expected = of(sealed, record_key)
    return Mismatch(
        mismatched=sorted(p for p in expected if p in stored and not hmac.compare_digest(str(stored[p]), expected[p])),
        missing=sorted(p for p in expected if p not in stored),
        extra=sorted(str(p) for p in stored if p not in expected),
    )


def check_stored(stored: dict, sealed: dict, record_key: Any) -> Mismatch:
    """check() for a stored record and its opened sealed part (records.open_record's second value)."""
    return check(sealed, stored.get("sealed_fingerprints"), record_key)
