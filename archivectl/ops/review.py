"""review: a pull request's story for people, without personal data (issue 26).

For each commit of a range (default: this branch's proposals, as approve and
pending take them): its action, the households it touches (building / floor /
unit / number), clear fields old -> new, which sealed fields changed (by their
keyed fingerprints, names only: no key is needed and none is used), documents
and register entries added, its approval state (approved by whom / awaiting
whom / broken and why), verify's findings in words, and the CODEOWNERS who
should look. What is approved and what is broken is verify's answer (read
only); this module only tells it.

The story is stable: the same range gives the same bytes (no clock, sorted
fields), so a CI job can post it as one comment and update it in place. Every
clear value is run through pii.py (withheld when it looks personal) and made
inert (control characters, escapes and bidi overrides shown as \\u escapes).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from archivectl import facts, fingerprints, forked, gitio, judge, pii, records, rules, sealcheck, yamlio
from archivectl.archive import Archive
from archivectl.errors import ArchiveError, UsageError
from archivectl.i18n import _
from archivectl.judge.approvals import Request
from archivectl.ops.hooks import codeowners
from archivectl.ops.verify import reader_check
from archivectl.screen import inert

__all__ = [
    "default_range",
    "markdown",
    "reader_check",
    "resolve_range",
    "review",
    "story_lines",
    "table_rows",
    "tell",
    "written_without_fingerprints",
]

WITHHELD = "(withheld: it holds personal data)"
_RANGE = re.compile(r"[A-Za-z0-9_./~^@{}-]+(\.\.[A-Za-z0-9_./~^@{}-]*)?")


def shown(value: Any) -> str:
    """A clear value as review prints it: withheld when personal (pii.py), else inert, on one line."""
    text = yamlio.dump_flow(value) if isinstance(value, list | dict) else str(value)
    if pii.personal_data_in(text):
        return WITHHELD
    return inert(text)


def default_range(archive: Archive) -> str | None:
    """This branch's proposals: <main's upstream or main>..HEAD, or None on main itself (the whole history)."""
    main = archive.settings.main
    upstream = f"origin/{main}"
    if gitio.rev_parse(archive.root, upstream):
        return f"{upstream}..HEAD"
    if gitio.current_branch(archive.root) not in (None, main) and gitio.rev_parse(archive.root, main):
        return f"{main}..HEAD"
    return None


@dataclass(frozen=True)
class Range:
    """The commits reviewed: base..tip, both resolved (base "": the whole history up to tip)."""

    spec: str
    base: str
    tip: str

    @property
    def revs(self) -> str:
        """The range as git and the judge take it."""
        return f"{self.base}..{self.tip}" if self.base else self.tip


def resolve_range(archive: Archive, range_spec: str | None) -> Range:
    """range_spec (A..B, or A meaning A..HEAD), else this branch's proposals (approvals.default_range)."""

    spec = range_spec or default_range(archive)
    if spec is None:
        raise UsageError(
            _("there is no pull request to review on {main}: give a RANGE like origin/{main}..HEAD").format(
                main=archive.settings.main
            )
        )
    if not _RANGE.fullmatch(spec) or spec.startswith("-"):
        raise UsageError(_("{spec!r} is not a revision range like origin/main..HEAD").format(spec=spec))
    start, _sep, end = spec.partition("..")
    spec = f"{start}..{end or 'HEAD'}"
    base, tip = gitio.rev_parse(archive.root, start), gitio.rev_parse(archive.root, end or "HEAD")
    if base is None or tip is None:
        raise UsageError(_("{spec}: no such commit").format(spec=spec))
    return Range(spec, base, tip)


# ---------------------------------------------------------------------- the story


def review(archive: Archive, range_spec: str | None = None, check_sealed: SealedCheck | None = None) -> dict[str, Any]:
    """The story of a range, JSON-ready: its state, one entry per change, approvals, findings, owners.

    check_sealed (a reader's, reader_check()): each record version the range writes is opened in memory and
    its fingerprints recomputed, so a sealed block changed behind fingerprints that name another field is
    caught; the sealed fields that changed are shown with their values masked (revealed only for a Reader
    built to reveal, as approve --reveal does, registered).
    """
    chosen = resolve_range(archive, range_spec)
    with opening_ahead(archive, chosen, check_sealed) as ahead:  # an import's households opened while judged
        return tell(archive, chosen, judge.judge(archive, chosen.revs, allow_pending=True), check_sealed, ahead=ahead)


