"""verify: is every commit in a range one archivectl's rules allow? (P7, P10, P12, P13)

Each commit is judged by its `Action:` against one table (archivectl/rules.py):
which paths it may change and how, whose signature and which approval it needs,
what its register entries must say. Rules read what a commit changes, its
trailers and its signatures; a subject is only for people.

staff.yaml, archive.yaml and schemas/ are taken as they stand at the range's
start (the main it goes into) or, for the whole history, in each commit's first
parent, so a pull request cannot vouch for itself. A change that needs approval
is accepted only with an approval commit after it, signed by the approver it names.
"""

from __future__ import annotations

import datetime as dt
import re
import tempfile
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from archivectl import clock, gitio, pii, policy, records, rules, yamlio
from archivectl.archive import Archive
from archivectl.errors import ArchiveError, UsageError
from archivectl.layout import ARCHIVE_NO, HouseholdPath
from archivectl.schema import HouseholdSchema, parse_json
from archivectl.settings import Settings
from archivectl.staff import Staff, StaffMember, allowed_signers, fingerprint
from archivectl.streams import batches

SKEW = policy.CLOCK_SKEW
ARMOR = re.compile(r"-----BEGIN AGE ENCRYPTED FILE-----.*?-----END AGE ENCRYPTED FILE-----", re.S)
COMMIT_ID = re.compile(r"[0-9a-f]{40}")
SINGLE_TRAILERS = ("Action", "Reason", "Approved-by", "Acted-by", "Archive-No")
SYMLINK_MODE = "120000"
PLAIN_FILE_MODES = ("100644", "100755")


@dataclass(frozen=True)
class Finding:
    """One broken rule: which commit, which rule, what exactly."""

    commit: str
    subject: str
    rule: str
    message: str


@dataclass
class _Request:
    """A commit that needs a signed approval, and who it asks."""

    info: gitio.CommitInfo
    action: str
    actor: StaffMember
    approver: str
    roles: tuple[str, ...]
    rules: policy.ApprovalRules


@dataclass
class _Approval:
    """An approval commit: who signed it, what it names, the staff it is judged by."""

    info: gitio.CommitInfo
    signer: StaffMember | None
    names: tuple[str, ...]
    staff: Staff


@dataclass
class _Run:
    """What one verify run gathers across commits.

    Changes that need approval wait in `requests` until an approval names them;
    an approval is matched as soon as it is read (what it approves comes before it).
    """

    findings: list[Finding] = field(default_factory=list)
    approval_findings: list[Finding] = field(default_factory=list)
    requests: dict[str, _Request] = field(default_factory=dict)
    approved: set[str] = field(default_factory=set)
    approvers: set[str] = field(default_factory=set)  # who signed a valid-signer approval anywhere in the range
    approvals: list[_Approval] = field(default_factory=list)  # read, not yet matched


# Files whose version judges a commit (as they stand in its first parent): tracked by blob id per commit.
_GOVERNANCE = ("staff.yaml", "archive.yaml", "schemas/household.schema.json")
_CHUNK = 500  # commits read (objects, blobs, signatures) in one batch
_PARSED_RECORDS = 1024  # parsed records kept by blob id (a miss costs a parse: the batch has read the blob)
_VALID_RECORDS = 65536  # record versions known valid, for checking only what an edit changes


