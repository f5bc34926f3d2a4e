"""show, list, history: reading households, with reveals registered (P8)."""

from __future__ import annotations

from typing import Any

from archivectl import gitio, pii, records, registers, yamlio
from archivectl.archive import Archive, Transaction
from archivectl.errors import ArchiveError, UsageError
from archivectl.i18n import _
from archivectl.identity import actor_of
from archivectl.layout import HouseholdPath, check_archive_no
from archivectl.ops.common import (
    Approval,
    check_reason,
    for_reader,
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
    reason = check_reason(reason, look_up=True)
    with archive.writing() as tx:  # reader rights, record and key as they stand under the lock
        actor = actor_of(archive)
        plain = for_reader(archive, actor, archive_no, identity).plain()
        register_access(tx, actor, archive_no, "reveal", reason)
    return plain


def register_access(tx: Transaction, actor: Any, archive_no: str, action: str, reason: str, **extra: Any) -> str:
    """Append a look-up to the access register and make the transaction's signed commit; return the commit."""
    registers.register(tx, "access", action, actor.member.id, {"archive_no": archive_no, **extra}, reason=reason)
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
    """One row per household from the clear parts only (no key needed), cached like the reports.

    A category or status the schema does not know is refused: it could never match.
    """
    for name, value in (("category", category), ("status", status)):
        check_filter(value, archive.household_schema.choices(name), name)
    from archivectl.facts import households, place_key

    rows = []
    for facts in households(archive):
        if facts.get("invalid"):
            place = HouseholdPath.of(facts["path"])
            facts = {
                "archive_no": place.archive_no,
                "building": place.building,
                "unit": place.unit,
                "status": "invalid",
            }
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
            "commit": e.commit[:10],
            "change": pii.shown(e.subject),
            "acted_by": e.trailers.get("Acted-by", ""),
            "approved_by": e.trailers.get("Approved-by", ""),
            "reason": pii.shown(e.trailers.get("Reason", "")),
        }
        for e in entries
        if archive_no in [n.strip() for n in e.trailers.get("Archive-No", "").split(",")]
    ]
    if not rows:
        raise ArchiveError(_("{archive_no}: no history in this archive").format(archive_no=archive_no))
    return rows


def check_filter(value: str | None, allowed: tuple[str, ...], name: str) -> None:
    """Refuse a filter value that can never match."""
    if value is not None and value not in allowed:
        raise UsageError(_("--{name} must be one of {allowed}").format(name=name, allowed=", ".join(allowed)))


def review_start(archive: Archive, range_spec: str, reason: str | None) -> dict[str, Any]:
    """Register a review of a range: one access entry naming its households and the record versions in it.

    git diff / git log -p decrypt a record version (textconv) only for a reader
    who registered a review whose range holds that version (P8): reading
    personal data in a diff is a look-up like any other.
    """
    reason = check_reason(reason, look_up=True)
    with archive.writing() as tx:
        actor = actor_of(archive)
        if ".." not in range_spec or range_spec.startswith("-"):
            raise UsageError(_("give a range like origin/main..HEAD"))
        if any(gitio.rev_parse(archive.root, end or "HEAD") is None for end in range_spec.split("..", 1)):
            raise UsageError(_("{range_spec}: no such commit").format(range_spec=range_spec))
        commits = gitio.out(archive.root, "rev-list", "--no-merges", range_spec).split()
        versions: dict[str, set[str]] = {}
        buildings: dict[str, str] = {}
        for line in gitio.out(
            archive.root, "log", "--no-merges", "--format=", "--raw", "--no-abbrev", "--no-renames", range_spec,
            "--", "households",
        ).splitlines():  # fmt: skip
            parts = line.split()
            if len(parts) < 6 or not parts[5].endswith("/record.yaml"):
                continue
            path = parts[5]
            place = HouseholdPath.parse(path)
            if place is None:
                continue
            number = place.archive_no
            buildings[number] = place.building
            versions.setdefault(number, set()).update(b for b in parts[2:4] if set(b) != {"0"})
        readable = sorted(n for n in versions if _reads(archive, actor, buildings[n]))
        if not readable:
            raise ArchiveError(
                _("{range_spec}: no household in it that you may read ({n_commits} commits)").format(
                    range_spec=range_spec, n_commits=len(commits)
                )
            )
        ends = [gitio.rev_parse(archive.root, end) or end for end in range_spec.split("..", 1)]
        entry = registers.register(
            tx,
            "access",
            "view",
            actor.member.id,
            {
                "archive_no": ", ".join(readable),
                "range": "..".join(ends),
                "versions": sorted(v for n in readable for v in versions[n]),
            },
            reason=reason,
        )
        tx.commit(
            f"register review of {len(readable)} households ({range_spec})",
            trailers("view", Approval(reason), actor, ", ".join(readable)),
            actor,
        )
    return {"households": readable, "versions": len(entry["versions"]), "range": entry["range"]}


def _reads(archive: Archive, actor: Any, building: str) -> bool:
    try:
        require_reader(archive, actor, building)
    except ArchiveError:
        return False
    return True


def reviewed_versions(archive: Archive, who: str) -> set[str]:
    """The record versions (blob ids) someone registered a review of: what textconv may open for them.

    Only entries committed in HEAD count (a signed look-up commit that verify and the
    server judge): a file written by hand into the work tree, or staged and never
    committed, opens nothing.
    """
    from fnmatch import fnmatchcase

    head = gitio.head(archive.root)
    if head is None:
        return set()
    pattern = f"registers/access/*/*-view-{who}-*.yaml"
    found: set[str] = set()
    for path in gitio.tree_paths(archive.root, head, "registers/access"):
        if not fnmatchcase(path, pattern):
            continue
        data = gitio.show_blob(archive.root, head, path)
        entry = yamlio.loads(data, path) if data else None
        if isinstance(entry, dict) and entry.get("who") == who:
            found.update(str(v) for v in entry.get("versions") or [])
    return found
