"""report requests (P17): open customers' requests with their due dates, overdue and due soon; legal holds."""

from __future__ import annotations

from archivectl import clock
from archivectl.archive import Archive
from archivectl.i18n import _
from archivectl.ops import holds as holds_ops
from archivectl.ops import requests as requests_ops
from archivectl.reports.render import Report, Section, document_head
from archivectl.workdays import ANSWER_DAYS, DUE_SOON_DAYS


def requests(archive: Archive) -> Report:
    """Open requests on the clock (overdue first), and the households under legal hold; act on any overdue."""
    held = holds_ops.current(archive)
    rows = []
    for row in requests_ops.listing(archive, "open"):
        numbers = [n.strip() for n in row["archive_no"].split(",") if n.strip()]
        rows.append({**row, "held": [n for n in numbers if n in held]})
    rows.sort(key=lambda r: (not r["overdue"], not r["due_soon"], r["due"], r["request"]))
    overdue = [r for r in rows if r["overdue"]]
    soon = [r for r in rows if r["due_soon"]]
    hold_rows = holds_ops.rows(archive)
    document = {
        **document_head("requests", archive.settings.name),
        "today": clock.today().isoformat(),
        "answer_days": ANSWER_DAYS,
        "due_soon_days": DUE_SOON_DAYS,
        "closures": list(archive.settings.closures),
        "open": rows,
        "holds": hold_rows,
    }
    columns = ["request", "kind", "archive_no", "received", "due", "days_left", "overdue", "due_soon", "held"]
    return Report(
        name="requests",
        title=_("Customers' requests (P17) — {name}").format(name=archive.settings.name),
        document=document,
        sections=[
            Section(_("Open requests (answer within {n} working days)").format(n=ANSWER_DAYS), rows, columns, "open"),
            Section(
                _("Households under legal hold"),
                hold_rows,
                ["archive_no", "held_since", "approved_by", "reason"],
                "holds",
            ),
        ],
        summary=_(
            "{n_open} open requests: {n_overdue} overdue, {n_soon} due within {days} working days; "
            "{n_held} households under legal hold."
        ).format(n_open=len(rows), n_overdue=len(overdue), n_soon=len(soon), days=DUE_SOON_DAYS, n_held=len(hold_rows)),
        act_on=bool(overdue),
    )
