"""Legal holds (诉讼保全/证据保全): households that must be kept while a dispute or lawsuit runs.

A household in a fee dispute or a lawsuit (P4 keeps violations and arrears) must
not reach the end of its life on the normal clock: while it is held, no
tombstone, purge or `keys shred` may touch it. Holds are a register
(registers/holds/, one file per event: `hold` or `release`, each approved); this
module is the rule as pure functions over its entries, for the commands, the
reports, keys shred and verify alike.

verify's use (a commit whose Action is in STOPS): the entries of registers/holds
as its first parent holds them, folded with `held`, then
`hold_problem(action, archive_numbers_of_the_commit, held)`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from archivectl.i18n import _

# The actions a hold stops: the ways a household's data comes to an end (P13, P14).
STOPS = ("tombstone", "purge", "shred")


def held(entries: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Archive number -> the hold entry in force, from hold/release entries oldest first."""
    state: dict[str, dict[str, Any]] = {}
    for entry in entries:
        numbers = [n.strip() for n in str(entry.get("archive_no") or "").split(",") if n.strip()]
        for number in numbers:
            if entry.get("action") == "hold":
                state[number] = entry
            elif entry.get("action") == "release":
                state.pop(number, None)
    return state


def held_union(*states: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Held in any of the states: a hold counts as soon as it is seen, a release only where every state has it."""
    out: dict[str, dict[str, Any]] = {}
    for state in states:
        for number, entry in state.items():
            out.setdefault(number, entry)
    return out


def hold_message(number: str, entry: dict[str, Any], action: str) -> str:
    """One line: the household is held (since when, approved by whom), so no `action` until its release."""
    since = str(entry.get("when", ""))[:10]
    approver = entry.get("approved_by") or "?"
    message = _("{no} is under legal hold since {since} (approved by {approver}): no {action} until it is released")
    return message.format(no=number, since=since, approver=approver, action=action)


def hold_problem(action: str, archive_nos: Iterable[str], held_now: dict[str, dict[str, Any]]) -> str | None:
    """Why an action may not touch these households (a legal hold), or None.

    action: the commit's Action; archive_nos: the households it concerns (its
    Archive-No trailer, or the numbers in a shred's keys); held_now: `held` of
    the holds register before the change.
    """
    if action not in STOPS:
        return None
    for number in sorted({n.strip() for n in archive_nos if n and n.strip()}):
        if number in held_now:
            return hold_message(number, held_now[number], action)
    return None
