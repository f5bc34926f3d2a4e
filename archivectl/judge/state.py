"""Main's judged state: what the decisions outside the judge read ("only main's judged state decides").

Whom a record key is wrapped to, which fields are sealed, what a restore withholds:
each is read from the version of a file that the judge found approved on main,
never from the work tree, a branch, or a change on main still awaiting its approval.
"""

from __future__ import annotations

from typing import Any

from archivectl import gitio, yamlio
from archivectl.archive import Archive
from archivectl.errors import UsageError
from archivectl.judge import Verdict, judge

DESTRUCTION = "registers/destruction"

# What main approves at a given tip never changes (commits are immutable): judged once per process.
_APPROVED: dict[tuple[str, str, str], str] = {}
_VERDICTS: dict[tuple[str, str, str, tuple[str, ...]], Verdict] = {}


def verdict_on(archive: Archive, tip: str, commit: str, ignoring: tuple[str, ...] = ()) -> Verdict:
    """The judge's answer for one commit of tip's history, with every approval up to tip taken into account."""
    key = (str(archive.root), tip, commit, ignoring)
    if key not in _VERDICTS:
        if len(gitio.out(archive.root, "rev-list", "--parents", "-n", "1", commit).split()) == 1:
            _VERDICTS[key] = Verdict("needs-none")  # the founding commit: judged with the whole history
        else:
            approvals = gitio.out(archive.root, "log", "--format=%H", f"--grep=^Approves: {commit}$", tip).split()
            end = approvals[0] if approvals else commit  # the newest approval naming it: all of them count
            _VERDICTS[key] = judge(archive, f"{commit}~1..{end}", allow_pending=True).verdict(commit, ignoring)
    return _VERDICTS[key]


def approved_commit(archive: Archive, tip: str, path: str) -> str:
    """The commit on tip's history whose version of path is approved: past the newest changes still awaiting one.

    Keys and seals follow main (P7, P12): a schema, settings, staff or grant change on
    main that awaits its signed approval (a desk without a server can hold one), or
    that breaks a rule, counts for nothing yet.
    """
    key = (str(archive.root), tip, path)
    if key in _APPROVED:
        return _APPROVED[key]
    found = tip
    for commit in gitio.out(archive.root, "log", "--no-merges", "--format=%H", "-n", "50", tip, "--", path).split():
        if verdict_on(archive, tip, commit).final:
            found = commit
            break
        found = f"{commit}~1"
    _APPROVED[key] = found
    return found


def destroyed_on_main(archive: Archive, tip: str) -> tuple[list[dict[str, Any]], list[str]]:
    """(the destruction register entries that are facts on main, what was set aside and why).

    An entry counts only when the commit that wrote it is judged final on tip's
    history: an approved purge, or a shred whose every key an approved purge or
    rotation made obsolete (checks.py judges that). An entry on a branch, in the
    work tree, or in a commit the judge finds broken or unapproved withholds nothing.
    """
    entries: list[dict[str, Any]] = []
    set_aside: list[str] = []
    log = gitio.out(archive.root, "log", "--format=%x00%H", "--name-only", "--diff-filter=AM", tip, "--", DESTRUCTION)
    for chunk in log.split("\0")[1:]:
        commit, *paths = [line for line in chunk.splitlines() if line.strip()]
        verdict = verdict_on(archive, tip, commit, ignoring=("dates",))  # a clock never brings a key back
        added = [e for path in paths for e in _added(archive, commit, path)]
        if verdict.final:
            entries += added
        elif added:
            set_aside.append(f"{commit[:12]}: {verdict.words()}")
    return entries, set_aside


def _added(archive: Archive, commit: str, path: str) -> list[dict[str, Any]]:
    """The register entries a commit added at path (an event file, or entries appended to a list)."""
    new = gitio.show_blob(archive.root, commit, path) or b""
    old = gitio.show_blob(archive.root, f"{commit}~1", path) or b""
    try:
        after = yamlio.loads(new, path)
        before = yamlio.loads(old, path) if old else None
    except UsageError:
        return []
    if isinstance(after, dict):
        return [] if before else [after]
    if isinstance(after, list):
        return [e for e in after[len(before) if isinstance(before, list) else 0 :] if isinstance(e, dict)]
    return []