def tell(
    archive: Archive,
    chosen: Range,
    judged: judge.Judgement,
    check_sealed: SealedCheck | None = None,
    only: set[str] | None = None,
    ahead: Ahead | None = None,
) -> dict[str, Any]:
    """The story of a range already judged (review, and approve for the commits it binds: only).

    ahead (opening_ahead()): households a forked child has been telling while the range was judged.
    """
    commits = gitio.commits_for_verify(archive.root, [chosen.revs])
    findings: dict[str, list[str]] = {}
    for f in judged.findings:
        findings.setdefault(f.commit, []).append(f"{f.rule}: {inert(f.message)}")
    owners = _owner_rules(archive)
    changes, approvals = [], []
    with gitio.BlobReader(archive.root) as blobs:
        for info in commits:
            if only is not None and info.commit not in only:
                continue
            action = _action(info)
            if action == "approve":
                approvals.append(_approval_entry(info, findings))
                continue
            changes.append(_change(archive, blobs, info, action, findings, judged, owners, check_sealed, ahead))
    in_range = {c.commit for c in commits}
    loose = sorted({m for commit, ms in findings.items() if commit not in in_range for m in ms})
    state = _state(changes, approvals, loose)
    return {
        "range": chosen.spec,
        "base": chosen.base,
        "head": chosen.tip,
        "state": state["state"],
        "summary": state["summary"],
        "changes": changes,
        "approvals": approvals,
        "findings": loose,
        "owners": sorted({o for c in changes for o in c["owners"]}),
    }


def _approval_entry(info: gitio.CommitInfo, findings: dict[str, list[str]]) -> dict[str, Any]:
    return {
        "commit": info.commit,
        "by": inert(info.trailer("Acted-by") or ""),
        "approves": sorted(n.strip()[:12] for n in info.trailers.get("Approves", ())),
        "findings": sorted(findings.get(info.commit, [])),
    }


def _change(
    archive: Archive,
    blobs: gitio.BlobReader,
    info: gitio.CommitInfo,
    action: str,
    findings: dict[str, list[str]],
    judged: judge.Judgement,
    owners: list[tuple[str, list[str]]],
    check_sealed: SealedCheck | None = None,
    ahead: Ahead | None = None,
) -> dict[str, Any]:
    """One commit told: what it does to each household and register, and where its approval stands."""
    rule = rules.TABLE.get(action)
    waiting_for = ""
    households: list[dict[str, Any]] = []
    registers: list[str] = []
    other: list[str] = []
    notes: list[str] = []
    unchecked: list[str] = []
    is_merge = len(info.parents) > 1
    if not is_merge:
        changed = sorted(info.changes, key=lambda c: c.path)
        told = iter(
            _households(archive, blobs, [c for c in changed if _is_record(c)], action, check_sealed, ahead, info)
        )
        for change in changed:
            kind = rules.classify(change.path)
            if kind is not None and kind.kind == "record":
                household, problems, not_opened = next(told)
                households.append(household)
                notes += problems
                unchecked += not_opened
            elif kind is not None and kind.kind == "register" and change.status in "AM":
                registers += _register_lines(blobs, change, kind)
            elif kind is not None and kind.kind in ("attachment", "numbers"):
                continue  # told with the record's documents; numbers are the keystore's reservation
            else:
                other.append(f"{change.status} {inert(change.path)}")
    request = judged.requests.get(info.commit)
    signed = [inert(w) for w in request.signed] if request is not None else []
    needed = request.needed if request is not None else (1 if rule is not None and rule.approval else 0)
    more = ""
    if info.commit in findings or notes:
        status, state = "broken", "; ".join(sorted(findings.get(info.commit, [])) + notes)
    elif request is not None and info.commit not in judged.approved:
        status = "awaiting"
        state, waiting_for, more = _awaiting(request)
    elif rule is not None and rule.approval is not None:
        who = judged.approved.get(info.commit, "?").split(", ")  # the judge's answer, nobody else's
        signed = [inert(w) for w in who]
        state = _("approved by {who}").format(who=", ".join(signed))
        if needed > 1:
            state += " " + _("({signed} of {needed} approvals)").format(signed=len(signed), needed=needed)
        status = "approved"
    elif is_merge:
        status, state = "merge", _("a merge: verify judges it against its first parent")
    else:
        status, state = "no-approval", _("needs no approval (a registered look-up or a record of one)")
    paths = [c.path for c in info.changes]
    return {
        "commit": info.commit,
        "action": action or "(none)",
        "acted_by": inert(info.trailer("Acted-by") or ""),
        "reason": shown(pii.shown(info.trailer("Reason") or "")),
        "households": households,
        "registers": sorted(registers),
        "other_files": sorted(other),
        "approval": {
            "state": status,
            "text": state,
            "awaiting": waiting_for,
            "more": more,
            "signed": signed,
            "needed": needed,
        },
        "findings": sorted(findings.get(info.commit, [])) + notes,
        "unchecked": sorted(set(unchecked)),
        "owners": _owners_of(paths, owners),
    }


