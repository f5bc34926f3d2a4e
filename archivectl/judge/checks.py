"""The checks of one commit: every row of the rule table (rules.py) applied to what the commit changes,
its trailers and its signature, against the governance state it is judged by (history.History).

Each check adds findings through `flag(rule, message)`; the rule names are declared in findings.py.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

from archivectl import clearread, gitio, holds, pii, policy, registers, rules, yamlio
from archivectl.errors import ArchiveError, UsageError
from archivectl.i18n import _
from archivectl.judge.approvals import Approval, Request, Run, bare_info, without_changes
from archivectl.judge.findings import Finding
from archivectl.judge.history import History
from archivectl.judge.merges import SEALED_BY_HAND, merge_problems
from archivectl.judge.retention import tombstone_dates
from archivectl.layout import ARCHIVE_NO, ARCHIVE_NO_PATTERN, HouseholdPath
from archivectl.staff import Staff, StaffMember, fingerprint

SKEW = policy.CLOCK_SKEW


ARMOR = re.compile(r"-----BEGIN AGE ENCRYPTED FILE-----.*?-----END AGE ENCRYPTED FILE-----", re.S)


COMMIT_ID = re.compile(r"[0-9a-f]{40}")


SINGLE_TRAILERS = ("Action", "Reason", "Approved-by", "Acted-by", "Archive-No", "Also-Active")


SYMLINK_MODE = "120000"


PLAIN_FILE_MODES = ("100644", "100755")


def check_commit(ctx: History, info: gitio.CommitInfo, dates: dict[str, str], now: dt.datetime, run: Run) -> None:
    """Every rule for one commit; findings, approval requests and approvals go into run."""

    def flag(rule: str, message: str) -> None:
        run.findings.append(Finding(info.commit, info.subject, rule, message))

    _check_dates(ctx, info, dates, now, flag)
    # a commit message is signed history: no purge can shred what it says (P9, P14)
    message = "\n".join([info.subject] + [f"{k}: {v}" for k, values in info.trailers.items() for v in values])
    in_message = pii.personal_data_in(message)
    if in_message:
        flag("personal-data", _("the commit message holds {kind}").format(kind=in_message))
    if not info.parents and info.commit != ctx.allowed_root:
        flag("root", _("a root commit inside the range: a history of its own cannot vouch for itself"))
        return
    if len(info.parents) == 2:
        problems = merge_problems(ctx, info)
        if problems == []:
            _check_merged_units(ctx, info, flag)
            return  # a clean merge adds nothing of its own; its second parent's commits are judged one by one
        if problems and all(p.endswith(_(SEALED_BY_HAND)) for p in problems):  # as merges.py words it
            _request_merge_approval(ctx, info, run, flag)
            return
        for problem in problems or []:  # why it is not clean; then it is judged like any commit
            flag("merge", problem)
    governance = _governance(ctx, info, flag)
    if governance is None:
        return
    judge, staff, settings = governance
    action = info.trailer("Action")
    if action is None and settings.version < 2:
        action = rules.legacy_action(info.subject)
    rule = rules.TABLE.get(action or "")
    if rule is None:
        flag("action", _("Action trailer is missing") if not action else _("Action trailer names no archivectl action"))
    member = _signer(info, staff, flag)
    _check_trailers(info, member, flag)
    if not info.parents:
        _check_founding(info, member, action, flag)
    elif action == "init":
        flag("action", _("only the founding commit is an init"))
    _check_changes(ctx, info, rule, member, judge, flag)
    if rule is None or member is None or not info.parents:
        return
    if rule.name == "approve":
        names = info.trailers.get("Approves", ())
        if not names or any(not COMMIT_ID.fullmatch(n) for n in names):
            flag("trailers", _("an approval names the full ids of the commits it approves (Approves:)"))
        run.approvals.append(Approval(info, member if member.active else None, names, staff))
        return
    roles = rules.approval_roles(rule, settings.rules)
    if not roles:
        return
    approver = info.trailer("Approved-by")
    problem = policy.approval_problem(member, approver, staff, settings.rules, roles)
    if problem:
        flag(
            "approver",
            problem.replace(
                _("--approver is required: name the manager who approved this change"),
                _("Approved-by trailer is missing"),
            ),
        )
        return
    assert approver is not None
    if settings.version < 2:
        return  # version 1 archives took the typed Approved-by as the approval (rules.legacy_action)
    needed = rules.approvals_needed(rule, settings)
    run.requests[info.commit] = Request(
        without_changes(info), rule.name, member, approver, roles, settings.rules, needed
    )


def _governance(ctx: History, info: gitio.CommitInfo, flag: Callable[[str, str], None]) -> tuple | None:
    """(the commit it is judged by, its staff, its settings), or None after flagging an unusable staff.yaml."""
    judge = ctx.judged_by(info)
    staff = ctx.staff_at(judge)
    if not isinstance(staff, Staff):
        flag("staff", _("staff.yaml it is judged by is missing or invalid"))
        return None
    return judge, staff, ctx.settings_at(judge)


def _request_merge_approval(ctx: History, info: gitio.CommitInfo, run: Run, flag: Callable[[str, str], None]) -> None:
    """A merge that re-sealed personal fields both sides changed: signed, with trailers, awaiting an edit's approval."""
    governance = _governance(ctx, info, flag)
    if governance is None:
        return
    _judged_by, staff, settings = governance  # not `_`: that name is the translation of the messages below
    member = _signer(info, staff, flag)
    _check_trailers(info, member, flag)
    if member is None:
        return
    roles = rules.approval_roles(rules.TABLE["edit"], settings.rules)
    approver = info.trailer("Approved-by")
    problem = policy.approval_problem(member, approver, staff, settings.rules, roles)
    if problem:
        missing = _("--approver is required: name the manager who approved this change")
        flag("approver", f"{_(SEALED_BY_HAND)}: {problem.replace(missing, _('Approved-by trailer is missing'))}")
        return
    assert approver is not None
    needed = rules.approvals_needed(rules.TABLE["edit"], settings)
    run.requests[info.commit] = Request(without_changes(info), "merge", member, approver, roles, settings.rules, needed)


