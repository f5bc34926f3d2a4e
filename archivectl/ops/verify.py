"""verify and pending: the judge's findings as a command reports them (P7, P10, P12, P13).

The judging itself (every rule, every approval) is archivectl/judge/; this adds
what only a command on a desk can add (the keystore compared with main; with
--open, a reader's check of the sealed blocks against their fingerprints) and
turns the judgement into a JSON-ready report. reader_check() is built here, the
lowest command module, so that review and approve use the very same Reader.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from archivectl import gitio, judge, pii, records, rules, sealcheck
from archivectl.archive import Archive
from archivectl.errors import ArchiveError, UsageError
from archivectl.i18n import _
from archivectl.judge import Finding
from archivectl.judge.approvals import pending_row
from archivectl.ops.common import identity_for, open_key, readers
from archivectl.ops.keys import fsck
from archivectl.screen import inert


def verify(
    archive: Archive,
    range_spec: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    allow_pending: bool = False,
    keystore: bool = True,
    reader: sealcheck.Reader | None = None,
) -> dict[str, Any]:
    """Check every commit in range_spec (default: all of HEAD); returns a JSON-ready report.

    allow_pending: changes still awaiting their approval are listed under `pending`
    instead of failing (a proposal branch may be pushed before it is approved).
    keystore: for the whole history, also compare the keystore with the households.
    reader (reader_check(), verify --open): every record version the range writes is opened in memory
    and checked against its fingerprints; a mismatch is a finding, what could not be opened is listed
    under `opened` (a reader's verify says what it checked; without it, nothing about sealed blocks).
    """
    judged = judge.judge(archive, range_spec, progress, allow_pending)
    findings = list(judged.findings)
    if keystore and range_spec is None and not archive.bare:
        findings += keystore_findings(archive)
    opened: dict[str, Any] | None = None
    if reader is not None:
        sealed_findings, unchecked = sealed_block_findings(archive, range_spec, reader)
        findings += sealed_findings
        opened = {"checked": reader.checked, "unchecked": unchecked}
    report = {
        "range": judged.range,
        "commits": judged.commits,
        "ok": not findings,
        "findings": [{**asdict(f), "subject": pii.shown(f.subject)} for f in findings],
        "pending": [pending_row(r) for r in judged.pending],
    }
    if opened is not None:
        report["opened"] = opened
    return report


def sealed_block_findings(
    archive: Archive, range_spec: str | None, reader: sealcheck.Reader
) -> tuple[list[Finding], list[str]]:
    """A reader's check of every record version the range writes (each blob once): findings, and what went unchecked.

    Only field paths and archive numbers come out (sealcheck); nothing is shown or registered.
    """
    revs = [range_spec] if range_spec else ["HEAD"]
    if range_spec and range_spec.startswith("-"):
        raise UsageError(_("{spec!r} is not a revision range like origin/main..HEAD").format(spec=range_spec))
    found: list[Finding] = []
    unchecked: set[str] = set()
    seen: set[str] = set()
    with gitio.BlobReader(archive.root) as blobs:
        for info in gitio.iter_commits_for_verify(archive.root, revs):
            for change in info.changes:
                kind = rules.classify(change.path)
                if kind is None or kind.kind != "record" or change.status not in "AM" or change.new_blob in seen:
                    continue
                seen.add(change.new_blob)
                try:
                    stored = records.load_stored(blobs.read(change.new_blob) or b"", change.path)
                except UsageError:
                    continue  # the judge names a record that does not load
                look = reader.look(stored)
                number = inert(stored.get("archive_no"))
                found += [Finding(info.commit, info.subject, "record", f"{number}: {p}") for p in look.problems]
                unchecked.update(f"{number}: {u}" for u in look.unchecked)
    return found, sorted(unchecked)


def reader_check(archive: Archive, identity: str | None = None, reveal: bool = False) -> sealcheck.Reader:
    """The acting reader's Reader: record keys unwrapped with their identity (loaded, and a passphrase asked, once).

    Values are presented masked (show's masks), or as they are with reveal (approve --reveal registers that).
    Once the identity or the keystore proves out of reach, the Reader stops trying.
    """
    from archivectl import crypto
    from archivectl.identity import actor_of

    actor = actor_of(archive)
    loaded: list[Any] = []
    reads: dict[str, bool] = {}

    def may_read(building: str) -> bool:
        if building not in reads:
            reads[building] = actor.member in readers(archive, building)
        return reads[building]

    def record_key(stored: dict) -> Any:
        if not loaded:
            try:
                loaded.append(crypto.load_identity(identity_for(archive, identity, actor)))
            except ArchiveError as exc:
                raise sealcheck.OutOfReach(str(exc)) from None
        try:
            return open_key(archive, stored, loaded[0])
        except ArchiveError as exc:
            if str(exc).startswith(("keystore ", _("keystore"))):  # its messages start so, in either language
                raise sealcheck.OutOfReach(str(exc)) from None
            raise

    def prepare() -> bool:
        if not loaded:
            try:
                found = crypto.load_identity_unasked(identity_for(archive, identity, actor))
            except ArchiveError:
                found = None
            if found is not None:
                loaded.append(found)
        return bool(loaded)

    mask = None if reveal else archive.household_schema.mask
    return sealcheck.Reader(actor.member.id, may_read, record_key, mask, prepare)


def pending(archive: Archive, range_spec: str | None) -> list[dict[str, Any]]:
    """Changes in a range that await a signed approval: commit, action, who acted, whose approval."""
    return [pending_row(r) for r in judge.judge(archive, range_spec, allow_pending=True).pending]


def keystore_findings(archive: Archive) -> list[Finding]:
    """What `keys fsck` finds wrong with the keystore against main (nothing if it cannot be reached from here)."""
    if archive.keystore.path is not None and not archive.keystore.path.is_dir():
        return []
    try:
        rows = fsck(archive)
    except ArchiveError:
        return []  # an auditor's desk may not reach the keystore; `keys fsck` where it can
    return [Finding("-", "keystore", "keystore", f"{r['archive_no']}: {r['problem']}") for r in rows if "problem" in r]
