"""The clear facts of every household, read once and cached by git tree and blob id.

What reports read is the index's `households/` tree (the records `git ls-files`
lists). Its id names everything a report sees, so:
- a report's result is kept under that id (reports/cache.py): a run where
  nothing changed reads no record and lists no file;
- the facts of each building are kept under the id of the building's subtree
  (one file per building): when one household changed, only its building is
  listed again and only its record parsed again (facts of unchanged blobs are
  reused from the building's previous file).
A cold read parses only each record's clear part (clearread.py reads the plain
block YAML records are written in; anything else goes to the strict loader),
half of them in a second process when there are many.
A cache file is used only when the tree id it names is the one being read; one
that cannot be read means reading again, never a wrong answer. Caches hold clear
facts only: the sealed block is never parsed, let alone kept.
"""

from __future__ import annotations

import contextlib
import fnmatch
import gc
import hashlib
import json
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from archivectl import clearread, forked, gitio, yamlio
from archivectl.archive import Archive
from archivectl.errors import UsageError
from archivectl.files import keep

CACHE_VERSION = 4
FIELDS = ("archive_no", "building", "floor", "unit", "category", "occupancy", "status", "last_reviewed")
ROOT = "households"
RECORD_PATTERN = "households/*/*/*/record.yaml"  # as Archive.record_paths (git's glob: * crosses /)
PARALLEL_FROM = 2000  # records to parse before a second process pays for itself
LIST_ALL_FROM = 4  # changed buildings from which one listing of the whole tree is cheaper


def summarise(stored: Any) -> dict[str, Any]:
    """The clear facts reports need from one stored record (no personal data)."""
    if not isinstance(stored, dict):
        return {"invalid": True}
    facts = {k: stored.get(k) for k in FIELDS}
    facts["documents"] = [[d.get("type"), d.get("date")] for d in stored.get("documents") or [] if isinstance(d, dict)]
    facts["fields"] = sorted(
        set(stored.get("sealed_fields") or [])
        | {
            k
            for k, v in stored.items()
            if k not in ("sealed", "sealed_fields", "sealed_fingerprints", "blind_index", "recipient")
            and v not in (None, "", [], {})
        }
    )
    renovation = stored.get("renovation") or {}
    facts["renovation"] = bool(isinstance(renovation, dict) and renovation.get("started"))
    facts["moved_out"] = (
        (stored.get("moved_out") or {}).get("date") if isinstance(stored.get("moved_out"), dict) else None
    )
    facts["tombstoned"] = (
        (stored.get("tombstone") or {}).get("date") if isinstance(stored.get("tombstone"), dict) else None
    )
    recipient = stored.get("recipient")  # the record key's public half (not personal): which key a backup takes
    facts["recipient"] = recipient if isinstance(recipient, str) and recipient else None
    return facts


# The sealed block as records.to_stored writes it: the last key, an armored age file in a literal block,
# each line two spaces and then armor characters (letters, digits, + / = - and spaces), the first not a space.
_SEALED_HEADS = (b"sealed: |\n", b"sealed: |-\n", b"sealed: |+\n")
_ARMOR = bytes(range(ord("A"), ord("Z") + 1)) + bytes(range(ord("a"), ord("z") + 1)) + b"0123456789+/= -\n"
_NOT_ONE_MAPPING = (b"\n---", b"\n...", b"\n%")  # document markers, directives (at a line's start)


def clear_part(data: bytes) -> bytes | None:
    """The record's text before its sealed block, when cutting there cannot change what the rest parses to.

    The block is one literal scalar of armor characters at the end, after a key
    at column 0 of a mapping that starts at column 0, with no document marker or
    directive before it: the text before it then parses to the same mapping less
    `sealed` (the caller checks `sealed` is not in it). Anything else: None, and
    the whole text is parsed as ever.
    """
    at = data.rfind(b"\nsealed: ")
    if at < 0 or len(data) > yamlio.MAX_YAML_BYTES or not data[:1].isalpha():
        return None
    head = data[: at + 1]
    block_at = data.find(b"\n", at + 1)
    if data[at + 1 : block_at + 1] not in _SEALED_HEADS or any(marker in head for marker in _NOT_ONE_MAPPING):
        return None
    return head if _armor_lines(data[block_at:]) else None