class _Context:
    """The repository, the governance state each commit is judged by, and parse caches.

    Commits are read in batches: their commit objects (for the signatures) and
    every blob their checks read come through one pipelined `git cat-file`
    request per batch. What is kept across batches is small per commit (parents,
    date, the blob ids of the governance files), so a long history is never held whole.
    """

    def __init__(self, archive: Archive, blobs: gitio.BlobReader, base: str | None, allowed_root: str | None):
        self.archive = archive
        self.blobs = blobs
        self.base = base  # range mode: every commit judged against the range's base
        self.allowed_root = allowed_root  # whole history: the one founding commit
        self._parsed: dict[tuple[str, str], Any] = {}  # governance files by blob id (few)
        self._records: OrderedDict[str, Any] = OrderedDict()  # parsed records by blob id (or rev:path), oldest first
        self._valid: dict[str, HouseholdSchema] = {}  # record blob -> the schema that found it valid, oldest first
        self._batch: dict[str, bytes | None] = {}  # this batch's objects by id
        self.dates: dict[str, str] = {}  # commit -> committer date, for its children
        self.parents: dict[str, tuple[str, ...]] = {}
        self._governance: dict[str, tuple[str | None, ...]] = {}  # commit -> blob ids of _GOVERNANCE there
        self._signers: dict[str, tuple[Any, str]] = {}  # staff.yaml version -> (signature checker, allowed signers)
        self.object_format = gitio.out(archive.root, "rev-parse", "--show-object-format")

    def judged_by(self, info: gitio.CommitInfo) -> str:
        """The commit whose staff.yaml, archive.yaml and schemas/ judge info."""
        if self.base:
            return self.base
        return info.parents[0] if info.parents else info.commit

    # -- reading

    def fetch(self, infos: list[gitio.CommitInfo]) -> None:
        """Read one batch: each commit's object (for its signature) and the blobs its checks read."""
        wanted = [i.commit for i in infos]
        for info in infos:
            for change in info.changes:
                kind = rules.classify(change.path)
                if change.status != "D" and not change.path.endswith(".age"):
                    wanted.append(change.new_blob)
                if change.status != "A" and kind is not None and kind.kind in ("record", "register", "numbers"):
                    wanted.append(change.old_blob)
        wanted = list(dict.fromkeys(wanted))
        self._batch = dict(zip(wanted, self.blobs.read_many(wanted), strict=True))

    def signed(self, info: gitio.CommitInfo) -> gitio.CommitInfo:
        """info with git's verdict on its signature (%G?, %GF, %GS) against the staff.yaml it is judged by.

        The allowed signers are what staff.allowed_signers makes of that staff.yaml
        (namespace git; a departed member's key valid before their departure), checked
        in process by archivectl/sshsig.py, which reproduces git's verdicts exactly;
        what it cannot reproduce ('E') is asked of git itself.
        """
        from archivectl import sshsig

        raw = self._batch.pop(info.commit, None)
        if raw is None:
            raise ArchiveError(f"commit {info.commit} is not in the repository")
        judge = self.judged_by(info)
        key = self._at(judge, "staff.yaml")[0]
        if key not in self._signers:
            staff = self.staff_at(judge)
            text = allowed_signers(staff) if isinstance(staff, Staff) else ""
            checker = sshsig.SignatureChecker(sshsig.parse_allowed_signers(text), self.object_format)
            self._signers[key] = (checker, text)
        checker, text = self._signers[key]
        verdict = checker.verdict(raw)
        found = (verdict.status, verdict.fingerprint or "", verdict.principal or "")
        if verdict.status == sshsig.CANNOT_CHECK:
            with tempfile.TemporaryDirectory(prefix="archivectl-verify-") as tmp:
                signers = Path(tmp) / "allowed_signers"
                signers.write_text(text)
                found = gitio.signature_verdicts(self.archive.root, [info.commit], signers)[info.commit]
        return gitio.CommitInfo(
            info.commit, info.parents, info.committer_date, *found, info.subject, info.trailers, info.changes
        )

    def read(self, blob: str) -> bytes | None:
        """A blob of this batch (or any object, asked of git)."""
        if blob in self._batch:
            return self._batch[blob]
        return self.blobs.read(blob)

    def remember(self, info: gitio.CommitInfo) -> None:
        """Keep what later commits need of this one: its date, parents and governance files."""
        self.dates[info.commit] = info.committer_date
        self.parents[info.commit] = info.parents
        before = self._governance.get(info.parents[0]) if info.parents else (None,) * len(_GOVERNANCE)
        if before is None:
            return  # its first parent is outside the range: read by path (_at)
        after = list(before)
        for change in info.changes:
            if change.path in _GOVERNANCE:
                after[_GOVERNANCE.index(change.path)] = None if change.status == "D" else change.new_blob
        self._governance[info.commit] = before if after == list(before) else tuple(after)

    def _at(self, commit: str, path: str) -> tuple[str, str]:
        """(cache key, spec to read) for a governance file as it stands in commit."""
        known = self._governance.get(commit)
        if known is not None:
            blob = known[_GOVERNANCE.index(path)]
            return (blob or "-", blob or "")
        return (f"{commit}:{path}", f"{commit}:{path}")

    def _load(self, kind: str, commit: str, path: str, parse: Callable[[bytes], Any]) -> Any:
        key, spec = self._at(commit, path)
        if (kind, key) not in self._parsed:
            data = self.read(spec) if spec else None
            self._parsed[(kind, key)] = None if data is None else _parse_or_error(parse, data)
        return self._parsed[(kind, key)]

    def staff_at(self, commit: str) -> Staff | Exception | None:
        return self._load("staff", commit, "staff.yaml", lambda d: Staff.from_yaml(yamlio.loads(d), "staff.yaml"))

    def settings_at(self, commit: str) -> Settings:
        found = self._load("settings", commit, "archive.yaml", lambda d: Settings.from_yaml(yamlio.loads(d)))
        return found if isinstance(found, Settings) else Settings(name="?")

    def schema_at(self, commit: str) -> HouseholdSchema | None:
        found = self._load(
            "schema",
            commit,
            "schemas/household.schema.json",
            lambda d: HouseholdSchema(parse_json(d, "schemas/household.schema.json")),
        )
        return found if isinstance(found, HouseholdSchema) else None

    def stored(self, blob: str, path: str) -> dict | None:
        """A stored record from a blob id (or rev:path), or None if it does not parse."""
        found = self._records.get(blob)
        if found is None:
            data = self.read(blob)
            found = self._records[blob] = (
                None if data is None else _parse_or_error(lambda d: records.load_stored(d, path), data)
            )
            if len(self._records) > _PARSED_RECORDS:
                self._records.popitem(last=False)
        else:
            self._records.move_to_end(blob)
        return found if isinstance(found, dict) else None

    def record_problems(self, schema: HouseholdSchema, change: gitio.Change, data: bytes) -> list[str]:
        """validate.check_record_text for a changed record, on the parse the record rules share.

        When the version it replaces was found valid under the same schema in this run,
        the schema checks only the fields that changed (HouseholdSchema.validate_stored).
        """
        from archivectl.ops.validate import check_record_text, check_stored_record

        stored = self.stored(change.new_blob, change.path)
        if stored is None:
            return check_record_text(schema, change.path, data)  # its own words for what does not parse
        valid_before = None
        if change.status == "M" and self._valid.get(change.old_blob) is schema:
            valid_before = self.stored(change.old_blob, change.path)
        problems = check_stored_record(schema, change.path, stored, valid_before)
        if not problems:
            self._valid[change.new_blob] = schema
            if len(self._valid) > _VALID_RECORDS:
                del self._valid[next(iter(self._valid))]
        return problems