def _signer(info: gitio.CommitInfo, staff: Staff, flag: Callable[[str, str], None]) -> StaffMember | None:
    if info.signature == "N":
        flag("signature", _("commit is not signed"))
        return None
    if info.signature not in ("G", "U"):
        flag("signature", _("signature does not verify (git says {status})").format(status=info.signature))
        return None
    member = next((m for m in staff.members if fingerprint(m.key) == info.fingerprint), None)
    if member is None:
        flag("signature", _("signed by a key that staff.yaml it is judged by does not list"))
        return None
    if not member.active:
        flag(
            "signature",
            _("signed by {who}, who is no longer active in staff.yaml it is judged by").format(who=member.id),
        )
    return member


def _check_trailers(info: gitio.CommitInfo, member: StaffMember | None, flag: Callable[[str, str], None]) -> None:
    for key in SINGLE_TRAILERS:
        if len(info.trailers.get(key, ())) > 1:
            flag("trailers", _("trailer {key} appears {n} times").format(key=key, n=len(info.trailers[key])))
    reason = info.trailer("Reason") or ""
    if not reason.strip():
        flag("trailers", _("Reason trailer is missing"))
    elif policy.reason_problem(reason) and not pii.personal_data_in(reason):  # personal data: flagged once, above
        flag("trailers", _("Reason trailer: {problem}").format(problem=policy.reason_problem(reason)))
    acted = info.trailer("Acted-by")
    if not acted:
        flag("trailers", _("Acted-by trailer is missing"))
    elif member is not None and acted != member.id:
        flag("signer", _("signed by {who} but Acted-by says {acted}").format(who=member.id, acted=acted))


def _check_founding(
    info: gitio.CommitInfo, member: StaffMember | None, action: str | None, flag: Callable[[str, str], None]
) -> None:
    """The founding commit: an init, signed and approved by its founder (policy.founder_problem) of its staff.yaml."""
    if action != "init":
        flag("action", _("the founding commit must be an init"))
    if member is not None and (policy.founder_problem(member) or info.trailer("Approved-by") != member.id):
        flag(
            "approver",
            _("the founding commit must be signed and approved by an active {role}").format(role=policy.FOUNDER_ROLE),
        )


