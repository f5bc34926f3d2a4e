"""Keeping periods (保管期限): which dossiers have been kept as long as their class allows (PIPL, P13, P18).

archive.yaml `keeping:` gives a period per class (moved-out: 3 years; not-handed-over
prospects: 1 year). A moved-out household's period counts from its move-out date;
any other's from its last review, or from the day it was added.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from archivectl import clock, gitio, policy
from archivectl.archive import Archive


def past_keeping(archive: Archive, facts: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Households kept longer than their class's period: archive number, class, since, days kept, period."""
    from archivectl.facts import households, place_key

    keeping = archive.settings.keeping
    if not keeping:
        return []
    today = clock.today()
    rows = []
    for f in facts if facts is not None else households(archive):
        if f.get("invalid"):
            continue
        found = policy.keeping_class(str(f.get("status")), str(f.get("category")), keeping)
        if found is None:
            continue
        name, days = found
        since = _since(archive, f)
        if since is not None and policy.past_keeping(since, today, days):
            rows.append(
                {
                    "archive_no": f["archive_no"],
                    "building": f.get("building"),
                    "floor": f.get("floor"),
                    "unit": f.get("unit"),
                    "class": name,
                    "since": since.isoformat(),
                    "days_kept": (today - since).days,
                    "period_days": days,
                }
            )
    return sorted(rows, key=place_key)


def _since(archive: Archive, facts: dict[str, Any]) -> dt.date | None:
    moved = facts.get("moved_out")
    start = moved.get("date") if isinstance(moved, dict) else moved
    if facts.get("status") == "moved-out" and start:
        return dt.date.fromisoformat(str(start))
    if facts.get("last_reviewed"):
        return dt.date.fromisoformat(str(facts["last_reviewed"]))
    history = gitio.path_history(archive.root, facts["path"])  # newest first: the last is when it was added
    return dt.datetime.fromisoformat(history[-1][2]).date() if history else None