def _parse_or_error(parse: Callable[[bytes], Any], data: bytes) -> Any:
    try:
        return parse(data)
    except (UsageError, ValueError, RecursionError) as exc:
        return exc


# ---------------------------------------------------------------------- entry points


def verify(
    archive: Archive,
    range_spec: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    allow_pending: bool = False,
    keystore: bool = True,
) -> dict[str, Any]:
    """Check every commit in range_spec (default: all of HEAD); returns a JSON-ready report.

    allow_pending: changes still awaiting their approval are listed under `pending`
    instead of failing (a proposal branch may be pushed before it is approved).
    keystore: for the whole history, also compare the keystore with the households.
    """
    revs, base, tip = _revs(archive, range_spec)
    allowed_root = None if base or (range_spec and ".." in range_spec) else _founding_commit(archive, tip)
    run = _Run()
    now = clock.now()
    total = gitio.count_commits(archive.root, revs) if progress else 0
    tip_id = gitio.rev_parse(archive.root, tip)
    kept: list[gitio.CommitInfo] = []  # merges and the tip: _check_numbers looks at their trees
    count = 0
    with gitio.BlobReader(archive.root) as blobs:
        ctx = _Context(archive, blobs, base, allowed_root)
        for batch in batches(gitio.iter_commits_for_verify(archive.root, revs), _CHUNK):
            ctx.fetch(batch)
            for info in batch:
                ctx.remember(info)
                info = ctx.signed(info)
                check_commit(ctx, info, ctx.dates, now, run)
                _match_approvals(ctx, run)
                if len(info.parents) > 1 or info.commit == tip_id:
                    kept.append(_without_changes(info))
                count += 1
                if progress:
                    progress(count, total)
        _check_numbers(ctx, kept, tip_id, run)
    run.findings += run.approval_findings
    pending = [r for r in run.requests.values() if r.info.commit not in run.approved]
    if allow_pending:
        waiting = pending
    else:
        waiting = []
        run.findings += [
            Finding(r.info.commit, r.info.subject, "approval", _awaiting(r, run.approvers)) for r in pending
        ]
    if keystore and range_spec is None and not archive.bare:
        run.findings += keystore_findings(archive)
    return {
        "range": range_spec or "HEAD",
        "commits": count,
        "ok": not run.findings,
        "findings": [{**asdict(f), "subject": pii.shown(f.subject)} for f in run.findings],
        "pending": [_pending_row(r) for r in waiting],
    }


def pending(archive: Archive, range_spec: str | None) -> list[dict[str, Any]]:
    """Changes in a range that await a signed approval: commit, action, who acted, whose approval."""
    return verify(archive, range_spec, allow_pending=True, keystore=False)["pending"]


def _pending_row(r: _Request) -> dict[str, Any]:
    return {
        "commit": r.info.commit,
        "action": r.action,
        "acted_by": r.actor.id,
        "awaiting": r.approver,
        "archive_no": r.info.trailer("Archive-No") or "",
        "reason": pii.shown(r.info.trailer("Reason") or ""),
        "subject": pii.shown(r.info.subject),
    }


