"""P1, one active household per unit: the units that hold more than one, from households' clear facts.

A pure function over plain values (no I/O): validate uses it, and verify can
judge main's households with the same answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def shared_units(facts: Iterable[dict[str, Any]]) -> list[tuple[str, str, list[str]]]:
    """(building, unit, archive numbers) of every unit with more than one active household, in order."""
    active: dict[tuple[str, str], list[str]] = {}
    for f in facts:
        if f.get("status") == "active" and not f.get("invalid"):
            active.setdefault((str(f.get("building")), str(f.get("unit"))), []).append(str(f.get("archive_no")))
    return [(b, u, sorted(numbers)) for (b, u), numbers in sorted(active.items()) if len(numbers) > 1]
