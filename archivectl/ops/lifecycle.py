"""tombstone, restore, purge, move-out, review, backup and restore from backup (P1, P11, P13, P14, P16, P18)."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from archivectl import clock, gitio, idcheck, policy, records, registers
from archivectl.archive import Archive
from archivectl.errors import ArchiveError, UsageError
from archivectl.files import private_output
from archivectl.i18n import _
from archivectl.judge.retention import tombstone_dates
from archivectl.judge.state import destroyed_on_main
from archivectl.keystore import ADDRESSED, KEYS, LEGACY, NUMBER_FILE, NUMBERS, DirectoryBackend, KeyAddress
from archivectl.layout import ARCHIVE_NO, HOUSEHOLDS, HouseholdPath, check_archive_no
from archivectl.ops.common import Approval, approved_writer, load_stored, trailers
from archivectl.ops.holds import current, refuse_if_held
from archivectl.ops.init import configure_clone
from archivectl.ops.keeping import past_keeping

PURGE_METHOD = (
    "record and attachments removed from the tree; record key destroyed by `keys shred` once the purge "
    "is approved on main (crypto-shredding)"
)


def _status_change(
    archive: Archive, archive_no: str, approval: Approval, action: str, change: Any, allowed: tuple[str, ...]
) -> str:
    """Apply change(stored) to a household whose status is one of allowed, in one approved commit."""
    check_archive_no(archive_no)
    with archive.writing() as tx:  # the status checked is the status changed: nothing can slip in between
        actor = approved_writer(archive, approval)
        relpath = archive.locate(archive_no)
        stored = load_stored(archive, relpath)
        status = stored.get("status")
        if status not in allowed:
            raise ArchiveError(
                _("{archive_no} is {status}; this needs a household that is {items}").format(
                    archive_no=archive_no, status=status, items=" or ".join(allowed)
                )
            )
        change(stored)
        stored = records.order_like_schema(stored, archive.household_schema)
        problems = archive.household_schema.validate_stored(stored)
        if problems:
            raise UsageError(f"{archive_no}: {problems[0]}")
        tx.write_text(relpath, records.dump(stored))
        return tx.commit(f"{action} {archive_no}", trailers(action, approval, actor, archive_no), actor)


def tombstone(archive: Archive, archive_no: str, approval: Approval) -> str:
    """Mark a household deleted-pending (P13): kept readable for the retention period."""

    def change(stored: dict) -> None:

        refuse_if_held(archive, [archive_no], "tombstone")  # read under the write lock, like the status
        stored["tombstone"] = {
            "date": clock.today().isoformat(),
            "reason": approval.reason.strip() if approval.reason else "",
            "approver": approval.approver,
            "previous_status": stored["status"],
        }
        stored["status"] = "tombstoned"

    return _status_change(archive, archive_no, approval, "tombstone", change, ("active", "moved-out"))


def tombstone_due(archive: Archive, approval: Approval) -> tuple[list[dict[str, Any]], str]:
    """Propose tombstones for every household past its keeping period, in one approved commit.

    Each tombstone's reason names its class and period (PIPL: kept no longer than necessary).
    """

    with archive.writing() as tx:  # what is due is decided from the records as they stand under the lock
        actor = approved_writer(archive, approval)

        held = current(archive)  # a household under legal hold waits for its release
        due = [row for row in past_keeping(archive) if row["archive_no"] not in held]
        if not due:
            raise ArchiveError(_("no household is past its keeping period (archive.yaml keeping:)"))
        for row in due:
            relpath = archive.locate(row["archive_no"])
            stored = load_stored(archive, relpath)
            stored["tombstone"] = {
                "date": clock.today().isoformat(),
                "reason": f"keeping period ended: {row['class']}, {row['period_days']} days (保管期限)",
                "approver": approval.approver,
                "previous_status": stored["status"],
            }
            stored["status"] = "tombstoned"
            stored = records.order_like_schema(stored, archive.household_schema)
            tx.write_text(relpath, records.dump(stored))
        numbers = ", ".join(r["archive_no"] for r in due)
        commit = tx.commit(
            f"tombstone {len(due)} households past their keeping period",
            trailers("tombstone", approval, actor, numbers),
            actor,
        )
    return due, commit


def restore(archive: Archive, archive_no: str, approval: Approval) -> str:
    """Undo a tombstone before purge."""

    def change(stored: dict) -> None:
        stored["status"] = stored.pop("tombstone", {}).get("previous_status", "active")

    return _status_change(archive, archive_no, approval, "restore", change, ("tombstoned",))


def move_out(archive: Archive, archive_no: str, date: str, approval: Approval) -> str:
    """The household has left (P1, P18): kept apart, catalogued yearly by floor."""
    problem = idcheck.date_problem(date)
    if problem:
        raise UsageError(_("--date {problem}").format(problem=problem))
    if date > clock.today().isoformat():
        raise UsageError(_("--date is in the future"))

    def change(stored: dict) -> None:
        stored["status"] = "moved-out"
        stored["moved_out"] = {"date": date}

    return _status_change(archive, archive_no, approval, "move-out", change, ("active",))


def review(archive: Archive, archive_no: str, approval: Approval) -> str:
    """Record a periodic review (P11): last_reviewed becomes today."""

    def change(stored: dict) -> None:
        stored["last_reviewed"] = clock.today().isoformat()

    return _status_change(archive, archive_no, approval, "review", change, ("active", "moved-out"))


# ---------------------------------------------------------------------- purge


@dataclass(frozen=True)
class PurgeCandidate:
    """A tombstoned household and what the 30-day rule says about it."""

    archive_no: str
    relpath: str
    building: str
    tombstone_date: str
    verdict: policy.RetentionVerdict

    def row(self) -> dict[str, Any]:
        return {
            "archive_no": self.archive_no,
            "building": self.building,
            "tombstoned": self.tombstone_date,
            "clock_started": self.verdict.started.isoformat(timespec="seconds"),
            "days_left": self.verdict.days_left,
            "eligible": self.verdict.eligible,
            "problem": self.verdict.problem or "",
        }


def candidates(archive: Archive, numbers: list[str] | None = None) -> list[PurgeCandidate]:
    """Tombstoned households (all, or the numbers given) with their retention verdicts.

    The retention period is the committed archive.yaml's (Archive.settings), never a local edit.
    """
    now = clock.now()
    days = archive.settings.retention_days
    if numbers:
        paths = [archive.locate(check_archive_no(n)) for n in numbers]
    else:
        paths = [p for _, p in archive.record_paths()]
    found = []
    for relpath in paths:
        stored = load_stored(archive, relpath)
        if stored.get("status") != "tombstoned":
            if numbers:
                raise ArchiveError(
                    _("{archive_no} is not tombstoned; tombstone it first (P13)").format(
                        archive_no=stored.get("archive_no")
                    )
                )
            continue
        verdict = policy.retention_verdict(tombstone_dates(archive, relpath, stored), now, days)
        found.append(
            PurgeCandidate(
                str(stored["archive_no"]),
                relpath,
                str(stored["building"]),
                str((stored.get("tombstone") or {}).get("date")),
                verdict,
            )
        )
    return found


def purge(
    archive: Archive, numbers: list[str], eligible: bool, dry_run: bool, approval: Approval
) -> list[dict[str, Any]]:
    """Propose destroying households tombstoned at least retention_days ago (P13, P14).

    One signed commit removes the households' files and appends the destruction
    register. It destroys nothing yet: the record keys stay until the purge is
    approved on main, where `keys shred` destroys them (principle: irreversible
    only after approval on main). Returns what was (or would be) purged.
    """
    if bool(numbers) == bool(eligible):
        raise UsageError(_("name the households to purge, or give --eligible (not both)"))
    if dry_run:
        return [c.row() for c in _purge_candidates(archive, numbers)]
    with archive.writing() as tx:  # tombstones, their dates and the settings as they stand under the lock
        refuse_if_held(archive, numbers, "purge")
        held = current(archive)  # --eligible leaves a held household for after its release
        found = [c for c in _purge_candidates(archive, numbers) if c.archive_no not in held]
        for c in found:
            if c.verdict.problem:
                raise ArchiveError(
                    _("{archive_no}: {problem}; purge refused").format(
                        archive_no=c.archive_no, problem=c.verdict.problem
                    )
                )
            if numbers and not c.verdict.eligible:
                raise ArchiveError(
                    _(
                        "{archive_no} was tombstoned {tombstone_date}; {days_left} days of the "
                        "{retention_days}-day retention are left (P13)"
                    ).format(
                        archive_no=c.archive_no,
                        tombstone_date=c.tombstone_date,
                        days_left=c.verdict.days_left,
                        retention_days=archive.settings.retention_days,
                    )
                )
        chosen = [c for c in found if c.verdict.eligible]
        if not chosen:
            raise ArchiveError(_("no household is eligible for purge"))
        actor = approved_writer(archive, approval)
        purged_at = clock.now_iso()
        for c in chosen:
            home = HouseholdPath.of(c.relpath).dir
            for path in gitio.ls_files(archive.root, f"{home}/"):
                tx.write(path, None)
            fields = {
                "archive_no": c.archive_no,
                "building": c.building,
                "tombstoned": c.tombstone_date,
                "purged": purged_at,
                "method": PURGE_METHOD,
            }
            registers.register(tx, "destruction", "purge", actor.member.id, fields, approval=approval)
        subject = f"purge {chosen[0].archive_no}" if len(chosen) == 1 else f"purge {len(chosen)} households"
        archive_nos = ", ".join(c.archive_no for c in chosen)
        tx.commit(subject, trailers("purge", approval, actor, archive_nos), actor)
    return [{**c.row(), "proposed": purged_at} for c in chosen]  # destroyed by keys shred once approved


def _purge_candidates(archive: Archive, numbers: list[str]) -> list[PurgeCandidate]:
    if gitio.dirty_paths(archive.root, ["archive.yaml"]):
        raise ArchiveError(_("archive.yaml has uncommitted changes; purge uses the committed settings only"))
    return candidates(archive, numbers or None)


# ---------------------------------------------------------------- backup / restore
#
# A backup holds what a restore needs and nothing a purge must reach: the keys
# of households live at HEAD, each the one its record names. It expires after
# retention_days, the same period a tombstone waits before its purge, so a
# backup made before a tombstone is past its expiry before that household's key
# can be shredded; restore refuses it then, and withholds every key any
# destruction register it can see names, whatever the clock says.

MANIFEST = "manifest.json"
BUNDLE = "archive.bundle"
BACKUP_FORMAT = "archivectl-backup-2"
OLD_BACKUP_FORMAT = "archivectl-backup-1"  # no expiry recorded: still restored, with a warning
MANIFEST_MAX_BYTES = 64 * 1024 * 1024
DESTRUCTION = "registers/destruction"
UNADDRESSED = "(unaddressed)"  # how `keys shred` names a key stored before keys were addressed
RECIPIENT = re.compile(r"age1[0-9a-z]{20,90}")


@dataclass(frozen=True)
class _Held:
    """A household as one commit holds it: enough to tell which of its keys a copy needs."""

    status: str | None
    recipient: str | None


def _households_at(archive: Archive, rev: str | None) -> dict[str, _Held]:
    """Archive number -> status and recipient of every household in rev's tree (an unreadable record: both None).

    Read through the clear facts kept per building subtree (facts.households, as reports read them):
    a backup after the night's report parses no record again, and only a changed building's otherwise;
    a cold read parses the records on both cores.
    """
    from archivectl.facts import households

    tree = gitio.tree_at(archive.root, rev, HOUSEHOLDS) if rev is not None else None
    if tree is None:
        return {}
    found: dict[str, _Held] = {}
    for facts in households(archive, tree=tree):
        place = HouseholdPath.of_record(facts["path"])
        if place is None:
            continue
        if facts.get("invalid"):
            found[place.archive_no] = _Held(None, None)  # nothing can be told of it, so nothing is left out
        else:
            found[place.archive_no] = _Held(str(facts.get("status")), facts.get("recipient"))
    return found


@dataclass
class Withholding:
    """What destruction registers say must never come back (P14).

    A purge withholds every key of its households; a shred withholds exactly the
    keys it lists, so the old key of a rotation goes and the live household's new
    key stays. Whatever cannot be read precisely withholds the whole household.
    """

    purged: set[str] = field(default_factory=set)
    shredded: set[tuple[str, str | None]] = field(default_factory=set)

    def add(self, entry: dict[str, Any]) -> None:
        numbers = [n.strip() for n in str(entry.get("archive_no") or "").split(",") if n.strip()]
        keys = entry.get("keys")
        if entry.get("action") != "shred" or not isinstance(keys, list) or not keys:
            self.purged.update(numbers)
            return
        for line in keys:
            self._add_key(str(line), numbers)

    def _add_key(self, line: str, fallback: list[str]) -> None:
        """One `<archive-no> <recipient|(unaddressed)> ...` line; unreadable, its households are withheld."""
        parts = line.split()
        number = parts[0] if parts and ARCHIVE_NO.fullmatch(parts[0]) else None
        recipient = parts[1] if len(parts) > 1 else ""
        if number and recipient == UNADDRESSED:
            self.shredded.add((number, None))
        elif number and RECIPIENT.fullmatch(recipient):
            self.shredded.add((number, recipient))
        else:
            self.purged.update([number] if number else fallback)

    def add_all(self, entries: list[dict[str, Any]]) -> None:
        for entry in entries:
            self.add(entry)

    def add_manifest(self, destroyed: Any) -> None:
        """A format-2 manifest's `destroyed` ({purged: [...], shredded: ["<no> <recipient>", ...]})."""
        if not isinstance(destroyed, dict):
            raise UsageError(_("not an archivectl backup (its manifest's destroyed is damaged)"))
        self.purged.update(str(n) for n in destroyed.get("purged") or [] if ARCHIVE_NO.fullmatch(str(n)))
        for line in destroyed.get("shredded") or []:
            self._add_key(str(line), [])

    def add_unexplained(self, numbers: Any) -> None:
        """A format-1 manifest's `destroyed` (bare archive numbers): each one no entry seen explains is purged."""
        explained = self.purged | {n for n, _ in self.shredded}
        for item in numbers if isinstance(numbers, list) else []:
            self.purged.update(n.strip() for n in str(item).split(",") if n.strip() and n.strip() not in explained)

    def why(self, number: str, recipient: str | None) -> str | None:
        if number in self.purged:
            return "purged"
        if (number, recipient) in self.shredded:
            return "shredded"
        return None

    def manifest(self) -> dict[str, list[str]]:
        return {
            "purged": sorted(self.purged),
            "shredded": sorted(f"{n} {r or UNADDRESSED}" for n, r in self.shredded),
        }