def _awaiting(request: Request) -> tuple[str, str, str]:
    """Where a change's approval stands, in words: (text, the named approver still missing, how many more of whom).

    One approver: "awaiting approval by mgr01". A threshold (archive.yaml approvals:):
    "1 of 2 approvals: mgr02; awaiting 1 more by a manager or gm".
    """
    named = inert(request.approver) if request.approver not in request.signed else ""
    missing = request.needed - len(request.signed) - (1 if named else 0)
    roles = " or ".join(inert(r) for r in request.roles)
    more = _("{n} more by a {roles}").format(n=missing, roles=roles) if missing > 0 else ""
    awaiting = _awaiting_words([named] if named else [], [more] if more else [])
    if request.needed <= 1:
        return awaiting, named, more
    count = _("{signed} of {needed} approvals").format(signed=len(request.signed), needed=request.needed)
    if request.signed:
        count += ": " + ", ".join(inert(w) for w in request.signed)
    return f"{count}; {awaiting}", named, more


def _awaiting_words(named: list[str], more: list[str]) -> str:
    """ "awaiting approval by mgr01", "awaiting 1 more by a manager or gm", or both joined by "and"."""
    if named and more:
        return _("awaiting approval by {who} and {more}").format(who=", ".join(named), more=", ".join(more))
    if named:
        return _("awaiting approval by {who}").format(who=", ".join(named))
    return _("awaiting {more}").format(more=", ".join(more))


def _action(info: gitio.CommitInfo) -> str:
    """The action a commit says it is (Action:; a version-1 archive's commit by its subject, rules.legacy_action)."""
    return info.trailer("Action") or rules.legacy_action(info.subject) or ""


def _is_record(change: gitio.Change) -> bool:
    kind = rules.classify(change.path)
    return kind is not None and kind.kind == "record"


def _stored_blob(blob: str) -> bool:
    """Whether a side of a change names a blob (not none, as the old side of an added file)."""
    return bool(blob) and set(blob) != {"0"}


def _load(data: bytes | None, path: str) -> dict:
    try:
        loaded = facts.whole_record(data or b"", path)  # records.load_stored, the quick way where it reads the same
    except UsageError:
        return {}
    return loaded


# A reader's story of this many households of one commit (an import's) or more is told partly in a forked
# process (forked.in_child): each household opened costs two age decryptions and a parse (some 0.7 ms here),
# the fork some milliseconds. Only what the reader is shown comes back through the pipe: masked values, field
# paths, findings; a reader who asked to see values in clear (approve --reveal) tells them in one process.
PARALLEL_FROM = 200
_READ_AHEAD = 256  # blobs asked of cat-file at once: their ids fit in a pipe's buffer, so nothing waits on both ends


