"""verify: is every commit in a range one archivectl's rules allow? (P7, P10, P12)

Each commit is judged against staff.yaml and archive.yaml as they stood in its
first parent, so a pull request cannot vouch for itself. One `git log` checks
every signature (against an allowed-signers file of every key staff.yaml ever
listed); which key was entitled is then decided here from the parent's staff.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from archivectl import clock, gitio, policy, records, yamlio
from archivectl.archive import ARCHIVE_NO, Archive, Settings
from archivectl.errors import UsageError
from archivectl.schema import HouseholdSchema
from archivectl.staff import Staff, fingerprint

SKEW = policy.CLOCK_SKEW

# Where archivectl writes; anything else in a commit is outside its rules.
LAYOUT = [
    re.compile(p)
    for p in (
        r"^archive\.yaml$",
        r"^staff\.yaml$",
        r"^schemas/[a-z]+\.schema\.json$",
        r"^households/[A-Z0-9][A-Z0-9-]{0,15}/[A-Za-z0-9][A-Za-z0-9-]{0,15}/(HO|NH|SP)-[0-9]{4}-[0-9]{5}/record\.yaml$",
        r"^households/[A-Z0-9][A-Z0-9-]{0,15}/[A-Za-z0-9][A-Za-z0-9-]{0,15}/(HO|NH|SP)-[0-9]{4}-[0-9]{5}/"
        r"attachments/[a-z-]+-[0-9]{4}-[0-9]{2}-[0-9]{2}-[0-9]+(\.[a-z0-9]{1,10})?\.age$",
        r"^registers/numbers\.yaml$",
        r"^registers/(access|lending|transfer|destruction|grants|keys)/[0-9]{4}-[0-9]{2}\.yaml$",
        r"^\.gitattributes$",
        r"^\.gitignore$",
        r"^CODEOWNERS$",
        r"^\.pre-commit-config\.yaml$",
    )
]
HOUSEHOLD_PATH = re.compile(r"^households/[^/]+/[^/]+/((HO|NH|SP)-[0-9]{4}-[0-9]{5})/")
PHONE = re.compile(r"(?<![0-9A-Za-z+/])1[3-9][0-9]{9}(?![0-9A-Za-z+/])")
RESIDENT_ID = re.compile(r"(?<![0-9A-Za-z+/])[1-9][0-9]{16}[0-9Xx](?![0-9A-Za-z+/])")
ARMOR = re.compile(r"-----BEGIN AGE ENCRYPTED FILE-----.*?-----END AGE ENCRYPTED FILE-----", re.S)
APPROVAL_FREE_SUBJECTS = ("register reveal of ", "register open of ", "return ")


@dataclass(frozen=True)
class Finding:
    """One broken rule: which commit, which rule, what exactly."""

    commit: str
    subject: str
    rule: str
    message: str


class _Context:
    """Per-range caches: staff, settings and schema as they stood at a given commit."""

    def __init__(self, archive: Archive, blobs: gitio.BlobReader):
        self.archive = archive
        self.blobs = blobs
        self._parsed: dict[tuple[str, bytes], Any] = {}

    def _load(self, kind: str, spec: str, parse: Callable[[bytes], Any]) -> Any:
        data = self.blobs.read(spec)
        if data is None:
            return None
        key = (kind, data)
        if key not in self._parsed:
            try:
                self._parsed[key] = parse(data)
            except (UsageError, ValueError) as exc:
                self._parsed[key] = exc
        return self._parsed[key]

    def staff_at(self, commit: str) -> Staff | Exception | None:
        return self._load("staff", f"{commit}:staff.yaml", lambda d: Staff.from_yaml(yamlio.loads(d), "staff.yaml"))

    def settings_at(self, commit: str) -> Settings:
        found = self._load("settings", f"{commit}:archive.yaml", lambda d: Settings.from_yaml(yamlio.loads(d)))
        return found if isinstance(found, Settings) else Settings(name="?")

    def schema_at(self, commit: str) -> HouseholdSchema | None:
        found = self._load(
            "schema", f"{commit}:schemas/household.schema.json", lambda d: HouseholdSchema(json.loads(d))
        )
        return found if isinstance(found, HouseholdSchema) else self.archive.household_schema


def verify(
    archive: Archive, range_spec: str | None = None, progress: Callable[[int, int], None] | None = None
) -> dict[str, Any]:
    """Check every commit in range_spec (default: all of HEAD); returns a JSON-ready report."""
    revs = _revs(range_spec)
    with tempfile.TemporaryDirectory(prefix="archivectl-verify-") as tmp:
        signers = Path(tmp) / "allowed_signers"
        signers.write_text(_union_signers(archive))
        commits = gitio.commits_for_verify(archive.root, revs, signers)
    dates = {c.commit: c.committer_date for c in commits}
    findings: list[Finding] = []
    now = clock.now()
    with gitio.BlobReader(archive.root) as blobs:
        ctx = _Context(archive, blobs)
        for i, info in enumerate(commits):
            findings += check_commit(ctx, info, dates, now)
            if progress:
                progress(i + 1, len(commits))
    if range_spec is None:
        findings += keystore_findings(archive)
    return {
        "range": range_spec or "HEAD",
        "commits": len(commits),
        "ok": not findings,
        "findings": [asdict(f) for f in findings],
    }


def _revs(range_spec: str | None) -> list[str]:
    if range_spec is None:
        return ["HEAD"]
    if not re.match(r"^[A-Za-z0-9_./~^@{}-]+(\.\.[A-Za-z0-9_./~^@{}-]+)?$", range_spec) or range_spec.startswith("-"):
        raise UsageError(f"--range {range_spec!r} is not a revision range like origin/main..HEAD")
    return [range_spec]


def _union_signers(archive: Archive) -> str:
    """Every key any staff.yaml version listed, so one git log can check every signature."""
    lines = {}
    with gitio.BlobReader(archive.root) as blobs:
        specs = gitio.staff_blobs_ever(archive.root)
        for spec in specs:
            data = blobs.read(spec)
            try:
                staff = Staff.from_yaml(yamlio.loads(data or b""), "staff.yaml")
            except UsageError:
                continue
            for m in staff.members:
                lines.setdefault(m.key_id, f'{m.id} namespaces="git" {m.key_id}')
    return "\n".join(lines.values()) + "\n"


def check_commit(ctx: _Context, info: gitio.CommitInfo, dates: dict[str, str], now: dt.datetime) -> list[Finding]:
    """Every rule for one commit."""
    found: list[Finding] = []

    def flag(rule: str, message: str) -> None:
        found.append(Finding(info.commit, info.subject, rule, message))

    _check_dates(ctx, info, dates, now, flag)
    if len(info.parents) > 1:
        merged = gitio.merge_tree(ctx.archive.root, info.parents[0], info.parents[1])
        if merged is not None and merged == gitio.tree_of(ctx.archive.root, info.commit):
            return found  # a clean merge adds nothing of its own; its parents are checked on their own
    parent = info.parents[0] if info.parents else None
    staff = ctx.staff_at(parent or info.commit)
    if not isinstance(staff, Staff):
        flag("staff", f"staff.yaml {'of its parent ' if parent else ''}is missing or invalid")
        return found
    member = _signer(info, staff, flag)
    _check_trailers(ctx, info, staff, member, parent, flag)
    _check_changes(ctx, info, parent, flag)
    return found


def _signer(info: gitio.CommitInfo, staff: Staff, flag: Callable[[str, str], None]) -> Any:
    if info.signature == "N":
        flag("signature", "commit is not signed")
        return None
    if info.signature not in ("G", "U"):
        flag("signature", f"signature does not verify (git says {info.signature})")
        return None
    member = next((m for m in staff.members if fingerprint(m.key) == info.fingerprint), None)
    if member is None:
        flag("signature", "signed by a key that staff.yaml of its parent does not list")
        return None
    if not member.active:
        flag("signature", f"signed by {member.id}, who is no longer active in staff.yaml of its parent")
    return member


def _check_trailers(
    ctx: _Context,
    info: gitio.CommitInfo,
    staff: Staff,
    member: Any,
    parent: str | None,
    flag: Callable[[str, str], None],
) -> None:
    trailers = info.trailers
    for key, count in info.trailer_counts.items():
        if count > 1 and key in ("Reason", "Approved-by", "Acted-by", "Archive-No"):
            flag("trailers", f"trailer {key} appears {count} times")
    if policy.reason_problem(trailers.get("Reason")):
        flag("trailers", "Reason trailer is missing")
    acted = trailers.get("Acted-by")
    if not acted:
        flag("trailers", "Acted-by trailer is missing")
    elif member is not None and acted != member.id:
        flag("signer", f"signed by {member.id} but Acted-by says {acted}")
    numbers = sorted({m.group(1) for c in info.changes if (m := HOUSEHOLD_PATH.match(c.path))})
    named = {n.strip() for n in trailers.get("Archive-No", "").split(",") if n.strip()}
    if numbers and not set(numbers) <= named:
        flag("trailers", f"Archive-No trailer must name {', '.join(numbers)}")
    if any(not ARCHIVE_NO.match(n) for n in named):
        flag("trailers", "Archive-No trailer is not an archive number")
    if member is None:
        return
    if parent is None:  # the founding commit: a gm approves their own
        if member.role != "gm" or trailers.get("Approved-by") != member.id:
            flag("approver", "the founding commit must be signed and approved by a gm")
        return
    if _approval_free(info):
        return
    settings = ctx.settings_at(parent)
    roles = settings.rules.grant_approver_roles if info.subject.startswith("grant ") else None
    problem = policy.approval_problem(member, trailers.get("Approved-by"), staff, settings.rules, roles)
    if problem:
        flag(
            "approver",
            problem.replace(
                "--approver is required: name the manager who approved this change", "Approved-by trailer is missing"
            ),
        )


def _approval_free(info: gitio.CommitInfo) -> bool:
    """Look-ups (reveal, open) and returns are registered without an approver."""
    if not info.subject.startswith(APPROVAL_FREE_SUBJECTS):
        return False
    return all(c.path.startswith(("registers/access/", "registers/lending/")) for c in info.changes)


def _check_dates(
    ctx: _Context,
    info: gitio.CommitInfo,
    dates: dict[str, str],
    now: dt.datetime,
    flag: Callable[[str, str], None],
) -> None:
    when = dt.datetime.fromisoformat(info.committer_date)
    if when > now + SKEW:
        flag("dates", f"dated {info.committer_date}, in the future")
    for parent in info.parents:
        parent_date = dates.get(parent) or gitio.committer_date(ctx.archive.root, parent)
        if when < dt.datetime.fromisoformat(parent_date) - SKEW:
            flag("dates", f"dated {info.committer_date}, before its parent ({parent_date})")


def _check_changes(ctx: _Context, info: gitio.CommitInfo, parent: str | None, flag: Callable[[str, str], None]) -> None:
    schema = ctx.schema_at(info.commit)
    rekeying = info.subject.startswith(("purge ", "recipients sync"))
    for change in info.changes:
        path = change.path
        if not any(p.match(path) for p in LAYOUT):
            flag("layout", f"{path}: outside archivectl's layout")
            continue
        if path.endswith(".age"):
            if change.status != "A" and not rekeying:
                flag("attachment", f"{path}: an original was {'deleted' if change.status == 'D' else 'altered'} (P6)")
            continue
        if change.status == "D":
            if path.startswith("registers/") and path != "registers/numbers.yaml":
                flag("register", f"{path}: a register was deleted")
            elif path.endswith("record.yaml") and not info.subject.startswith("purge "):
                flag("record", f"{path}: a record was deleted outside purge")
            continue
        new = ctx.blobs.read(change.new_blob) or b""
        _check_personal_data(path, new, flag)
        if path.startswith("registers/") and path != "registers/numbers.yaml" and change.status == "M":
            old = ctx.blobs.read(change.old_blob) or b""
            if not new.startswith(old):
                flag("register", f"{path}: entries were changed or removed (registers are append-only)")
        if path.endswith("/record.yaml") and schema is not None:
            from archivectl.ops.validate import check_record_text

            for problem in check_record_text(schema, path, new):
                flag("record", f"{path}: {problem}")
            _check_tombstone_date(info, new, flag, path)
            if change.status == "M" and not rekeying:
                _check_recipient_kept(path, ctx.blobs.read(change.old_blob) or b"", new, flag)


def _check_recipient_kept(path: str, old: bytes, new: bytes, flag: Callable[[str, str], None]) -> None:
    """A household's recipient (what scans are encrypted to) changes only in a rotation."""
    try:
        before = records.load_stored(old, path).get("recipient")
        after = records.load_stored(new, path).get("recipient")
    except UsageError:
        return
    if before != after:
        flag("recipient", f"{path}: the record's recipient changed outside `recipients sync --rotate`")


