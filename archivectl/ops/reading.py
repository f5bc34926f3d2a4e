"""show, list, history: reading households, with reveals registered (P8)."""

from __future__ import annotations

from typing import Any

from archivectl import gitio, pii, records, registers
from archivectl.archive import Archive, Transaction, actor_of, check_archive_no, now_iso
from archivectl.errors import ArchiveError, UsageError
from archivectl.ops.common import (
    Approval,
    check_reason,
    identity_for,
    load_stored,
    require_reader,
    trailers,
    unlock_record_key,
)


def show(archive: Archive, archive_no: str, identity: str | None = None) -> dict:
    """A household masked (张*, 138****5678) for a reader, '(sealed)' for anyone else. Not registered."""
    check_archive_no(archive_no)
    stored = load_stored(archive, archive.locate(archive_no))
    schema = archive.household_schema
    clear = {k: v for k, v in stored.items() if k not in records.STORED_ONLY}
    if not stored.get("sealed"):
        return clear
    try:
        record_key = unlock_record_key(archive, stored, identity_for(archive, identity))
    except ArchiveError:
        return schema.sealed_placeholder(clear, stored.get("sealed_fields") or [])
    plain, _ = records.open_record(stored, record_key)
    return schema.mask(plain)


def reveal(archive: Archive, archive_no: str, reason: str | None, identity: str | None = None) -> dict:
    """The household in clear for an entitled reader, after registering the look-up (P7, P8)."""
    check_archive_no(archive_no)
    reason = check_reason(reason)
    with archive.writing() as tx:  # reader rights, record and key as they stand under the lock
        actor = actor_of(archive)
        relpath = archive.locate(archive_no)
        stored = load_stored(archive, relpath)
        require_reader(archive, actor, stored["building"])
        plain = {k: v for k, v in stored.items() if k not in records.STORED_ONLY}
        if stored.get("sealed"):
            record_key = unlock_record_key(archive, stored, identity_for(archive, identity, actor))
            plain, _ = records.open_record(stored, record_key)
        register_access(tx, actor, archive_no, "reveal", reason)
    return plain


def register_access(tx: Transaction, actor: Any, archive_no: str, action: str, reason: str, **extra: Any) -> str:
    """Append a look-up to the access register and make the transaction's signed commit; return the commit."""
    entry = {
        "when": now_iso(),
        "who": actor.member.id,
        "action": action,
        "archive_no": archive_no,
        **extra,
        "reason": reason,
    }
    registers.append(tx, "access", entry)
    return tx.commit(
        f"register {action} of {archive_no}",
        trailers(action, Approval(reason), actor, archive_no),
        actor,
    )


LIST_COLUMNS = (
    "archive_no",
    "building",
    "floor",
    "unit",
    "category",
    "occupancy",
    "status",
    "documents",
    "last_reviewed",
)


def list_households(
    archive: Archive, building: str | None = None, category: str | None = None, status: str | None = None
) -> list[dict]:
    """One row per household from the clear parts only (no key needed), cached like the reports."""
    from archivectl.reports.data import households, place_key

    rows = []
    for facts in households(archive):
        parts = facts["path"].split("/")
        if facts.get("invalid"):
            facts = {"archive_no": parts[3], "building": parts[1], "unit": parts[2], "status": "invalid"}
        if building and facts.get("building") != building:
            continue
        if category and facts.get("category") != category:
            continue
        if status and facts.get("status") != status:
            continue
        row = {c: facts.get(c) for c in LIST_COLUMNS}
        row["documents"] = len(facts.get("documents") or [])
        rows.append(row)
    rows.sort(key=place_key)
    return rows


def history(archive: Archive, archive_no: str) -> list[dict]:
    """Every commit concerning a household, oldest first: what, when, who, approver, reason."""
    check_archive_no(archive_no)
    entries = gitio.log(archive.root, "--reverse", f"--grep=^Archive-No: .*{archive_no}")
    rows = [
        {
            "date": e.committer_date,
            "commit": e.commit[:12],
            "change": pii.shown(e.subject),
            "acted_by": e.trailers.get("Acted-by", ""),
            "approved_by": e.trailers.get("Approved-by", ""),
            "reason": pii.shown(e.trailers.get("Reason", "")),
        }
        for e in entries
        if archive_no in [n.strip() for n in e.trailers.get("Archive-No", "").split(",")]
    ]
    if not rows:
        raise ArchiveError(f"{archive_no}: no history in this archive")
    return rows


def check_filter(value: str | None, allowed: tuple[str, ...], name: str) -> None:
    """Refuse a filter value that can never match."""
    if value is not None and value not in allowed:
        raise UsageError(f"--{name} must be one of {', '.join(allowed)}")
