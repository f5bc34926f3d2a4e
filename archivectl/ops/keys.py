"""keys shred: destroy record keys only once their purge is approved on main (P13, P14).

A purge commit removes a household from the tree and registers its destruction;
until it is approved and on main, its record key stays. `keys shred`, run where
the keystore is reachable (cron-ready, idempotent), destroys the keys main no
longer needs, after checking again, against main's history and the current
time, that each purge was approved and its household tombstoned long enough.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from archivectl import clock, gitio, policy, records
from archivectl.archive import Archive
from archivectl.errors import ArchiveError


def shred(archive: Archive, dry_run: bool = False) -> list[dict[str, Any]]:
    """One row per key of a household that main no longer holds: shredded, or kept and why."""
    main = archive.settings.main
    tip = gitio.rev_parse(archive.root, f"refs/heads/{main}")
    if tip is None:
        raise ArchiveError(f"no branch {main} here: run keys shred in a clone with {main}, or the server repository")
    archive.keystore.require()
    present = {p.split("/")[3] for p in gitio.tree_paths(archive.root, tip, "households") if p.endswith("/record.yaml")}
    purges = _purge_commits(archive, tip)
    judged: dict[str, str | None] = {}  # one purge may remove many households: judge the commit once
    rows = []
    for number in archive.keystore.archive_numbers():
        if number in present:
            continue
        purge = purges.get(number)
        if purge is None:
            problem: str | None = f"no purge of it on {main}"
        else:
            if purge not in judged:
                judged[purge] = _purge_problem(archive, tip, purge)
            problem = judged[purge] or _retention_problem(archive, tip, number, purge)
        if problem:
            rows.append({"archive_no": number, "shredded": False, "why": problem})
            continue
        if not dry_run:
            archive.keystore.destroy(number)
        rows.append({"archive_no": number, "shredded": not dry_run, "why": f"purge {purge[:12]} approved on {main}"})
    return rows


def _purge_commits(archive: Archive, tip: str) -> dict[str, str]:
    """Archive number -> the purge commit on tip's history that removed it (newest wins)."""
    found: dict[str, str] = {}
    for entry in gitio.log(archive.root, tip, "--grep=^Action: purge$"):
        if entry.trailers.get("Action") != "purge":
            continue
        for number in entry.trailers.get("Archive-No", "").split(","):
            found.setdefault(number.strip(), entry.commit)
    return found


def _purge_problem(archive: Archive, tip: str, purge: str) -> str | None:
    """Why a purge commit on main does not yet allow destroying keys (unapproved, broken, future-dated), or None."""
    from archivectl.ops.verify import verify

    report = verify(archive, f"{purge}~1..{tip}", allow_pending=True)
    if any(row["commit"] == purge for row in report["pending"]):
        waiting = next(row["awaiting"] for row in report["pending"] if row["commit"] == purge)
        return f"purge {purge[:12]} awaits approval by {waiting}"
    broken = [f for f in report["findings"] if f["commit"] == purge]
    if broken:
        return f"purge {purge[:12]} breaks a rule: {broken[0]['message']}"
    if dt.datetime.fromisoformat(gitio.committer_date(archive.root, purge)) > clock.now() + policy.CLOCK_SKEW:
        return f"purge {purge[:12]} is dated in the future"
    return None


def _retention_problem(archive: Archive, tip: str, number: str, purge: str) -> str | None:
    """Why one purged household's 30 days are not over, by main's history and the current time (P13), or None."""
    from archivectl.ops.lifecycle import tombstone_dates

    parent = f"{purge}~1"
    paths = [p for p in gitio.tree_paths(archive.root, parent, "households") if f"/{number}/record.yaml" in p]
    if not paths:
        return f"{number} was not in the archive before purge {purge[:12]}"
    stored = records.load_stored(gitio.show_blob(archive.root, parent, paths[0]) or b"", paths[0])
    try:
        dates = tombstone_dates(archive, paths[0], stored, rev=parent, mainline=tip)
    except ArchiveError as exc:
        return str(exc)
    days = archive.settings.retention_days
    verdict = policy.retention_verdict(dates, clock.now(), days)
    if verdict.problem:
        return verdict.problem
    if not verdict.eligible:
        return f"{verdict.days_left} days of the {days}-day retention are left (P13)"
    return None
