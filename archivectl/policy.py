"""The company's rules as pure functions over plain values (no I/O).

Change who may approve, or how a reason must look, here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from archivectl.staff import Staff, StaffMember, may_read

MAX_REASON = 500


@dataclass(frozen=True)
class ApprovalRules:
    """From archive.yaml `policy:`: which roles approve, and whether four eyes are needed."""

    approver_roles: tuple[str, ...] = ("manager", "gm")
    four_eyes: bool = True
    grant_approver_roles: tuple[str, ...] = ("gm",)
    extra: dict = field(default_factory=dict, compare=False)


def reason_problem(reason: str | None) -> str | None:
    """Why a --reason is unusable, or None (P12: every change keeps its reason)."""
    if reason is None or not reason.strip():
        return "--reason is required: say why this change is made"
    if "\n" in reason or "\r" in reason:
        return "--reason must be one line"
    if len(reason) > MAX_REASON:
        return f"--reason must be at most {MAX_REASON} characters"
    if any(ord(c) < 32 for c in reason):
        return "--reason must not contain control characters"
    return None


def approval_problem(
    acting: StaffMember,
    approver_id: str | None,
    staff: Staff,
    rules: ApprovalRules,
    roles: tuple[str, ...] | None = None,
) -> str | None:
    """Why approver_id may not approve acting's change, or None (P12, four-eyes)."""
    roles = roles or rules.approver_roles
    if not approver_id:
        return "--approver is required: name the manager who approved this change"
    approver = staff.get(approver_id)
    if approver is None:
        return f"approver {approver_id} is not on staff.yaml"
    if not approver.active:
        return f"approver {approver_id} is no longer active"
    if approver.role not in roles:
        return f"approver {approver_id} is a {approver.role}; approvals need a {' or '.join(roles)}"
    if rules.four_eyes and approver.id == acting.id:
        return f"{acting.id} cannot approve their own change (four-eyes rule)"
    return None


def actor_problem(actor: StaffMember) -> str | None:
    """Why this staff member may not write at all, or None."""
    if not actor.active:
        return f"{actor.id} is no longer active; their key cannot sign changes"
    return None


def reader_problem(actor: StaffMember, building: str, granted: bool = False) -> str | None:
    """Why actor may not read a building's personal data, or None (P7)."""
    if may_read(actor, building) or (granted and actor.active):
        return None
    return f"{actor.id} ({actor.role}) is not a reader of building {building}; ask the general manager for a grant"
