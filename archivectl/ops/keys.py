"""The record keys, following main: sync (who they open for), fsck (what is wrong), shred (what main no longer needs).

Everything here is decided by main (P7, P13, P14): the readers a key is wrapped
to are those of staff.yaml and the grants as approved on main; a key is
destroyed only when main's approved history says its household was purged, or
its record moved to a new key in an approved rotation, and the 30 days are
over by main's own dates and the clock now. A branch, however it was made,
can neither give nor take a key.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archivectl import clock, crypto, facts, gitio, policy, records, registers, yamlio
from archivectl.archive import Archive
from archivectl.errors import ArchiveError, UsageError
from archivectl.i18n import _
from archivectl.judge.retention import change_dates, tombstone_dates
from archivectl.judge.state import verdict_on
from archivectl.keystore import KeyAddress
from archivectl.layout import HOUSEHOLDS, HouseholdPath, check_archive_no
from archivectl.ops import finding
from archivectl.ops.common import Approval, approved_writer, main_staff, readers, trailers, wrap_targets
from archivectl.ops.configure import configure
from archivectl.ops.holds import on_main

Progress = Callable[[int, int, str], None] | None  # (done, total, stage), e.g. cli.app.progress_bar
ORPHAN_GRACE_DAYS = 7  # a key nobody's branch names is removed only once this old (a clerk may not have pushed yet)


@dataclass(frozen=True)
class Household:
    """A household as a commit holds it: enough to know its key."""

    archive_no: str
    building: str
    recipient: str | None
    path: str
    sealed: str | None


_HOUSEHOLDS: dict[tuple[str, str], list[Household]] = {}


def households_at(archive: Archive, rev: str) -> list[Household]:
    """Every household in rev's tree, from the clear part of its record (read once per commit)."""
    commit = gitio.rev_parse(archive.root, rev) or rev
    key = (str(archive.root), commit)
    if key not in _HOUSEHOLDS:
        _HOUSEHOLDS[key] = _read_households(archive, commit)
    return _HOUSEHOLDS[key]


def _read_households(archive: Archive, rev: str) -> list[Household]:
    found = []
    for place, path, data in records.stored_texts_at(archive.root, rev):
        try:
            stored = facts.whole_record(data, path)  # as records.load_stored, the quick way where that reads the same
        except (ArchiveError, UsageError, ValueError):
            continue  # verify reports a broken record; it has no key to speak of here
        found.append(
            Household(
                str(stored.get("archive_no") or place.archive_no),
                str(stored.get("building") or place.building),
                stored.get("recipient"),
                path,
                stored.get("sealed"),
            )
        )
    return found


def _main(archive: Archive) -> str:
    tip = archive.main_commit()
    if tip is None:
        raise ArchiveError(_("no {main} here: run this in a clone of the archive").format(main=archive.settings.main))
    return tip


class _Targets:
    """Per building, as main says: the targets a key is wrapped to, and how its age header must read."""

    def __init__(self, archive: Archive):
        self.archive = archive
        self._cache: dict[str, tuple[set[str], int, list[str]]] = {}

    def __getitem__(self, building: str) -> tuple[set[str], int, list[str]]:

        if building not in self._cache:
            targets = wrap_targets(self.archive, building)
            tags = {crypto.ssh_tag(t) for t in targets if t.startswith("ssh-")}
            self._cache[building] = (tags, sum(t.startswith("age1") for t in targets), targets)
        return self._cache[building]


def _live(archive: Archive) -> list[Household]:
    """The households whose keys must open for main's readers: main's, and this branch's new ones."""
    tip = _main(archive)
    found = {(h.archive_no, h.recipient): h for h in households_at(archive, tip)}
    head = gitio.head(archive.root)
    if head and head != tip and not archive.bare:
        for h in households_at(archive, head):
            found.setdefault((h.archive_no, h.recipient), h)
    return sorted(found.values(), key=lambda h: (h.archive_no, h.recipient or ""))