def _revs(archive: Archive, range_spec: str | None) -> tuple[list[str], str | None, str]:
    """(git revs, the range's base commit or None, the tip)."""
    if range_spec is None:
        return ["HEAD"], None, "HEAD"
    if not re.fullmatch(r"[A-Za-z0-9_./~^@{}-]+(\.\.[A-Za-z0-9_./~^@{}-]+)?", range_spec) or range_spec.startswith("-"):
        raise UsageError(f"--range {range_spec!r} is not a revision range like origin/main..HEAD")
    if ".." not in range_spec:
        if gitio.rev_parse(archive.root, range_spec) is None:
            raise UsageError(f"--range {range_spec}: no such commit")
        return [range_spec], None, range_spec
    start, end = range_spec.split("..", 1)
    start_id, end_id = gitio.rev_parse(archive.root, start or "HEAD"), gitio.rev_parse(archive.root, end or "HEAD")
    if start_id is None or end_id is None:
        raise UsageError(f"--range {range_spec}: no such commit")
    # Judged by the range's start (the main it will be merged into), as the server's pre-receive judges the
    # push: a branch made before a manager was deactivated there must not pass with that manager's approval.
    return [f"{start_id}..{end_id}"], start_id, end_id


def _founding_commit(archive: Archive, tip: str) -> str | None:
    line = gitio.first_parent_line(archive.root, tip)
    return line[-1] if line else None


# ---------------------------------------------------------------------- one commit


def check_commit(ctx: _Context, info: gitio.CommitInfo, dates: dict[str, str], now: dt.datetime, run: _Run) -> None:
    """Every rule for one commit; findings, approval requests and approvals go into run."""

    def flag(rule: str, message: str) -> None:
        run.findings.append(Finding(info.commit, info.subject, rule, message))

    _check_dates(ctx, info, dates, now, flag)
    # a commit message is signed history: no purge can shred what it says (P9, P14)
    message = "\n".join([info.subject] + [f"{k}: {v}" for k, values in info.trailers.items() for v in values])
    in_message = pii.personal_data_in(message)
    if in_message:
        flag("personal-data", f"the commit message holds {in_message}")
    if not info.parents and info.commit != ctx.allowed_root:
        flag("root", "a root commit inside the range: a history of its own cannot vouch for itself")
        return
    if len(info.parents) == 2:
        problems = _merge_problems(ctx, info)
        if problems == []:
            return  # a clean merge adds nothing of its own; its second parent's commits are judged one by one
        for problem in problems or []:  # why it is not clean; then it is judged like any commit
            flag("merge", problem)
    judge = ctx.judged_by(info)
    staff = ctx.staff_at(judge)
    if not isinstance(staff, Staff):
        flag("staff", "staff.yaml it is judged by is missing or invalid")
        return
    settings = ctx.settings_at(judge)
    action = info.trailer("Action")
    if action is None and settings.version < 2:
        action = rules.legacy_action(info.subject)
    rule = rules.TABLE.get(action or "")
    if rule is None:
        flag("action", f"Action trailer {'is missing' if not action else 'names no archivectl action'}")
    member = _signer(info, staff, flag)
    _check_trailers(info, member, flag)
    if not info.parents:
        _check_founding(info, member, action, flag)
    elif action == "init":
        flag("action", "only the founding commit is an init")
    _check_changes(ctx, info, rule, member, judge, flag)
    if rule is None or member is None or not info.parents:
        return
    if rule.name == "approve":
        names = info.trailers.get("Approves", ())
        if not names or any(not COMMIT_ID.fullmatch(n) for n in names):
            flag("trailers", "an approval names the full ids of the commits it approves (Approves:)")
        run.approvals.append(_Approval(info, member if member.active else None, names, staff))
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
                "--approver is required: name the manager who approved this change", "Approved-by trailer is missing"
            ),
        )
        return
    assert approver is not None
    if settings.version < 2:
        return  # version 1 archives took the typed Approved-by as the approval (rules.legacy_action)
    run.requests[info.commit] = _Request(_without_changes(info), rule.name, member, approver, roles, settings.rules)