def _check_dates(
    ctx: History, info: gitio.CommitInfo, dates: dict[str, str], now: dt.datetime, flag: Callable[[str, str], None]
) -> None:
    when = dt.datetime.fromisoformat(info.committer_date)
    if when > now + SKEW:
        flag("dates", _("dated {date}, in the future").format(date=info.committer_date))
    for parent in info.parents:
        parent_date = dates.get(parent) or gitio.committer_date(ctx.archive.root, parent)
        if when < dt.datetime.fromisoformat(parent_date) - SKEW:
            flag(
                "dates",
                _("dated {date}, before its parent ({parent_date})").format(
                    date=info.committer_date, parent_date=parent_date
                ),
            )


def _check_changes(
    ctx: History,
    info: gitio.CommitInfo,
    rule: rules.ActionRule | None,
    member: StaffMember | None,
    judge: str,
    flag: Callable[[str, str], None],
) -> None:
    named = {n.strip() for n in (info.trailer("Archive-No") or "").split(",") if n.strip()}
    if any(not ARCHIVE_NO.fullmatch(n) for n in named):
        flag("trailers", _("Archive-No trailer is not an archive number"))
    schema = ctx.schema_at(judge)
    ctx.keep_records(sum(c.path.endswith("/record.yaml") for c in info.changes))
    if schema is not None:
        ctx.check_records_ahead(schema, info.changes)  # an import's records: half of them on the other core
    households: dict[str, dict[str, list[gitio.Change]]] = {}
    entries: dict[str, list[dict]] = {}
    for change in info.changes:
        path = change.path
        kind = rules.classify(path)
        if kind is None:
            flag("layout", _("{path}: outside archivectl's layout").format(path=path))
            continue
        if change.status != "D" and change.new_mode not in PLAIN_FILE_MODES:
            what = (
                _("a symbolic link")
                if change.new_mode == SYMLINK_MODE
                else _("not a file (git mode {mode})").format(mode=change.new_mode)
            )
            flag("layout", _("{path}: {what}; the archive holds plain files only").format(path=path, what=what))
            continue
        if kind.archive_no:
            households.setdefault(kind.archive_no, {}).setdefault(kind.kind, []).append(change)
        if rule is not None and change.status not in rules.allowed_statuses(rule, kind):
            _flag_not_allowed(rule, kind, change, flag)
        if change.status == "D" or path.endswith(".age"):
            continue
        new = ctx.read(change.new_blob) or b""
        _check_personal_data(path, new, flag)
        if kind.kind == "register" and kind.register:
            if kind.event_action:
                entries.setdefault(kind.register, []).extend(_event_entry(path, kind, change, new, flag))
            else:
                old = ctx.read(change.old_blob) or b"" if change.status == "M" else b""
                entries.setdefault(kind.register, []).extend(_new_entries(path, old, new, flag))
        if kind.kind == "record" and schema is not None:
            for problem in ctx.record_problems(schema, change, new):
                flag("record", f"{path}: {problem}")
    missing = sorted(set(households) - named)
    if missing:
        flag("trailers", _("Archive-No trailer must name {archive_nos}").format(archive_nos=", ".join(missing)))
    if rule is None:
        return
    _check_registers(info, rule, member, named, entries, ctx.settings_at(judge).version < 2, flag)
    if rule.record == "purge":
        _check_destruction(households, entries.get("destruction", []), flag)
    if rule.name == "shred":
        _check_shred(ctx, info, entries.get("destruction", []), flag)
    if rule.name in holds.STOPS and info.parents:
        _check_holds(ctx, info, rule, named, entries.get("destruction", []), flag)
    if rule.record:
        for number, changed in sorted(households.items()):
            _check_household(ctx, info, rule, number, changed, flag)
    if rule.name in ("add", "import"):
        _check_new_numbers(ctx, info, households, flag)
        _check_one_active(ctx, info, households, flag)