# ------------------------------------------------------------------ sync


def sync(archive: Archive, identity_path: Any, progress: Progress = None) -> dict[str, Any]:
    """Wrap every live household's key to exactly the readers main approves (plus recovery); changes no file in git.

    A key already wrapped right is left as it is (its age header says for whom,
    without opening it), so this is cheap to run from cron. Each key is opened
    and checked against the record's `recipient:` before its new wrapping
    replaces the old one, so a stale or foreign key is never spread.
    """
    archive.keystore.require()
    archive.keystore.tidy()
    desired = _Targets(archive)
    live = _live(archive)
    blobs = archive.keystore.read_many(((h.archive_no, h.recipient) for h in live), fallback=False)
    identity = None
    rewrapped: list[str] = []
    failed: list[dict[str, str]] = []
    unchanged = 0
    for done, h in enumerate(live, start=1):
        if progress and (done % 100 == 0 or done == len(live)):
            progress(done, len(live), "re-wrapping record keys")
        blob = blobs[(h.archive_no, h.recipient)]
        tags, x25519, targets = desired[h.building]
        unaddressed = blob is None
        if unaddressed:
            blob = archive.keystore.backend.read(KeyAddress(h.archive_no, None).name)  # from before addressing
        if blob is None:
            failed.append({"archive_no": h.archive_no, "problem": "record key is missing"})
            continue
        if not unaddressed and crypto.wrapped_for(blob) == (tags, x25519):
            unchanged += 1
            continue
        if identity is None:
            identity = crypto.load_identity(identity_path)
        try:
            key = crypto.unwrap_record_key(blob, identity)
        except ArchiveError as exc:
            failed.append({"archive_no": h.archive_no, "problem": f"{exc}: a manager or gm who reads it must sync"})
            continue
        if h.recipient is None or str(key.to_public()) != h.recipient:
            failed.append({"archive_no": h.archive_no, "problem": "the key held is not the one the record names"})
            continue
        if not targets:
            failed.append(
                {"archive_no": h.archive_no, "problem": f"building {h.building} has no active reader on main"}
            )
            continue
        address = KeyAddress(h.archive_no, h.recipient)
        if unaddressed:
            archive.keystore.put(address, crypto.wrap_record_key(key, targets))
            archive.keystore.destroy(KeyAddress(h.archive_no, None))  # the same key, now at its address
        else:
            archive.keystore.rewrap(address, crypto.wrap_record_key(key, targets))
        rewrapped.append(h.archive_no)
    index = finding.rewrap_index_keys(archive, identity_path)  # the office's index key follows main's readers too
    return {
        "households": len(live),
        "rewrapped": rewrapped,
        "unchanged": unchanged,
        "failed": failed + index["failed"],
        "index_rewrapped": index["rewrapped"],
        "readers": {b: sorted(_reader_ids(archive, b)) for b in sorted({h.building for h in live})},
    }


def _reader_ids(archive: Archive, building: str) -> list[str]:

    return [m.id for m in readers(archive, building, on_main=True)]


# ------------------------------------------------------------------ fsck


