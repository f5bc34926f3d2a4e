"""The estate's declared buildings and how its units are numbered (P1: by building / floor / unit).

archive.yaml may declare them:

    buildings: [B01, B02, B03]   # the estate's buildings; any other is refused
    unit_floor: true             # unit 1203 is on floor 12 (a unit's digits but the last two are its floor)

An archive that declares no `buildings:` accepts any building, as before.
`unit_floor` judges only units written in digits alone (3 or more): a shop
"S01" or a car park "G-12" is not numbered by floor. Pure functions over plain
values, no I/O: add, import and validate ask the same question here.
"""

from __future__ import annotations

import difflib
from typing import Any

from archivectl.i18n import _


def building_problem(buildings: tuple[str, ...] | None, building: Any) -> str | None:
    """Why this building is not one of the estate's (with the nearest declared one), or None."""
    if buildings is None or building in buildings:
        return None
    near = difflib.get_close_matches(str(building), buildings, n=1, cutoff=0.5)
    hint = _(" (did you mean {near}?)").format(near=near[0]) if near else ""
    return _("building: {building} is not one of the estate's buildings in archive.yaml{hint}").format(
        building=building, hint=hint
    )


def floor_of_unit(unit: Any) -> int | None:
    """The floor a unit's number says it is on (1203 -> 12, 0201 -> 2), or None when it is not numbered by floor."""
    text = str(unit)
    if len(text) < 3 or not text.isascii() or not text.isdigit():
        return None
    return int(text[:-2])


def floor_problem(unit_floor: bool, unit: Any, floor: Any) -> str | None:
    """Why a unit contradicts its floor (archive.yaml unit_floor: true), or None."""
    if not unit_floor or not isinstance(floor, int) or isinstance(floor, bool):
        return None
    expected = floor_of_unit(unit)
    if expected is None or expected == floor:
        return None
    return _("unit: {unit} is on floor {expected} by its number, but floor is {floor}").format(
        unit=unit, expected=expected, floor=floor
    )


def place_problems(buildings: tuple[str, ...] | None, unit_floor: bool, record: dict[str, Any]) -> list[str]:
    """What is wrong with where a household is (its building, its unit against its floor)."""
    found = [
        building_problem(buildings, record.get("building")),
        floor_problem(unit_floor, record.get("unit"), record.get("floor")),
    ]
    return [p for p in found if p]
