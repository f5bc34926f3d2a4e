"""Main's judged state: what the decisions outside the judge read ("only main's judged state decides").

Whom a record key is wrapped to, which fields are sealed, what a restore withholds:
each is read from the version of a file that the judge found approved on main,
never from the work tree, a branch, or a change on main still awaiting its approval.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from archivectl import gitio, yamlio
from archivectl.archive import Archive
from archivectl.errors import UsageError
from archivectl.files import keep
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
    memo = _read_memo(archive)
    known = memo.get(path)
    if known is not None and _unchanged_since(archive, known[0], tip, path):
        found = known[1] or tip
        if known[0] != tip:
            memo[path] = [tip, known[1]]
            _keep_memo(archive, memo)
        _APPROVED[key] = found
        return found
    found, final = tip, True
    changes = gitio.out(archive.root, "log", "--no-merges", "--format=%H", "-n", "50", tip, "--", path).split()
    for commit in changes:
        if verdict_on(archive, tip, commit).final:
            found = commit
            break
        found, final = f"{commit}~1", False
    if final:  # the newest change is approved (or none was made): it stays so until path changes again
        memo[path] = [tip, found if changes else ""]
        _keep_memo(archive, memo)
    _APPROVED[key] = found
    return found


# approved_commit across processes: path -> [main's tip when judged, the approved commit ("" for the tip itself)],
# kept only while the newest change to path is approved. An approval that lands later cannot undo that, so
# at a later tip that descends from it, with no commit since touching path, the answer is the same. Without it
# every command walked `git log <main> -- path` back through history (all of it, where the path changed rarely).


def _memo_file(archive: Archive) -> Path:
    return archive.git_dir / "archivectl" / "cache" / "approved.json"


def _read_memo(archive: Archive) -> dict[str, list[str]]:
    try:
        found = json.loads(_memo_file(archive).read_bytes())
    except (OSError, ValueError):
        return {}
    if not isinstance(found, dict):
        return {}
    return {
        str(k): v
        for k, v in found.items()
        if isinstance(v, list) and len(v) == 2 and all(isinstance(x, str) and _is_id(x, x is v[1]) for x in v)
    }


def _is_id(text: str, empty_ok: bool) -> bool:
    return (empty_ok and text == "") or (len(text) in (40, 64) and all(c in "0123456789abcdef" for c in text))


def _keep_memo(archive: Archive, memo: dict[str, list[str]]) -> None:
    keep(_memo_file(archive), json.dumps(memo, sort_keys=True).encode())


def _unchanged_since(archive: Archive, then: str, tip: str, path: str) -> bool:
    """True when tip descends from then and no commit between them (a merge's sides included) touched path."""
    if then == tip:
        return True
    if not gitio.is_ancestor(archive.root, then, tip):
        return False
    touched = gitio.run(archive.root, "rev-list", "-n", "1", f"{then}..{tip}", "--", path, check=False)
    return touched.returncode == 0 and not touched.stdout.strip()


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