def fsck(
    archive: Archive, identity_path: Any | None = None, remove_orphans: bool = False, progress: Progress = None
) -> list[dict[str, Any]]:
    """What is wrong with the keystore against main; [] when nothing is. Rows: archive_no, key, problem.

    Without a reader's identity it checks what can be told from outside: every
    live household has a key at its address, wrapped to exactly the readers
    main names (and the recovery recipient); keys no branch names are listed.
    With one (a gm or manager), it also opens each key and the sealed block.
    """
    archive.keystore.require()
    desired = _Targets(archive)
    live = _live(archive)
    tip = _main(archive)
    rows: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    for h in households_at(archive, tip):
        if h.archive_no in seen:
            rows.append(_row(h.archive_no, None, f"used by two households ({seen[h.archive_no]}, {h.path}) (P3)"))
        seen[h.archive_no] = h.path
    identity = crypto.load_identity(identity_path) if identity_path else None
    # Without an identity only whom each key is wrapped to is looked at: a key server may say so unopened.
    blobs = archive.keystore.read_many(((h.archive_no, h.recipient) for h in live), opened=identity is not None)
    for done, h in enumerate(live, start=1):
        if progress and (done % 100 == 0 or done == len(live)):
            progress(done, len(live), "checking record keys")
        blob = blobs[(h.archive_no, h.recipient)]
        tags, x25519, _ = desired[h.building]
        if blob is None:
            rows.append(_row(h.archive_no, h.recipient, "record key is missing"))
            continue
        have_tags, have_x = crypto.wrapped_for(blob)
        if have_tags != tags or have_x != x25519:
            extra, missing = len(have_tags - tags), len(tags - have_tags)
            why = f"{extra} reader(s) too many, {missing} missing" if extra or missing else "recovery recipient differs"
            rows.append(
                _row(h.archive_no, h.recipient, f"wrapped to other readers than main says ({why}): recipients sync")
            )
        if identity is not None:
            problem = _opens(h, blob, identity)
            if problem:
                rows.append(_row(h.archive_no, h.recipient, problem))
    rows += _staged_leftovers(archive, remove_orphans)
    wanted = {(h.archive_no, h.recipient) for h in live}
    stray = [a for a in archive.keystore.addresses() if (a.archive_no, a.recipient) not in wanted]
    if stray:
        named = _named_on_any_branch(archive, stray)
        ages = archive.keystore.ages()
        wanted_numbers = {number for number, _ in wanted}
        ever = _numbers_ever_on(archive, tip)
        for address in stray:
            if address.recipient is None:
                if address.archive_no in wanted_numbers:
                    continue  # kept from before addressing; sync or migrate gives it its address
                rows.append(
                    _row(address.archive_no, None, "a key from before addressing, for no live household", False)
                )
                continue
            if (address.archive_no, address.recipient) in named:
                rows.append(
                    _row(
                        address.archive_no,
                        address.recipient,
                        f"named only on {named[(address.archive_no, address.recipient)]}, not on main",
                        False,
                    )
                )
                continue
            age_days = (clock.now().timestamp() - ages.get(address, 0)) / 86400
            never = address.archive_no not in ever or _never_on_main(archive, tip, address)
            if remove_orphans and age_days >= ORPHAN_GRACE_DAYS and never:
                archive.keystore.destroy(address)
                rows.append(_row(address.archive_no, address.recipient, "orphan removed", problem=False))
            else:
                rows.append(_row(address.archive_no, address.recipient, _stray_reason(never, age_days), False))
    return rows


def _numbers_ever_on(archive: Archive, tip: str) -> set[str]:
    """Every archive number whose household folder tip's history ever touched: one `git log --name-only`.

    A stray key whose number is not among them was never main's (a killed or
    interrupted import leaves thousands): no search of the history for its
    recipient is needed, where one `git log -S` per key took 704 s for 2,759.
    """
    names = gitio.out(archive.root, "log", "--format=", "--name-only", "--no-renames", tip, "--", HOUSEHOLDS)
    return {place.archive_no for line in names.splitlines() if (place := HouseholdPath.parse(line)) is not None}


STAGED_GRACE_SECONDS = 3600  # a staged file this old has no writer left (a write takes seconds)


def _staged_leftovers(archive: Archive, remove: bool) -> list[dict[str, Any]]:
    """Staged files (.new-*, .*.tmp) a killed writer left in keys/: each may hold a wrapped copy of a key."""
    archive.keystore.tidy()  # on this machine: those whose writer is dead go at once
    rows = []
    now = clock.now().timestamp()
    for name, mtime in archive.keystore.backend.list("keys"):
        if not name.startswith("."):
            continue
        if remove and now - mtime >= STAGED_GRACE_SECONDS:
            archive.keystore.backend.remove(f"keys/{name}")
            rows.append({"archive_no": "-", "key": name[:20], "note": "staged copy of a key removed"})
        else:
            rows.append(
                {
                    "archive_no": "-",
                    "key": name[:20],
                    "problem": "a staged copy of a key left by a killed writer: `keys fsck --remove-orphans`",
                }
            )
    return rows