def _merge_problems(ctx: _Context, info: gitio.CommitInfo) -> list[str] | None:
    """[] for a clean merge; else what is wrong with its merged records, or None when more than records differ.

    Clean: its tree is what git's own merge of its parents gives (git merge-tree, with
    archivectl's driver set aside, as on the server), except in records each holding what
    merging.merged_record_problem accepts: the field-level merge, or the first parent's record.
    """
    from archivectl.ops import merging
    from archivectl.ops.validate import check_record_text

    root, (first, second) = ctx.archive.root, info.parents
    proc = gitio.run(
        root,
        *("merge-tree", "--write-tree", "--name-only", "-z", first, second),
        env={merging.TEXT_MERGE_ENV: "1"},
        check=False,
    )
    if proc.returncode not in (0, 1):
        return None
    tree, *listed = proc.stdout.decode("utf-8", "replace").split("\0")
    conflicted = set(listed[: listed.index("")] if "" in listed else listed) if proc.returncode else set()
    if not conflicted and tree == gitio.tree_of(root, info.commit):
        return []
    listing = gitio.run(root, "diff-tree", "-r", "--no-renames", "--name-status", "-z", tree, info.commit).stdout
    fields = listing.decode("utf-8", "replace").split("\0")
    changes = {path: status for status, path in zip(fields[0:-1:2], fields[1::2], strict=True)}
    changes.update({path: changes.get(path, "M") for path in conflicted})
    kinds = {path: (rules.classify(path) or rules.PathKind("")) for path in changes}
    if any(status != "M" or kinds[path].kind != "record" for path, status in changes.items()):
        return None
    bases = gitio.out(root, "merge-base", "--all", first, second).split()
    schema = ctx.schema_at(ctx.judged_by(info))
    problems = []
    for path in sorted(changes):
        number = kinds[path].archive_no
        ours, theirs = ctx.stored(f"{first}:{path}", path), ctx.stored(f"{second}:{path}", path)
        result = ctx.stored(f"{info.commit}:{path}", path)
        if ours is None or theirs is None or result is None:
            problems.append(f"{number}: changes a record that is not a readable record on both sides")
            continue
        base = ctx.stored(f"{bases[0]}:{path}", path) if len(bases) == 1 else None
        building = path.split("/")[1]
        problem = merging.merged_record_problem(base, ours, theirs, result, _signer_reads(ctx, info, building))
        if problem:
            problems.append(f"{number}: {problem}")
        elif result != ours and schema is not None:
            problems += [
                f"{path}: {p}" for p in check_record_text(schema, path, ctx.blobs.read(f"{info.commit}:{path}") or b"")
            ]
    return problems


def _signer_reads(ctx: _Context, info: gitio.CommitInfo, building: str) -> bool:
    """True when info carries a good signature of an active staff member who reads the building (P7)."""
    from archivectl import registers
    from archivectl.staff import may_read

    staff = ctx.staff_at(ctx.judged_by(info))
    if info.signature not in ("G", "U") or not isinstance(staff, Staff):
        return False
    member = next((m for m in staff.members if fingerprint(m.key) == info.fingerprint), None)
    if member is None or not member.active:
        return False
    if may_read(member, building):
        return True
    day = info.committer_date[:10]
    grants = registers.active_grants_at(ctx.archive.root, ctx.judged_by(info), today=day) or []
    return any(g.get("staff") == member.id and g.get("building") == building for g in grants)


def _signer(info: gitio.CommitInfo, staff: Staff, flag: Callable[[str, str], None]) -> StaffMember | None:
    if info.signature == "N":
        flag("signature", "commit is not signed")
        return None
    if info.signature not in ("G", "U"):
        flag("signature", f"signature does not verify (git says {info.signature})")
        return None
    member = next((m for m in staff.members if fingerprint(m.key) == info.fingerprint), None)
    if member is None:
        flag("signature", "signed by a key that staff.yaml it is judged by does not list")
        return None
    if not member.active:
        flag("signature", f"signed by {member.id}, who is no longer active in staff.yaml it is judged by")
    return member


def _check_trailers(info: gitio.CommitInfo, member: StaffMember | None, flag: Callable[[str, str], None]) -> None:
    for key in SINGLE_TRAILERS:
        if len(info.trailers.get(key, ())) > 1:
            flag("trailers", f"trailer {key} appears {len(info.trailers[key])} times")
    reason = info.trailer("Reason") or ""
    if not reason.strip():
        flag("trailers", "Reason trailer is missing")
    elif policy.reason_problem(reason) and not pii.personal_data_in(reason):  # personal data: flagged once, above
        flag("trailers", f"Reason trailer: {policy.reason_problem(reason)}")
    acted = info.trailer("Acted-by")
    if not acted:
        flag("trailers", "Acted-by trailer is missing")
    elif member is not None and acted != member.id:
        flag("signer", f"signed by {member.id} but Acted-by says {acted}")


def _check_founding(
    info: gitio.CommitInfo, member: StaffMember | None, action: str | None, flag: Callable[[str, str], None]
) -> None:
    """The founding commit: an init, signed and approved by its founder (policy.founder_problem) of its staff.yaml."""
    if action != "init":
        flag("action", "the founding commit must be an init")
    if member is not None and (policy.founder_problem(member) or info.trailer("Approved-by") != member.id):
        flag("approver", f"the founding commit must be signed and approved by an active {policy.FOUNDER_ROLE}")