def _forks_for(archive: Archive, check_sealed: SealedCheck | None) -> sealcheck.Reader | None:
    """The reader whose openings a forked child may share, or None: masked values only, a keystore on this
    machine (a key server's connection is not to be shared with a child), and forked.possible()."""
    reader = check_sealed if isinstance(check_sealed, sealcheck.Reader) else None
    if reader is None or reader.reveals or archive.keystore.path is None or not forked.possible():
        return None
    return reader


def _households(
    archive: Archive,
    blobs: gitio.BlobReader,
    changes: list[gitio.Change],
    action: str,
    check_sealed: SealedCheck | None,
    ahead: Ahead | None = None,
    info: gitio.CommitInfo | None = None,
) -> list[tuple[dict[str, Any], list[str], list[str]]]:
    """_household() of each record change, in order: for many opened by a reader, half in a forked process.

    The households before the first record key is asked for are told here (the reader's identity is loaded,
    a passphrase asked, or found out of reach, once and in this process); the child tells the second half of
    the rest, with its own cat-file, and says how many it opened and whether the keystore was out of reach.
    With ahead, the child forked before the judge has told this commit's later households: this process
    tells the first ones and takes the child's (or tells them itself if it has none).
    """
    reader = _forks_for(archive, check_sealed)
    if reader is None or len(changes) < PARALLEL_FROM:
        return _tell(blobs, changes, action, check_sealed)
    if ahead is not None and info is not None:
        cut = _cut(len(changes))
        told = _tell(blobs, changes[:cut], action, reader)
        return told + (ahead.told(reader, info.commit, len(changes)) or _tell(blobs, changes[cut:], action, reader))
    told = []
    at = 0
    while at < len(changes) and not reader.asked and reader.out_of_reach is None:
        told += _tell(blobs, changes[at : at + 1], action, reader)
        at += 1
    if len(changes) - at < PARALLEL_FROM:
        return told + _tell(blobs, changes[at:], action, reader)
    half = at + (len(changes) - at) // 2
    with forked.in_child(lambda: _told_in_child(archive, changes[half:], action, reader)) as theirs:
        told += _tell(blobs, changes[at:half], action, reader)
    answer = theirs()
    if answer is None:  # the child failed: this process tells its half, as one process would have
        return told + _tell(blobs, changes[half:], action, reader)
    *rows, (checked, out_of_reach) = answer
    reader.checked += checked
    if reader.out_of_reach is None:
        reader.out_of_reach = out_of_reach
    return told + [(household, problems, not_opened) for household, problems, not_opened in rows]


# Of each large commit's households, the share a child forked before the judge tells: this process judges
# the range meanwhile (a third of the time a household's opening takes, each), then tells the rest. An import
# of 20,000 with two thirds: the child 12.5 s of CPU, this process 10.9 s; with 0.6, 10.4 s and 11.0 s.
AHEAD_SHARE = 0.6


def _cut(count: int) -> int:
    """Where the households told ahead by the child start, in a commit of count households."""
    return count - int(count * AHEAD_SHARE)


class Ahead:
    """Households a child forked before the judge told (opening_ahead): the later part of each large commit's."""

    def __init__(self, answer: Callable[[], list[Any] | None]):
        self._answer = answer

    def told(
        self, reader: sealcheck.Reader, commit: str, count: int
    ) -> list[tuple[dict[str, Any], list[str], list[str]]] | None:
        """The child's rows for the commit of count households (waiting for it), or None if it has none."""
        for entry in self._answer() or []:
            if entry[0] == commit and entry[1] == count:
                _, _, checked, out_of_reach, rows = entry
                reader.checked += checked
                if reader.out_of_reach is None:
                    reader.out_of_reach = out_of_reach
                return [(household, problems, not_opened) for household, problems, not_opened in rows]
        return None