def _row(number: str, recipient: str | None, text: str, problem: bool = True) -> dict[str, Any]:
    """One line of fsck: a problem (exit 1), or a note (a key that waits for shred, an orphan, one removed)."""
    return {"archive_no": number, "key": (recipient or "")[:20], "problem" if problem else "note": text}


def _opens(h: Household, blob: bytes, identity: Any) -> str | None:
    try:
        key = crypto.unwrap_record_key(blob, identity)
    except ArchiveError as exc:
        return str(exc)
    if h.recipient and str(key.to_public()) != h.recipient:
        return "the key held does not match the record's recipient"
    if h.sealed:
        try:
            crypto.open_sealed(h.sealed, key)
        except ArchiveError as exc:
            return str(exc)
    return None


def _named_on_any_branch(archive: Archive, stray: list[KeyAddress]) -> dict[tuple[str, str | None], str]:
    """Which stray keys a branch (local or remote) still names: not orphans, proposals in flight."""
    numbers = {a.archive_no for a in stray}
    named: dict[tuple[str, str | None], str] = {}
    refs = gitio.out(
        archive.root, "for-each-ref", "--format=%(refname:short) %(objectname)", "refs/heads", "refs/remotes"
    )
    for line in refs.splitlines():
        name, commit = line.rsplit(" ", 1)
        for place, path, data in records.stored_texts_at(archive.root, commit, numbers):
            recipient = yamlio.loads(data, path).get("recipient") if data else None
            named.setdefault((place.archive_no, recipient), name)
    return named


def _never_on_main(archive: Archive, tip: str, address: KeyAddress) -> bool:
    """True when main's history never held this key's recipient: an abandoned proposal's key."""
    return _recipient_never_in(str(archive.root), tip, str(address.recipient))


@functools.lru_cache(maxsize=4096)
def _recipient_never_in(root: str, tip: str, recipient: str) -> bool:
    """One pickaxe search of tip's whole history per key, however many checks ask (fsck asks twice)."""
    found = gitio.out(
        Path(root), "log", "--no-textconv", "--format=%H", "-1", f"-S{recipient}", tip, "--", "households"
    )
    return not found.strip()


def _stray_reason(never_on_main: bool, age_days: float) -> str:
    if not never_on_main:
        return "main no longer uses it (purged, rotated or forgotten): `archivectl keys shred` once approved"
    if age_days < ORPHAN_GRACE_DAYS:
        return f"named by no branch here; {age_days:.0f} days old (removable after {ORPHAN_GRACE_DAYS})"
    return "orphan of an abandoned proposal: `archivectl keys fsck --remove-orphans`"


# ------------------------------------------------------------------ shred