def _flag_not_allowed(
    rule: rules.ActionRule, kind: rules.PathKind, change: gitio.Change, flag: Callable[[str, str], None]
) -> None:
    may_not = {"A": _("{path}: {action} may not add it"), "D": _("{path}: {action} may not delete it")}.get(
        change.status, _("{path}: {action} may not change it")
    )
    if kind.kind == "attachment" and change.status in "MD":
        original = _("{path}: an original was deleted by {action} (P6)") if change.status == "D" else None
        flag(
            "attachment",
            (original or _("{path}: an original was changed by {action} (P6)")).format(
                path=change.path, action=rule.name
            ),
        )
    elif kind.kind == "register" and change.status == "D":
        flag("register", _("{path}: a register was deleted").format(path=change.path))
    elif kind.kind in rules.GOVERNANCE_KINDS:
        flag(
            "changes",
            may_not.format(path=change.path, action=rule.name)
            + _(" (staff, settings and schemas change only by their own actions, with the gm's approval)"),
        )
    else:
        flag("changes", may_not.format(path=change.path, action=rule.name))


def _event_entry(
    path: str, kind: rules.PathKind, change: gitio.Change, data: bytes, flag: Callable[[str, str], None]
) -> list[dict]:
    """The one entry of a register event file, which is written once and never changed."""
    if change.status != "A":
        flag("register", _("{path}: a register entry was changed (entries are written once)").format(path=path))
        return []
    try:
        entry = clearread.document(data, path)
    except (UsageError, RecursionError):
        flag("register", _("{path}: not a readable register entry").format(path=path))
        return []
    if not isinstance(entry, dict):
        flag("register", _("{path}: a register entry is a mapping").format(path=path))
        return []
    if entry.get("who") != kind.event_who or entry.get("action", kind.register) != kind.event_action:
        flag("register", _("{path}: the file name and the entry disagree on who or what").format(path=path))
    return [entry]


def _new_entries(path: str, old: bytes, new: bytes, flag: Callable[[str, str], None]) -> list[dict]:
    """The entries a change appends to a register (registers are append-only)."""
    if not new.startswith(old):
        flag("register", _("{path}: entries were changed or removed (registers are append-only)").format(path=path))
        return []
    try:
        before = yamlio.loads(old, path) if old else []
        after = yamlio.loads(new, path)
    except (UsageError, RecursionError):
        flag("register", _("{path}: not a readable register").format(path=path))
        return []
    if not isinstance(after, list) or not isinstance(before or [], list):
        flag("register", _("{path}: a register is a list of entries").format(path=path))
        return []
    added = after[len(before or []) :]
    if any(not isinstance(e, dict) for e in added):
        flag("register", _("{path}: every register entry is a mapping").format(path=path))
        return []
    return added


def _check_registers(
    info: gitio.CommitInfo,
    rule: rules.ActionRule,
    member: StaffMember | None,
    named: set[str],
    entries: dict[str, list[dict]],
    legacy: bool,
    flag: Callable[[str, str], None],
) -> None:
    """Each entry a commit appends says who signed it, what action it is, which household and approver.

    legacy: a version 1 archive, whose destruction and grant entries did not say their action yet.
    """
    for register in rule.registers:
        if not entries.get(register):
            flag(
                "register",
                _("{action} must append an entry to the {register} register").format(
                    action=rule.name, register=register
                ),
            )
    approver = info.trailer("Approved-by") if rule.approval else None
    for register, added in sorted(entries.items()):
        for entry in added:
            if member is not None and entry.get("who") != member.id:
                flag(
                    "register",
                    _("{register} register entry says who={who} but {signer} signed").format(
                        register=register, who=entry.get("who"), signer=member.id
                    ),
                )
            action = entry.get("action", rule.name if legacy else None)
            if action is None:
                flag(
                    "register",
                    _("{register} register entry does not say its action (the commit is a {action})").format(
                        register=register, action=rule.name
                    ),
                )
            elif action != rule.name:
                flag(
                    "register",
                    _("{register} register entry is a {entry_action}, the commit a {action}").format(
                        register=register, entry_action=action, action=rule.name
                    ),
                )
            numbers = {n.strip() for n in str(entry.get("archive_no") or "").split(",") if n.strip()}
            for number in sorted(numbers - named):  # one, or several like the trailer (an approval's view)
                flag(
                    "register",
                    _("{register} register entry names {archive_no}, which the commit's Archive-No does not").format(
                        register=register, archive_no=number
                    ),
                )
            if approver and "approved_by" in entry and entry.get("approved_by") != approver:
                flag(
                    "register",
                    _("{register} register entry names approver {named}, not {approver}").format(
                        register=register, named=entry.get("approved_by"), approver=approver
                    ),
                )