@contextlib.contextmanager
def opening_ahead(archive: Archive, chosen: Range, check_sealed: SealedCheck | None) -> Iterator[Ahead | None]:
    """While the block judges the range (approve, review), a forked child opens the later part of the
    households of each commit tell() will open in two processes (_households), for the block's tell() to take.

    Only once the reader's identity is loaded without asking the person anything (sealcheck.Reader.prepare):
    a passphrase is asked, if it must be, where one process would ask it. Work the block does not ask for
    (a commit it does not tell, or a refusal) is stopped when the block ends.
    """
    reader = _forks_for(archive, check_sealed)
    if reader is None or reader.out_of_reach is not None or not reader.prepare():
        yield None
        return
    with forked.in_child(lambda: _ahead_in_child(archive, chosen, reader), wait=False) as theirs:
        yield Ahead(theirs)


def _ahead_in_child(archive: Archive, chosen: Range, reader: sealcheck.Reader) -> list[Any]:
    """The child of opening_ahead(): [commit, households, opened, out of reach, rows] of each large commit."""
    out: list[Any] = []
    with gitio.BlobReader(archive.root) as blobs:
        for info in gitio.commits_for_verify(archive.root, [chosen.revs]):
            action = _action(info)
            if action == "approve" or len(info.parents) > 1:
                continue
            changes = [c for c in sorted(info.changes, key=lambda c: c.path) if _is_record(c)]
            if len(changes) < PARALLEL_FROM:
                continue
            checked = reader.checked
            told = _tell(blobs, changes[_cut(len(changes)) :], action, reader)
            rows = [[household, problems, not_opened] for household, problems, not_opened in told]
            out.append([info.commit, len(changes), reader.checked - checked, reader.out_of_reach, rows])
    return out


def _told_in_child(archive: Archive, changes: list[gitio.Change], action: str, reader: sealcheck.Reader) -> list[Any]:
    """_tell() in a forked child, with a cat-file of its own: rows of plain values, then (opened, out of reach)."""
    checked = reader.checked
    with gitio.BlobReader(archive.root) as blobs:
        told = _tell(blobs, changes, action, reader)
    return [[household, problems, not_opened] for household, problems, not_opened in told] + [
        [reader.checked - checked, reader.out_of_reach]
    ]


def _tell(
    blobs: gitio.BlobReader, changes: list[gitio.Change], action: str, check_sealed: SealedCheck | None
) -> list[tuple[dict[str, Any], list[str], list[str]]]:
    """_household() of each record change, in order, their blobs asked of cat-file _READ_AHEAD at a time."""
    told = []
    for start in range(0, len(changes), _READ_AHEAD):
        chunk = changes[start : start + _READ_AHEAD]
        wanted = [b for c in chunk for b in (c.old_blob, c.new_blob) if _stored_blob(b)]
        read = iter(blobs.read_many_typed(wanted) if wanted else [])
        for c in chunk:
            old, new = ({}, {})
            if _stored_blob(c.old_blob):
                found = next(read)
                old = _load(found[1] if found else None, c.path)
            if _stored_blob(c.new_blob):
                found = next(read)
                new = _load(found[1] if found else None, c.path)
            told.append(_household(old, new, action, check_sealed))
    return told


def _household(
    old: dict, new: dict, action: str, check_sealed: SealedCheck | None = None
) -> tuple[dict[str, Any], list[str], list[str]]:
    """What a commit did to one record, from its clear parts (and a reader's opening), what looks tampered with,
    and what a reader could not open."""
    either = new or old
    place = {k: inert(either.get(k, "")) for k in ("building", "floor", "unit", "archive_no")}
    what = "added" if not old else ("removed" if not new else "changed")
    before = records.field_paths({k: v for k, v in old.items() if k not in records.STORED_ONLY and k != "documents"})
    after = records.field_paths({k: v for k, v in new.items() if k not in records.STORED_ONLY and k != "documents"})
    clear = [
        {
            "field": inert(k),
            "old": shown(before[k]) if k in before else "-",
            "new": shown(after[k]) if k in after else "-",
        }
        for k in sorted(set(before) | set(after))
        if before.get(k) != after.get(k)
    ]
    sealed, guesses, problems = _sealed_changes(old, new, action)
    unchecked: list[str] = []
    values: list[dict[str, str]] | None = None
    if isinstance(check_sealed, sealcheck.Reader) and (new.get("sealed") or old.get("sealed")):
        compared = check_sealed.compare(old, new)
        unchecked = compared.unchecked
        if not compared.unchecked:  # both versions opened: the exact check answers what the keyless one guessed
            guesses = []
            values = compared.values
        problems = guesses + problems + compared.problems
    else:
        problems = guesses + problems + (check_sealed(new) if check_sealed is not None and new.get("sealed") else [])
    old_docs = [d for d in old.get("documents") or [] if isinstance(d, dict)]
    documents = sorted(
        f"{shown(d.get('type'))} {shown(d.get('date'))} v{shown(d.get('version'))}"
        for d in new.get("documents") or []
        if isinstance(d, dict) and d not in old_docs
    )
    told = {**place, "what": what, "clear": clear, **sealed, "documents": documents, "findings": problems}
    if values is not None:
        told["sealed_values"] = values  # a reader's view only: never in a story told without a key
    return told, problems, unchecked


