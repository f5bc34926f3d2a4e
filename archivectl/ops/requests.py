"""Customers' requests (P17): registered with a due date of five Chinese working days, answered on the clock.

A request (access, correction, deletion, copy) is a chain of events in
registers/requests/, one file each: request-open, then request-answer,
request-refuse or request-close. Each is one signed commit carrying a
`Request:` trailer; so does every export, edit or tombstone given
`--request RQ-...`, which is how a request's answer is found in history.

Request ids are RQ-<year>-<serial>, reserved in the keystore like archive
numbers (created exclusively), so two clerks on two branches never open the
same one. The requester's name and contact are sealed to the office's managers
and gm (as main's staff.yaml lists them) and the recovery recipient: the
register holds no personal data in clear.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from archivectl import clock, crypto, gitio, idcheck, pii, policy, registers, workdays, yamlio
from archivectl.archive import Archive
from archivectl.errors import ArchiveError, UsageError
from archivectl.i18n import _
from archivectl.identity import Actor, actor_of
from archivectl.layout import check_archive_no
from archivectl.ops.common import Approval, approved_writer, check_reason, identity_for, main_staff, trailers
from archivectl.ops.reading import register_access
from archivectl.requestlog import check_request_id, requests, require_open
from archivectl.staff import ALL_BUILDINGS_ROLES

KINDS = ("access", "correction", "deletion", "copy")
STATUSES = ("open", "answered", "refused", "closed")
MAX_REQUESTER = 500  # characters of a name or a contact: enough for an address, not for a file


def calendar(archive: Archive) -> workdays.Calendar:
    """Official working days less the company's closures (archive.yaml `closures:`)."""
    return workdays.calendar_of(archive.settings.closures)


def answering_commits(archive: Archive, request_id: str) -> list[str]:
    """The commits on this branch that answer a request (a Request: trailer, not the request's own events)."""
    return _answering(archive, f"^Request: {request_id}$").get(request_id, [])


def _answering(archive: Archive, grep: str = "^Request: RQ-") -> dict[str, list[str]]:
    """Request id -> the commits on this branch that answer it, oldest first: one pass over history."""
    found: dict[str, list[str]] = {}
    for entry in reversed(gitio.log(archive.root, "HEAD", f"--grep={grep}")):
        rid, action = entry.trailers.get("Request", ""), entry.trailers.get("Action", "")
        if rid and not action.startswith("request-"):
            found.setdefault(rid, []).append(entry.commit)
    return found


# ---------------------------------------------------------------------- the writes


def _writer(archive: Archive) -> Actor:
    actor = actor_of(archive)
    problem = policy.actor_problem(actor.member)
    if problem:
        raise ArchiveError(problem)
    return actor


def _check_text(value: str | None, what: str) -> str:
    if value is None or not value.strip():
        raise UsageError(_("{what} is required").format(what=what))
    if len(value) > MAX_REQUESTER or any(ord(c) < 32 for c in value):
        raise UsageError(_("{what} must be one line of at most {n} characters").format(what=what, n=MAX_REQUESTER))
    return value.strip()


def _received(value: str | None) -> dt.date:
    if value is None:
        return clock.today()
    problem = idcheck.date_problem(value)
    if problem:
        raise UsageError(f"--received {problem}")
    day = dt.date.fromisoformat(value)
    if day > clock.today():
        raise UsageError(_("--received is in the future"))
    return day


def sealing_targets(archive: Archive) -> list[str]:
    """Whom a requester's details are sealed to: the active managers and gm on main, and the recovery key."""
    staff = main_staff(archive)
    keys = [m.key for m in staff.active() if m.role in ALL_BUILDINGS_ROLES]
    recovery = archive.settings.recovery
    return [*keys, recovery] if recovery else keys


