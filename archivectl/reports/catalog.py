"""report catalog (P2, P18): the catalogue by building and floor, e.g. the yearly list of moved-out households."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from archivectl.archive import Archive
from archivectl.errors import UsageError
from archivectl.facts import households, place_key
from archivectl.i18n import _
from archivectl.reports.cache import cached_result
from archivectl.reports.render import Report, Section, document_head

STATUSES = ("active", "moved-out", "tombstoned")


def catalog(
    archive: Archive,
    year: int | None = None,
    status: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Report:
    """Households by building, floor and unit; --year means moved out that year (with --status moved-out)
    or numbered that year otherwise."""
    if status is not None and status not in STATUSES:
        raise UsageError(_("--status must be one of {choices}").format(choices=", ".join(STATUSES)))
    if year is not None and not 1900 <= year <= 9999:
        raise UsageError(_("--year must be a year like 2026"))
    rows = cached_result(archive, "catalog", [year, status], lambda: _rows(archive, year, status, progress))
    what = (_("{status} households").format(status=status) if status else _("all households")) + (
        f", {year}" if year else ""
    )
    sections = []
    for building in sorted({str(r["building"]) for r in rows}):
        sections.append(
            Section(
                _("Building {building}").format(building=building), [r for r in rows if str(r["building"]) == building]
            )
        )
    document = {
        **document_head("catalog", archive.settings.name),
        "year": year,
        "status": status,
        "households": rows,
    }
    return Report(
        name="catalog",
        title=_("Catalogue (目录) — {what} — {name}").format(what=what, name=archive.settings.name),
        document=document,
        sections=sections or [Section(_("Households"), [])],
        summary=_("{n_rows} {what}, by building and floor.").format(n_rows=len(rows), what=what),
        csv_rows=Section(_("Households"), rows),
    )


def _rows(
    archive: Archive, year: int | None, status: str | None, progress: Callable[[int, int], None] | None
) -> list[dict[str, Any]]:
    """The catalogue's rows, in place order (cached by the households tree read, --year and --status)."""
    rows = []
    for f in households(archive, progress):
        if f.get("invalid") or (status and f.get("status") != status):
            continue
        if year is not None:
            when = str(f.get("moved_out") or "") if status == "moved-out" else str(f.get("archive_no"))[3:7]
            if not when.startswith(str(year)):
                continue
        rows.append(
            {
                "building": f.get("building"),
                "floor": f.get("floor"),
                "unit": f.get("unit"),
                "archive_no": f.get("archive_no"),
                "category": f.get("category"),
                "occupancy": f.get("occupancy"),
                "status": f.get("status"),
                "moved_out": f.get("moved_out") or "",
            }
        )
    rows.sort(key=place_key)
    return rows