def shred(archive: Archive, dry_run: bool = False, numbers: list[str] | None = None) -> list[dict[str, Any]]:
    """One row per key main no longer uses: shredded (and registered), or kept and why.

    A key goes when main's approved history removed its household (purge) or
    moved its record to another key (rotation; a correction that forgets, edit
    --forget-previous), re-checked now against main's first-parent history and
    the clock (P13, P14): a purge and a forget once retention_days are over, so
    that no unexpired backup still holds the key. What was shredded is
    registered in one commit (Action: shred) on main, signed by whoever ran it.

    numbers: only these households' keys, and ArchiveError (nothing destroyed)
    when one of them has no key to shred now, with the reason.
    """
    for number in numbers or []:
        check_archive_no(number)
    tip = _main(archive)
    if not dry_run:
        _require_on_main(archive, tip)
    archive.keystore.require()
    current = {h.archive_no: h.recipient for h in households_at(archive, tip)}
    purges = _commits_of(archive, tip, "purge")
    rotations = _commits_of(archive, tip, "rotate", every=True)
    forgets = _commits_of(archive, tip, "forget", every=True)
    for number, found in forgets.items():  # one list per household, newest first, as _rotation_of reads it
        rotations[number] = sorted([*rotations.get(number, []), *found], key=lambda c: -_timestamp(archive, c))
    forgotten = {c for found in forgets.values() for c in found}
    judged: dict[str, str | None] = {}
    rows: list[dict[str, Any]] = []
    doomed: list[tuple[KeyAddress, str, str]] = []
    from archivectl.holds import hold_problem

    held = on_main(archive, tip)  # a legal hold stops shredding every key of its household
    for address in archive.keystore.addresses():
        number = address.archive_no
        if numbers is not None and number not in numbers:
            continue
        if number in current:
            if address.recipient is None or address.recipient == current[number]:
                continue
            why_kind, change = "rotation", _rotation_of(archive, tip, address, rotations)
            if change is None:
                continue  # not main's old key: a branch's (fsck lists it)
            problem = _judge(archive, tip, change, judged)
            if change in forgotten:
                why_kind = "forget"
                problem = problem or _forget_wait_problem(archive, tip, change)
        else:
            why_kind, change = "purge", purges.get(number)
            if change is None:
                if _never_on_main(archive, tip, address) if address.recipient else False:
                    continue  # a proposal's household, not main's: fsck lists it
                rows.append(
                    {"archive_no": number, "shredded": False, "why": f"no purge of it on {archive.settings.main}"}
                )
                continue
            problem = _judge(archive, tip, change, judged) or _retention_problem(archive, tip, number, change)
        problem = problem or hold_problem("shred", [number], held)
        if problem:
            rows.append({"archive_no": number, "shredded": False, "why": problem})
            continue
        if not dry_run:
            doomed.append((address, why_kind, change))
        rows.append(
            {
                "archive_no": number,
                "shredded": not dry_run,
                "why": f"{why_kind} {change[:12]} approved on {archive.settings.main}",
            }
        )
    if numbers is not None and not dry_run:
        _refuse_kept(numbers, rows, archive.settings.main)
    # Registered first, destroyed after: a kill in between leaves keys that the next run destroys
    # without registering them twice; never a key destroyed that no register names (P14).
    registered = _registered_keys(archive)
    unregistered = [d for d in doomed if (d[0].archive_no, d[0].recipient or "(unaddressed)") not in registered]
    if unregistered:
        _register(archive, unregistered)
    for address, _key, _what in doomed:
        archive.keystore.destroy(address)
    rows += _shred_index_keys(archive, tip, judged, dry_run)
    return rows


def _shred_index_keys(archive: Archive, tip: str, judged: dict[str, str | None], dry_run: bool) -> list[dict[str, Any]]:
    """The index keys approved `keys rotate-index` commits on main replaced (issue 27): shredded, or kept and why."""
    found = finding.obsolete_index_keys(archive, tip, lambda change: _judge(archive, tip, change, judged))
    doomed = [row for row in found if not row["problem"]]
    if doomed and not dry_run:
        finding.shred_index_keys(archive, doomed, _shown_url(archive))
    return [
        {
            "archive_no": row["key"],
            "shredded": not dry_run and not row["problem"],
            "why": row["problem"] or f"rotate-index {row['change'][:12]} approved on {archive.settings.main}",
        }
        for row in found
    ]


def _registered_keys(archive: Archive) -> set[tuple[str, str]]:
    """(archive number, recipient) of every key a shred entry in the destruction register names."""
    found = set()
    for entry in registers.entries(archive.root, "destruction"):
        if entry.get("action") == "shred":
            for line in entry.get("keys") or []:
                parts = str(line).split()
                if len(parts) >= 2:
                    found.add((parts[0], parts[1]))
    return found