def _check_destruction(
    households: dict[str, dict[str, list[gitio.Change]]], added: list[dict], flag: Callable[[str, str], None]
) -> None:
    """P14: a purge's destruction entries name exactly the households whose records it deletes.

    restore withholds every key the destruction register names: an entry for a live household would lose it.
    """
    removed = {n for n, c in households.items() if any(r.status == "D" for r in c.get("record", []))}
    listed = {str(e.get("archive_no")) for e in added}
    for number in sorted(listed - removed):
        flag(
            "register",
            _("destruction register entry names {archive_no}, which the commit does not purge").format(
                archive_no=number
            ),
        )
    for number in sorted(removed - listed):
        flag(
            "register",
            _("{archive_no}: purged without an entry in the destruction register (P14)").format(archive_no=number),
        )


_SHRED_LINE = re.compile(
    rf"(?P<no>{ARCHIVE_NO_PATTERN}) (?P<key>age1[0-9a-z]+|\(unaddressed\))"
    r"(?: \((?P<kind>purge|rotation|forget) (?P<change>[0-9a-f]{7,64})\))?"  # earlier versions named no change
)


def _check_holds(
    ctx: History,
    info: gitio.CommitInfo,
    rule: rules.ActionRule,
    named: set[str],
    destruction: list[dict],
    flag: Callable[[str, str], None],
) -> None:
    """A legal hold stops tombstone, purge and shred of a household (holds.py): held in its first parent, or
    in the main it goes into (a branch made before the hold does not escape it)."""
    numbers = set(named)
    if rule.name == "shred":  # the households whose keys it says it destroyed
        numbers |= {str(line).split()[0] for e in destruction for line in e.get("keys") or [] if str(line).split()}
    if not numbers:
        return
    try:
        held = holds.held_union(
            *(
                holds.held(registers.entries_at(ctx.archive.root, rev, "holds"))
                for rev in {info.parents[0], ctx.judged_by(info)}
            )
        )
    except UsageError:
        flag("register", _("registers/holds: not a readable register, so no hold can be told apart"))
        return
    problem = holds.hold_problem(rule.name, numbers, held)
    if problem:
        flag("hold", problem)


def _check_shred(ctx: History, info: gitio.CommitInfo, added: list[dict], flag: Callable[[str, str], None]) -> None:
    """P14: a shred entry states facts. Each key it names was made obsolete on the history it is committed to:
    its household is gone by an approved purge, or its record names another key (an approved rotation or forget).

    restore withholds what destruction entries name: a made-up entry would withhold a live household's key.
    """
    from archivectl import records
    from archivectl.judge.state import verdict_on

    parent = info.parents[0] if info.parents else None
    for entry in added:
        for line in entry.get("keys") or []:
            m = _SHRED_LINE.fullmatch(str(line).strip())
            if m is None or parent is None:
                flag(
                    "shred",
                    _("destruction entry line {line!r} is not '<archive-no> <key> (<kind> <commit>)'").format(
                        line=str(line)[:60]
                    ),
                )
                continue
            number, key = m["no"], m["key"]
            held = [d for _, _, d in records.stored_texts_at(ctx.archive.root, parent, {number}) if d]
            if held:
                recipients = {records.load_stored(d, "record.yaml").get("recipient") for d in held}
                if key in recipients or (key == "(unaddressed)" and m["kind"] != "rotation"):
                    flag(
                        "shred",
                        _("{archive_no}: the key it names is the one the household's record still uses").format(
                            archive_no=number
                        ),
                    )
                    continue
            kind = m["kind"] or ("rotation" if held else "purge")
            action = {"purge": "purge", "forget": "forget"}.get(kind, "rotate")
            change = _named_change(ctx, parent, number, action, m["change"])
            if change is None:
                flag(
                    "shred",
                    _("{archive_no}: no {kind} of it on the history the entry is committed to").format(
                        archive_no=number, kind=kind
                    ),
                )
                continue
            verdict = verdict_on(ctx.archive, parent, change)
            if not verdict.final:
                flag(
                    "shred",
                    _("{archive_no}: its {kind} {commit} is not approved ({verdict})").format(
                        archive_no=number, kind=kind, commit=change[:12], verdict=verdict.words()
                    ),
                )