def _armor_lines(block: bytes) -> bool:
    """Whether block (from the newline before its first line) is lines of two spaces and armor, none blank."""
    lines = block.count(b"\n") - 1
    return (
        lines > 0
        and block.endswith(b"\n")
        and not block.translate(None, _ARMOR)
        and block.count(b"\n  ") == lines
        and b"\n   " not in block
        and b"\n  \n" not in block
    )


def facts_of(data: bytes, source: str) -> dict[str, Any]:
    """summarise() of one record file's content; {"invalid": True} for what the strict loader refuses."""
    try:
        head = clear_part(data)
        stored = _read_clear(head, source) if head is not None else None
        if isinstance(stored, dict) and "sealed" not in stored:
            return summarise(stored)
        return summarise(yamlio.loads(data, source=source))
    except (UsageError, UnicodeDecodeError):
        return {"invalid": True}


def _quick_clear(data: bytes) -> tuple[bytes | None, dict[str, Any] | None]:
    """(the clear part's bytes, its mapping) where the quick reader reads it as the strict loader would, else None."""
    head = clear_part(data)
    if head is None:
        return None, None
    try:
        found = clearread.mapping(head.decode("utf-8"))  # as yamlio.loads: UTF-8 only
    except UnicodeDecodeError:
        return head, None
    return head, found if isinstance(found, dict) and "sealed" not in found else None


def stored_record(data: bytes, source: str) -> dict[str, Any]:
    """A stored record as records.load_stored reads it, its sealed block left unread where that reads the same.

    For what needs only the clear part (a backup's status and recipient, `find`'s
    blind index): the quick reader of the clear part (clear_part, clearread) answers
    for nearly every record, exactly as the strict loader would; anything else is
    parsed whole, with the strict loader's refusals.
    """
    _head, found = _quick_clear(data)
    if found is not None:
        return found
    from archivectl import records

    return records.load_stored(data, source)


def whole_record(data: bytes, source: str) -> dict[str, Any]:
    """records.load_stored(data, source), sealed block and all, read the quick way where that reads the same.

    For the judge, which parses every record version a history writes: where clear_part
    cuts the text (the sealed block one literal scalar of armor lines at the end) and the
    quick reader reads the clear part, the sealed value is those lines less their two
    spaces of indentation, with the chomping its header asks; anything else is parsed
    whole by the strict loader, with its refusals.
    """
    head, found = _quick_clear(data)
    if head is not None and found is not None:
        header_end = data.index(b"\n", len(head)) + 1
        block = data[header_end:].decode("ascii")  # armor characters only (clear_part)
        value = block.replace("\n  ", "\n")[2:]  # each line less its two spaces, every line ending in \n
        found["sealed"] = value[:-1] if data[len(head) : header_end] == b"sealed: |-\n" else value
        return found
    from archivectl import records

    return records.load_stored(data, source)


def _read_clear(head: bytes, source: str) -> Any:
    """The clear part as the strict loader reads it, by the quickest reader that can read it exactly."""
    text = head.decode("utf-8")  # as yamlio.loads: UTF-8 only
    found = clearread.mapping(text)  # the plain block YAML records are written in: nearly every record
    return found if found is not None else yamlio.loads(text, source=source)  # libyaml composes what it safely can


def place_key(row: dict[str, Any]) -> tuple[str, int, str, str]:
    """Sort order of catalogues (P18): building, floor, unit, archive number (odd values sort first)."""
    floor = row.get("floor")
    return (
        str(row.get("building")),
        floor if isinstance(floor, int) else 0,
        str(row.get("unit")),
        str(row.get("archive_no")),
    )


# ------------------------------------------------------------------ reading


def households_tree(archive: Archive) -> str | None:
    """The id of the index's households/ tree (what reports read), or None when it cannot be had.

    Asked at every use (a command may write between two reports); write-tree is
    run only when the index's checksum differs from the one it was last run for.
    """
    stamp = gitio.index_stamp(archive.git_dir)
    memo_file = cache_dir(archive) / "index.json"
    memo = read_json(memo_file)
    if stamp is not None and isinstance(memo, dict) and memo.get("stamp") == stamp:
        tree = memo.get("tree")
        if isinstance(tree, str) and re.fullmatch("[0-9a-f]{40,64}", tree):
            return tree
    # An index a write left equal to its commit holds that commit's tree: no write-tree
    # (which, without the cache-tree a household's write drops, builds every tree).
    known = archive.index_equals()
    tree = (gitio.tree_at(archive.root, known, ROOT) if known else None) or gitio.index_tree(archive.root, ROOT)
    if stamp is not None and tree is not None:
        write_json(memo_file, {"stamp": stamp, "tree": tree})
    return tree


