"""Signed approvals: which change asks whom, which approval names it, and whether it binds (P12).

A change that needs approval waits as a Request until approval commits after it,
signed by `needed` distinct entitled approvers (not the actor, active), name its
exact id. With one approver needed (the rule table's default) it must be the one
the change names (Approved-by:); where archive.yaml asks more (`approvals:`), any
entitled approvers count, the same person once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from archivectl import gitio, pii, policy
from archivectl.i18n import _
from archivectl.judge.findings import Finding
from archivectl.staff import Staff, StaffMember

if TYPE_CHECKING:
    from archivectl.judge.history import History


@dataclass
class Request:
    """A commit that needs a signed approval, and who it asks."""

    info: gitio.CommitInfo
    action: str
    actor: StaffMember
    approver: str
    roles: tuple[str, ...]
    rules: policy.ApprovalRules
    needed: int = 1
    signed: list[str] = field(default_factory=list)  # distinct entitled approvers so far, in order


@dataclass
class Approval:
    """An approval commit: who signed it, what it names, the staff it is judged by."""

    info: gitio.CommitInfo
    signer: StaffMember | None
    names: tuple[str, ...]
    staff: Staff


@dataclass
class Run:
    """What one verify run gathers across commits.

    Changes that need approval wait in `requests` until an approval names them;
    an approval is matched as soon as it is read (what it approves comes before it).
    """

    findings: list[Finding] = field(default_factory=list)
    approval_findings: list[Finding] = field(default_factory=list)
    requests: dict[str, Request] = field(default_factory=dict)
    approved: dict[str, str] = field(default_factory=dict)  # change -> who approved it
    approvers: set[str] = field(default_factory=set)  # who signed a valid-signer approval anywhere in the range
    approvals: list[Approval] = field(default_factory=list)  # read, not yet matched


def match_approvals(ctx: History, run: Run) -> None:
    """Pair each approval just read with the changes it names (all before it); a valid pairing approves them."""
    for approval in run.approvals:
        if approval.signer is not None:
            run.approvers.add(approval.signer.id)
        reachable = _ancestors(ctx, ctx.parents, approval.info.commit, set(approval.names))
        for name in approval.names:
            problem = None
            request = run.requests.get(name)
            if name not in reachable:
                problem = _("approves {commit}, which is not in its history").format(commit=name[:12])
            elif approval.signer is None:
                problem = _("signed by someone who may not approve")
            elif request is not None:
                if request.needed == 1 and approval.signer.id != request.approver:
                    problem = _("approves {commit}, which asks {approver}, not {signer}").format(
                        commit=name[:12], approver=request.approver, signer=approval.signer.id
                    )
                else:
                    problem = policy.approval_problem(
                        request.actor, approval.signer.id, approval.staff, request.rules, request.roles
                    )
            if problem:
                run.approval_findings.append(Finding(approval.info.commit, approval.info.subject, "approval", problem))
            elif request is not None:
                if approval.signer.id not in request.signed:  # the same approver twice counts once
                    request.signed.append(approval.signer.id)
                if len(request.signed) >= request.needed and name not in run.approved:
                    run.approved[name] = ", ".join(request.signed)
                    request.info = bare_info(name)  # never shown as pending again: keep only who asks whom
    run.approvals.clear()


def _ancestors(ctx: History, parents: dict[str, tuple[str, ...]], start: str, wanted: set[str]) -> set[str]:
    """Which of wanted are ancestors of start (within the range, else asked of git)."""
    found, seen, todo = set(), set(), list(parents.get(start, ()))
    while todo and found != wanted:
        commit = todo.pop()
        if commit in seen:
            continue
        seen.add(commit)
        if commit in wanted:
            found.add(commit)
        todo.extend(parents.get(commit, ()))
    for name in wanted - found:
        if name != start and gitio.is_ancestor(ctx.archive.root, name, start):
            found.add(name)
    return found


def awaiting(request: Request, approvers: set[str]) -> str:
    """What a change still waits for, in words (the one awaited approver, or how many more of which roles)."""
    if request.needed > 1:
        roles = _(" or ").join(request.roles)
        count = _("{signed} of {needed} approvals").format(signed=len(request.signed), needed=request.needed)
        if request.approver not in request.signed:
            more = request.needed - len(request.signed) - 1
            if more:
                return _("awaiting approval by {who} and {n} more {roles} ({count})").format(
                    who=request.approver, n=more, roles=roles, count=count
                )
            return _("awaiting approval by {who} ({count})").format(who=request.approver, count=count)
        more = request.needed - len(request.signed)
        return _("awaiting {n} more approval by a {roles} ({count}: {signed})").format(
            n=more, roles=roles, count=count, signed=", ".join(request.signed)
        )
    if request.approver in approvers:
        return _("awaiting approval by {who} (made after, or not named by, their approval)").format(
            who=request.approver
        )
    return _("awaiting approval by {who}").format(who=request.approver)


def pending_row(r: Request) -> dict[str, Any]:
    return {
        "commit": r.info.commit,
        "action": r.action,
        "acted_by": r.actor.id,
        "awaiting": r.approver if r.approver not in r.signed else "",
        "approvals": f"{len(r.signed)}/{r.needed}",
        "signed": ", ".join(r.signed),
        "more_from": ", ".join(r.roles) if r.needed > len(r.signed) + (r.approver not in r.signed) else "",
        "archive_no": r.info.trailer("Archive-No") or "",
        "reason": pii.shown(r.info.trailer("Reason") or ""),
        "subject": pii.shown(r.info.subject),
    }


def without_changes(info: gitio.CommitInfo) -> gitio.CommitInfo:
    """What is kept of a commit after it was checked (not what it changed)."""
    return gitio.CommitInfo(
        info.commit, info.parents, info.committer_date, info.signature, info.fingerprint, info.principal,
        info.subject, info.trailers, (),
    )  # fmt: skip


def bare_info(commit: str) -> gitio.CommitInfo:
    return gitio.CommitInfo(commit, (), "", "", "", "", "", {}, ())