def open_request(
    archive: Archive,
    kind: str,
    numbers: list[str],
    checked_by: str,
    name: str | None,
    contact: str | None,
    reason: str | None,
    received: str | None = None,
) -> dict[str, Any]:
    """Register a customer's request: its id, due date (five working days after receipt), in one signed commit."""
    if kind not in KINDS:
        raise UsageError(_("--kind must be one of {kinds}").format(kinds=", ".join(KINDS)))
    if not numbers:
        raise UsageError(_("name the households the request concerns (--household ARCHIVE_NO)"))
    numbers = sorted({check_archive_no(n) for n in numbers})
    day = _received(received)
    name = _check_text(name, "--requester")
    contact = _check_text(contact, "--contact")
    reason = check_reason(reason)
    if pii.personal_data_in(reason, [name]):
        raise UsageError(_("--reason seems to hold the requester's details; they are sealed, say why without them"))
    with archive.writing() as tx:  # the register and the numbers as they stand under the lock
        actor = _writer(archive)
        for number in numbers:
            archive.locate(number)
        checker = archive.staff.get(checked_by)
        if checker is None or not checker.active:
            raise ArchiveError(_("{who} is not an active member of staff.yaml").format(who=checked_by))
        cal = calendar(archive)
        due = workdays.due_date(day, cal)
        sealed = crypto.seal_to(
            yamlio.dumps({"name": name, "contact": contact}).encode("utf-8"), sealing_targets(archive)
        )
        series = f"RQ-{clock.today().year}"
        taken = [int(r.rsplit("-", 1)[1]) for r in requests(archive) if r.startswith(series + "-")]
        rid = tx.reserve_numbers(series, max(taken, default=0) + 1, 1)[0]
        fields = {
            "request": rid,
            "kind": kind,
            "archive_no": ", ".join(numbers),
            "received": day.isoformat(),
            "due": due.isoformat(),
            "checked_by": checked_by,
            "requester": sealed,
        }
        if workdays.provisional(day, due, cal):
            fields["due_provisional"] = True  # a year the official calendar does not cover yet
        registers.register(tx, "requests", "request-open", actor.member.id, fields, reason=reason)
        approval = Approval(reason, None, rid)
        commit = tx.commit(
            f"open request {rid} ({kind})", trailers("request-open", approval, actor, fields["archive_no"]), actor
        )
    return {**{k: v for k, v in fields.items() if k != "requester"}, "commit": commit}


def answer(archive: Archive, request_id: str, reason: str | None) -> dict[str, Any]:
    """Register that an open request was answered, with the commits that answered it (their Request: trailer)."""
    check_request_id(request_id)
    reason = check_reason(reason)
    with archive.writing() as tx:
        actor = _writer(archive)
        found = require_open(archive, request_id)
        commits = answering_commits(archive, request_id)
        fields = {
            "request": request_id,
            "archive_no": found["archive_no"],
            "answered": clock.today().isoformat(),
            "commits": commits,
        }
        registers.register(tx, "requests", "request-answer", actor.member.id, fields, reason=reason)
        approval = Approval(reason, None, request_id)
        commit = tx.commit(
            f"answer request {request_id}", trailers("request-answer", approval, actor, found["archive_no"]), actor
        )
    return {**fields, "due": found["due"], "late": fields["answered"] > found["due"], "commit": commit}


def refuse(archive: Archive, request_id: str, approval: Approval) -> dict[str, Any]:
    """Refuse an open request, with its reason and a manager's approval (PIPL: a refusal states why)."""
    check_request_id(request_id)
    with archive.writing() as tx:
        actor = approved_writer(archive, approval)
        found = require_open(archive, request_id)
        fields = {"request": request_id, "archive_no": found["archive_no"]}
        registers.register(tx, "requests", "request-refuse", actor.member.id, fields, approval=approval)
        linked = Approval(approval.reason, approval.approver, request_id)
        commit = tx.commit(
            f"refuse request {request_id}", trailers("request-refuse", linked, actor, found["archive_no"]), actor
        )
    return {**fields, "commit": commit}


