"""hold and release: legal holds on households (approved writes), and the holds in force.

Where a hold counts: tombstone and purge read this branch's register (what the
writer sees); keys shred reads main's, where a hold counts as soon as it is on
main and a release only once it is approved (`on_main`): keeping a key longer
is the safe side.
"""

from __future__ import annotations

from typing import Any

from archivectl import holds, registers
from archivectl.archive import Archive
from archivectl.errors import ArchiveError
from archivectl.i18n import _
from archivectl.judge.state import approved_commit
from archivectl.layout import check_archive_no
from archivectl.ops.common import Approval, approved_writer, trailers

HOLDS = "registers/holds"


def current(archive: Archive) -> dict[str, dict[str, Any]]:
    """The holds in force on this branch (work tree register): archive number -> its hold entry."""
    return holds.held(registers.entries(archive.root, "holds"))


def on_main(archive: Archive, tip: str) -> dict[str, dict[str, Any]]:
    """The holds in force on main: held at its tip, or in its newest approved version of the register."""
    at_tip = holds.held(registers.entries_at(archive.root, tip, "holds"))
    approved = approved_commit(archive, tip, HOLDS)
    if approved == tip:
        return at_tip
    return holds.held_union(at_tip, holds.held(registers.entries_at(archive.root, approved, "holds")))


def refuse_if_held(archive: Archive, numbers: list[str], action: str) -> None:
    """ArchiveError (one line) when a legal hold on this branch stops `action` for one of these households."""
    problem = holds.hold_problem(action, numbers, current(archive))
    if problem:
        raise ArchiveError(problem)


def hold(archive: Archive, archive_no: str, approval: Approval) -> str:
    """Place a legal hold on a household (approved, with its reason): no tombstone, purge or shred until released."""
    check_archive_no(archive_no)
    with archive.writing() as tx:  # the holds as they stand under the lock
        actor = approved_writer(archive, approval)
        _require_household_or_key(archive, archive_no)
        if archive_no in current(archive):
            raise ArchiveError(_("{no} is already under legal hold").format(no=archive_no))
        registers.register(tx, "holds", "hold", actor.member.id, {"archive_no": archive_no}, approval=approval)
        return tx.commit(f"hold {archive_no}", trailers("hold", approval, actor, archive_no), actor)


def _require_household_or_key(archive: Archive, archive_no: str) -> None:
    """The household is here, or its purge awaits `keys shred` (its key is still in the keystore): a hold stops it."""
    try:
        archive.locate(archive_no)
    except ArchiveError:
        if not any(a.archive_no == archive_no for a in archive.keystore.addresses()):
            raise


def release(archive: Archive, archive_no: str, approval: Approval) -> str:
    """Lift a household's legal hold (approved, with its reason)."""
    check_archive_no(archive_no)
    with archive.writing() as tx:
        actor = approved_writer(archive, approval)
        if archive_no not in current(archive):
            raise ArchiveError(_("{no} is not under legal hold").format(no=archive_no))
        registers.register(tx, "holds", "release", actor.member.id, {"archive_no": archive_no}, approval=approval)
        return tx.commit(f"release hold on {archive_no}", trailers("release", approval, actor, archive_no), actor)


def rows(archive: Archive) -> list[dict[str, Any]]:
    """The holds in force on this branch as report rows (no personal data: number, since, approver, reason)."""
    return [
        {
            "archive_no": number,
            "held_since": str(entry.get("when", ""))[:10],
            "approved_by": entry.get("approved_by"),
            "reason": entry.get("reason"),
        }
        for number, entry in sorted(current(archive).items())
    ]
