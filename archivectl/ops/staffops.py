"""staff add | edit | deactivate | list: approved, signed changes to staff.yaml."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from archivectl import clock, yamlio
from archivectl import staff as staffmod
from archivectl.archive import Archive
from archivectl.errors import ArchiveError, UsageError
from archivectl.i18n import _
from archivectl.layout import STAFF_FILE
from archivectl.ops.common import Approval, approved_writer, trailers
from archivectl.staff import Staff, StaffMember

HEADER = "# Staff: role, buildings read (P7), SSH ed25519 key (signs commits, decrypts)\n"


def _write(archive: Archive, approval: Approval, change: Callable[[Staff], tuple[Staff, str]]) -> str:
    """Apply change (staff.yaml as it stands -> new staff, commit subject) in one approved commit."""
    with archive.writing() as tx:  # staff.yaml is read under the lock: two changes cannot lose one another
        new_staff, subject = change(archive.staff)
        actor = approved_writer(archive, approval, "staff")
        checked = Staff.from_yaml(new_staff.to_yaml(), STAFF_FILE)  # same rules as reading the file
        tx.write_text(STAFF_FILE, HEADER + yamlio.dumps(checked.to_yaml()))
        commit = tx.commit(subject, trailers("staff", approval, actor), actor)
    archive.write_allowed_signers(checked)
    return commit


def add(archive: Archive, member: StaffMember, approval: Approval) -> str:
    """Put a new person on staff.yaml."""

    def change(staff: Staff) -> tuple[Staff, str]:
        if staff.get(member.id):
            raise ArchiveError(_("staff id {id} is already on staff.yaml").format(id=member.id))
        staffmod.key_id(member.key)
        owner = staff.by_key(member.key)
        if owner:
            raise ArchiveError(_("that key already belongs to {id}").format(id=owner.id))
        return staff.replace(member), f"staff add {member.id} ({member.role})"

    return _write(archive, approval, change)


def edit(archive: Archive, staff_id: str, changes: dict, approval: Approval) -> str:
    """Change someone's name, role, buildings, key or handle."""

    def change(staff: Staff) -> tuple[Staff, str]:
        current = _existing(staff, staff_id)
        wanted = {k: v for k, v in changes.items() if v is not None}
        if not wanted:
            raise UsageError(_("nothing to change: give --name, --role, --buildings, --key or --handle"))
        if "key" in wanted:
            staffmod.key_id(wanted["key"])
            other = staff.by_key(wanted["key"])
            if other and other.id != staff_id:
                raise ArchiveError(_("that key already belongs to {id}").format(id=other.id))
        updated = replace(current, **wanted)
        if updated == current:
            raise ArchiveError(_("{staff_id}: nothing to change").format(staff_id=staff_id))
        return staff.replace(updated), f"staff edit {staff_id}: {', '.join(sorted(wanted))}"

    return _write(archive, approval, change)


def deactivate(archive: Archive, staff_id: str, approval: Approval) -> str:
    """Mark someone as departed: their key stops signing; their past commits still verify."""

    def change(staff: Staff) -> tuple[Staff, str]:
        current = _existing(staff, staff_id)
        if not current.active:
            raise ArchiveError(_("{staff_id} is already inactive").format(staff_id=staff_id))
        return staff.replace(staffmod.deactivate(current, clock.now_iso())), f"staff deactivate {staff_id}"

    return _write(archive, approval, change)


def list_staff(archive: Archive) -> list[dict]:
    """One row per staff member."""
    return [
        {
            "id": m.id,
            "name": m.name,
            "role": m.role,
            "buildings": ",".join(m.buildings) or "-",
            "active": m.active,
            "handle": m.handle or "",
        }
        for m in archive.staff.members
    ]


def _existing(staff: Staff, staff_id: str) -> StaffMember:
    member = staff.get(staff_id)
    if member is None:
        raise ArchiveError(_("staff id {staff_id} is not on staff.yaml").format(staff_id=staff_id))
    return member