def _check_dates(
    ctx: _Context, info: gitio.CommitInfo, dates: dict[str, str], now: dt.datetime, flag: Callable[[str, str], None]
) -> None:
    when = dt.datetime.fromisoformat(info.committer_date)
    if when > now + SKEW:
        flag("dates", f"dated {info.committer_date}, in the future")
    for parent in info.parents:
        parent_date = dates.get(parent) or gitio.committer_date(ctx.archive.root, parent)
        if when < dt.datetime.fromisoformat(parent_date) - SKEW:
            flag("dates", f"dated {info.committer_date}, before its parent ({parent_date})")


# ---------------------------------------------------------------------- what a commit changes


def _check_changes(
    ctx: _Context,
    info: gitio.CommitInfo,
    rule: rules.ActionRule | None,
    member: StaffMember | None,
    judge: str,
    flag: Callable[[str, str], None],
) -> None:
    named = {n.strip() for n in (info.trailer("Archive-No") or "").split(",") if n.strip()}
    if any(not ARCHIVE_NO.fullmatch(n) for n in named):
        flag("trailers", "Archive-No trailer is not an archive number")
    schema = ctx.schema_at(judge)
    households: dict[str, dict[str, list[gitio.Change]]] = {}
    entries: dict[str, list[dict]] = {}
    for change in info.changes:
        path = change.path
        kind = rules.classify(path)
        if kind is None:
            flag("layout", f"{path}: outside archivectl's layout")
            continue
        if change.status != "D" and change.new_mode not in PLAIN_FILE_MODES:
            what = "a symbolic link" if change.new_mode == SYMLINK_MODE else f"not a file (git mode {change.new_mode})"
            flag("layout", f"{path}: {what}; the archive holds plain files only")
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
        flag("trailers", f"Archive-No trailer must name {', '.join(missing)}")
    if rule is None:
        return
    _check_registers(info, rule, member, named, entries, ctx.settings_at(judge).version < 2, flag)
    if rule.record == "purge":
        _check_destruction(households, entries.get("destruction", []), flag)
    if rule.record:
        for number, changed in sorted(households.items()):
            _check_household(ctx, info, rule, number, changed, flag)
    if rule.name in ("add", "import"):
        _check_new_numbers(ctx, info, households, flag)


def _flag_not_allowed(
    rule: rules.ActionRule, kind: rules.PathKind, change: gitio.Change, flag: Callable[[str, str], None]
) -> None:
    verb = {"A": "add", "M": "change", "D": "delete"}.get(change.status, "change")
    if kind.kind == "attachment" and change.status in "MD":
        flag("attachment", f"{change.path}: an original was {verb}d by {rule.name} (P6)")
    elif kind.kind == "register" and change.status == "D":
        flag("register", f"{change.path}: a register was deleted")
    elif kind.kind in rules.GOVERNANCE_KINDS:
        flag(
            "changes",
            f"{change.path}: {rule.name} may not {verb} it (staff, settings and schemas change only by their own "
            "actions, with the gm's approval)",
        )
    else:
        flag("changes", f"{change.path}: {rule.name} may not {verb} it")


def _event_entry(
    path: str, kind: rules.PathKind, change: gitio.Change, data: bytes, flag: Callable[[str, str], None]
) -> list[dict]:
    """The one entry of a register event file, which is written once and never changed."""
    if change.status != "A":
        flag("register", f"{path}: a register entry was changed (entries are written once)")
        return []
    try:
        entry = yamlio.loads(data, path)
    except (UsageError, RecursionError):
        flag("register", f"{path}: not a readable register entry")
        return []
    if not isinstance(entry, dict):
        flag("register", f"{path}: a register entry is a mapping")
        return []
    if entry.get("who") != kind.event_who or entry.get("action", kind.register) != kind.event_action:
        flag("register", f"{path}: the file name and the entry disagree on who or what")
    return [entry]


def _new_entries(path: str, old: bytes, new: bytes, flag: Callable[[str, str], None]) -> list[dict]:
    """The entries a change appends to a register (registers are append-only)."""
    if not new.startswith(old):
        flag("register", f"{path}: entries were changed or removed (registers are append-only)")
        return []
    try:
        before = yamlio.loads(old, path) if old else []
        after = yamlio.loads(new, path)
    except (UsageError, RecursionError):
        flag("register", f"{path}: not a readable register")
        return []
    if not isinstance(after, list) or not isinstance(before or [], list):
        flag("register", f"{path}: a register is a list of entries")
        return []
    added = after[len(before or []) :]
    if any(not isinstance(e, dict) for e in added):
        flag("register", f"{path}: every register entry is a mapping")
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
            flag("register", f"{rule.name} must append an entry to the {register} register")
    approver = info.trailer("Approved-by") if rule.approval else None
    for register, added in sorted(entries.items()):
        for entry in added:
            if member is not None and entry.get("who") != member.id:
                flag("register", f"{register} register entry says who={entry.get('who')} but {member.id} signed")
            action = entry.get("action", rule.name if legacy else None)
            if action is None:
                flag("register", f"{register} register entry does not say its action (the commit is a {rule.name})")
            elif action != rule.name:
                flag("register", f"{register} register entry is a {action}, the commit a {rule.name}")
            numbers = {n.strip() for n in str(entry.get("archive_no") or "").split(",") if n.strip()}
            for number in sorted(numbers - named):  # one, or several like the trailer (an approval's view)
                flag("register", f"{register} register entry names {number}, which the commit's Archive-No does not")
            if approver and "approved_by" in entry and entry.get("approved_by") != approver:
                flag("register", f"{register} register entry names approver {entry.get('approved_by')}, not {approver}")