def households(
    archive: Archive,
    progress: Callable[[int, int], None] | None = None,
    only: set[str] | None = None,
    tree: str | None = None,
) -> list[dict[str, Any]]:
    """Facts of every household in the index, from cache where its building (or its blob) is unchanged.

    only: the names of the buildings to read (see building_trees), when there is a households tree.
    tree: a commit's households/ tree to read instead of the index's (a backup reads HEAD's); the
    same cache serves it, building by building, wherever the subtrees are the same.
    """
    with collector_paused():
        return _households(archive, progress, only, tree)


def building_trees(archive: Archive) -> dict[str, str] | None:
    """building name -> id of its subtree in the index's households/ tree; None without such a tree.

    What a result kept per building is keyed by: the same id, the same facts.
    """
    tree = households_tree(archive)
    if tree is None:
        return None
    return {name: oid for kind, oid, name in gitio.tree_entries(archive.root, tree) if kind == "tree"}


def building_of(path: str) -> str:
    """The building folder a record path lies in (households/<building>/...)."""
    return path.split("/", 2)[1]


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection inside, for code that builds many objects and keeps them.

    Facts, rows and texts of 100,000 households make no cycles, yet the collector
    walks them again and again as they grow: half a cold report's time at 100,000.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _households(
    archive: Archive, progress: Callable[[int, int], None] | None, only: set[str] | None, tree: str | None
) -> list[dict[str, Any]]:
    tree = tree or households_tree(archive)
    if tree is None:  # nothing under households/, a conflict in the index, or no copy of it: read it all
        entries = archive.record_paths()
        return [
            {**facts, "path": path}
            for (_, path), facts in zip(entries, _parse(archive, entries, progress), strict=True)
        ]
    cache = cache_dir(archive)
    rows_by_building: dict[str, list[list[Any]]] = {}
    stale: dict[str, tuple[str, dict[str, dict[str, Any]]]] = {}  # building -> (subtree, blob -> facts kept)
    for kind, subtree, name in gitio.tree_entries(archive.root, tree):
        if kind != "tree" or (only is not None and name not in only):
            continue
        stored = read_json(cache / _building_file(name))
        rows = _unpacked(stored, name) if isinstance(stored, dict) and stored.get("name") == name else None
        if rows is not None and stored.get("tree") == subtree:
            rows_by_building[name] = rows
        else:
            stale[name] = (subtree, _reusable(rows))
    if stale:
        _forget_older_caches(cache)
        listed = _list(archive, tree, stale)
        todo = [(blob, path) for name in stale for blob, path in listed.get(name, []) if blob not in stale[name][1]]
        parsed = dict(zip([blob for blob, _ in todo], _parse(archive, todo, progress), strict=True))
        for name, (subtree, kept) in stale.items():
            rows = [[path, blob, kept.get(blob) or parsed[blob]] for blob, path in listed.get(name, [])]
            rows_by_building[name] = rows
            write_json(cache / _building_file(name), {"name": name, "tree": subtree, **_packed(name, rows)})
    out = []
    for name in sorted(rows_by_building, key=lambda n: (n + "/").encode("utf-8", "surrogateescape")):  # ls-files order
        for path, _, facts in rows_by_building[name]:
            out.append({**facts, "path": path})
    return out


def _forget_older_caches(cache: Path) -> None:
    """Remove what earlier versions kept (facts by blob id, the previous reports directory): best effort."""
    shutil.rmtree(cache.parent / f"reports-v{CACHE_VERSION - 1}", ignore_errors=True)
    with contextlib.suppress(OSError):
        (cache.parent / "summaries-v1.json").unlink(missing_ok=True)


def _list(archive: Archive, tree: str, stale: dict[str, Any]) -> dict[str, list[tuple[str, str]]]:
    """building -> [(blob, path)] of its record files, for the buildings in stale."""
    if len(stale) >= LIST_ALL_FROM:
        found = gitio.tree_entries(archive.root, tree, recursive=True)
    else:
        found = []
        for name, (subtree, _) in stale.items():
            found += [(k, oid, f"{name}/{p}") for k, oid, p in gitio.tree_entries(archive.root, subtree, True)]
    listed: dict[str, list[tuple[str, str]]] = {}
    for kind, oid, rel in found:
        path = f"{ROOT}/{rel}"
        name = rel.split("/", 1)[0]
        if kind == "blob" and name in stale and fnmatch.fnmatchcase(path, RECORD_PATTERN):
            listed.setdefault(name, []).append((oid, path))
    return listed