def _sealed_changes(old: dict, new: dict, action: str) -> tuple[dict[str, Any], list[str], list[str]]:
    """Which sealed fields changed, by the fingerprints in clear; what looks wrong without a key (guesses a
    reader's exact check replaces), and what is wrong whoever looks (problems)."""
    old_fp, new_fp = old.get("sealed_fingerprints"), new.get("sealed_fingerprints")
    block_changed = old.get("sealed") != new.get("sealed")
    guesses: list[str] = []
    problems: list[str] = []
    note = ""
    if not new:
        paths = sorted(old_fp) if isinstance(old_fp, dict) else []
        note = _("the sealed block is removed with the record") if old.get("sealed") else ""
    elif old and old.get("recipient") != new.get("recipient") and block_changed:
        paths = []
        note = _("every sealed field re-sealed to a new record key (a rotation)")
    elif old and old.get("sealed") and old_fp is None and block_changed:
        paths = []
        note = _("which sealed fields changed is not known: the record had no fingerprints before this write")
    else:
        paths = fingerprints.changed(old_fp if old else {}, new_fp)
        if old and block_changed and not paths:
            guesses.append(_("fingerprints: the sealed block changed but no fingerprint did (a reader must check it)"))
        if old and not block_changed and paths:
            guesses.append(_("fingerprints: changed while the sealed block did not"))
        if new.get("sealed") and new_fp is None and old and old_fp is not None:
            problems.append(_("fingerprints: the change drops the sealed-field fingerprints"))
        elif new.get("sealed") and new_fp is None and not old:
            problems.append(written_without_fingerprints())
    del action  # a rotation is told by its new recipient, whatever the action says
    return {"sealed": [inert(p) for p in paths], "sealed_note": note}, guesses, problems


def written_without_fingerprints() -> str:
    """The finding of a household added without fingerprints (as archivectl wrote them before issue 26):
    review tells it; approve does not refuse it (the household gets them on its next write)."""
    return _("fingerprints: a sealed block written without fingerprints")


def _register_lines(blobs: gitio.BlobReader, change: gitio.Change, kind: rules.PathKind) -> list[str]:
    """The entries a commit adds to a register, each as 'register: key=value, ...' (values shown())."""
    old_raw = blobs.read(change.old_blob) if change.status == "M" else b""
    new_raw = blobs.read(change.new_blob) or b""
    try:
        before = yamlio.loads(old_raw, change.path) if old_raw else []
        after = yamlio.loads(new_raw, change.path) or []
    except UsageError:
        return [f"{kind.register}: {_('an entry that cannot be read')}"]
    if isinstance(after, dict):
        added = [] if before else [after]
    else:
        added = [e for e in after[len(before or []) :] if isinstance(e, dict)]
    lines = []
    for entry in added:
        parts = [f"{inert(k)}={shown(v)}" for k, v in sorted(entry.items()) if k != "when" and v not in (None, "", [])]
        lines.append(f"{kind.register}: {', '.join(parts)}")
    return lines


# ---------------------------------------------------------------------- a reader's check of the sealed blocks