def _named_change(ctx: History, parent: str, number: str, action: str, named: str | None) -> str | None:
    """The purge or rotation of a household a shred relies on: the one it names, else the newest on parent's history."""
    root = ctx.archive.root
    if named is None:
        found = gitio.out(root, "log", "--format=%H", f"--grep=^Action: {action}$", parent).split()
        candidates = found
    else:
        change = gitio.rev_parse(root, f"{named}^{{commit}}")
        candidates = [change] if change and gitio.is_ancestor(root, change, parent) else []
    for change in candidates:
        trailers = gitio.commit_trailers(root, change)
        numbers = {n.strip() for n in (trailers.get("Archive-No") or ("",))[0].split(",")}
        if (trailers.get("Action") or ("",))[0] == action and number in numbers:
            return change
    return None


def _check_household(
    ctx: History,
    info: gitio.CommitInfo,
    rule: rules.ActionRule,
    number: str,
    changed: dict[str, list[gitio.Change]],
    flag: Callable[[str, str], None],
) -> None:
    """How the action may change one household's record (rules.record_change_problem)."""
    record = (changed.get("record") or [None])[0]
    if record is None:
        if rule.record not in ("attach", "rotate", "forget", "purge"):
            return
        flag(
            "changes",
            _("{archive_no}: {action} changes the household's files but not its record").format(
                archive_no=number, action=rule.name
            ),
        )
        return
    old = ctx.stored(record.old_blob, record.path) if record.status != "A" else None
    new = ctx.stored(record.new_blob, record.path) if record.status != "D" else None
    if (record.status != "A" and old is None) or (record.status != "D" and new is None):
        return  # unreadable: flagged as an invalid record
    home = HouseholdPath.of(record.path).dir + "/"
    status = "M" if rule.record in ("rotate", "forget") else "A"  # a new record key re-encrypts, the rest add
    added = {c.path.removeprefix(home) for c in changed.get("attachment", []) if c.status == status}
    problem = rules.record_change_problem(rule.record or "", old, new, info.trailer("Approved-by"), added)
    if problem:
        flag("record", f"{number}: {rule.name} {problem}")
    if new is not None and str(new.get("archive_no")) != number:
        flag("record", _("{archive_no}: the record's archive_no is not its directory's").format(archive_no=number))
    if rule.name == "tombstone" and new is not None:
        _check_tombstone_date(info, new, number, flag)
    if rule.name == "purge" and old is not None:
        _check_purge(ctx, info, record, old, flag)


def _check_tombstone_date(info: gitio.CommitInfo, stored: dict, number: str, flag: Callable[[str, str], None]) -> None:
    tomb = stored.get("tombstone") or {}
    try:
        made = dt.datetime.fromisoformat(info.committer_date).date()
        if abs(dt.date.fromisoformat(str(tomb.get("date"))) - made) > policy.YAML_COMMIT_TOLERANCE:
            flag(
                "dates",
                _("{archive_no}: tombstone date {date} is more than a day off its commit ({made})").format(
                    archive_no=number, date=tomb.get("date"), made=made
                ),
            )
    except ValueError:
        flag("dates", _("{archive_no}: the tombstone date is not a date").format(archive_no=number))


def _check_purge(
    ctx: History,
    info: gitio.CommitInfo,
    record: gitio.Change,
    old: dict,
    flag: Callable[[str, str], None],
) -> None:
    """P13: a purge removes a household tombstoned retention_days before, by the main line's dates."""
    number = str(old.get("archive_no"))
    if old.get("status") != "tombstoned":
        flag("purge", _("{archive_no}: purged without a tombstone (P13)").format(archive_no=number))
        return
    parent = info.parents[0]
    try:
        dates = tombstone_dates(ctx.archive, record.path, old, rev=parent)
    except ArchiveError as exc:
        flag("purge", f"{number}: {exc}")
        return
    days = ctx.settings_at(ctx.judged_by(info)).retention_days
    verdict = policy.retention_verdict(dates, dt.datetime.fromisoformat(info.committer_date), days)
    if verdict.problem:
        flag("purge", f"{number}: {verdict.problem}")
    elif not verdict.eligible:
        flag(
            "purge",
            _("{archive_no}: purged {days_left} days before its {days}-day retention ended (P13)").format(
                archive_no=number, days_left=verdict.days_left, days=days
            ),
        )
    left = gitio.tree_paths(ctx.archive.root, info.commit, HouseholdPath.of(record.path).dir + "/")
    if left:
        flag(
            "purge",
            _("{archive_no}: a purge removes the whole household; {n} files remain").format(
                archive_no=number, n=len(left)
            ),
        )