def _require_on_main(archive: Archive, tip: str) -> None:
    main = archive.settings.main
    if archive.bare:
        raise ArchiveError(
            _("keys shred registers what it destroys: run it in a clone with {main} checked out").format(main=main)
        )
    if gitio.current_branch(archive.root) != main or gitio.head(archive.root) != tip:
        raise ArchiveError(
            _("keys shred runs on an up-to-date {main}: `git switch {main} && git pull --ff-only` first").format(
                main=main
            )
        )


def _register(archive: Archive, destroyed: list[tuple[KeyAddress, str, str]]) -> None:
    """One destruction register entry per shred run (P14: who, when, how), in a commit of its own."""
    from archivectl.identity import actor_of

    with archive.writing() as tx:
        actor = actor_of(archive)
        fields: dict[str, Any] = {
            "archive_no": ", ".join(sorted({a.archive_no for a, _, _ in destroyed})),
            "keys": [
                f"{a.archive_no} {a.recipient or '(unaddressed)'} ({kind} {change[:12]})"
                for a, kind, change in destroyed
            ],
            "method": f"record keys overwritten and deleted in keystore {_shown_url(archive)} (crypto-shredding)",
        }
        why = [_why_forgotten(archive, a.archive_no, change) for a, kind, change in destroyed if kind == "forget"]
        if why:  # which household, and why (the correction's reason); never a value (P14, P17)
            fields["why"] = why
        entry = registers.register(tx, "destruction", "shred", actor.member.id, fields)
        reason = f"shred {len(destroyed)} record keys main no longer uses"
        named = trailers("shred", Approval(reason), actor, entry["archive_no"])
        tx.commit(f"keys shred: {len(destroyed)} record keys", named, actor)


def _why_forgotten(archive: Archive, number: str, change: str) -> str:
    """A destruction entry's words for a key a correction made obsolete: the household and the change's reason."""
    reason = (gitio.commit_trailers(archive.root, change).get("Reason") or ("",))[0]
    return f"{number}: previous versions forgotten at a correction (forget {change[:12]}): {reason}"


def _timestamp(archive: Archive, commit: str) -> float:
    return dt.datetime.fromisoformat(gitio.committer_date(archive.root, commit)).timestamp()


def _forget_wait_problem(archive: Archive, tip: str, change: str) -> str | None:
    """Why a forget's old key must wait: retention_days from its arrival on main, as a purge waits (P13).

    Backups expire after retention_days and leave out keys main no longer uses, so by then
    no backup that still holds the old key can be restored (P14, P16).
    """
    days = archive.settings.retention_days
    verdict = policy.retention_verdict(change_dates(archive, change, tip), clock.now(), days)
    if verdict.problem:
        return f"{change[:12]}: {verdict.problem.replace('tombstone', 'correction')}"
    if not verdict.eligible:
        return (
            f"{verdict.days_left} days of the {days}-day retention are left after correction {change[:12]} "
            "(backups made before it expire then; P13)"
        )
    return None


def _refuse_kept(numbers: list[str], rows: list[dict[str, Any]], main: str) -> None:
    """ArchiveError, before anything is registered or destroyed, when a named household has no key to shred now."""
    for number in numbers:
        kept = [r for r in rows if r["archive_no"] == number and not r["shredded"]]
        if kept:
            raise ArchiveError(
                _("{number}: its old record key is kept: {why}").format(number=number, why=kept[0]["why"])
            )
        if not any(r["archive_no"] == number for r in rows):
            raise ArchiveError(
                _("{number}: no record key that {main} no longer uses (nothing to shred)").format(
                    number=number, main=main
                )
            )


def _shown_url(archive: Archive) -> str:
    url = archive.keystore.url
    return url if "://" in url else os.path.basename(url)


def _commits_of(archive: Archive, tip: str, action: str, every: bool = False) -> dict[str, Any]:
    """Archive number -> the newest commit with this Action on tip's history naming it (every: all, newest first)."""
    found: dict[str, Any] = {}
    for entry in gitio.log(archive.root, tip, f"--grep=^Action: {action}$"):
        if entry.trailers.get("Action") != action:
            continue
        for number in entry.trailers.get("Archive-No", "").split(","):
            if every:
                found.setdefault(number.strip(), []).append(entry.commit)
            else:
                found.setdefault(number.strip(), entry.commit)
    return found


