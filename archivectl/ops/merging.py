"""merge-driver: git's merge driver for records, three-way at field level (SPEC "Many hands at once").

Two branches that change different fields of one record merge without a
conflict. The clear part merges field by field (mappings key by key, lists of
equal length item by item, other lists as whole values; `documents` as the
union of what each side attached). The sealed block goes with its side when
only one side changed it; when both did, a reader of the household opens the
three versions in memory, merges the plain fields the same way and seals the
result to the same record key. Nothing decrypted touches the disk: git's
`%A` file receives only the re-sealed record.

The same merge, without keys, is what verify judges a merge commit's records
by (merged_record_problem): one place for the rule.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archivectl import records
from archivectl.staff import ALL_BUILDINGS_ROLES, BUILDING_READER_ROLES

# verify sets this while it asks git what a plain merge gives: git runs a configured driver
# inside `git merge-tree` too, and a clone must judge a merge exactly as the server (no driver) does.
TEXT_MERGE_ENV = "ARCHIVECTL_MERGE_DRIVER_TEXT"
STORED_ONLY = records.STORED_ONLY  # recipient, sealed_fields, sealed: the sealed block and its key
_ABSENT: Any = object()


@dataclass
class Merged:
    """A three-way merge of stored records without keys.

    record: the merged stored record (None on conflict or when the sealed block needs a reader).
    conflicts: field paths both sides changed differently (never values).
    sealed_both: both sides changed the sealed block: only a reader can merge it.
    """

    record: dict | None
    conflicts: list[str] = field(default_factory=list)
    sealed_both: bool = False


# ---------------------------------------------------------------------- the field-level merge


def merge_values(base: Any, ours: Any, theirs: Any, path: tuple[str | int, ...], conflicts: list[str]) -> Any:
    """The three-way merge of one value; a conflicting path is noted and ours kept there."""
    if ours == theirs:
        return ours
    if ours == base:
        return theirs
    if theirs == base:
        return ours
    if path == ("documents",) and all(isinstance(v, list) for v in (ours, theirs)):
        return _merge_documents(base if isinstance(base, list) else [], ours, theirs, conflicts)
    if isinstance(ours, dict) and isinstance(theirs, dict) and (base is _ABSENT or isinstance(base, dict)):
        old = {} if base is _ABSENT else base
        out = {}
        for key in [*ours, *(k for k in theirs if k not in ours)]:
            value = merge_values(
                old.get(key, _ABSENT), ours.get(key, _ABSENT), theirs.get(key, _ABSENT), (*path, key), conflicts
            )
            if value is not _ABSENT:
                out[key] = value
        return out
    if isinstance(ours, list) and isinstance(theirs, list) and isinstance(base, list):
        if len(base) == len(ours) == len(theirs):  # item by item only when no side added or removed one
            items = enumerate(zip(base, ours, theirs, strict=True))
            return [merge_values(b, o, t, (*path, i), conflicts) for i, (b, o, t) in items]
    conflicts.append(".".join(str(p) for p in path))
    return ours


def _merge_documents(base: list, ours: list, theirs: list, conflicts: list[str]) -> list:
    """What both sides attached, newest first; documents are only ever added (P6)."""
    listed = {str(d.get("file")): d for d in base if isinstance(d, dict)}
    mine = {str(d.get("file")): d for d in ours if isinstance(d, dict)}
    other = {str(d.get("file")): d for d in theirs if isinstance(d, dict)}
    clash = any(mine.get(f) != d or other.get(f) != d for f, d in listed.items())
    clash = clash or any(f in other and other[f] != d for f, d in mine.items())
    if clash or len(mine) != len(ours) or len(other) != len(theirs):
        conflicts.append("documents")
        return ours
    merged = list(ours) + [d for f, d in other.items() if f not in mine]
    merged.sort(key=lambda d: (str(d.get("date")), d.get("version", 0)), reverse=True)  # as attach orders them
    return merged


def _clear(stored: dict) -> dict:
    return {k: v for k, v in stored.items() if k not in STORED_ONLY}


def _sealed_block(stored: dict) -> dict:
    return {k: stored[k] for k in STORED_ONLY if k in stored}


def merge_stored(base: dict, ours: dict, theirs: dict) -> Merged:
    """The field-level merge of three stored records, without keys.

    The sealed block (with its recipient and field list) goes whole with the side
    that changed it; when both did, `sealed_both` says a reader must merge it.
    """
    conflicts: list[str] = []
    clear = merge_values(_clear(base), _clear(ours), _clear(theirs), (), conflicts)
    blocks = (_sealed_block(base), _sealed_block(ours), _sealed_block(theirs))
    both = blocks[1] != blocks[2] and blocks[1] != blocks[0] and blocks[2] != blocks[0]
    if conflicts or both:
        return Merged(None, conflicts, both)
    block = blocks[2] if blocks[1] == blocks[0] else blocks[1]
    return Merged({**clear, **block})


# ---------------------------------------------------------------------- what verify accepts


def merged_record_problem(base: dict | None, ours: dict, theirs: dict, result: dict, signer_reads: bool) -> str | None:
    """Why result is not a merge of ours and theirs that archivectl's driver could give, or None.

    Accepted: the field-level merge only. Everything in clear must be exactly it:
    nothing that is in neither side, no side's change dropped (keeping one side's
    record whole could undo the other's approved tombstone). Where both sides
    changed the sealed block, which verify cannot open, the result must carry a
    sealed block to the record key both sides use, list only fields either side
    holds, and the merge commit must be signed by a reader of the building. A
    conflict is resolved by merging without that side's change and redoing it
    with `archivectl edit`, approved like any edit.
    """
    if base is None:
        return "a merged record has no common version to merge from"
    merged = merge_stored(base, ours, theirs)
    if merged.conflicts:
        return f"both sides changed {', '.join(merged.conflicts)}: a conflict, resolved only by an approved edit"
    if merged.record is not None:
        if result != merged.record:
            return "the merged record is not the field-level merge of its parents (a value neither side has)"
        return None
    expected_clear = merge_values(_clear(base), _clear(ours), _clear(theirs), (), [])
    if _clear(result) != expected_clear:
        return "the merged record is not the field-level merge of its parents (a value neither side has)"
    recipient = result.get("recipient")
    if not (recipient == ours.get("recipient") == theirs.get("recipient")) or not result.get("sealed"):
        return "a merged sealed block must be sealed to the record key both sides use"
    listed = set(ours.get("sealed_fields") or []) | set(theirs.get("sealed_fields") or [])
    if not set(result.get("sealed_fields") or []) <= listed:
        return "the merged sealed block lists fields neither side holds"
    if not signer_reads:
        return "a merge of sealed fields must be signed by a reader of the building (git merge -S)"
    return None


# ---------------------------------------------------------------------- the driver


def who_can_merge(building: str) -> str:
    """The readers of a building in words, for a conflict only they can resolve (P7)."""
    local = " or ".join(BUILDING_READER_ROLES)
    everywhere = " or the ".join(ALL_BUILDINGS_ROLES)
    return f"a reader of building {building} (a {local} of {building}, a {everywhere}) can merge it"


def merge_driver(ancestor: Path, ours: Path, theirs: Path, path: str) -> tuple[int, list[str]]:
    """Merge a record for git: (exit code, lines for stderr). On success ours holds the result.

    On a conflict ours is left as it is (git then marks the path conflicted) and
    the one line names the field paths, never a value.
    """
    if os.environ.get(TEXT_MERGE_ENV):
        return _text_merge(ancestor, ours, theirs), []
    try:
        base_raw, ours_raw, theirs_raw = ancestor.read_bytes(), ours.read_bytes(), theirs.read_bytes()
        mine, other = records.load_stored(ours_raw, path), records.load_stored(theirs_raw, path)
        base = records.load_stored(base_raw, path) if base_raw.strip() else None
    except Exception:
        return 1, [f"archivectl: {path}: not a record on both sides; merge it by hand"]
    number = str(mine.get("archive_no") or path)
    if base is None:
        return 1, [f"archivectl: {number}: added on both sides; keep one and edit"]
    merged = merge_stored(base, mine, other)
    if merged.conflicts:
        return 1, [_both_changed(number, merged.conflicts)]
    if merged.record is None:
        return _merge_sealed(number, base, mine, other, ours)
    ours.write_text(records.dump(merged.record), encoding="utf-8")
    return 0, []


def _both_changed(number: str, paths: list[str]) -> str:
    return (
        f"archivectl: {number}: both sides changed {', '.join(paths)}; "
        "resolve with archivectl edit after merging one side"
    )


def _merge_sealed(number: str, base: dict, mine: dict, other: dict, ours: Path) -> tuple[int, list[str]]:
    """Both sides changed the sealed block: open all three for a reader, merge, re-seal to the same key."""
    if mine.get("recipient") != other.get("recipient"):
        return 1, [f"archivectl: {number}: a rotation on one side; merge the other side's change again after it"]
    from archivectl import crypto
    from archivectl.archive import Archive
    from archivectl.ops.common import identity_for, open_key

    try:
        archive = Archive.find(None)
        identity = crypto.load_identity(identity_for(archive, None))
        key = open_key(archive, mine, identity)
        old_key = key if base.get("recipient") == mine.get("recipient") else open_key(archive, base, identity)
        plain_base, _ = records.open_record(base, old_key)
        plain_mine, sealed_mine = records.open_record(mine, key)
        plain_other, _ = records.open_record(other, key)
    except Exception:
        building = str(mine.get("building") or "?")
        return 1, [f"archivectl: {number}: both sides changed sealed fields; {who_can_merge(building)}"]
    conflicts: list[str] = []
    plain = merge_values(plain_base, plain_mine, plain_other, (), conflicts)
    if conflicts:
        return 1, [_both_changed(number, conflicts)]
    try:
        stored = records.to_stored(plain, archive.household_schema, key, (sealed_mine, str(mine.get("sealed"))))
    except Exception:
        return 1, [f"archivectl: {number}: the merged record cannot be sealed; merge one side and edit"]
    ours.write_text(records.dump(stored), encoding="utf-8")
    return 0, []


def _text_merge(ancestor: Path, ours: Path, theirs: Path) -> int:
    """git's own line merge, as a repository without archivectl's driver merges (what the server sees)."""
    from archivectl import gitio

    proc = gitio.run(None, "merge-file", "-q", str(ours), str(ancestor), str(theirs), check=False)
    return 0 if proc.returncode == 0 else 1