def close(archive: Archive, request_id: str, approval: Approval) -> dict[str, Any]:
    """Close a request (withdrawn, or done after its answer), with a manager's approval: it leaves the clock."""
    check_request_id(request_id)
    with archive.writing() as tx:
        actor = approved_writer(archive, approval)
        found = requests(archive).get(request_id)
        if found is None:
            raise ArchiveError(_("no request {rid} here (see `archivectl request list`)").format(rid=request_id))
        if found["status"] == "closed":
            raise ArchiveError(_("request {rid} is closed already").format(rid=request_id))
        fields = {"request": request_id, "archive_no": found["archive_no"], "was": found["status"]}
        registers.register(tx, "requests", "request-close", actor.member.id, fields, approval=approval)
        linked = Approval(approval.reason, approval.approver, request_id)
        commit = tx.commit(
            f"close request {request_id}", trailers("request-close", linked, actor, found["archive_no"]), actor
        )
    return {**fields, "commit": commit}


# ---------------------------------------------------------------------- where each stands


def clock_of(row: dict[str, Any], cal: workdays.Calendar, today: dt.date) -> dict[str, Any]:
    """A request's place on the clock today: working days left (negative: overdue by), overdue, due soon."""
    due = dt.date.fromisoformat(row["due"])
    if row["status"] != "open":
        return {"days_left": "", "overdue": False, "due_soon": False}
    if today > due:
        return {"days_left": -cal.working_days_between(due, today), "overdue": True, "due_soon": False}
    left = cal.working_days_between(today, due)
    return {"days_left": left, "overdue": False, "due_soon": left <= workdays.DUE_SOON_DAYS}


def listing(archive: Archive, status: str | None = None) -> list[dict[str, Any]]:
    """Every request (or those of one status) with its clock and the commits that answer it, oldest first."""
    if status is not None and status not in STATUSES:
        raise UsageError(_("--status must be one of {s}").format(s=", ".join(STATUSES)))
    cal, today = calendar(archive), clock.today()
    chosen = [(rid, row) for rid, row in sorted(requests(archive).items()) if status in (None, row["status"])]
    linked = _answering(archive) if any(row["status"] == "open" for _, row in chosen) else {}
    rows = []
    for rid, row in chosen:
        commits = row["commits"] or (linked.get(rid, []) if row["status"] == "open" else [])
        rows.append(
            {
                "request": rid,
                "kind": row["kind"],
                "archive_no": row["archive_no"],
                "received": row["received"],
                "due": row["due"],
                "status": row["status"],
                **clock_of(row, cal, today),
                "checked_by": row["checked_by"],
                "commits": [c[:12] for c in commits],
            }
        )
    return rows


def reveal_requester(archive: Archive, request_id: str, reason: str | None, identity: str | None) -> dict[str, Any]:
    """The requester's name and contact for a manager or gm, the look-up registered like a reveal (P8)."""

    check_request_id(request_id)
    reason = check_reason(reason)
    with archive.writing() as tx:
        actor = _writer(archive)
        opened = next(
            (
                e
                for e in registers.entries(archive.root, "requests")
                if e.get("action") == "request-open" and e.get("request") == request_id
            ),
            None,
        )
        if opened is None:
            raise ArchiveError(_("no request {rid} here (see `archivectl request list`)").format(rid=request_id))
        key = crypto.load_identity(identity_for(archive, identity, actor))
        try:
            plain = crypto.open_sealed(str(opened.get("requester", "")), key)
        except (ArchiveError, UnicodeEncodeError):
            raise ArchiveError(
                _("your key does not open {rid}'s requester (sealed to the managers and gm)").format(rid=request_id)
            ) from None
        details = yamlio.loads(plain, "requester")
        register_access(tx, actor, str(opened.get("archive_no")), "reveal", reason, request=request_id)
    return {"request": request_id, "name": details.get("name"), "contact": details.get("contact")}
