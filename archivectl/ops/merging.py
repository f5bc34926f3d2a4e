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
by (judge/merges.py merged_record_problem): one place for the rule. Where both sides changed
the sealed block, the merge is a change of personal fields nobody else can check: it needs an
approval like an edit (Approved-by: on the merge commit, an approval naming it).
"""

from __future__ import annotations

import os
from pathlib import Path

from archivectl import fingerprints, records
from archivectl.judge.merges import TEXT_MERGE_ENV, merge_stored, merge_values
from archivectl.ops.common import identity_for, open_key
from archivectl.ops.finding import kept_index
from archivectl.staff import ALL_BUILDINGS_ROLES, BUILDING_READER_ROLES

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

    try:
        archive = Archive.find(None)
        identity = crypto.load_identity(identity_for(archive, None))
        key = open_key(archive, mine, identity)
        old_key = key if base.get("recipient") == mine.get("recipient") else open_key(archive, base, identity)
        plain_base, _ = records.open_record(base, old_key)
        plain_mine, sealed_mine = records.open_record(mine, key)
        plain_other, sealed_other = records.open_record(other, key)
    except Exception:
        building = str(mine.get("building") or "?")
        return 1, [f"archivectl: {number}: both sides changed sealed fields; {who_can_merge(building)}"]
    for side, sealed in ((mine, sealed_mine), (other, sealed_other)):  # each side is what its diff showed
        mismatch = fingerprints.check_stored(side, sealed, key)
        if mismatch:
            return 1, [f"archivectl: {number}: {mismatch.message()}"]
    conflicts: list[str] = []
    plain = merge_values(plain_base, plain_mine, plain_other, (), conflicts)
    if conflicts:
        return 1, [_both_changed(number, conflicts)]
    schema = archive.household_schema
    try:
        merged_sealed = schema.split(plain)[1]  # a side's blind index stays if the merge keeps that side's numbers
        index = kept_index(mine, sealed_mine, merged_sealed, schema) or kept_index(
            other, sealed_other, merged_sealed, schema
        )
        stored = records.to_stored(plain, schema, key, (sealed_mine, str(mine.get("sealed"))), index)
    except Exception:
        return 1, [f"archivectl: {number}: the merged record cannot be sealed; merge one side and edit"]
    ours.write_text(records.dump(stored), encoding="utf-8")
    return 0, []


def _text_merge(ancestor: Path, ours: Path, theirs: Path) -> int:
    """git's own line merge, as a repository without archivectl's driver merges (what the server sees)."""
    from archivectl import gitio

    proc = gitio.run(None, "merge-file", "-q", str(ours), str(ancestor), str(theirs), check=False)
    return 0 if proc.returncode == 0 else 1
