"""report retention (P11, P13, P18): tombstones and their days left, moved-out, reviews due, lent dossiers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from archivectl import clock, gitio, registers
from archivectl.archive import Archive
from archivectl.facts import RECORD_PATTERN, households, place_key
from archivectl.i18n import _
from archivectl.ops.lifecycle import candidates
from archivectl.reports.render import Report, Section, document_head


def added_on(archive: Archive) -> dict[str, dt.date]:
    """The day each record was added (its path's first commit on HEAD), in one walk of the history."""
    text = gitio.out(
        archive.root, "log", "--diff-filter=A", "--format=%x1e%cI", "--name-only", "HEAD", "--", RECORD_PATTERN
    )
    added: dict[str, dt.date] = {}
    for chunk in text.split("\x1e"):  # newest first: an older add of a path (never, numbers are not reused) wins
        date, _, paths = chunk.partition("\n")
        for path in paths.split("\n"):
            if path.strip() and date:
                added[path.strip()] = dt.datetime.fromisoformat(date.strip()).date()
    return added


def retention(archive: Archive, progress: Callable[[int, int], None] | None = None) -> Report:
    """Everything with a date to watch."""
    today = clock.today()
    facts = [f for f in households(archive, progress) if not f.get("invalid")]
    tombstones = [c.row() for c in candidates(archive)] if any(f.get("status") == "tombstoned" for f in facts) else []
    moved_out = sorted(
        (
            {
                "archive_no": f["archive_no"],
                "building": f["building"],
                "floor": f.get("floor"),
                "unit": f.get("unit"),
                "moved_out": f.get("moved_out"),
            }
            for f in facts
            if f.get("status") == "moved-out"
        ),
        key=place_key,
    )
    interval = archive.settings.review_interval_days
    active = [f for f in facts if f.get("status") == "active"]
    added = added_on(archive) if any(not f.get("last_reviewed") for f in active) else {}
    due = []
    for f in active:
        last = f.get("last_reviewed")
        # never reviewed: the clock runs from the day it was added (P11), not from the start of time
        since = dt.date.fromisoformat(last) if last else added.get(str(f.get("path")))
        days = (today - since).days if since else None
        if days is None or days > interval:
            due.append(
                {
                    "archive_no": f["archive_no"],
                    "building": f["building"],
                    "last_reviewed": last or "",
                    "added": "" if last or since is None else since.isoformat(),
                    "days_since": days if days is not None else "",
                }
            )
    due.sort(key=lambda r: (str(r["building"]), str(r["archive_no"])))
    lent = [
        {
            "archive_no": e.get("archive_no"),
            "to": e.get("to"),
            "due": e.get("due"),
            "overdue": str(e.get("due")) < today.isoformat(),
        }
        for e in registers.lent_out(archive.root).values()
    ]
    from archivectl.ops.keeping import past_keeping

    kept_too_long = past_keeping(archive, facts)
    from archivectl.ops.holds import rows as hold_rows

    held = hold_rows(archive)  # tombstone, purge and shred wait for their release
    eligible = [t for t in tombstones if t["eligible"]]
    document = {
        **document_head("retention", archive.settings.name),
        "retention_days": archive.settings.retention_days,
        "review_interval_days": interval,
        "tombstoned": tombstones,
        "moved_out": moved_out,
        "review_due": due,
        "lent": lent,
        "past_keeping": kept_too_long,  # 保管期限: `archivectl tombstone --due` proposes their deletion
        "holds": held,
    }
    return Report(
        name="retention",
        title=_("Retention and review (P11, P13) — {name}").format(name=archive.settings.name),
        document=document,
        sections=[
            Section(
                _("Tombstoned (30-day rule)"),
                tombstones,
                ["archive_no", "building", "tombstoned", "days_left", "eligible", "problem"],
                key="tombstoned",
            ),
            Section(
                _("Moved out (kept apart)"),
                moved_out,
                ["archive_no", "building", "floor", "unit", "moved_out"],
                "moved_out",
            ),
            Section(
                _("Not reviewed for more than {interval} days").format(interval=interval),
                due,
                ["archive_no", "building", "last_reviewed", "added", "days_since"],
                key="review_due",
            ),
            Section(_("Paper dossiers lent"), lent, ["archive_no", "to", "due", "overdue"], key="lent"),
            Section(
                _("Past their keeping period (保管期限; tombstone --due)"),
                kept_too_long,
                ["archive_no", "building", "class", "since", "days_kept", "period_days"],
                key="past_keeping",
            ),
            Section(_("Under legal hold (no tombstone, purge or shred)"), held, key="holds"),
        ],
        summary=(
            _(
                "{n_tombstones} tombstoned ({n_eligible} eligible for purge), {n_moved_out} moved out, {n_due} "
                "due for review, {overdue} lent and overdue, {n_kept_too_long} past their keeping period, "
                "{n_held} under legal hold."
            ).format(
                n_tombstones=len(tombstones),
                n_eligible=len(eligible),
                n_moved_out=len(moved_out),
                n_due=len(due),
                overdue=sum(1 for x in lent if x["overdue"]),
                n_kept_too_long=len(kept_too_long),
                n_held=len(held),
            )
        ),
        act_on=bool(eligible or kept_too_long),
    )