def _check_destruction(
    households: dict[str, dict[str, list[gitio.Change]]], added: list[dict], flag: Callable[[str, str], None]
) -> None:
    """P14: a purge's destruction entries name exactly the households whose records it deletes.

    restore withholds every key the destruction register names: an entry for a live household would lose it.
    """
    removed = {n for n, c in households.items() if any(r.status == "D" for r in c.get("record", []))}
    listed = {str(e.get("archive_no")) for e in added}
    for number in sorted(listed - removed):
        flag("register", f"destruction register entry names {number}, which the commit does not purge")
    for number in sorted(removed - listed):
        flag("register", f"{number}: purged without an entry in the destruction register (P14)")


def _check_household(
    ctx: _Context,
    info: gitio.CommitInfo,
    rule: rules.ActionRule,
    number: str,
    changed: dict[str, list[gitio.Change]],
    flag: Callable[[str, str], None],
) -> None:
    """How the action may change one household's record (rules.record_change_problem)."""
    record = (changed.get("record") or [None])[0]
    if record is None:
        if rule.record not in ("attach", "rotate", "purge"):
            return
        flag("changes", f"{number}: {rule.name} changes the household's files but not its record")
        return
    old = ctx.stored(record.old_blob, record.path) if record.status != "A" else None
    new = ctx.stored(record.new_blob, record.path) if record.status != "D" else None
    if (record.status != "A" and old is None) or (record.status != "D" and new is None):
        return  # unreadable: flagged as an invalid record
    home = HouseholdPath.of(record.path).dir + "/"
    status = "M" if rule.record == "rotate" else "A"  # a rotation re-encrypts, everything else adds
    added = {c.path.removeprefix(home) for c in changed.get("attachment", []) if c.status == status}
    problem = rules.record_change_problem(rule.record or "", old, new, info.trailer("Approved-by"), added)
    if problem:
        flag("record", f"{number}: {rule.name} {problem}")
    if new is not None and str(new.get("archive_no")) != number:
        flag("record", f"{number}: the record's archive_no is not its directory's")
    if rule.name == "tombstone" and new is not None:
        _check_tombstone_date(info, new, number, flag)
    if rule.name == "purge" and old is not None:
        _check_purge(ctx, info, record, old, flag)


def _check_tombstone_date(info: gitio.CommitInfo, stored: dict, number: str, flag: Callable[[str, str], None]) -> None:
    tomb = stored.get("tombstone") or {}
    try:
        made = dt.datetime.fromisoformat(info.committer_date).date()
        if abs(dt.date.fromisoformat(str(tomb.get("date"))) - made) > policy.YAML_COMMIT_TOLERANCE:
            flag("dates", f"{number}: tombstone date {tomb.get('date')} is more than a day off its commit ({made})")
    except ValueError:
        flag("dates", f"{number}: the tombstone date is not a date")


def _check_purge(
    ctx: _Context,
    info: gitio.CommitInfo,
    record: gitio.Change,
    old: dict,
    flag: Callable[[str, str], None],
) -> None:
    """P13: a purge removes a household tombstoned retention_days before, by the main line's dates."""
    from archivectl.ops.lifecycle import tombstone_dates

    number = str(old.get("archive_no"))
    if old.get("status") != "tombstoned":
        flag("purge", f"{number}: purged without a tombstone (P13)")
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
        flag("purge", f"{number}: purged {verdict.days_left} days before its {days}-day retention ended (P13)")
    left = gitio.tree_paths(ctx.archive.root, info.commit, HouseholdPath.of(record.path).dir + "/")
    if left:
        flag("purge", f"{number}: a purge removes the whole household; {len(left)} files remain")


