"""approve and pending: signed approvals of proposed changes (P12, four-eyes that holds).

A change that needs approval is a proposal until the approver named in its
`Approved-by:` signs an approval commit naming it (`Approves: <commit id>`).
The approval changes no file, so it binds to the exact content of the commits
it names; a commit made after it is not covered.

The approver sees exactly what they sign: the story `review --open` tells
(ops/review, one rendering), of exactly the commits the approval will name,
with the sealed fields' values masked (revealed, and registered, when asked),
every commit id listed, and the range's tip, which a script pins with --expect.
A range that moved since it was shown is refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from archivectl import gitio, judge, policy, sealcheck
from archivectl.archive import Archive
from archivectl.errors import ArchiveError, UsageError
from archivectl.i18n import _
from archivectl.identity import Actor, actor_of
from archivectl.judge.approvals import pending_row
from archivectl.ops.common import Approval, check_reason, trailers
from archivectl.ops.review import (
    Ahead,
    Range,
    default_range,
    opening_ahead,
    story_lines,
    tell,
    written_without_fingerprints,
)
from archivectl.ops.verify import pending as pending_in
from archivectl.ops.verify import reader_check
from archivectl.screen import inert

__all__ = ["ApprovalPlan", "approve", "default_range", "pending", "plan"]

_COMMIT_ID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


def pending(archive: Archive, range_spec: str | None = None, every_branch: bool = False) -> list[dict[str, Any]]:
    """What awaits whose approval: on this branch (or range), or on every branch not yet on main."""

    if not every_branch:
        return pending_in(archive, range_spec or default_range(archive))
    main = archive.settings.main
    base = f"origin/{main}" if gitio.rev_parse(archive.root, f"origin/{main}") else main
    rows: dict[str, dict[str, Any]] = {}
    for branch in gitio.branches(archive.root):
        if branch in (main, f"origin/{main}"):
            continue
        for row in pending_in(archive, f"{base}..{branch}"):
            rows.setdefault(row["commit"], {"branch": branch, **row})
    return list(rows.values())


@dataclass(frozen=True)
class ApprovalPlan:
    """What an approver is about to sign: the commits, and what each changes, as lines to show."""

    range: str
    commits: list[dict[str, Any]]
    lines: list[str]  # the story of exactly these commits (review's rendering), then every id it binds
    households: list[str]
    head: str | None = None  # the HEAD this was read from: approve signs only if it has not moved
    story: dict[str, Any] = field(default_factory=dict)  # review's story of these commits (JSON-ready)
    base: str = ""  # the range's base as resolved when shown ("": the whole history): it must not move either
    tip: str | None = None  # the range's tip as resolved when shown (what --expect names)


def plan(
    archive: Archive,
    range_spec: str | None,
    reveal: bool = False,
    identity: str | None = None,
    expect: str | None = None,
) -> ApprovalPlan:
    """Check that the acting staff member may approve what awaits them in the range, and tell it as review does.

    expect: the full id the range's tip must still have (what the approver, or a script, was shown before).
    """

    if expect is not None and not _COMMIT_ID.fullmatch(expect):
        raise UsageError(
            _("--expect {commit!r}: give the full commit id of the range's tip (review --format json: head)").format(
                commit=expect
            )
        )
    head = gitio.head(archive.root)
    actor = actor_of(archive)
    problem = policy.actor_problem(actor.member)
    if problem:
        raise ArchiveError(problem)
    chosen = range_spec or default_range(archive)
    shown = _resolve(archive, chosen, head)
    if expect is not None and shown.tip != expect:
        raise ArchiveError(
            _("{where} ends at {tip}, not at {expected} as you expected; nothing was written").format(
                where=chosen or "HEAD", tip=shown.tip[:12], expected=expect[:12]
            )
        )
    reader = reader_check(archive, identity, reveal)
    with opening_ahead(archive, shown, reader) as ahead:  # an import's households opened while it is judged
        return _plan(archive, actor, chosen, shown, head, reader, ahead)


def _plan(
    archive: Archive,
    actor: Actor,
    chosen: str | None,
    shown: Range,
    head: str | None,
    reader: sealcheck.Reader,
    ahead: Ahead | None,
) -> ApprovalPlan:
    """plan(), once the range is resolved: judged, refused or told."""
    judged = judge.judge(archive, shown.revs, allow_pending=True)
    waiting = [pending_row(r) for r in judged.pending]
    settings = archive.settings.rules
    every_role = {*settings.approver_roles, *settings.grant_approver_roles, *settings.governance_approver_roles}
    if actor.member.role not in every_role:
        raise ArchiveError(
            _("{id} is a {role}; approvals need a {items}").format(
                id=actor.member.id, role=actor.member.role, items=_(" or ").join(sorted(every_role))
            )
        )
    me = actor.member
    mine = [  # named, or one more of several approvers an action needs (archive.yaml approvals:)
        row
        for row in waiting
        if row["awaiting"] == me.id
        or (
            row["more_from"]
            and me.role in row["more_from"].split(", ")
            and me.id != row["acted_by"]
            and me.id not in row["signed"].split(", ")
        )
    ]
    where = chosen or "HEAD"
    if not mine:
        if settings.four_eyes and any(row["acted_by"] == actor.member.id for row in waiting):
            raise ArchiveError(_("{id} cannot approve their own change (four-eyes rule)").format(id=actor.member.id))
        others = sorted({row["awaiting"] or _("one more {roles}").format(roles=row["more_from"]) for row in waiting})
        if others:
            raise ArchiveError(
                _("nothing in {where} awaits {id}; it awaits {items}").format(
                    where=where, id=actor.member.id, items=", ".join(others)
                )
            )
        raise ArchiveError(_("nothing in {where} awaits approval").format(where=where))
    if judged.findings:
        first = judged.findings[0]
        raise ArchiveError(
            _(
                "{where} has {n} findings (first: {commit} {message}); "
                "run `archivectl verify --range {where}` and fix them before approving"
            ).format(where=where, n=len(judged.findings), commit=first.commit[:12], message=first.message)
        )
    bound = {row["commit"] for row in mine}
    story = tell(archive, shown, judged, reader, only=bound, ahead=ahead)
    _refuse_what_does_not_add_up(story)
    households = {h["archive_no"] for c in story["changes"] for h in c["households"]}
    lines = story_lines(story, as_markdown=False, whole=True)
    lines += ["", _("This approval binds exactly these {n} commit(s):").format(n=len(mine))]
    lines += [
        "  "
        + _("{commit}  {action} by {who}: {reason}").format(
            commit=row["commit"], action=row["action"], who=row["acted_by"], reason=inert(row["reason"])
        )
        for row in mine
    ]
    lines.append(
        _("The range's tip is {tip}: `approve --yes --expect {tip}` signs only if it is still there.").format(
            tip=shown.tip
        )
    )
    return ApprovalPlan(where, mine, lines, sorted(households), head, story, shown.base, shown.tip)


def _resolve(archive: Archive, chosen: str | None, head: str | None) -> Range:
    """The range approve reads: base..tip resolved now (no range: the whole history up to HEAD)."""
    if chosen is None:
        if head is None:
            raise ArchiveError(_("nothing in {where} awaits approval").format(where="HEAD"))
        return Range("HEAD", "", head)
    if chosen.startswith("-"):
        raise UsageError(_("{spec!r} is not a revision range like origin/main..HEAD").format(spec=chosen))
    start, _sep, end = chosen.partition("..")
    base = gitio.rev_parse(archive.root, start) if _sep else None
    tip = gitio.rev_parse(archive.root, end or "HEAD") if _sep else gitio.rev_parse(archive.root, start)
    if tip is None or (_sep and base is None):
        raise UsageError(_("{spec}: no such commit").format(spec=chosen))
    if not _sep:  # A alone is A's whole history, as verify --range A reads it
        return Range(chosen, "", tip)
    return Range(chosen, base or "", tip)


def _refuse_what_does_not_add_up(story: dict[str, Any]) -> None:
    """ArchiveError if a change to be signed is broken in its story: a sealed block that is not what its
    fingerprints say (the reader's check first: it names the household), or anything else the story finds."""
    tolerated = {written_without_fingerprints()}  # an add as archivectl wrote them before fingerprints
    for change in story["changes"]:
        for h in change["households"]:
            for problem in h["findings"]:
                if problem not in tolerated:
                    raise ArchiveError(
                        _("{archive_no}: {problem}; nothing was signed").format(
                            archive_no=h["archive_no"], problem=problem.removeprefix("fingerprints: ")
                        )
                    )
    for change in story["changes"]:
        if change["approval"]["state"] == "broken" and set(change["findings"]) - tolerated:
            raise ArchiveError(
                _("{commit}: {problem}; nothing was signed").format(
                    commit=change["commit"][:12], problem=change["approval"]["text"]
                )
            )


def approve(
    archive: Archive,
    range_spec: str | None,
    reason: str | None,
    confirm: Callable[[ApprovalPlan], bool],
    reveal: bool = False,
    identity: str | None = None,
    expect: str | None = None,
) -> tuple[ApprovalPlan, str]:
    """Sign one approval commit naming every change in the range that awaits the acting staff member.

    confirm is shown the plan and decides (a terminal asks; --yes always agrees).
    With reveal, personal fields were shown in clear, so that viewing is registered first (P8).
    expect: the full id the range's tip must have (a script pins what it was shown).
    """
    reason = check_reason(reason)
    # The plan is read (and shown, and confirmed) without the lock: a person may take their time.
    # Under the lock it still holds exactly when HEAD and the range's ends have not moved since.
    shown = plan(archive, range_spec, reveal, identity, expect)
    numbers = ", ".join(shown.households) or None
    if not confirm(shown):
        if reveal and shown.households:  # the values were shown in clear: that look-up is registered all the same
            _register_view(archive, shown, reason, numbers, None)
            raise ArchiveError(_("not approved; only your look-up was registered (P8)"))
        raise ArchiveError(_("not approved; nothing was written"))
    expected = shown.head
    if reveal and shown.households:
        expected = _register_view(archive, shown, reason, numbers, expected)
    with archive.writing() as tx:
        actor = _unmoved(archive, expected, shown)
        who = sorted({c["acted_by"] for c in shown.commits})
        subject = f"approve {len(shown.commits)} change{'s' if len(shown.commits) > 1 else ''} by {', '.join(who)}"
        message = {
            **trailers("approve", Approval(reason), actor, numbers),
            "Approves": [c["commit"] for c in shown.commits],
        }
        commit = tx.commit(subject, message, actor)
    return shown, commit


def _register_view(
    archive: Archive, shown: ApprovalPlan, reason: str, numbers: str | None, expected: str | None
) -> str:
    """Register the approver's view of revealed values (P8) in its own commit; expected: HEAD must still be it."""
    from archivectl import registers

    with archive.writing() as tx:
        actor = _unmoved(archive, expected, shown) if expected is not None else actor_of(archive)
        fields = {"archive_no": numbers, "commits": [c["commit"][:12] for c in shown.commits]}
        registers.register(tx, "access", "view", actor.member.id, fields, reason=reason)
        return tx.commit(
            f"register view of {numbers} for approval", trailers("view", Approval(reason), actor, numbers), actor
        )


def _unmoved(archive: Archive, expected: str | None, shown: ApprovalPlan) -> Any:
    """The acting staff member, under the lock, once HEAD and the range are still what the approver was shown."""
    now = gitio.head(archive.root)
    moved = now != expected
    if not moved and shown.tip is not None:  # the range's ends too: a fetch may have moved its base, say
        again = _resolve(archive, None if shown.range == "HEAD" else shown.range, now)
        moved = again.base != shown.base or again.tip not in (shown.tip, expected)  # expected: our own view entry
    if moved:
        raise ArchiveError(
            _(
                "the branch moved while you were approving (now {commit}); nothing was written: run approve again"
            ).format(commit=str(now)[:12])
        )
    return actor_of(archive)
