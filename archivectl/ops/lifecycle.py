"""tombstone, restore, purge, move-out, review, backup and restore from backup (P1, P11, P13, P14, P16, P18)."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archivectl import clock, gitio, idcheck, policy, records, registers
from archivectl.archive import Archive, check_archive_no, keystore_url, now_iso
from archivectl.errors import ArchiveError, UsageError
from archivectl.files import private_output
from archivectl.keystore import DirectoryBackend
from archivectl.ops.common import Approval, approved_writer, load_stored, trailers

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
            raise ArchiveError(f"{archive_no} is {status}; this needs a household that is {' or '.join(allowed)}")
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
    from archivectl.ops.keeping import past_keeping

    with archive.writing() as tx:  # what is due is decided from the records as they stand under the lock
        actor = approved_writer(archive, approval)
        due = past_keeping(archive)
        if not due:
            raise ArchiveError("no household is past its keeping period (archive.yaml keeping:)")
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
        raise UsageError(f"--date {problem}")
    if date > clock.today().isoformat():
        raise UsageError("--date is in the future")

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


def tombstone_dates(
    archive: Archive, relpath: str, stored: dict, rev: str = "HEAD", mainline: str | None = None
) -> policy.TombstoneDates:
    """The dates of the commit that made rev's tombstone, its parents and its arrival on the main line.

    The main line is mainline's first-parent history (default: rev's).
    """
    line_rev = mainline or rev
    tomb = stored.get("tombstone") or {}
    history = gitio.path_history(archive.root, relpath, rev)
    made_in = None
    for commit, parents, date in history:  # newest first: walk back while the tombstone is there
        blob = gitio.show_blob(archive.root, commit, relpath)
        version = records.load_stored(blob, relpath) if blob else {}
        if version.get("status") != "tombstoned" or version.get("tombstone") != tomb:
            break
        made_in = (commit, parents, date)
    if made_in is None:
        raise ArchiveError(f"{stored.get('archive_no')}: the tombstone is not committed yet")
    commit, parents, date = made_in
    arrival = gitio.first_mainline_containing(archive.root, commit, line_rev)
    try:
        yaml_date = dt.date.fromisoformat(str(tomb.get("date")))
    except ValueError:
        raise ArchiveError(f"{stored.get('archive_no')}: tombstone date is not a date") from None
    return policy.TombstoneDates(
        yaml_date=yaml_date,
        commit=dt.datetime.fromisoformat(date),
        parents=tuple(dt.datetime.fromisoformat(gitio.committer_date(archive.root, p)) for p in parents),
        mainline=dt.datetime.fromisoformat(gitio.committer_date(archive.root, arrival)) if arrival else None,
        mainline_backwards=_mainline_goes_backwards(archive, line_rev, arrival),
    )


def _mainline_goes_backwards(archive: Archive, rev: str, since: str | None) -> bool:
    """True when a main-line commit from `since` up to rev is dated before its first parent (P13's clock)."""
    line = gitio.first_parent_dates(archive.root, rev)  # newest first
    for (commit, date), (_, parent_date) in itertools.pairwise(line):
        if dt.datetime.fromisoformat(date) < dt.datetime.fromisoformat(parent_date) - policy.CLOCK_SKEW:
            return True
        if commit == since:
            break
    return False


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
                raise ArchiveError(f"{stored.get('archive_no')} is not tombstoned; tombstone it first (P13)")
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
        raise UsageError("name the households to purge, or give --eligible (not both)")
    if dry_run:
        return [c.row() for c in _purge_candidates(archive, numbers)]
    with archive.writing() as tx:  # tombstones, their dates and the settings as they stand under the lock
        found = _purge_candidates(archive, numbers)
        for c in found:
            if c.verdict.problem:
                raise ArchiveError(f"{c.archive_no}: {c.verdict.problem}; purge refused")
            if numbers and not c.verdict.eligible:
                raise ArchiveError(
                    f"{c.archive_no} was tombstoned {c.tombstone_date}; {c.verdict.days_left} days of the "
                    f"{archive.settings.retention_days}-day retention are left (P13)"
                )
        chosen = [c for c in found if c.verdict.eligible]
        if not chosen:
            raise ArchiveError("no household is eligible for purge")
        actor = approved_writer(archive, approval)
        purged_at = now_iso()
        for c in chosen:
            home = c.relpath.removesuffix("/record.yaml")
            for path in gitio.ls_files(archive.root, f"{home}/"):
                tx.write(path, None)
            registers.append(
                tx,
                "destruction",
                {
                    "action": "purge",
                    "archive_no": c.archive_no,
                    "building": c.building,
                    "tombstoned": c.tombstone_date,
                    "purged": purged_at,
                    "who": actor.member.id,
                    "approved_by": approval.approver,
                    "reason": approval.reason,
                    "method": PURGE_METHOD,
                },
            )
        subject = f"purge {chosen[0].archive_no}" if len(chosen) == 1 else f"purge {len(chosen)} households"
        archive_nos = ", ".join(c.archive_no for c in chosen)
        tx.commit(subject, trailers("purge", approval, actor, archive_nos), actor)
    return [{**c.row(), "purged": purged_at} for c in chosen]


def _purge_candidates(archive: Archive, numbers: list[str]) -> list[PurgeCandidate]:
    if gitio.dirty_paths(archive.root, ["archive.yaml"]):
        raise ArchiveError("archive.yaml has uncommitted changes; purge uses the committed settings only")
    return candidates(archive, numbers or None)


def destroyed(archive_root: Path) -> set[str]:
    """Archive numbers in the destruction register of a work tree."""
    return {str(e.get("archive_no")) for e in registers.entries(archive_root, "destruction")}


# ---------------------------------------------------------------- backup / restore

MANIFEST = "manifest.json"


def backup(archive: Archive, output: Path) -> dict[str, Any]:
    """One file (tar) with a git bundle of every ref and the keystore (P16). Holds no clear personal data."""
    output = output.expanduser()  # not resolved: a link at output must be seen, never followed
    where = output.parent.resolve() / output.name
    if os.path.lexists(output):
        raise UsageError(f"{output} already exists")
    if where.is_relative_to(archive.root.resolve()):
        raise UsageError(f"{output}: write the backup outside the archive")
    archive.keystore.require()
    with tempfile.TemporaryDirectory(prefix="archivectl-backup-") as tmp:
        bundle = Path(tmp) / "archive.bundle"
        gitio.bundle_create(archive.root, bundle)
        addresses = archive.keystore.addresses()
        keys = [a.name for a in addresses]
        manifest = {
            "format": "archivectl-backup-1",
            "created": now_iso(),
            "archive": archive.settings.name,
            "head": gitio.head(archive.root),
            "keys": keys,
            "destroyed": sorted(destroyed(archive.root)),
        }
        with private_output(output) as raw, tarfile.open(fileobj=raw, mode="w") as tar:
            _add_bytes(tar, MANIFEST, json.dumps(manifest, indent=2).encode())
            tar.add(bundle, arcname="archive.bundle")
            for address, blob in zip(addresses, archive.keystore.backend.read_many(keys), strict=True):
                if blob is not None:
                    _add_bytes(tar, f"keystore/{address.name}", blob)
    return {"output": str(where), "keys": len(keys), "head": manifest["head"]}


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    import io

    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o600
    tar.addfile(info, io.BytesIO(data))


def restore_backup(backup_file: Path, target: Path, replay_from: list[str]) -> dict[str, Any]:
    """Rebuild an archive and keystore from a backup, never bringing back a purged record key (P14, P16).

    Destruction registers are replayed from the backup itself and from every
    archive or git URL in replay_from (newer copies know of later purges).
    """
    from archivectl.ops.init import configure_clone

    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise UsageError(f"{target} already exists and is not an empty directory")
    if not backup_file.is_file():
        raise UsageError(f"{backup_file}: no such file")
    keys_dir = Path(keystore_url(target.resolve(), None))
    if keys_dir.exists() and any(keys_dir.iterdir()):
        raise UsageError(f"keystore {keys_dir} already holds keys; move it away first")
    with tempfile.TemporaryDirectory(prefix="archivectl-restore-") as tmp:
        work = Path(tmp)
        try:
            with tarfile.open(backup_file, mode="r:") as tar:
                members = {m.name: m for m in tar.getmembers()}
                if MANIFEST not in members or "archive.bundle" not in members:
                    raise UsageError(f"{backup_file}: not an archivectl backup")
                for name, member in members.items():
                    if not member.isfile() or not (name in (MANIFEST, "archive.bundle") or _is_key_member(name)):
                        raise UsageError(f"{backup_file}: unexpected entry {name!r}")
                try:
                    tar.extractall(work, filter="data")
                except TypeError:  # Python before 3.11.4: members were checked above (plain files, safe names)
                    tar.extractall(work)  # noqa: S202
        except (tarfile.TarError, OSError) as exc:
            raise UsageError(f"{backup_file}: not a readable backup ({exc.__class__.__name__})") from None
        manifest = json.loads((work / MANIFEST).read_text())
        bundle = work / "archive.bundle"
        gitio.bundle_verify(bundle)
        created = not target.exists()
        try:
            gitio.clone(str(bundle), target, branch="main")
            gitio.run(target, "remote", "remove", "origin")
            archive = Archive(target.resolve())
            configure_clone(archive)
            gone = destroyed(archive.root) | set(manifest.get("destroyed", []))
            for source in replay_from:
                gone |= _destroyed_in(source, work)
            present = {p.split("/")[3] for _, p in archive.record_paths()}
            keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            restored, withheld = [], []
            store = DirectoryBackend(keys_dir)
            store.makedirs()
            for key_file in _key_files(work):
                name = key_file.relative_to(work / "keystore").as_posix()
                number = key_file.name.split(".")[0]
                if number in gone or number not in present:
                    withheld.append(number)
                    continue
                store.create(name, key_file.read_bytes())
                restored.append(number)
        except BaseException:
            if created:
                shutil.rmtree(target, ignore_errors=True)
            shutil.rmtree(keys_dir, ignore_errors=True)
            raise
        finally:
            for leftover in _key_files(work):
                from archivectl.files import shred

                shred(leftover)
    return {"archive": str(target), "keystore": str(keys_dir), "restored_keys": restored, "withheld": withheld}


def _key_files(work: Path) -> list[Path]:
    folder = work / "keystore"
    return sorted([*folder.glob("*.age"), *folder.glob("keys/*.age")]) if folder.is_dir() else []


def _is_key_member(name: str) -> bool:
    """keystore/<no>.age (from before addressing) or keystore/keys/<no>.<recipient>.age."""
    from archivectl.keystore import ADDRESSED, LEGACY

    parts = name.split("/")
    if len(parts) == 2 and parts[0] == "keystore":
        return bool(LEGACY.fullmatch(parts[1]))
    return len(parts) == 3 and parts[:2] == ["keystore", "keys"] and bool(ADDRESSED.fullmatch(parts[2]))


def _destroyed_in(source: str, scratch: Path) -> set[str]:
    """Destruction register entries of another copy of the archive (a path or git URL)."""
    path = Path(source).expanduser()
    if (path / "archive.yaml").is_file():
        return destroyed(path)
    mirror = scratch / f"replay-{abs(hash(source))}"
    try:
        gitio.clone(source, mirror)
    except ArchiveError:
        raise ArchiveError(f"--replay-from {source}: not an archive or git repository") from None
    return destroyed(mirror)