def _rotation_of(archive: Archive, tip: str, address: KeyAddress, rotations: dict[str, list[str]]) -> str | None:
    """The rotation on main that moved the household off this key, if main ever used it."""
    if _never_on_main(archive, tip, address):
        return None
    for rotation in rotations.get(address.archive_no, []):
        for _rev, path, data in records.stored_texts_at(archive.root, f"{rotation}~1", {address.archive_no}):
            if data and yamlio.loads(data, path).get("recipient") == address.recipient:
                return rotation
    return None


def _judge(archive: Archive, tip: str, change: str, judged: dict[str, str | None]) -> str | None:
    """Why a purge or rotation on main does not yet allow destroying keys (unapproved, broken, future-dated)."""
    if change in judged:
        return judged[change]
    verdict = verdict_on(archive, tip, change)
    problem = None
    if verdict.state == "awaiting":
        problem = f"{change[:12]} awaits approval by {', '.join(verdict.by)}"
    elif verdict.state == "broken":
        problem = f"{change[:12]} breaks a rule: {verdict.why[0].split(': ', 1)[-1]}"
    elif dt.datetime.fromisoformat(gitio.committer_date(archive.root, change)) > clock.now() + policy.CLOCK_SKEW:
        problem = f"{change[:12]} is dated in the future"
    judged[change] = problem
    return problem


def _retention_problem(archive: Archive, tip: str, number: str, purge: str) -> str | None:
    """Why one purged household's 30 days are not over, by main's history and the current time (P13), or None."""
    parent = f"{purge}~1"
    found = [(path, data) for _, path, data in records.stored_texts_at(archive.root, parent, {number})]
    if not found:
        return f"{number} was not in the archive before purge {purge[:12]}"
    path, data = found[0]
    stored = records.load_stored(data, path)
    try:
        dates = tombstone_dates(archive, path, stored, rev=parent, mainline=tip)
    except ArchiveError as exc:
        return str(exc)
    days = archive.settings.retention_days
    verdict = policy.retention_verdict(dates, clock.now(), days)
    if verdict.problem:
        return verdict.problem
    if not verdict.eligible:
        return f"{verdict.days_left} days of the {days}-day retention are left (P13)"
    return None


# ------------------------------------------------------------------ OpenBao policies


def bao_policies(archive: Archive, mount: str | None = None) -> dict[str, dict[str, Any]]:
    """One OpenBao policy per staff member (`archivectl-<id>`), plus `archivectl-shredder`, as main says (P7).

    Who may open (transit-decrypt) which household's keys follows the readers of
    each building on main, grants included: managers and the gm every household,
    a butler or cashier the households of their buildings, one path per household.
    A household proposed on a branch (its number is not on main) is readable by
    its building's readers too, so a proposal can be reviewed before it is merged;
    its age wrapping still decides.
    """
    from archivectl import openbao

    mount = mount or openbao.mount_of(archive.keystore.url)
    if mount is None:
        raise UsageError(
            _("keystore {url} is not an OpenBao keystore: name its mount with --mount").format(url=archive.keystore.url)
        )
    tip = _main(archive)
    on_main = _households_by_building(archive, tip)
    numbers = {n for found in on_main.values() for n in found}
    proposed: dict[str, set[str]] = {}
    refs = gitio.out(archive.root, "for-each-ref", "--format=%(objectname)", "refs/heads", "refs/remotes")
    for commit in sorted(set(refs.split())):
        for building, found in _households_by_building(archive, commit).items():
            proposed.setdefault(building, set()).update(found - numbers)
    reads: dict[str, set[str]] = {}
    for building in sorted(set(on_main) | set(proposed)):
        for member_id in _reader_ids(archive, building):
            reads.setdefault(member_id, set()).update(on_main.get(building, set()) | proposed.get(building, set()))

    return openbao.policies(main_staff(archive, tip).members, reads, mount)