def _reusable(rows: list[list[Any]] | None) -> dict[str, dict[str, Any]]:
    """blob -> facts from a building's previous cache file (facts depend on the blob alone)."""
    return {blob: facts for _, blob, facts in rows or []}


# A building's cache file holds each household's facts as a list in this order, and each distinct
# `fields` list once: a fifth of the JSON, so a fifth of the time to write it (cold) and read it (after an edit).
_FACT_KEYS = (*FIELDS, "documents", "fields", "renovation", "moved_out", "tombstoned", "recipient")
_FIELDS_AT = _FACT_KEYS.index("fields")


def _packed(name: str, rows: list[list[Any]]) -> dict[str, Any]:
    """rows ([path, blob, facts]) as kept in a building's cache file; facts of another shape kept as they are."""
    field_sets: dict[tuple[str, ...], int] = {}
    packed: list[list[Any]] = []
    prefix = f"{ROOT}/{name}/"
    for path, blob, facts in rows:
        if facts.keys() == _FACT_KEY_SET and type(facts["fields"]) is list:
            values = [facts[key] for key in _FACT_KEYS]
            values[_FIELDS_AT] = field_sets.setdefault(tuple(facts["fields"]), len(field_sets))
            packed.append([path.removeprefix(prefix), blob, values])
        else:  # {"invalid": True}
            packed.append([path.removeprefix(prefix), blob, facts])
    return {"field_sets": list(field_sets), "rows": packed}


_FACT_KEY_SET = set(_FACT_KEYS)


def _unpacked(stored: dict[str, Any], name: str) -> list[list[Any]] | None:
    """The rows _packed() kept for building name, or None when they are not all there as it wrote them."""
    prefix = f"{ROOT}/{name}/"
    try:
        field_sets = [list(fields) for fields in stored["field_sets"]]
        rows = []
        for rel, blob, values in stored["rows"]:
            if type(values) is list:
                facts = dict(zip(_FACT_KEYS, values, strict=True))
                facts["fields"] = list(field_sets[facts["fields"]])
            elif type(values) is dict:
                facts = values
            else:
                return None
            rows.append([prefix + rel, blob, facts])
        return rows
    except (KeyError, TypeError, ValueError, IndexError):  # damaged or of another version: read again
        return None


def _parse(
    archive: Archive, entries: list[tuple[str, str]], progress: Callable[[int, int], None] | None
) -> list[dict[str, Any]]:
    """Facts of each (blob, path), in order; for many, half in a forked process, each half read by its own cat-file.

    Each process parses blobs as its cat-file streams them, so reading overlaps
    parsing and both cores work from the first record to the last.
    """
    if not entries:
        return []
    if len(entries) < PARALLEL_FROM or not forked.possible():
        return _read_and_summarise(archive, entries, progress)
    half = len(entries) // 2
    with forked.in_child(lambda: _read_and_summarise(archive, entries[half:], None)) as theirs:
        mine = _read_and_summarise(archive, entries[:half], progress, len(entries))
    found = theirs()
    return mine + (found if isinstance(found, list) else _read_and_summarise(archive, entries[half:], None))


def _read_and_summarise(
    archive: Archive, entries: list[tuple[str, str]], progress: Callable[[int, int], None] | None, total: int = 0
) -> list[dict[str, Any]]:
    total = total or len(entries)
    out = []
    with gitio.BlobReader(archive.root) as reader:
        for i, (data, (_, path)) in enumerate(zip(reader.read_many([b for b, _ in entries]), entries, strict=True)):
            out.append(facts_of(data or b"", path))
            if progress and (i % 500 == 0 or i + 1 == len(entries)):
                progress(i + 1, total)
    return out


# ------------------------------------------------------------------ cache files


def cache_dir(archive: Archive) -> Path:
    return archive.git_dir / "archivectl" / "cache" / f"reports-v{CACHE_VERSION}"


def _building_file(name: str) -> str:
    return "b-" + hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:32] + ".json"


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):  # a damaged cache only means reading again
        return None


def write_json(path: Path, value: Any) -> None:
    keep(path, json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