def _check_personal_data(path: str, data: bytes, flag: Callable[[str, str], None]) -> None:
    text = ARMOR.sub("", data.decode("utf-8", "replace"))
    if PHONE.search(text):
        flag("personal-data", f"{path}: a phone number in clear")
    if RESIDENT_ID.search(text):
        flag("personal-data", f"{path}: an ID number in clear")


def _check_tombstone_date(info: gitio.CommitInfo, data: bytes, flag: Callable[[str, str], None], path: str) -> None:
    try:
        stored = records.load_stored(data, path)
        tomb = stored.get("tombstone")
        if not isinstance(tomb, dict) or not info.subject.startswith("tombstone "):
            return
        made = dt.datetime.fromisoformat(info.committer_date).date()
        if abs(dt.date.fromisoformat(str(tomb.get("date"))) - made) > policy.YAML_COMMIT_TOLERANCE:
            flag("dates", f"{path}: tombstone date {tomb.get('date')} is more than a day off its commit ({made})")
    except (UsageError, ValueError):
        return


def keystore_findings(archive: Archive) -> list[Finding]:
    """Households whose record key is missing, and keys whose household is gone (e.g. purged)."""
    if not archive.keystore.path.is_dir():
        return []
    households = {p.split("/")[3] for _, p in archive.record_paths()}
    keys = set(archive.keystore.archive_numbers())
    found = [Finding("-", "keystore", "keystore", f"{n}: record key is missing") for n in sorted(households - keys)]
    found += [
        Finding("-", "keystore", "keystore", f"{n}: a record key remains for a household that is not in the archive")
        for n in sorted(keys - households)
    ]
    return found
