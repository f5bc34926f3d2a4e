"""Household records: the stored form (clear part + one sealed block) and back.

A person writes a record with personal fields in clear; on write it is split by
the schema's x-sensitive marks, the personal part sealed to the household's
record key, and `sealed_fields` lists what the sealed block holds;
`sealed_fingerprints` says, keyed with the record key, what each sealed field
holds (fingerprints.py), so a diff shows which sealed field changed.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from archivectl import blindindex, clearread, crypto, fingerprints, gitio, yamlio
from archivectl.errors import ArchiveError, UsageError
from archivectl.i18n import _
from archivectl.layout import HouseholdPath
from archivectl.schema import HouseholdSchema

# sealed last: facts.clear_part; blind_index (blindindex.py) goes with the sealed block it was computed from
STORED_ONLY = ("recipient", "sealed_fields", "sealed_fingerprints", "blind_index", "sealed")


def order_like_schema(record: dict, schema: HouseholdSchema) -> dict:
    """Keys in the order the schema declares them, stored-only keys last."""
    order = list(schema.doc.get("properties", {})) + list(STORED_ONLY)
    rank = {k: i for i, k in enumerate(order)}
    return dict(sorted(record.items(), key=lambda kv: rank.get(kv[0], len(order))))


def to_stored(
    record: dict,
    schema: HouseholdSchema,
    record_key: Any,
    previous: tuple[dict, str] | None = None,
    index: Any = None,
) -> dict:
    """The stored form of a plain record.

    previous is (sealed part, its ciphertext) as read: when the sealed part is
    unchanged the old ciphertext is kept, so a review diff shows only what changed.
    Every write that seals also fingerprints the sealed fields: the one place
    add, edit, import, rotation and the merge driver all go through.
    index: a blindindex.IndexKey (the sealed ID and phone numbers are fingerprinted
    with it), a stored `blind_index` kept as it is (the caller knows the numbers did
    not change), or None (the writer cannot open the index key: none written).
    """
    clear, sealed, fields = schema.split(record)
    recipient = record_key.to_public()  # worked out once: a scalar multiplication
    clear["recipient"] = str(recipient)  # lets non-readers attach scans
    if sealed:
        clear["sealed_fields"] = fields
        clear["sealed_fingerprints"] = fingerprints.of(sealed, record_key)
        if isinstance(index, dict):
            clear["blind_index"] = index
        elif index is not None:
            clear["blind_index"] = blindindex.of(sealed, schema, index)
        if previous is not None and previous[0] == sealed:
            clear["sealed"] = previous[1]
        else:
            clear["sealed"] = crypto.seal(padded(yamlio.dumps(sealed)), recipient)
    return order_like_schema(clear, schema)


SEALED_BUCKET = 512
_PADDING = b"# padding"


def padded(sealed_yaml: str) -> bytes:
    """The sealed YAML followed by a comment line that fills it to a multiple of SEALED_BUCKET bytes.

    Without it a sealed block's length tells how many customers a household has
    and how long their names and addresses are. A YAML parser skips the comment,
    so reading needs no change, and blocks sealed before padding read as ever.
    """
    data = sealed_yaml.encode("utf-8")
    if not data.endswith(b"\n"):
        data += b"\n"
    room = -(len(data) + len(_PADDING) + 1) % SEALED_BUCKET
    return data + _PADDING + b" " * room + b"\n"


def open_record(stored: dict, record_key: Any) -> tuple[dict, dict]:
    """(plain record, sealed part) from the stored form, decrypting with the record key.

    The padding comment of a padded block is skipped by the YAML parser.
    """
    clear = {k: v for k, v in stored.items() if k not in STORED_ONLY}
    armored = stored.get("sealed")
    if not armored:
        return clear, {}
    sealed = read_sealed(crypto.open_sealed(armored, record_key))
    if not isinstance(sealed, dict):
        raise ArchiveError(
            _("{archive_no}: sealed block does not hold a mapping").format(archive_no=stored.get("archive_no"))
        )
    return merge(clear, sealed), sealed


def read_sealed(plaintext: bytes) -> Any:
    """yamlio.loads(plaintext, "sealed block"), read by clearread where the block is as padded() writes it.

    padded() ends the YAML with one comment line at column 0 (`# padding` and spaces). Where the text
    before it is in clearread's subset (block collections and one-line scalars: nothing a line at column
    0 could continue), the strict loader reads the whole text as that part alone, the comment skipped,
    and clearread reads that part as the strict loader does. Anything else (a block sealed before
    padding, or not as archivectl writes it) is read by the strict loader, with its refusals.
    """
    cut = plaintext.rfind(b"\n" + _PADDING) + 1
    tail = plaintext[cut + len(_PADDING) :]
    if cut > 0 and len(plaintext) <= yamlio.MAX_YAML_BYTES and tail.endswith(b"\n") and not tail[:-1].strip(b" "):
        try:
            found = clearread.mapping(plaintext[:cut].decode("utf-8"))  # as yamlio.loads: UTF-8 only
        except UnicodeDecodeError:
            found = None
        if found is not None:
            return found
    return yamlio.loads(plaintext, source="sealed block")


def merge(clear: Any, sealed: Any) -> Any:
    """Put sealed values back into the clear structure (dicts by key, lists by index)."""
    if sealed is None:
        return _copied(clear)
    if isinstance(clear, dict) and isinstance(sealed, dict):
        out = _copied(clear)
        for key, value in sealed.items():
            out[key] = merge(out[key], value) if key in out else _copied(value)
        return out
    if isinstance(clear, list) and isinstance(sealed, list):
        out = []
        for i in range(max(len(clear), len(sealed))):
            c = clear[i] if i < len(clear) else {}
            s = sealed[i] if i < len(sealed) else None
            out.append(merge(c, s))
        return out
    return _copied(sealed)


_IMMUTABLE = (str, int, float, bool, type(None))


def _copied(value: Any) -> Any:
    """copy.deepcopy(value) for what YAML gives (no value shared twice: the loader refuses aliases), quicker:
    new dicts and lists, the same immutable scalars; anything else by deepcopy itself."""
    kind = type(value)
    if kind is dict:
        return {k: _copied(v) for k, v in value.items()}
    if kind is list:
        return [_copied(v) for v in value]
    if kind in _IMMUTABLE:
        return value
    return copy.deepcopy(value)


def load_stored(text: bytes, source: str) -> dict:
    """Parse a record.yaml from disk, refusing anything that is not a mapping."""
    data = yamlio.loads(text, source=source)
    if not isinstance(data, dict):
        raise UsageError(_("{source}: a record must be a YAML mapping").format(source=source))
    return data


def dump(record: dict) -> str:
    """The YAML text of a record."""
    return yamlio.dumps(record)


# ------------------------------------------------------------------ --set / --unset


def parse_path(text: str) -> list[str | int]:
    """'customers.0.phone' -> ['customers', 0, 'phone'], refusing odd names.

    The error shows only the part of the path that was good: what follows may
    be a value typed in the wrong place (customers.0.phone:<the number>).
    """
    parts: list[str | int] = []
    for piece in text.split("."):
        if piece.isascii() and piece.isdigit() and len(piece) <= 6:
            parts.append(int(piece))
        elif piece and piece.replace("_", "").isalnum() and piece.isascii() and len(piece) <= 64:
            parts.append(piece)
        else:
            where = f"after {_dotted(parts)}" if parts else "at its start"
            raise UsageError(_("not a field path like customers.0.phone (a bad part {where})").format(where=where))
    return parts


def convert_value(raw: str, node: dict, path: str) -> Any:
    """A --set value typed as the schema wants it at that field."""
    types = node.get("type")
    types = [types] if isinstance(types, str) else (types or [])
    if "enum" in node and all(isinstance(v, str) for v in node["enum"]):
        return raw
    if "string" in types or (not types and "format" in node):
        return raw
    if types == ["integer"]:
        try:
            return int(raw)
        except ValueError:
            raise UsageError(_("{path}: must be a whole number").format(path=path)) from None
    if types == ["number"]:
        try:
            return float(raw)
        except ValueError:
            raise UsageError(_("{path}: must be a number").format(path=path)) from None
    return yamlio.loads(raw, source=f"--set {path}")


def set_path(record: dict, parts: list[str | int], value: Any) -> None:
    """Set a value at a path, creating dicts and lists on the way (index == len appends)."""
    target: Any = record
    for i, key in enumerate(parts):
        last = i == len(parts) - 1
        nxt: Any = value if last else ([] if isinstance(parts[i + 1], int) else {})
        if isinstance(key, int):
            if not isinstance(target, list) or key > len(target):
                raise UsageError(_("{dotted}: index {key} is out of range").format(dotted=_dotted(parts), key=key))
            if key == len(target):
                target.append(nxt)
            elif last:
                target[key] = value
        else:
            if not isinstance(target, dict):
                raise UsageError(_("{dotted}: {key} is not inside a mapping").format(dotted=_dotted(parts), key=key))
            if last or key not in target:
                target[key] = nxt
        target = target[key]


def unset_path(record: dict, parts: list[str | int]) -> None:
    """Remove the value at a path (a list item is removed and later ones move up)."""
    target: Any = record
    for key in parts[:-1]:
        try:
            target = target[key]
        except (KeyError, IndexError, TypeError):
            raise UsageError(_("{dotted}: no such field").format(dotted=_dotted(parts))) from None
    try:
        del target[parts[-1]]
    except (KeyError, IndexError, TypeError):
        raise UsageError(_("{dotted}: no such field").format(dotted=_dotted(parts))) from None


def _dotted(parts: list[str | int]) -> str:
    return ".".join(str(p) for p in parts)


def deep_update(base: dict, patch: dict) -> dict:
    """base with patch applied: mappings merged, everything else replaced."""
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_update(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def stored_texts_at(
    repo: Path, rev: str, numbers: set[str] | None = None
) -> Iterator[tuple[HouseholdPath, str, bytes]]:
    """(household, path, stored text) of every household record in rev's tree (of numbers, if given).

    One `ls-tree` and one `cat-file --batch` however many records there are, each read by its blob id.
    """
    wanted = []
    for path, blob in gitio.tree_files(repo, rev, "households"):
        place = HouseholdPath.of_record(path)
        if place is not None and (numbers is None or place.archive_no in numbers):
            wanted.append((place, path, blob))
    with gitio.BlobReader(repo) as blobs:
        texts = blobs.read_many([blob for _, _, blob in wanted])
        for (place, path, _blob), data in zip(wanted, texts, strict=True):
            yield place, path, data or b""


def field_paths(value: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted paths to leaf values, as --set names fields (customers.0.phone; lists of mappings item by item)."""
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(field_paths(v, f"{prefix}{k}."))
        return out
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        out = {}
        for i, v in enumerate(value):
            out.update(field_paths(v, f"{prefix}{i}."))
        return out
    return {prefix.rstrip("."): value} if prefix else {}