def _check_new_numbers(
    ctx: History,
    info: gitio.CommitInfo,
    households: dict[str, dict[str, list[gitio.Change]]],
    flag: Callable[[str, str], None],
) -> None:
    """P3: a new household's serial is above every one used before, numbers.yaml moves past it, none goes back.

    From format version 3 numbers are reserved in the keystore (two branches can
    not take one); what verify can see is that no two households share one,
    at the tip and at every merge (check_numbers).
    """
    if ctx.settings_at(ctx.judged_by(info)).version >= 3:
        return
    numbers_change = next((c for c in info.changes if c.path == "registers/numbers.yaml"), None)
    before = _serials(ctx, numbers_change.old_blob) if numbers_change and numbers_change.status == "M" else {}
    after = _serials(ctx, numbers_change.new_blob) if numbers_change else before
    for series, serial in sorted(before.items()):
        if after.get(series, 0) < serial:
            flag(
                "numbers",
                _("registers/numbers.yaml lowers {series} from {serial} to {lowered} (P3)").format(
                    series=series, serial=serial, lowered=after.get(series, 0)
                ),
            )
    for number in sorted(households):
        code, year, serial = number.split("-")
        series = f"{code}-{year}"
        if int(serial) <= before.get(series, 0) or int(serial) > after.get(series, 0):
            flag(
                "numbers",
                _("{archive_no}: not the next number of its series in registers/numbers.yaml (P3)").format(
                    archive_no=number
                ),
            )


def _check_one_active(
    ctx: History,
    info: gitio.CommitInfo,
    households: dict[str, dict[str, list[gitio.Change]]],
    flag: Callable[[str, str], None],
) -> None:
    """P1: one active household per unit. A new one beside another needs the commit's Also-Active: trailer
    (add --also-active, import's also_active), which the approval binds to like the rest of the commit."""
    added = [
        (c.path, c.new_blob) for changed in households.values() for c in changed.get("record", []) if c.status == "A"
    ]
    marks = _marks(info.trailer("Also-Active") or "")
    _second_active(ctx, info.commit, added, lambda: marks, False, flag)


def _check_merged_units(ctx: History, info: gitio.CommitInfo, flag: Callable[[str, str], None]) -> None:
    """P1 where branches meet: a clean merge adds nothing of its own, but it may bring a household in beside
    the unit's active one on main, each branch's add fine alone. Its own add or import commit must mark it."""
    root, (first, second) = ctx.archive.root, info.parents
    listing = gitio.out(
        root, "diff-tree", "-r", "--no-renames", "--name-only", "--diff-filter=A", first, info.commit,
        "--", "households/",
    )  # fmt: skip
    added = [(p, f"{info.commit}:{p}") for p in listing.splitlines() if HouseholdPath.of_record(p)]

    def marks() -> set[str]:
        log = gitio.out(
            root, "log", "--format=%(trailers:key=Action,valueonly)%x01%(trailers:key=Also-Active,valueonly)%x00",
            f"{first}..{second}",
        )  # fmt: skip
        found: set[str] = set()
        for entry in log.split("\0"):
            action, _, marked = entry.partition("\x01")
            if action.strip() in ("add", "import"):
                found |= _marks(marked)
        return found

    if added:
        _second_active(ctx, info.commit, added, marks, True, flag)


def _marks(value: str) -> set[str]:
    return {n.strip() for n in value.replace("\n", ",").split(",") if n.strip()}


# Units whose folders one ls-tree lists by their paths; for more, it lists their buildings' folders and the
# units are picked here: git tries each entry against each pathspec (20,000 units of an import: 4 s in git).
_UNITS_LISTED_BY_PATH = 64