def _households_by_building(archive: Archive, rev: str) -> dict[str, set[str]]:
    """{building: {archive-no, ...}} of the households in rev's tree."""
    found: dict[str, set[str]] = {}
    for path in gitio.tree_paths(archive.root, rev, HOUSEHOLDS):
        place = HouseholdPath.of_record(path)
        if place is not None:
            found.setdefault(place.building, set()).add(place.archive_no)
    return found


# ------------------------------------------------------------------ migrate


def migrate(archive: Archive, to_url: str, approval: Any) -> dict[str, Any]:
    """Copy every key and reserved number to another keystore, check each copy, and propose the switch.

    The proposal is a configure commit of archive.yaml's `keystore:` (the gm's
    approval, like any change of the archive's rules); until it is merged, the
    old keystore stays in use and untouched. Keys from before addressing get
    their address on the way (the record's `recipient:`). Repeatable: a key
    already copied is checked, not copied again.
    """
    from archivectl.keystore import NUMBERS, Keystore, backend_for

    if archive.bare:
        raise ArchiveError(_("keys migrate proposes a change of archive.yaml: run it in a clone"))
    if "://" not in to_url:
        to_url = str(Path(to_url).expanduser().resolve())
    approved_writer(archive, approval, "configure")
    if gitio.dirty_paths(archive.root, ["archive.yaml"]):
        raise ArchiveError(_("archive.yaml has uncommitted changes; commit or discard them first"))
    source = archive.keystore
    source.require()
    target = Keystore(backend_for(to_url))
    if target.url == source.url:
        raise ArchiveError(_("the keystore is {url} already").format(url=source.url))
    target.backend.makedirs()
    recipients = {h.archive_no: h.recipient for h in _live(archive)}
    items: list[tuple[str, bytes]] = [
        (f"{NUMBERS}/{n}", source.backend.read(f"{NUMBERS}/{n}") or b"") for n in sorted(source.reserved())
    ]
    addresses = source.addresses()
    for address, blob in zip(addresses, source.backend.read_many([a.name for a in addresses]), strict=True):
        if blob is None:
            continue
        recipient = address.recipient or recipients.get(address.archive_no)
        if recipient is None:
            raise ArchiveError(
                _("{archive_no}: a key from before addressing for no household; `keys fsck`").format(
                    archive_no=address.archive_no
                )
            )
        items.append((KeyAddress(address.archive_no, recipient).name, blob))
    numbers = [n for n in items if n[0].startswith(NUMBERS + "/")]
    created = target.backend.create_many(items)
    copied = sum(created)
    for (name, blob), fresh in zip(items, created, strict=True):
        if not fresh and target.backend.read(name) != blob and not name.startswith(NUMBERS + "/"):
            raise ArchiveError(
                _("{to_url}: {name} holds another key already; nothing was switched").format(to_url=to_url, name=name)
            )
    check = target.backend.read_many([name for name, _ in items if not name.startswith(NUMBERS + "/")])
    if any(blob is None for blob in check):
        raise ArchiveError(
            _("{to_url}: a key did not arrive; nothing was switched (run keys migrate again)").format(to_url=to_url)
        )
    settings_file = archive.root / "archive.yaml"
    before = settings_file.read_bytes()
    text = before.decode("utf-8")
    line = f"keystore: {to_url}"
    text = (
        re.sub(r"(?m)^keystore:.*$", line, text)
        if re.search(r"(?m)^keystore:", text)
        else text.rstrip("\n") + f"\n{line}\n"
    )
    settings_file.write_text(text, encoding="utf-8")
    try:
        commit = configure(archive, ["archive.yaml"], approval)
    except BaseException:
        settings_file.write_bytes(before)
        raise
    return {
        "to": to_url,
        "keys": len(items) - len(numbers),
        "numbers": len(numbers),
        "copied": copied,
        "commit": commit,
    }