def _destruction_on_main(root: Path, set_aside: list[str] | None = None) -> list[dict[str, Any]]:
    """The destruction entries that are facts on main's judged history of the copy at root (P14).

    Only main counts, and only entries whose commit the judge finds final (an approved purge,
    a shred of keys an approved purge or rotation made obsolete): an entry on a branch, in
    the work tree, or in a broken or unapproved commit withholds nothing (it goes to set_aside).
    """
    archive = Archive(root.resolve(), bare=gitio.is_bare(root))
    tip = archive.main_commit()
    if tip is None:
        return []
    entries, aside = destroyed_on_main(archive, tip)
    if set_aside is not None:
        set_aside += aside
    return entries


def _slug(name: str) -> str:
    return re.sub(r"[\W_]+", "-", name).strip("-").lower()[:60] or "archive"


def backup(
    archive: Archive,
    output: Path | None = None,
    into: Path | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> dict[str, Any]:
    """One tar file: a git bundle of every ref and the record keys of the households live at HEAD (P16).

    Left out: keys of households tombstoned (at HEAD, or on main) or not in HEAD
    at all, and keys a rotation superseded, so a backup holds no key a purge
    will shred. The manifest records when it expires (created + retention_days).
    With into, the file is DIR/<archive>-<UTC time>.tar and the expired backups
    in DIR are overwritten and removed. Keys are read through the keystore's
    backend into memory (it may be remote) and written into the tar only.
    """
    if (output is None) == (into is None):
        raise UsageError(_("give --output FILE or --into DIR (one of the two)"))
    now = clock.now()
    days = archive.settings.retention_days
    expires = now + dt.timedelta(days=days)
    if into is not None:
        into = into.expanduser()
        output = _backup_name(into, archive.settings.name, now)
    assert output is not None
    output = output.expanduser()  # not resolved: a link at output must be seen, never followed
    where = output.parent.resolve() / output.name
    if os.path.lexists(output):
        raise UsageError(_("{output} already exists").format(output=output))
    if where.is_relative_to(archive.root.resolve()):
        raise UsageError(_("{output}: write the backup outside the archive").format(output=output))
    archive.keystore.require()
    head = gitio.head(archive.root)
    kept, left_out = _keys_to_keep(archive, head)
    numbers = sorted(archive.keystore.reserved())
    names = [a.name for a in kept] + [f"{NUMBERS}/{n}" for n in numbers]
    blobs = dict(zip(names, archive.keystore.backend.sealed_many(names), strict=True))  # as the keystore keeps them
    keys = [a.name for a in kept if blobs[a.name] is not None]  # a key shredded meanwhile is simply not there
    gone = Withholding()
    gone.add_all(_destruction_on_main(archive.root))  # the verified list this backup is made with
    manifest = {
        "format": BACKUP_FORMAT,
        "created": now.isoformat(timespec="seconds"),
        "expires": expires.isoformat(timespec="seconds"),
        "retention_days": days,
        "archive": archive.settings.name,
        "main": archive.settings.main,
        "head": head,
        "keys": keys,
        "left_out": left_out,
        "destroyed": gone.manifest(),
    }
    with tempfile.TemporaryDirectory(prefix="archivectl-backup-") as tmp:
        bundle = Path(tmp) / BUNDLE
        if progress:
            progress(0, 0, "bundling the history")
        gitio.bundle_create(archive.root, bundle)  # git objects only: sealed records, no key
        with private_output(output) as raw:
            tar = _TarWriter(raw)
            tar.add_bytes(MANIFEST, json.dumps(manifest, indent=2).encode())  # first: prune reads only this
            tar.add_file(BUNDLE, bundle)
            names = keys + [f"{NUMBERS}/{n}" for n in numbers]
            for done, name in enumerate(names, start=1):
                if progress and (done % 500 == 0 or done == len(names)):
                    progress(done, len(names), "adding record keys")
                blob = blobs[name]
                if blob is not None:
                    tar.add_bytes(f"keystore/{name}", blob)
            tar.close()
    result: dict[str, Any] = {
        "output": str(where),
        "keys": len(keys),
        "head": head or "",
        "expires": manifest["expires"],
        "retention_days": days,
        "left_out": left_out,
        "pruned": [],
        "unpruned": [],
        "undated": 0,
    }
    if into is not None:
        result.update(_prune(into, output.name, clock.now()))
    return result


def _keys_to_keep(archive: Archive, head: str | None) -> tuple[list[KeyAddress], dict[str, int]]:
    """The keys a backup holds (each live household's, the one its record names) and how many were left out, why."""
    held = _households_at(archive, head)
    tip = archive.main_commit()
    tombstoned = {n for n, h in held.items() if h.status == "tombstoned"}
    if tip and tip != head:  # a tombstone already on main counts too: its purge's clock runs from there
        tombstoned |= {n for n, h in _households_at(archive, tip).items() if h.status == "tombstoned"}
    addresses = archive.keystore.addresses()
    addressed = {(a.archive_no, a.recipient) for a in addresses if a.recipient}
    kept: list[KeyAddress] = []
    left_out = {"tombstoned": 0, "not_in_head": 0, "superseded": 0}
    for a in addresses:
        h = held.get(a.archive_no)
        if h is None:
            left_out["not_in_head"] += 1
        elif a.archive_no in tombstoned:
            left_out["tombstoned"] += 1
        elif _superseded(a.archive_no, a.recipient, h, addressed):
            left_out["superseded"] += 1
        else:
            kept.append(a)
    return kept, left_out


def _superseded(number: str, recipient: str | None, held: _Held, addressed: set[tuple[str, str | None]]) -> bool:
    """True for a key that is not the one the record names: a rotation's old key, or one from before
    addressing beside the addressed copy of the record's key."""
    if held.recipient is None or recipient == held.recipient:
        return False
    return recipient is not None or (number, held.recipient) in addressed


def _backup_name(directory: Path, archive_name: str, now: dt.datetime) -> Path:
    """DIR/<archive name slug>-<UTC yyyymmddTHHMMSSZ>.tar (-2, -3, ... within one second)."""
    stem = f"{_slug(archive_name)}-{now.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}"
    for n in range(1, 100):
        candidate = directory / (f"{stem}.tar" if n == 1 else f"{stem}-{n}.tar")
        if not os.path.lexists(candidate):
            return candidate
    raise ArchiveError(_("{directory}: too many backups made within one second").format(directory=directory))


class _TarWriter:
    """A tar file written straight to raw, member by member: what tarfile writes, without its cost per member.

    A backup holds two members per household (its key, its number): tarfile's
    addfile spends ~100 us on each (a pax check, a BytesIO, a header built field
    by field), a tenth of a 100,000-household backup (issue 30). A plain name
    (ASCII, under 100 bytes) gets a ustar header made here, byte for byte what
    tarfile makes for it; any other name or size, tarfile's own (pax) header.
    Members are mode 0600, owner 0, time 0, as before; tarfile reads the result.
    """

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.written = 0

    def _write(self, data: bytes) -> None:
        self.raw.write(data)
        self.written += len(data)

    def _header(self, name: str, size: int, mtime: int = 0) -> bytes:
        encoded = name.encode("utf-8")
        if not name.isascii() or len(encoded) >= 100 or size >= 8**11 or not 0 <= mtime < 8**11:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = size, 0o600, mtime
            return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
        fields = [
            encoded.ljust(100, b"\0"),
            b"0000600\0",  # mode
            b"0000000\0" * 2,  # uid, gid
            b"%011o\0" % size,
            b"%011o\0" % mtime,
            b" " * 8,  # the checksum, counted as spaces
            b"0",  # a regular file
            bytes(100),  # linkname
            b"ustar\x0000",
            bytes(64),  # uname, gname
            bytes(16),  # devmajor, devminor: empty for a regular file
            bytes(167),  # prefix, padding
        ]
        header = b"".join(fields)
        return header[:148] + b"%06o\0" % sum(header) + header[155:]

    def add_bytes(self, name: str, data: bytes) -> None:
        self._write(self._header(name, len(data)))
        self._write(data)
        self._write(bytes(-len(data) % tarfile.BLOCKSIZE))

    def add_file(self, name: str, path: Path) -> None:
        """A file's bytes, copied in chunks (a bundle may be large)."""
        with open(path, "rb") as src:
            size = os.fstat(src.fileno()).st_size
            self._write(self._header(name, size, int(os.fstat(src.fileno()).st_mtime)))
            copied = 0
            while chunk := src.read(1024 * 1024):
                self._write(chunk)
                copied += len(chunk)
        if copied != size:
            raise ArchiveError(_("{name} changed while it was copied into the backup").format(name=name))
        self._write(bytes(-size % tarfile.BLOCKSIZE))

    def close(self) -> None:
        """The end of the archive: two empty blocks, then zeros to a whole record, as tarfile ends one."""
        written = self.written + 2 * tarfile.BLOCKSIZE
        self._write(bytes(2 * tarfile.BLOCKSIZE + (-written % tarfile.RECORDSIZE)))


def _prune(directory: Path, keep: str, now: dt.datetime) -> dict[str, Any]:
    """Overwrite with random bytes and remove every backup in directory past its expiry (not keep).

    Only regular files whose first entry is an archivectl manifest are touched,
    each through one descriptor checked to be the file looked at.
    """
    pruned: list[dict[str, str]] = []
    unpruned: list[dict[str, str]] = []
    undated = 0
    folder = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        for name in sorted(os.listdir(folder)):
            if name == keep or name.startswith(".") or not name.endswith(".tar"):
                continue
            found = _manifest_in(folder, name)
            if found is None:
                continue
            manifest, identity = found
            if manifest.get("format") == OLD_BACKUP_FORMAT:
                undated += 1
                continue
            expires = _when(manifest.get("expires")) if manifest.get("format") == BACKUP_FORMAT else None
            if expires is None or expires > now:
                continue
            try:
                _overwrite_and_remove(folder, name, identity)
            except OSError as exc:
                unpruned.append({"file": str(directory / name), "problem": exc.strerror or str(exc)})
                continue
            pruned.append({"file": str(directory / name), "expired": expires.isoformat(timespec="seconds")})
    finally:
        os.close(folder)
    return {"pruned": pruned, "unpruned": unpruned, "undated": undated}


def _manifest_in(folder: int, name: str) -> tuple[dict[str, Any], tuple[int, int]] | None:
    """The manifest of an archivectl backup named name in folder, and the file's identity; None for anything else."""
    try:
        info = os.stat(name, dir_fd=folder, follow_symlinks=False)
        if not stat.S_ISREG(info.st_mode):
            return None
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=folder)
        with os.fdopen(fd, "rb") as fh:
            same = os.fstat(fh.fileno())
            if (same.st_dev, same.st_ino) != (info.st_dev, info.st_ino):
                return None
            with tarfile.open(fileobj=fh, mode="r:") as tar:
                first = tar.next()
                if first is None or first.name != MANIFEST or not first.isfile() or first.size > MANIFEST_MAX_BYTES:
                    return None
                member = tar.extractfile(first)
                manifest = json.loads(member.read()) if member else None
    except (OSError, tarfile.TarError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("format") not in (BACKUP_FORMAT, OLD_BACKUP_FORMAT):
        return None
    return manifest, (info.st_dev, info.st_ino)


def _overwrite_and_remove(folder: int, name: str, identity: tuple[int, int]) -> None:
    """Like files.shred, with random bytes: the file that was read, overwritten, synced, then unlinked."""
    fd = os.open(name, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=folder)
    try:
        info = os.fstat(fd)
        if (info.st_dev, info.st_ino) != identity:
            raise OSError(0, "it changed while being checked")
        remaining = info.st_size
        while remaining > 0:
            remaining -= os.write(fd, os.urandom(min(remaining, 1 << 20)))
        os.fsync(fd)
    finally:
        os.close(fd)
    now = os.stat(name, dir_fd=folder, follow_symlinks=False)
    if (now.st_dev, now.st_ino) != identity:
        raise OSError(0, "it changed while being overwritten")
    os.unlink(name, dir_fd=folder)
    os.fsync(folder)


def _when(value: Any) -> dt.datetime | None:
    """An ISO time with its zone, or None."""
    try:
        moment = dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def restore_backup(backup_file: Path, target: Path, replay_from: list[str], here: str | None = None) -> dict[str, Any]:
    """Rebuild an archive and its keystore (<target>.keys) from a backup (P14, P16).

    Refuses a backup past its expiry. Withholds every key a destruction register
    names: the backup's own (its manifest, written from HEAD and main as the
    backup saw them, and every branch in its bundle), every archive or git URL
    in replay_from (newer copies know of later purges and shreds), and the
    archive the command runs in (here: --archive, else found from the current
    directory), if there is one. Restores only the key each household of the
    restored main names. Works from any directory, inside a git repository or not.
    """

    current = _archive_here(here)
    replay_from = [*replay_from, *([current] if current else [])]

    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise UsageError(_("{target} already exists and is not an empty directory").format(target=target))
    if not backup_file.is_file():
        raise UsageError(_("{backup_file}: no such file").format(backup_file=backup_file))
    keys_dir = target.resolve().with_name(target.resolve().name + ".keys")
    if keys_dir.exists() and any(keys_dir.iterdir()):
        raise UsageError(_("keystore {keys_dir} already holds keys; move it away first").format(keys_dir=keys_dir))
    with tempfile.TemporaryDirectory(prefix="archivectl-restore-") as tmp:
        work = Path(tmp)
        manifest, warning, stored = _read_backup(backup_file, work / BUNDLE)
        branch = _branch_of(backup_file, manifest)
        _verify_bundle(work / BUNDLE, work / "verify")
        gone = Withholding()
        set_aside: list[str] = []  # destruction entries that are not facts on a main: they withhold nothing
        if manifest.get("format") == BACKUP_FORMAT:
            gone.add_manifest(manifest.get("destroyed"))
        for n, source in enumerate(replay_from):
            gone.add_all(_destruction_in(source, work / f"replay-{n}", set_aside))
        created = not target.exists()
        try:
            gitio.clone(str(work / BUNDLE), target, branch=branch)
            gone.add_all(_destruction_on_main(target, set_aside))
            if manifest.get("format") == OLD_BACKUP_FORMAT:
                gone.add_unexplained(manifest.get("destroyed"))
            gitio.run(target, "remote", "remove", "origin")
            archive = Archive(target.resolve())
            configure_clone(archive)
            held = _households_at(archive, gitio.head(archive.root))
            keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            store = DirectoryBackend(keys_dir)
            store.makedirs()
            restored, withheld, unmatched = _restore_keys(store, stored, held, gone)
            numbers = _restore_numbers(store, stored, held, gone)
            elsewhere = _other_keystore(archive, keys_dir)
        except BaseException:
            if created:
                shutil.rmtree(target, ignore_errors=True)
            shutil.rmtree(keys_dir, ignore_errors=True)
            raise
    return {
        "archive": str(target),
        "keystore": str(keys_dir),
        "restored_keys": restored,
        "withheld": withheld,
        "set_aside": sorted(set(set_aside)),
        "unmatched": unmatched,
        "numbers": numbers,
        "warning": warning,
        "keystore_setting": elsewhere,
    }


def _archive_here(explicit: str | None) -> str | None:
    """The archive a restore runs in, whose destruction register it honours too (P14); None outside one."""
    try:
        return str(Archive.find(explicit).root)
    except ArchiveError:  # UsageError too: no archive here
        return None


def _read_backup(backup_file: Path, bundle_to: Path) -> tuple[dict[str, Any], str | None, dict[str, bytes]]:
    """The manifest (expiry checked first), a warning for a backup with no expiry, and the keystore entries in memory.

    The bundle is copied to bundle_to; keys are never written to disk here.
    """
    try:
        with tarfile.open(backup_file, mode="r:") as tar:
            members = tar.getmembers()
            names = [m.name for m in members]
            if MANIFEST not in names or BUNDLE not in names:
                raise UsageError(_("{backup_file}: not an archivectl backup").format(backup_file=backup_file))
            if len(set(names)) != len(names):
                raise UsageError(_("{backup_file}: an entry is there twice").format(backup_file=backup_file))
            for m in members:
                if not m.isfile() or not (m.name in (MANIFEST, BUNDLE) or _is_keystore_member(m.name)):
                    raise UsageError(
                        _("{backup_file}: unexpected entry {name!r}").format(backup_file=backup_file, name=m.name)
                    )
            by_name = {m.name: m for m in members}
            if by_name[MANIFEST].size > MANIFEST_MAX_BYTES:
                raise UsageError(
                    _("{backup_file}: not an archivectl backup (its manifest is too large)").format(
                        backup_file=backup_file
                    )
                )
            manifest = _manifest(backup_file, _member_bytes(tar, by_name[MANIFEST]))
            warning = _expiry_check(backup_file, manifest)
            stored = {
                m.name.removeprefix("keystore/"): _member_bytes(tar, m)
                for m in members
                if m.name.startswith("keystore/")
            }
            source = tar.extractfile(by_name[BUNDLE])
            assert source is not None
            with source, open(bundle_to, "xb") as sink:
                shutil.copyfileobj(source, sink)
    except (tarfile.TarError, OSError) as exc:
        raise UsageError(
            _("{backup_file}: not a readable backup ({kind})").format(
                backup_file=backup_file, kind=exc.__class__.__name__
            )
        ) from None
    return manifest, warning, stored


def _member_bytes(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    source = tar.extractfile(member)
    assert source is not None
    return source.read()


def _manifest(backup_file: Path, data: bytes) -> dict[str, Any]:
    try:
        manifest = json.loads(data)
    except ValueError:
        manifest = None
    if not isinstance(manifest, dict):
        raise UsageError(
            _("{backup_file}: not an archivectl backup (its manifest is unreadable)").format(backup_file=backup_file)
        )
    return manifest


def _branch_of(backup_file: Path, manifest: dict[str, Any]) -> str:
    """The archive's main branch as the manifest names it (format 1: main), checked like archive.yaml's main:."""
    branch = str(manifest.get("main") or "main")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,63}", branch) or ".." in branch:
        raise UsageError(
            _("{backup_file}: not an archivectl backup (its manifest names no branch)").format(backup_file=backup_file)
        )
    return branch


def _expiry_check(backup_file: Path, manifest: dict[str, Any]) -> str | None:
    """ArchiveError for a backup past its expiry; a warning for one that records none (format 1)."""
    kind = manifest.get("format")
    if kind == OLD_BACKUP_FORMAT:
        return f"{backup_file}: this backup has no expiry recorded (made by an older archivectl); restoring it"
    if kind != BACKUP_FORMAT:
        raise UsageError(
            _("{backup_file}: backup format {kind!r} is not one this archivectl reads").format(
                backup_file=backup_file, kind=str(kind)[:40]
            )
        )
    expires = _when(manifest.get("expires"))
    if expires is None:
        raise UsageError(
            _("{backup_file}: its manifest records no valid expiry; it may not be restored").format(
                backup_file=backup_file
            )
        )
    if clock.now() >= expires:
        days = manifest.get("retention_days")
        raise ArchiveError(
            _("{backup_file}: this backup expired on {date} (retention_days {days}); it may not be restored").format(
                backup_file=backup_file, date=expires.date().isoformat(), days=days
            )
        )
    return None


def _verify_bundle(bundle: Path, scratch: Path) -> None:
    """`git bundle verify` needs a repository to run in: an empty one of our own, so restore runs anywhere."""
    gitio.init(scratch)
    proc = gitio.run(scratch, "bundle", "verify", "-q", str(bundle.resolve()), check=False)
    if proc.returncode != 0:
        lines = [ln.strip() for ln in proc.stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
        fatal = [ln for ln in lines if ln.startswith(("fatal:", "error:"))]
        raise ArchiveError(
            _("the backup's git bundle does not verify: {problem}").format(
                problem=(fatal or lines or ["no message"])[0]
            )
        )


def _restore_keys(
    store: DirectoryBackend, stored: dict[str, bytes], held: dict[str, _Held], gone: Withholding
) -> tuple[list[str], list[dict[str, str]], int]:
    """Put back each key the restored main's records name, unless a register withholds it."""
    found = []
    for name in sorted(stored):
        if name.startswith(f"{NUMBERS}/"):
            continue
        m = ADDRESSED.fullmatch(name.removeprefix(f"{KEYS}/")) or LEGACY.fullmatch(name)
        assert m is not None  # checked when the backup was read
        found.append((name, m["no"], m.groupdict().get("recipient")))
    in_backup = {(number, recipient) for _, number, recipient in found if recipient}
    restored: list[str] = []
    withheld: list[dict[str, str]] = []
    unmatched = 0
    for name, number, recipient in found:
        why = gone.why(number, recipient)
        if why:
            withheld.append({"archive_no": number, "key": recipient or UNADDRESSED, "why": why})
            continue
        household = held.get(number)
        if household is None or _superseded(number, recipient, household, in_backup):
            unmatched += 1
            continue
        store.create(KeyAddress(number, recipient).name, stored[name])
        restored.append(number)
    return restored, withheld, unmatched


def _restore_numbers(
    store: DirectoryBackend, stored: dict[str, bytes], held: dict[str, _Held], gone: Withholding
) -> int:
    """Reserve again every archive number the backup knew of (P3: never reused, purged ones included)."""
    notes = {n.removeprefix(f"{NUMBERS}/"): b for n, b in stored.items() if n.startswith(f"{NUMBERS}/")}
    known = set(held) | gone.purged | {n for n, _ in gone.shredded}
    for name in stored:
        m = ADDRESSED.fullmatch(name.removeprefix(f"{KEYS}/")) or LEGACY.fullmatch(name)
        if m:
            known.add(m["no"])
    for number in known - set(notes):
        if NUMBER_FILE.fullmatch(number):
            notes[number] = f"reserved again {clock.now_iso()} by restore from a backup\n".encode()
    for number, note in sorted(notes.items()):
        store.create(f"{NUMBERS}/{number}", note)
    return len(notes)


def _other_keystore(archive: Archive, keys_dir: Path) -> str | None:
    """The keystore archive.yaml names, where it is not the restored one (the user must point at keys_dir)."""
    configured = archive.settings.keystore
    if not configured:
        return None
    where = configured if "://" in configured else str((archive.root / Path(configured).expanduser()).resolve())
    return None if where == str(keys_dir) else configured


def _is_keystore_member(name: str) -> bool:
    """keystore/<no>.age (from before addressing), keystore/keys/<no>.<recipient>.age, keystore/numbers/<no>."""
    parts = name.split("/")
    if len(parts) == 2 and parts[0] == "keystore":
        return bool(LEGACY.fullmatch(parts[1]))
    if len(parts) != 3 or parts[0] != "keystore":
        return False
    if parts[1] == KEYS:
        return bool(ADDRESSED.fullmatch(parts[2]))
    return parts[1] == NUMBERS and bool(NUMBER_FILE.fullmatch(parts[2]))


def _destruction_in(source: str, scratch: Path, set_aside: list[str]) -> list[dict[str, Any]]:
    """The destruction entries that are facts on another copy's main (a path or git URL): newer copies know more."""
    path = Path(source).expanduser()
    if (path / "archive.yaml").is_file() or gitio.is_bare(path):
        return _destruction_on_main(path, set_aside)
    try:
        gitio.clone(source, scratch)
    except ArchiveError:
        raise ArchiveError(
            _("--replay-from {source}: not an archive or git repository").format(source=source)
        ) from None
    return _destruction_on_main(scratch, set_aside)