def _second_active(
    ctx: History,
    commit: str,
    added: list[tuple[str, str]],
    marks: Callable[[], set[str]],
    merged: bool,
    flag: Callable[[str, str], None],
) -> None:
    """Flag each household added (record path, blob) that is a unit's second active one at commit, unmarked.

    marks: the archive numbers marked Also-Active, asked only when a unit has two. merged: the households
    a merge brings in, judged beside the main's only (beside each other, their own commits judged them)."""
    new_on: dict[tuple[str, str], list[str]] = {}
    for path, blob in sorted(added):
        stored = ctx.stored(blob, path)
        if stored is not None and stored.get("status") == "active":
            place = HouseholdPath.of(path)
            new_on.setdefault((place.building, place.unit), []).append(place.archive_no)
    on_units: dict[tuple[str, str], list[HouseholdPath]] = {}
    dirs = [f"households/{building}/{unit}/" for building, unit in sorted(new_on)]
    if len(dirs) > _UNITS_LISTED_BY_PATH:  # git matches every entry against every pathspec: by building, then
        dirs = [f"households/{building}/" for building in sorted({building for building, _ in new_on})]
    for path in gitio.tree_paths(ctx.archive.root, commit, *dirs) if dirs else []:  # one ls-tree for all
        place = HouseholdPath.of_record(path)
        if place is not None and (place.building, place.unit) in new_on:
            on_units.setdefault((place.building, place.unit), []).append(place)
    marked: set[str] | None = None
    for (building, unit), new in sorted(new_on.items()):
        others = [p for p in on_units.get((building, unit), []) if p.archive_no not in new]
        before = sorted(
            p.archive_no
            for p in others
            if (ctx.stored(f"{commit}:{p.record}", p.record) or {}).get("status") == "active"
        )
        if len(before) + len(new) < 2 or (merged and not before):
            continue
        marked = marks() if marked is None else marked
        unmarked = [n for n in new if n not in marked]
        first = [] if before else unmarked[:1]  # a unit's first active household needs no mark
        for number in unmarked[len(first) :]:
            where, beside = (
                f"{building}/{unit}",
                ", ".join(before + first) + (" (brought in by this merge)" if merged else ""),
            )
            flag(
                "unit",
                _(
                    "{archive_no}: a second active household on {where} beside {beside}, not marked Also-Active (P1)"
                ).format(archive_no=number, where=where, beside=beside),
            )


def _serials(ctx: History, blob: str) -> dict[str, int]:
    data = ctx.read(blob)
    try:
        parsed = yamlio.loads(data or b"", "registers/numbers.yaml") or {}
        return {str(k): int(v) for k, v in parsed.items()} if isinstance(parsed, dict) else {}
    except (UsageError, ValueError, TypeError, RecursionError):
        return {}


def _check_personal_data(path: str, data: bytes, flag: Callable[[str, str], None]) -> None:
    text = ARMOR.sub("", data.decode("utf-8", "replace"))
    if pii.PHONE.search(text):
        flag("personal-data", _("{path}: a phone number in clear").format(path=path))
    if pii.RESIDENT_ID.search(text):
        flag("personal-data", _("{path}: an ID number in clear").format(path=path))


def check_numbers(ctx: History, kept: list[gitio.CommitInfo], tip_id: str | None, run: Run) -> None:
    """P3: no two households share an archive number, in the tip and wherever branches merged.

    kept: the range's merges and its tip, as read.
    """
    checked = [c for c in kept if len(c.parents) > 1]
    if tip_id and not any(c.commit == tip_id for c in checked):
        checked.append(next((c for c in kept if c.commit == tip_id), None) or bare_info(tip_id))
    for info in checked:
        seen: dict[str, str] = {}
        for path in gitio.tree_paths(ctx.archive.root, info.commit, "households"):
            kind = rules.classify(path)
            if kind is None or kind.kind != "record" or kind.archive_no is None:
                continue
            if kind.archive_no in seen:
                run.findings.append(
                    Finding(
                        info.commit,
                        info.subject,
                        "numbers",
                        _("{archive_no} is used by two households ({first}, {second}) (P3)").format(
                            archive_no=kind.archive_no, first=seen[kind.archive_no], second=path
                        ),
                    )
                )
            seen[kind.archive_no] = path
