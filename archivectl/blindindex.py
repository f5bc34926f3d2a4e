"""Blind index: keyed fingerprints of a record's ID and phone numbers, to find a person without decrypting (#27).

A record's clear part carries `blind_index: {key: ix-..., fingerprints: [...]}`:
for every ID number and phone number its sealed part holds (wherever the schema
masks a value as `id` or `phone`: customers, emergency contacts), a truncated
HMAC-SHA256 of the kind and the normalized number, keyed with the one
office-wide index key. `find` fingerprints the number searched for with the
same key and compares it with the clear parts: no record is decrypted.

Unlike the per-field fingerprints (fingerprints.py), keyed per household so
that equal values look unrelated, these are keyed per office on purpose: the
same phone number in two households has the same fingerprint. So:
- the fingerprints are sorted and padded with random filler to a fixed count
  (COUNT, or the next multiple of it), so their number says nothing about how
  many customers or phones a household has, and their order nothing about
  which field each came from;
- the index key is wrapped like a record key (age, to the readers and the
  recovery recipient) and kept in the keystore at `index/<key id>.age`; without
  it no number can be tried against a fingerprint;
- rotating it (`keys rotate-index`) re-fingerprints every record; the old key
  is shredded once that rotation is approved on main.

Normalization (both when a record is written and when a number is searched for):
- ID number: spaces and dashes removed, letters upper-cased (a resident ID's
  check character x and X are the same);
- phone number: spaces, dashes, dots and parentheses removed; a mobile number's
  +86 / 0086 / 86 country prefix dropped (`+86 138-0013-8000` is `13800138000`);
  a landline keeps its leading 0 and area code (`021-6234 5678` is `02162345678`).
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from dataclasses import dataclass
from typing import Any

from archivectl.errors import UsageError
from archivectl.i18n import _

FIELD = "blind_index"
FOLDER = "index"  # in the keystore: index/<key id>.age
COUNT = 8  # fingerprints per record: a record with more numbers gets the next multiple of COUNT
DIGEST_BYTES = 8
KEY_ID = re.compile(r"ix-[0-9a-f]{8}")
KINDS = {"id": "id", "phone": "phone"}  # x-mask -> what kind of number a fingerprint is of
_SEPARATORS = str.maketrans("", "", " -\t\u3000.()（）")
_MOBILE = re.compile(r"(?:\+?86|0086)?(1[3-9][0-9]{9})")
_LANDLINE = re.compile(r"0[1-9][0-9]{8,16}")
_ID = re.compile(r"[0-9A-Z]{4,32}")
_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))


def normalize_phone(number: str) -> str | None:
    """A phone number as it is fingerprinted (see the module's docstring), or None if it is not one."""
    text = str(number).translate(_SEPARATORS)
    m = _MOBILE.fullmatch(text)
    if m:
        return m[1]
    return text if _LANDLINE.fullmatch(text) else None


def normalize_id(number: str) -> str | None:
    """An ID number as it is fingerprinted: without spaces and dashes, upper-cased; None if it is not one."""
    text = str(number).translate(_SEPARATORS).upper()
    return text if _ID.fullmatch(text) else None


def normalize(kind: str, number: str) -> str:
    """The searched number normalized, or UsageError (exit 2) naming what is wrong, never the number."""
    found = normalize_phone(number) if kind == "phone" else normalize_id(number)
    if found is None:
        if kind == "phone":
            raise UsageError(_("--phone: not a mobile (1xxxxxxxxxx, +86 allowed) or landline (0xx-xxxxxxxx) number"))
        raise UsageError(_("--id-number: not an ID number (4 to 32 letters and digits; spaces and dashes ignored)"))
    return found


@dataclass(frozen=True)
class IndexKey:
    """One office-wide index key: its id (what records name) and its 32 secret bytes."""

    key_id: str
    secret: bytes

    @functools.cached_property
    def _pads(self) -> tuple[Any, Any]:
        # HMAC (RFC 2104) with its padded key blocks hashed once and copied per value: an import fingerprints
        # every household's numbers (the same bytes as hmac.digest).
        key = self.secret.ljust(64, b"\x00")
        return hashlib.sha256(key.translate(_IPAD)), hashlib.sha256(key.translate(_OPAD))

    def fingerprint(self, kind: str, normalized: str) -> str:
        """HMAC-SHA256(index key, kind NUL normalized number), truncated: the same for the same number anywhere."""
        inner, outer = self._pads
        mac_in = inner.copy()
        mac_in.update(kind.encode() + b"\x00" + normalized.encode("utf-8"))
        mac = outer.copy()
        mac.update(mac_in.digest())
        return mac.digest()[:DIGEST_BYTES].hex()

    def text(self) -> bytes:
        """The key as the keystore file's plaintext (wrapped to readers before it is stored)."""
        return f"# archivectl index key {self.key_id}\n{self.secret.hex()}\n".encode()


def new_key() -> IndexKey:
    """A fresh index key with a fresh random id."""
    return IndexKey(f"ix-{os.urandom(4).hex()}", os.urandom(32))


def key_from_text(key_id: str, text: bytes) -> IndexKey:
    """Parse an unwrapped keystore file; ValueError if it is not an index key."""
    lines = [ln.strip() for ln in text.decode("utf-8", "replace").splitlines() if ln.strip()]
    if len(lines) != 2 or lines[0] != f"# archivectl index key {key_id}" or not re.fullmatch(r"[0-9a-f]{64}", lines[1]):
        raise ValueError("not an index key")
    return IndexKey(key_id, bytes.fromhex(lines[1]))


def key_name(key_id: str) -> str:
    """The keystore name of an index key."""
    return f"{FOLDER}/{key_id}.age"


@functools.lru_cache(maxsize=8)
def _number_paths(schema: Any) -> dict[str, str]:
    """Where the schema puts ID and phone numbers: a field path without list indices -> its kind."""
    paths: dict[str, str] = {}

    def walk(node: Any, path: tuple[str, ...], depth: int) -> None:
        if depth > 12:
            return
        node = schema.resolve(node)
        kind = KINDS.get(str(node.get("x-mask")))
        if kind and path:
            paths[".".join(path)] = kind
        for key, sub in (node.get("properties") or {}).items():
            walk(sub, (*path, key), depth + 1)
        if "items" in node:
            walk(node["items"], path, depth + 1)

    walk(schema.doc, (), 0)
    return paths


def numbers_in(sealed: dict, schema: Any) -> set[tuple[str, str]]:
    """(kind, normalized number) for every ID and phone number a record's sealed part holds."""
    found = set()
    for path, kind in _number_paths(schema).items():
        values: list[Any] = []
        _collect(sealed, path.split("."), 0, values)
        for value in values:
            normalized = normalize_phone(value) if kind == "phone" else normalize_id(value)
            if normalized:
                found.add((kind, normalized))
    return found


def _collect(value: Any, parts: list[str], at: int, out: list[Any]) -> None:
    """The strings at a field path (lists walked wherever they are): only where the schema says numbers are."""
    if isinstance(value, list):
        for item in value:
            _collect(item, parts, at, out)
    elif at == len(parts):
        if isinstance(value, str):
            out.append(value)
    elif isinstance(value, dict) and parts[at] in value:
        _collect(value[parts[at]], parts, at + 1, out)


def of(sealed: dict, schema: Any, key: IndexKey) -> dict[str, Any]:
    """The blind_index of a record's sealed part: the key's id and the padded, sorted fingerprints."""
    real = {key.fingerprint(kind, number) for kind, number in numbers_in(sealed, schema)}
    count = max(COUNT, -(-len(real) // COUNT) * COUNT)
    filler = os.urandom(DIGEST_BYTES * (count - len(real)))
    fake = {filler[i : i + DIGEST_BYTES].hex() for i in range(0, len(filler), DIGEST_BYTES)}
    every = sorted(real | fake)
    while len(every) < count:  # two equal random fillers, once in 2**64
        every = sorted({*every, os.urandom(DIGEST_BYTES).hex()})
    return {"key": key.key_id, "fingerprints": every}


def holds(stored: dict, fingerprints_by_key: dict[str, str]) -> bool:
    """True when a stored record's blind index holds the fingerprint of the searched number under its key."""
    index = stored.get(FIELD)
    if not isinstance(index, dict):
        return False
    wanted = fingerprints_by_key.get(str(index.get("key")))
    return wanted is not None and wanted in (index.get("fingerprints") or [])


STORED_SCHEMA = {  # the clear part's blind_index (schema.py adds it to the stored records' schema)
    "type": "object",
    "additionalProperties": False,
    "required": ["key", "fingerprints"],
    "properties": {
        "key": {"type": "string", "pattern": f"^{KEY_ID.pattern}$"},
        "fingerprints": {
            "type": "array",
            "minItems": COUNT,
            "maxItems": 1024,
            "uniqueItems": True,
            "items": {"type": "string", "pattern": "^[0-9a-f]{16}$"},
        },
    },
}
