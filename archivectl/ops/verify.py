"""verify and pending: the judge's findings as a command reports them (P7, P10, P12, P13).

The judging itself (every rule, every approval) is archivectl/judge/; this adds
what only a command on a desk can add (the keystore compared with main) and
turns the judgement into a JSON-ready report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from archivectl import judge, pii
from archivectl.archive import Archive
from archivectl.errors import ArchiveError
from archivectl.judge import Finding
from archivectl.judge.approvals import pending_row
from archivectl.ops.keys import fsck


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
    judged = judge.judge(archive, range_spec, progress, allow_pending)
    findings = list(judged.findings)
    if keystore and range_spec is None and not archive.bare:
        findings += keystore_findings(archive)
    return {
        "range": judged.range,
        "commits": judged.commits,
        "ok": not findings,
        "findings": [{**asdict(f), "subject": pii.shown(f.subject)} for f in findings],
        "pending": [pending_row(r) for r in judged.pending],
    }


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