# A reader's check of one stored record (problems only). reader_check() (ops/verify, re-exported here) builds
# a sealcheck.Reader, which is one, and more: review shows the sealed fields' values through it, masked.
SealedCheck = Callable[[dict], list[str]]


# ---------------------------------------------------------------------- who should look


def _owner_rules(archive: Archive) -> list[tuple[str, list[str]]]:
    """(pattern, owners) as `archivectl codeowners` writes them from staff.yaml; none when no one has a handle."""

    try:
        text = codeowners(archive)
    except (ArchiveError, UsageError):
        return []
    found = []
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            pattern, *who = line.split()
            found.append((pattern, who))
    return found


def _owners_of(paths: list[str], owner_rules: list[tuple[str, list[str]]]) -> list[str]:
    """The owners CODEOWNERS gives each path (its last matching line, as forges read it), together."""
    found: set[str] = set()
    for path in paths:
        chosen: list[str] = []
        for pattern, who in owner_rules:
            if pattern == "*" or ("/" + path).startswith(pattern):
                chosen = who
        found.update(chosen)
    return sorted(found)


# ---------------------------------------------------------------------- the range's state


def _state(changes: list[dict], approvals: list[dict], loose: list[str]) -> dict[str, str]:
    """approved / awaiting / broken / empty, and one line saying it (the CI status's description)."""
    broken = [c for c in changes if c["approval"]["state"] == "broken"] + [a for a in approvals if a["findings"]]
    if broken or loose:
        first = (broken[0]["findings"] or ["?"])[0] if broken else loose[0]
        count = len(broken) + len(loose)
        return {"state": "broken", "summary": _("broken: {n} problem(s); first: {first}").format(n=count, first=first)}
    waiting = [c["approval"] for c in changes if c["approval"]["state"] == "awaiting"]
    named = sorted({a["awaiting"] for a in waiting if a["awaiting"]})
    more = sorted({a["more"] for a in waiting if a["more"]})
    if named or more:
        return {"state": "awaiting", "summary": _awaiting_words(named, more)}
    if not changes:
        return {"state": "empty", "summary": _("nothing to review")}
    return {"state": "approved", "summary": _("approved: every change has its approval")}


# ---------------------------------------------------------------------- rendering

MARKER = "<!-- archivectl review -->"  # a CI job finds its own comment by this line and updates it
# A forge's comment holds some 65,000 characters: an import's thousands of households are counted, not listed.
SHOWN_CHANGES = 50
SHOWN_HOUSEHOLDS = 20
_HANDLE = re.compile(r"@[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9_.-]+)?")


