"""staff add | edit | deactivate | list: approved, signed changes to staff.yaml."""

from __future__ import annotations

from dataclasses import replace

from archivectl import staff as staffmod
from archivectl import yamlio
from archivectl.archive import STAFF_FILE, Archive, Transaction, now_iso
from archivectl.errors import ArchiveError, UsageError
from archivectl.ops.common import Approval, approved_writer, trailers
from archivectl.staff import Staff, StaffMember

HEADER = "# Staff: role, buildings read (P7), SSH ed25519 key (signs commits, decrypts)\n"


def _write(archive: Archive, new_staff: Staff, approval: Approval, subject: str) -> str:
    actor = approved_writer(archive, approval, roles=archive.settings.rules.governance_approver_roles)
    checked = Staff.from_yaml(new_staff.to_yaml(), STAFF_FILE)  # same rules as reading the file
    with Transaction(archive, actor) as tx:
        tx.write_text(STAFF_FILE, HEADER + yamlio.dumps(checked.to_yaml()))
        commit = tx.commit(subject, trailers("staff", approval, actor))
    archive.write_allowed_signers(checked)
    return commit


def add(archive: Archive, member: StaffMember, approval: Approval) -> str:
    """Put a new person on staff.yaml."""
    if archive.staff.get(member.id):
        raise ArchiveError(f"staff id {member.id} is already on staff.yaml")
    staffmod.key_id(member.key)
    owner = archive.staff.by_key(member.key)
    if owner:
        raise ArchiveError(f"that key already belongs to {owner.id}")
    return _write(archive, archive.staff.replace(member), approval, f"staff add {member.id} ({member.role})")


def edit(archive: Archive, staff_id: str, changes: dict, approval: Approval) -> str:
    """Change someone's name, role, buildings, key or handle."""
    current = _existing(archive, staff_id)
    changes = {k: v for k, v in changes.items() if v is not None}
    if not changes:
        raise UsageError("nothing to change: give --name, --role, --buildings, --key or --handle")
    if "key" in changes:
        staffmod.key_id(changes["key"])
        other = archive.staff.by_key(changes["key"])
        if other and other.id != staff_id:
            raise ArchiveError(f"that key already belongs to {other.id}")
    updated = replace(current, **changes)
    if updated == current:
        raise ArchiveError(f"{staff_id}: nothing to change")
    return _write(
        archive, archive.staff.replace(updated), approval, f"staff edit {staff_id}: {', '.join(sorted(changes))}"
    )


def deactivate(archive: Archive, staff_id: str, approval: Approval) -> str:
    """Mark someone as departed: their key stops signing; their past commits still verify."""
    current = _existing(archive, staff_id)
    if not current.active:
        raise ArchiveError(f"{staff_id} is already inactive")
    updated = staffmod.deactivate(current, now_iso())
    return _write(archive, archive.staff.replace(updated), approval, f"staff deactivate {staff_id}")


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


def _existing(archive: Archive, staff_id: str) -> StaffMember:
    member = archive.staff.get(staff_id)
    if member is None:
        raise ArchiveError(f"staff id {staff_id} is not on staff.yaml")
    return member