def _check_new_numbers(
    ctx: _Context,
    info: gitio.CommitInfo,
    households: dict[str, dict[str, list[gitio.Change]]],
    flag: Callable[[str, str], None],
) -> None:
    """P3: a new household's serial is above every one used before, numbers.yaml moves past it, none goes back.

    From format version 3 numbers are reserved in the keystore (two branches can
    not take one); what verify can see is that no two households share one,
    at the tip and at every merge (_check_numbers).
    """
    if ctx.settings_at(ctx.judged_by(info)).version >= 3:
        return
    numbers_change = next((c for c in info.changes if c.path == "registers/numbers.yaml"), None)
    before = _serials(ctx, numbers_change.old_blob) if numbers_change and numbers_change.status == "M" else {}
    after = _serials(ctx, numbers_change.new_blob) if numbers_change else before
    for series, serial in sorted(before.items()):
        if after.get(series, 0) < serial:
            flag("numbers", f"registers/numbers.yaml lowers {series} from {serial} to {after.get(series, 0)} (P3)")
    for number in sorted(households):
        code, year, serial = number.split("-")
        series = f"{code}-{year}"
        if int(serial) <= before.get(series, 0) or int(serial) > after.get(series, 0):
            flag("numbers", f"{number}: not the next number of its series in registers/numbers.yaml (P3)")


def _serials(ctx: _Context, blob: str) -> dict[str, int]:
    data = ctx.read(blob)
    try:
        parsed = yamlio.loads(data or b"", "registers/numbers.yaml") or {}
        return {str(k): int(v) for k, v in parsed.items()} if isinstance(parsed, dict) else {}
    except (UsageError, ValueError, TypeError, RecursionError):
        return {}


def _check_personal_data(path: str, data: bytes, flag: Callable[[str, str], None]) -> None:
    text = ARMOR.sub("", data.decode("utf-8", "replace"))
    if pii.PHONE.search(text):
        flag("personal-data", f"{path}: a phone number in clear")
    if pii.RESIDENT_ID.search(text):
        flag("personal-data", f"{path}: an ID number in clear")


# ---------------------------------------------------------------------- across commits


def _match_approvals(ctx: _Context, run: _Run) -> None:
    """Pair each approval just read with the changes it names (all before it); a valid pairing approves them."""
    for approval in run.approvals:
        if approval.signer is not None:
            run.approvers.add(approval.signer.id)
        reachable = _ancestors(ctx, ctx.parents, approval.info.commit, set(approval.names))
        for name in approval.names:
            problem = None
            request = run.requests.get(name)
            if name not in reachable:
                problem = f"approves {name[:12]}, which is not in its history"
            elif approval.signer is None:
                problem = "signed by someone who may not approve"
            elif request is not None:
                if approval.signer.id != request.approver:
                    problem = f"approves {name[:12]}, which asks {request.approver}, not {approval.signer.id}"
                else:
                    problem = policy.approval_problem(
                        request.actor, approval.signer.id, approval.staff, request.rules, request.roles
                    )
            if problem:
                run.approval_findings.append(Finding(approval.info.commit, approval.info.subject, "approval", problem))
            elif request is not None:
                run.approved.add(name)
                request.info = _bare_info(name)  # never shown as pending again: keep only who asks whom
    run.approvals.clear()


def _ancestors(ctx: _Context, parents: dict[str, tuple[str, ...]], start: str, wanted: set[str]) -> set[str]:
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


def _awaiting(request: _Request, approvers: set[str]) -> str:
    if request.approver in approvers:
        return f"awaiting approval by {request.approver} (made after, or not named by, their approval)"
    return f"awaiting approval by {request.approver}"


def _check_numbers(ctx: _Context, kept: list[gitio.CommitInfo], tip_id: str | None, run: _Run) -> None:
    """P3: no two households share an archive number, in the tip and wherever branches merged.

    kept: the range's merges and its tip, as read.
    """
    checked = [c for c in kept if len(c.parents) > 1]
    if tip_id and not any(c.commit == tip_id for c in checked):
        checked.append(next((c for c in kept if c.commit == tip_id), None) or _bare_info(tip_id))
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
                        f"{kind.archive_no} is used by two households ({seen[kind.archive_no]}, {path}) (P3)",
                    )
                )
            seen[kind.archive_no] = path


def _without_changes(info: gitio.CommitInfo) -> gitio.CommitInfo:
    """What is kept of a commit after it was checked (not what it changed)."""
    return gitio.CommitInfo(
        info.commit, info.parents, info.committer_date, info.signature, info.fingerprint, info.principal,
        info.subject, info.trailers, (),
    )  # fmt: skip


def _bare_info(commit: str) -> gitio.CommitInfo:
    return gitio.CommitInfo(commit, (), "", "", "", "", "", {}, ())


def keystore_findings(archive: Archive) -> list[Finding]:
    """What `keys fsck` finds wrong with the keystore against main (nothing if it cannot be reached from here)."""
    from archivectl.ops.keys import fsck

    if archive.keystore.path is not None and not archive.keystore.path.is_dir():
        return []
    try:
        rows = fsck(archive)
    except ArchiveError:
        return []  # an auditor's desk may not reach the keystore; `keys fsck` where it can
    return [Finding("-", "keystore", "keystore", f"{r['archive_no']}: {r['problem']}") for r in rows if "problem" in r]
