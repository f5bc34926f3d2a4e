"""Merges as the judge accepts them: git's own merge of the parents, or archivectl's field-level merge.

The field-level merge itself (merge_stored) lives here, without keys, so the merge
driver (ops/merging.py) and verify share one rule: what the driver may write is
exactly what verify accepts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from archivectl import gitio, records, registers, rules
from archivectl.i18n import N_, _
from archivectl.judge.records import check_record_text
from archivectl.staff import Staff, fingerprint, may_read

if TYPE_CHECKING:
    from archivectl.judge.history import History

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

# Both sides changed a sealed block: the result is new ciphertext nobody but a reader can check, so
# the merge amounts to an edit of personal fields and needs an approval like one (bound to the merge).
# Marked, not translated: checks.py tells such a problem by _(SEALED_BY_HAND), in the language it is shown in.
SEALED_BY_HAND = N_("both sides changed its sealed fields: the merge needs an approval like an edit")


def merged_record_problem(base: dict | None, ours: dict, theirs: dict, result: dict, signer_reads: bool) -> str | None:
    """Why result is not a merge of ours and theirs that archivectl's driver could give, or None.

    Accepted: the field-level merge only. Everything in clear must be exactly it:
    nothing that is in neither side, no side's change dropped (keeping one side's
    record whole could undo the other's approved tombstone). Where both sides
    changed the sealed block, which verify cannot open, the result must carry a
    sealed block to the record key both sides use, list only fields either side
    holds, and the merge commit must be signed by a reader of the building; then the
    answer is SEALED_BY_HAND: such a merge is a change of personal fields the judge
    cannot see, approved like an edit (Approved-by: on the merge, an approval naming
    it). A conflict is resolved by merging without that side's change and redoing
    it with `archivectl edit`, approved like any edit.
    """
    if base is None:
        return _("a merged record has no common version to merge from")
    merged = merge_stored(base, ours, theirs)
    if merged.conflicts:
        return _("both sides changed {fields}: a conflict, resolved only by an approved edit").format(
            fields=", ".join(merged.conflicts)
        )
    if merged.record is not None:
        if result != merged.record:
            return _("the merged record is not the field-level merge of its parents (a value neither side has)")
        return None
    expected_clear = merge_values(_clear(base), _clear(ours), _clear(theirs), (), [])
    if _clear(result) != expected_clear:
        return _("the merged record is not the field-level merge of its parents (a value neither side has)")
    recipient = result.get("recipient")
    if not (recipient == ours.get("recipient") == theirs.get("recipient")) or not result.get("sealed"):
        return _("a merged sealed block must be sealed to the record key both sides use")
    listed = set(ours.get("sealed_fields") or []) | set(theirs.get("sealed_fields") or [])
    if not set(result.get("sealed_fields") or []) <= listed:
        return _("the merged sealed block lists fields neither side holds")
    if not signer_reads:
        return _("a merge of sealed fields must be signed by a reader of the building (git merge -S)")
    return _(SEALED_BY_HAND)


# ---------------------------------------------------------------------- a merge commit


def merge_problems(ctx: History, info: gitio.CommitInfo) -> list[str] | None:
    """[] for a clean merge; else what is wrong with its merged records, or None when more than records differ.

    Clean: its tree is what git's own merge of its parents gives (git merge-tree, with
    archivectl's driver set aside, as on the server), except in records each holding what
    merged_record_problem accepts: the field-level merge, or the first parent's record.
    """
    root, (first, second) = ctx.archive.root, info.parents
    proc = gitio.run(
        root,
        *("merge-tree", "--write-tree", "--name-only", "-z", first, second),
        env={TEXT_MERGE_ENV: "1"},
        check=False,
    )
    if proc.returncode not in (0, 1):
        return None
    tree, *listed = proc.stdout.decode("utf-8", "replace").split("\0")
    conflicted = set(listed[: listed.index("")] if "" in listed else listed) if proc.returncode else set()
    if not conflicted and tree == gitio.tree_of(root, info.commit):
        return []
    listing = gitio.run(root, "diff-tree", "-r", "--no-renames", "--name-status", "-z", tree, info.commit).stdout
    fields = listing.decode("utf-8", "replace").split("\0")
    changes = {path: status for status, path in zip(fields[0:-1:2], fields[1::2], strict=True)}
    changes.update({path: changes.get(path, "M") for path in conflicted})
    kinds = {path: (rules.classify(path) or rules.PathKind("")) for path in changes}
    if any(status != "M" or kinds[path].kind != "record" for path, status in changes.items()):
        return None
    bases = gitio.out(root, "merge-base", "--all", first, second).split()
    schema = ctx.schema_at(ctx.judged_by(info))
    problems = []
    for path in sorted(changes):
        number = kinds[path].archive_no
        ours, theirs = ctx.stored(f"{first}:{path}", path), ctx.stored(f"{second}:{path}", path)
        result = ctx.stored(f"{info.commit}:{path}", path)
        if ours is None or theirs is None or result is None:
            problems.append(
                _("{archive_no}: changes a record that is not a readable record on both sides").format(
                    archive_no=number
                )
            )
            continue
        base = ctx.stored(f"{bases[0]}:{path}", path) if len(bases) == 1 else None
        building = path.split("/")[1]
        problem = merged_record_problem(base, ours, theirs, result, signer_reads(ctx, info, building))
        if problem:
            problems.append(f"{number}: {problem}")
        elif result != ours and schema is not None:
            problems += [
                f"{path}: {p}" for p in check_record_text(schema, path, ctx.blobs.read(f"{info.commit}:{path}") or b"")
            ]
    return problems


def signer_reads(ctx: History, info: gitio.CommitInfo, building: str) -> bool:
    """True when info carries a good signature of an active staff member who reads the building (P7)."""
    staff = ctx.staff_at(ctx.judged_by(info))
    if info.signature not in ("G", "U") or not isinstance(staff, Staff):
        return False
    member = next((m for m in staff.members if fingerprint(m.key) == info.fingerprint), None)
    if member is None or not member.active:
        return False
    if may_read(member, building):
        return True
    day = info.committer_date[:10]
    grants = registers.active_grants_at(ctx.archive.root, ctx.judged_by(info), today=day) or []
    return any(g.get("staff") == member.id and g.get("building") == building for g in grants)
