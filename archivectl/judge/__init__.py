"""The judge: is a commit allowed, and is a change approved? One layer, below the commands.

verify, pending, approve, review, the server hook, keys shred, recipients sync and
restore all ask here, and only here. The judge reads objects of history, never the
work tree, the index, an uncommitted file or a replace ref (gitio disables replace
refs and grafts for every git call), and judges each commit by staff.yaml,
archive.yaml and schemas/ as they stood in the main it goes into.

- findings.py: every rule name, declared once (RULES)
- history.py:  the read-only view of history (History) and the governance state at a commit
- signatures.py: a long range's commit signatures prepared a batch ahead, on the second core
- checks.py:   the checks of one commit, a row of rules.TABLE each
- approvals.py: requests, approvals, and who still must sign
- merges.py:   what a merge may be (git's own merge, or archivectl's field-level merge)
- records.py:  whether a stored record is valid where it stands
- retention.py: the dates the 30-day rule counts from
- state.py:    main's judged state: the approved version of a file, the verified destruction list

It never imports archivectl.ops (a test holds that); the commands sit above it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from archivectl import clock, gitio
from archivectl.archive import Archive
from archivectl.errors import UsageError
from archivectl.i18n import _
from archivectl.judge.findings import RULES, Finding
from archivectl.streams import batches

if TYPE_CHECKING:  # imported by judge() itself: a command that only reads the judged-state memo
    # (judge.state.approved_commit, every command's masking) does not pay for the checks (12.7 ms)
    from archivectl.judge.approvals import Request, Run
    from archivectl.judge.history import History

__all__ = ["RULES", "Finding", "Judgement", "Verdict", "judge", "revs"]

_CHUNK = 500  # commits read (objects, blobs, signatures) in one batch


@dataclass(frozen=True)
class Verdict:
    """The one answer to "is this change approved?".

    state: "approved" (by `by`), "needs-none" (a look-up, an approval, a return),
    "awaiting" (whose signature is missing: `by`), or "broken" (`why`: the findings).
    """

    state: str
    by: tuple[str, ...] = ()
    why: tuple[str, ...] = ()

    @property
    def final(self) -> bool:
        """True when the change may take effect: approved, or needing no approval."""
        return self.state in ("approved", "needs-none")

    def words(self) -> str:
        if self.state == "approved":
            return _("approved by {who}").format(who=", ".join(self.by))
        if self.state == "awaiting":
            return _("awaiting approval by {who}").format(who=", ".join(self.by))
        if self.state == "broken":
            return "; ".join(self.why)
        return _("needs no approval")


@dataclass
class Judgement:
    """What the judge found in a range: every finding, what awaits whom, and who approved what."""

    range: str
    commits: int
    findings: list[Finding] = field(default_factory=list)
    pending: list[Request] = field(default_factory=list)
    requests: dict[str, Request] = field(default_factory=dict)
    approved: dict[str, str] = field(default_factory=dict)
    approvers: set[str] = field(default_factory=set)

    def verdict(self, commit: str, ignoring: tuple[str, ...] = ()) -> Verdict:
        """The answer for one commit of the range (findings first: a broken change is never approved).

        ignoring: rule names that do not count here (a restore that runs with an earlier clock than
        a purge's date still withholds its keys: "dates" is no reason to bring a key back).
        """
        broken = tuple(f"{f.rule}: {f.message}" for f in self.findings if f.commit == commit and f.rule not in ignoring)
        if broken:
            return Verdict("broken", why=broken)
        if commit in self.approved:
            return Verdict("approved", by=tuple(self.approved[commit].split(", ")))
        request = self.requests.get(commit)
        if request is not None:
            return Verdict(
                "awaiting", by=tuple(w for w in (request.approver,) if w not in request.signed) or request.roles
            )
        return Verdict("needs-none")


def judge(
    archive: Archive,
    range_spec: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    allow_pending: bool = False,
) -> Judgement:
    """Judge every commit in range_spec (default: all of HEAD).

    allow_pending: changes still awaiting their approval are listed in `pending`
    instead of as findings (a proposal branch may be pushed before it is approved).
    """
    from archivectl.judge.approvals import Run, awaiting, match_approvals, without_changes
    from archivectl.judge.checks import check_commit, check_numbers
    from archivectl.judge.history import History
    from archivectl.judge.signatures import SignatureWorker

    commit_revs, base, tip = revs(archive, range_spec)
    allowed_root = None if base or (range_spec and ".." in range_spec) else _founding_commit(archive, tip)
    run = Run()
    now = clock.now()
    total = gitio.count_commits(archive.root, commit_revs) if progress else 0
    tip_id = gitio.rev_parse(archive.root, tip)
    kept: list[gitio.CommitInfo] = []  # merges and the tip: check_numbers looks at their trees
    count = 0
    object_format = gitio.layout(archive.root).object_format
    with gitio.BlobReader(archive.root) as blobs, SignatureWorker(archive.root, object_format) as ahead:
        history = History(archive, blobs, base, allowed_root)
        stream = batches(gitio.iter_commits_for_verify(archive.root, commit_revs), _CHUNK)
        following = next(stream, None)
        while following is not None:
            batch, following = following, next(stream, None)
            prepared = ahead.take()  # this batch's signatures, when the worker was asked for them
            if following is not None:
                ahead.ask([i.commit for i in following])  # a long range: the next batch's, on the other core
            history.fetch(batch, prepared)
            for info in batch:
                history.remember(info)
                info = history.signed(info)
                check_commit(history, info, history.dates, now, run)
                match_approvals(history, run)
                if len(info.parents) > 1 or info.commit == tip_id:
                    kept.append(without_changes(info))
                count += 1
                if progress:
                    progress(count, total)
        if base:
            _check_added_numbers(history, kept, tip_id, base, run)
        else:
            check_numbers(history, kept, tip_id, run)
    run.findings += run.approval_findings
    pending = [r for r in run.requests.values() if r.info.commit not in run.approved]
    if not allow_pending:
        run.findings += [
            Finding(r.info.commit, r.info.subject, "approval", awaiting(r, run.approvers)) for r in pending
        ]
        pending = []
    return Judgement(
        range=range_spec or "HEAD",
        commits=count,
        findings=run.findings,
        pending=pending,
        requests=dict(run.requests),
        approved=dict(run.approved),
        approvers=set(run.approvers),
    )


def _check_added_numbers(history: History, kept: list[gitio.CommitInfo], tip_id: str, base: str, run: Run) -> None:
    """P3 for a range: no number the range adds is used by two households, at its tip and at its merges.

    The base (the main the range goes into) was judged when it was pushed: what can
    break P3 here is a record the range adds. So only those numbers are looked up,
    at the tip against the base and at each merge against its first parent, and
    the cost follows the change, not the archive (check_numbers reads whole trees).
    """
    for info in kept:
        since = base if info.commit == tip_id else info.parents[0] if len(info.parents) > 1 else None
        if since is None:
            continue
        for number, paths in sorted(history.numbers_added(info.commit, since).items()):
            for other in paths[1:]:
                message = f"{number} is used by two households ({paths[0]}, {other}) (P3)"
                run.findings.append(Finding(info.commit, info.subject, "numbers", message))


def revs(archive: Archive, range_spec: str | None) -> tuple[list[str], str | None, str]:
    """(git revs, the range's base commit or None, the tip)."""
    if range_spec is None:
        return ["HEAD"], None, "HEAD"
    if not re.fullmatch(r"[A-Za-z0-9_./~^@{}-]+(\.\.[A-Za-z0-9_./~^@{}-]+)?", range_spec) or range_spec.startswith("-"):
        raise UsageError(_("--range {range!r} is not a revision range like origin/main..HEAD").format(range=range_spec))
    if ".." not in range_spec:
        if gitio.rev_parse(archive.root, range_spec) is None:
            raise UsageError(_("--range {range}: no such commit").format(range=range_spec))
        return [range_spec], None, range_spec
    start, end = range_spec.split("..", 1)
    start_id, end_id = gitio.rev_parse(archive.root, start or "HEAD"), gitio.rev_parse(archive.root, end or "HEAD")
    if start_id is None or end_id is None:
        raise UsageError(_("--range {range}: no such commit").format(range=range_spec))
    # Judged by the range's start (the main it will be merged into), as the server's pre-receive judges the
    # push: a branch made before a manager was deactivated there must not pass with that manager's approval.
    return [f"{start_id}..{end_id}"], start_id, end_id


def _founding_commit(archive: Archive, tip: str) -> str | None:
    line = gitio.first_parent_line(archive.root, tip)
    return line[-1] if line else None