def _code(text: str) -> str:
    """text as a Markdown code span: nothing in it is a link, a mention, HTML or emphasis."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _place(h: dict[str, Any]) -> str:
    return _("{no} (building {building}, floor {floor}, unit {unit})").format(
        no=h["archive_no"], building=h["building"], floor=h["floor"], unit=h["unit"]
    )


def markdown(story: dict[str, Any]) -> str:
    """The story as a pull-request comment (GitHub, GitLab and Forgejo render the same Markdown)."""
    return "\n".join(story_lines(story)) + "\n"


def story_lines(story: dict[str, Any], as_markdown: bool = True, whole: bool = False) -> list[str]:
    """The story's lines: the one rendering of it, for a forge's comment and for approve's terminal.

    as_markdown=False: the same lines as plain text (no comment marker, no code spans, "->");
    whole: every change and household, none counted instead (what an approver signs, they see).
    """
    code = _code if as_markdown else str
    arrow = "→" if as_markdown else "->"
    heading = "#### " if as_markdown else ""
    shown_changes = None if whole else SHOWN_CHANGES
    shown_households = None if whole else SHOWN_HOUSEHOLDS
    icon = {"approved": "✅", "awaiting": "⏳", "broken": "❌", "empty": "➖"}[story["state"]]
    lines = [MARKER, f"### {icon} archivectl review: {story['summary']}", ""] if as_markdown else []
    lines.append(
        _("{range}: {n} change(s), {a} approval(s); base {base}, head {head}").format(
            range=code(story["range"]),
            n=len(story["changes"]),
            a=len(story["approvals"]),
            base=code(story["base"][:12] or "-"),
            head=code(story["head"][:12]),
        ),
    )
    for i, change in enumerate(story["changes"][:shown_changes], 1):
        if len(change["households"]) > 5 and not whole:
            numbers = _("{n} households").format(n=len(change["households"]))
        else:
            numbers = ", ".join(h["archive_no"] for h in change["households"])
        lines += ["", f"{heading}{i}. {change['action']}" + (f" · {numbers}" if numbers else "")]
        lines.append(
            "- "
            + _("commit {commit} by {who}; reason: {reason}").format(
                commit=code(change["commit"][:12]),
                who=code(change["acted_by"] or "?"),
                reason=code(change["reason"]),
            )
        )
        said = _("approval: **{text}**")
        lines.append("- " + (said if as_markdown else said.replace("**", "")).format(text=change["approval"]["text"]))
        for h in change["households"][:shown_households]:
            lines.append(f"- {_place(h)}: {h['what']}")
            if h["sealed"]:
                lines.append(
                    "  - " + _("sealed fields changed: {paths}").format(paths=", ".join(map(code, h["sealed"])))
                )
            if h["sealed_note"]:
                lines.append("  - " + _("sealed fields: {note}").format(note=h["sealed_note"]))
            for c in h["clear"] + h.get("sealed_values", []):
                lines.append(f"  - {code(c['field'])}: {code(c['old'])} {arrow} {code(c['new'])}")
            for d in h["documents"]:
                lines.append("  - " + _("document added: {doc}").format(doc=code(d)))
        if shown_households is not None and len(change["households"]) > shown_households:
            lines.append(
                "- "
                + _("… and {n} more households: {whole}").format(
                    n=len(change["households"]) - shown_households, whole=code("archivectl review --format json")
                )
            )
        for entry in change["registers"]:
            lines.append("- " + _("register entry: {entry}").format(entry=code(entry)))
        for other in change["other_files"]:
            lines.append("- " + _("file: {path}").format(path=code(other)))
        for finding in change["findings"]:
            lines.append("- " + _("finding: {text}").format(text=code(finding)))
        for note in change.get("unchecked", []):
            lines.append("- " + _("not opened: {text}").format(text=code(note)))
        owners = [o for o in change["owners"] if _HANDLE.fullmatch(o)]
        if owners:
            lines.append("- " + _("who should look: {owners}").format(owners=" ".join(owners)))
    if shown_changes is not None and len(story["changes"]) > shown_changes:
        lines += [
            "",
            _("… and {n} more changes: {whole}").format(
                n=len(story["changes"]) - shown_changes, whole=code("archivectl review --format json")
            ),
        ]
    if story["approvals"]:
        lines += ["", heading + _("Approvals")]
        for a in story["approvals"]:
            names = ", ".join(map(code, a["approves"]))
            lines.append(
                "- "
                + _("{commit} by {who} approves {names}").format(
                    commit=code(a["commit"][:12]), who=code(a["by"]), names=names
                )
            )
            for finding in a["findings"]:
                lines.append("  - " + _("finding: {text}").format(text=code(finding)))
    if story["findings"]:
        lines += ["", heading + _("Findings")]
        lines += ["- " + code(f) for f in story["findings"]]
    return lines


def table_rows(story: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per household a change touches (or per change), for the table format."""
    rows = []
    for change in story["changes"]:
        common = {"commit": change["commit"][:12], "action": change["action"], "approval": change["approval"]["text"]}
        for h in change["households"] or [None]:
            rows.append(
                {
                    **common,
                    "household": _place(h) if h else "",
                    "sealed changed": ", ".join(h["sealed"]) if h else "",
                    "clear changed": ", ".join(f"{c['field']}: {c['old']} -> {c['new']}" for c in h["clear"])
                    if h
                    else "",
                    "findings": "; ".join(change["findings"]),
                }
            )
    kept = [k for k in (rows[0] if rows else {}) if any(r[k] for r in rows)]  # no room for empty columns
    return [{k: r[k] for k in kept} for r in rows]
