"""report stats (P15): how many dossiers, how complete, how they are changed and used."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from archivectl import gitio, registers, rules
from archivectl.archive import Archive
from archivectl.facts import households
from archivectl.i18n import _
from archivectl.reports.cache import cached_result
from archivectl.reports.completeness import completeness
from archivectl.reports.render import Report, Section, document_head

# Counted by each commit's Action (what it is), not by its subject.
ACTIVITY = {"reveal": "reveals", "view": "reveals", "open": "opens", "export": "exports", "approve": "approvals"}


def stats(archive: Archive, progress: Callable[[int, int], None] | None = None) -> Report:
    """Counts by building, category, occupancy and status; completeness; activity per month."""
    counts, total = cached_result(archive, "stats", [], lambda: _counts(archive, progress))
    complete = completeness(archive)
    months: dict[str, Counter] = {}
    for entry in gitio.log(archive.root):
        action = entry.trailers.get("Action") or rules.legacy_action(entry.subject)
        kind = ACTIVITY.get(action or "", "changes")
        if kind in ("reveals", "opens"):
            continue  # look-ups are counted by their register entries below: one per look-up, wherever made
        months.setdefault(entry.committer_date[:7], Counter())[kind] += 1
    for entry in registers.entries(archive.root, "access"):  # brought from branches by `archivectl sync` too
        kind = ACTIVITY.get(str(entry.get("action")), "")
        if kind in ("reveals", "opens"):
            months.setdefault(str(entry.get("when", ""))[:7], Counter())[kind] += 1
    activity = [
        {
            "month": m,
            "changes": c["changes"],
            "reveals": c["reveals"],
            "opens": c["opens"],
            "exports": c["exports"],
            "approvals": c["approvals"],
        }
        for m, c in sorted(months.items())
    ]
    document = {
        **document_head("stats", archive.settings.name),
        "households": total,
        "counts": counts,
        "completeness": complete.document["overall"],
        "completeness_by_building": complete.document["buildings"],
        "activity": activity,
    }
    return Report(
        name="stats",
        title=_("Statistics (P15) — {name}").format(name=archive.settings.name),
        document=document,
        sections=[
            Section(_("Households"), counts, ["dimension", "value", "households"], key="counts"),
            Section(
                _("Completeness by building"),
                complete.document["buildings"],
                ["building", "households", "complete", "incomplete", "rate"],
                key="completeness_by_building",
            ),
            Section(
                _("Activity per month"),
                activity,
                ["month", "changes", "reveals", "opens", "exports", "approvals"],
                key="activity",
            ),
        ],
        chart=complete.chart,
        chart_title=complete.chart_title,
        summary=_("{total} households; {rate} of active ones complete.").format(
            total=total, rate=f"{complete.document['overall']['rate']}%"
        ),
    )


def _counts(archive: Archive, progress: Callable[[int, int], None] | None) -> tuple[list[dict[str, Any]], int]:
    """Households by building, category, occupancy and status, and how many (cached by the households tree)."""
    facts = [f for f in households(archive, progress) if not f.get("invalid")]
    counts = []
    for dimension in ("building", "category", "occupancy", "status"):
        for value, n in sorted(Counter(str(f.get(dimension)) for f in facts).items()):
            counts.append({"dimension": dimension, "value": value, "households": n})
    return counts, len(facts)
