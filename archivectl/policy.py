"""The company's rules as pure functions over plain values (no I/O).

Change who may approve, or how a reason must look, here and nowhere else.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from archivectl.i18n import _
from archivectl.staff import Staff, StaffMember, may_read

MAX_REASON = 500


@dataclass(frozen=True)
class ApprovalRules:
    """From archive.yaml `policy:`: which roles approve, and whether four eyes are needed."""

    approver_roles: tuple[str, ...] = ("manager", "gm")
    four_eyes: bool = True
    grant_approver_roles: tuple[str, ...] = ("gm",)
    # staff.yaml, archive.yaml and schemas/ decide everything else: only these approve their changes
    governance_approver_roles: tuple[str, ...] = ("gm",)
    extra: dict = field(default_factory=dict, compare=False)


FOUNDER_ROLE = "gm"


def founder_problem(founder: StaffMember | None) -> str | None:
    """Why this member may not found an archive (sign and approve its first commit), or None."""
    if founder is None or not founder.active or founder.role != FOUNDER_ROLE:
        return _("the founding commit must be signed by an active {role} listed in the staff file").format(
            role=FOUNDER_ROLE
        )
    return None


def reason_problem(reason: str | None) -> str | None:
    """Why a --reason is unusable, or None (P12: every change keeps its reason)."""
    if reason is None or not reason.strip():
        return _("--reason is required: say why this change is made")
    if "\n" in reason or "\r" in reason:
        return _("--reason must be one line")
    if len(reason) > MAX_REASON:
        return _("--reason must be at most {n} characters").format(n=MAX_REASON)
    if any(ord(c) < 32 for c in reason):
        return _("--reason must not contain control characters")
    from archivectl.pii import personal_data_in  # pure, like this module

    kind = personal_data_in(reason)
    if kind:
        return _("--reason seems to hold {kind}; reasons are kept in clear forever (P9), so say why without it").format(
            kind=kind
        )
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
        return _("--approver is required: name the manager who approved this change")
    if not re.fullmatch(r"[a-z][a-z0-9_-]{1,31}", approver_id):
        return _("--approver must be a staff id like mgr01")
    approver = staff.get(approver_id)
    if approver is None:
        return _("approver {who} is not on staff.yaml").format(who=approver_id)
    if not approver.active:
        return _("approver {who} is no longer active").format(who=approver_id)
    if approver.role not in roles:
        return _("approver {who} is a {role}; approvals need a {roles}").format(
            who=approver_id, role=approver.role, roles=_(" or ").join(roles)
        )
    if rules.four_eyes and approver.id == acting.id:
        return _("{id} cannot approve their own change (four-eyes rule)").format(id=acting.id)
    return None


def actor_problem(actor: StaffMember) -> str | None:
    """Why this staff member may not write at all, or None."""
    if not actor.active:
        return _("{id} is no longer active; their key cannot sign changes").format(id=actor.id)
    return None


def reader_problem(actor: StaffMember, building: str, granted: bool = False) -> str | None:
    """Why actor may not read a building's personal data, or None (P7)."""
    if may_read(actor, building) or (granted and actor.active):
        return None
    return _("{id} ({role}) is not a reader of building {building}; ask the general manager for a grant").format(
        id=actor.id, role=actor.role, building=building
    )


# ------------------------------------------------------------------ retention (P13)

CLOCK_SKEW = dt.timedelta(minutes=5)
YAML_COMMIT_TOLERANCE = dt.timedelta(days=1)


@dataclass(frozen=True)
class TombstoneDates:
    """Every date that says when a tombstone was made (SPEC: the 30-day rule)."""

    yaml_date: dt.date
    commit: dt.datetime
    parents: tuple[dt.datetime, ...]
    mainline: dt.datetime | None
    # a main-line commit since the tombstone's arrival dated before its first parent
    mainline_backwards: bool = False


@dataclass(frozen=True)
class RetentionVerdict:
    """When the retention period started, how many days are left, and whether purge may proceed."""

    started: dt.datetime
    days_left: int
    eligible: bool
    problem: str | None = None


def retention_verdict(dates: TombstoneDates, now: dt.datetime, retention_days: int) -> RetentionVerdict:
    """P13: the clock starts at the latest of all the dates, so a forged date only makes the wait longer.

    A date in the future, a YAML date more than a day off its commit, or a commit
    dated before its parent is a problem: purge refuses, verify flags it.
    """
    tz = dates.commit.tzinfo or dt.UTC
    yaml_moment = dt.datetime.combine(dates.yaml_date, dt.time(), tzinfo=tz)
    moments = [yaml_moment, dates.commit, *dates.parents, *([dates.mainline] if dates.mainline else [])]
    started = max(moments)
    problem = None
    if any(m > now + CLOCK_SKEW for m in moments):
        problem = "a tombstone date lies in the future"
    elif abs(dates.yaml_date - dates.commit.astimezone(tz).date()) > YAML_COMMIT_TOLERANCE:
        problem = "the tombstone's YAML date disagrees with its commit by more than a day"
    elif dates.parents and dates.commit < max(dates.parents) - CLOCK_SKEW:
        problem = "the tombstone's commit is dated before its parent"
    elif dates.mainline_backwards:
        problem = "the main line's dates go backwards after the tombstone"
    elapsed = now - started
    days_left = max(0, retention_days - elapsed.days)
    eligible = problem is None and elapsed >= dt.timedelta(days=retention_days)
    return RetentionVerdict(started=started, days_left=days_left, eligible=eligible, problem=problem)


# ------------------------------------------------------------------ keeping periods (保管期限, PIPL)


def keeping_class(status: str, category: str, keeping: dict[str, int]) -> tuple[str, int] | None:
    """The keeping period that applies to a household: its status's (moved-out), else its category's.

    Tombstoned households are already on their way out; None where no period applies.
    """
    if status == "tombstoned":
        return None
    if status in keeping:
        return status, keeping[status]
    if status == "active" and category in keeping:
        return category, keeping[category]
    return None


def past_keeping(since: dt.date, today: dt.date, days: int) -> bool:
    """True once a household has been kept its whole period (the day after the last day)."""
    return (today - since).days > days
