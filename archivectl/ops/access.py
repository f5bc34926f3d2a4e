"""Attachments, reading them, exports, record-key re-wrapping, grants and paper lending.

P5-P10, P17: scans are encrypted to the household's record key; every open and
export is registered; readers follow staff.yaml and the gm's grants.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from archivectl import clock, crypto, idcheck, records, registers
from archivectl.archive import Archive, Transaction
from archivectl.errors import ArchiveError, UsageError
from archivectl.files import private_output
from archivectl.i18n import _
from archivectl.layout import STAFF_FILE, HouseholdPath, check_archive_no
from archivectl.ops.common import (
    Approval,
    approved_writer,
    check_reason,
    for_reader,
    identity_for,
    load_stored,
    open_key,
    readers,
    trailers,
    wrap_targets,
)
from archivectl.ops.households import reencrypt_attachments, refuse_tombstoned
from archivectl.ops.reading import register_access

MAX_ATTACHMENT_BYTES = int(os.environ.get("ARCHIVECTL_MAX_ATTACHMENT_MB", "2048")) * 1024 * 1024
_EXT = re.compile(r"[A-Za-z0-9]{1,10}")


def document_types(archive: Archive) -> list[str]:
    """The document types the archive's schema allows."""
    return list(archive.household_schema.resolve({"$ref": "#/$defs/document_type"}).get("enum", []))


def _check_date(value: str | None, name: str) -> str:
    if value is None:
        return clock.today().isoformat()
    problem = idcheck.date_problem(value)
    if problem:
        raise UsageError(f"{name} {problem}")
    return value


def _extension(file: Path) -> str:
    ext = file.suffix.removeprefix(".")
    if not ext:
        return ""
    if not _EXT.fullmatch(ext):
        raise UsageError(_("{name}: file extension must be letters and digits only").format(name=file.name))
    return "." + ext.lower()


def attach(archive: Archive, archive_no: str, file: Path, doc_type: str, date: str | None, approval: Approval) -> str:
    """Encrypt a scan to the household's record key and list it, newest first (P5, P6)."""
    check_archive_no(archive_no)
    with archive.writing() as tx:  # the record's documents and recipient as they stand under the lock
        return _attach(archive, tx, archive_no, file, doc_type, date, approval)


def _attach(
    archive: Archive, tx: Transaction, archive_no: str, file: Path, doc_type: str, date: str | None, approval: Approval
) -> str:
    if doc_type not in document_types(archive):
        raise UsageError(_("--type must be one of {choices}").format(choices=", ".join(document_types(archive))))
    date = _check_date(date, "--date")
    if not file.is_file():
        raise UsageError(_("{file}: no such file").format(file=file))
    if file.stat().st_size > MAX_ATTACHMENT_BYTES:
        raise UsageError(
            _("{name}: larger than {limit} MB").format(name=file.name, limit=MAX_ATTACHMENT_BYTES // (1024 * 1024))
        )
    ext = _extension(file)
    actor = approved_writer(archive, approval)
    relpath = archive.locate(archive_no)
    stored = load_stored(archive, relpath)
    refuse_tombstoned(archive_no, stored)
    if not stored.get("recipient"):
        raise ArchiveError(
            _("{archive_no}: record has no recipient; run `archivectl recipients sync --rotate`").format(
                archive_no=archive_no
            )
        )
    recipient = crypto.record_recipient(stored["recipient"])
    documents = list(stored.get("documents") or [])
    version = 1 + max((d.get("version", 0) for d in documents if d.get("type") == doc_type), default=0)
    name = f"attachments/{doc_type}-{date}-{version}{ext}.age"
    home = HouseholdPath.of(relpath).dir
    entry = {"type": doc_type, "date": date, "version": version, "file": name}
    documents.insert(0, entry)
    documents.sort(key=lambda d: (str(d.get("date")), d.get("version", 0)), reverse=True)  # newest first (P5)
    stored["documents"] = documents
    problems = archive.household_schema.validate_stored(stored)
    if problems:
        raise UsageError(f"{archive_no}: {problems[0]}")

    if (archive.root / home / name).exists():
        raise ArchiveError(
            _("{home}/{name} already exists; originals are never overwritten (P6)").format(home=home, name=name)
        )
    scratch = tx.scratch()
    blob = crypto.encrypt_file(file, scratch, recipient, archive.root)  # stored in git as it is sealed
    tx.place(f"{home}/{name}", scratch, blob)
    tx.write_text(relpath, records.dump(stored))
    tx.commit(f"attach {doc_type} v{version} to {archive_no}", trailers("attach", approval, actor, archive_no), actor)
    return name


def find_document(stored: dict, doc: str) -> dict:
    """A document entry by its file name (with or without attachments/ and .age) or, newest, by type."""
    documents = stored.get("documents") or []
    wanted = doc.removeprefix("attachments/")
    for entry in documents:
        file = str(entry.get("file", "")).removeprefix("attachments/")
        if wanted in (file, file.removesuffix(".age")):
            return entry
    for entry in documents:  # newest first, so the first of a type is its latest version
        if entry.get("type") == doc:
            return entry
    raise ArchiveError(
        _("{archive_no}: no such document (see `archivectl show` for its documents)").format(
            archive_no=stored.get("archive_no")
        )
    )


def open_document(
    archive: Archive, archive_no: str, doc: str, reason: str | None, sink: BinaryIO, identity: str | None = None
) -> dict:
    """Decrypt one attachment into sink for an entitled reader, after registering the look-up (P8)."""
    from archivectl.identity import actor_of

    check_archive_no(archive_no)
    reason = check_reason(reason, look_up=True)
    # Under the lock from reading the record to the last byte out: no rotation re-encrypts the scan meanwhile.
    with archive.writing() as tx:
        household = for_reader(archive, actor_of(archive), archive_no, identity)
        entry = find_document(household.stored, doc)
        record_key = household.record_key()
        source = household.home / entry["file"]
        if not source.is_file():
            raise ArchiveError(_("{file} is missing from the work tree").format(file=entry["file"]))
        crypto.check_decrypts(source, record_key)  # a corrupted scan is refused before anything is registered
        register_access(tx, household.actor, archive_no, "open", reason, document=entry["file"])
        crypto.decrypt_stream(source, sink, record_key)
    return entry


def export(archive: Archive, archive_no: str, output: Path, approval: Approval, identity: str | None = None) -> Path:
    """A customer's own data in one zip (P17), approved and registered as a transfer (P9)."""
    check_archive_no(archive_no)
    with archive.writing() as tx:  # the record, its key and the readers as they stand under the lock
        return _export(archive, tx, archive_no, output, approval, identity)


def _export(
    archive: Archive, tx: Transaction, archive_no: str, output: Path, approval: Approval, identity: str | None
) -> Path:
    actor = approved_writer(archive, approval)
    output = output.expanduser()  # not resolved: a link at output must be seen, never followed
    where = output.parent.resolve() / output.name
    if where.is_relative_to(archive.root.resolve()) or (
        archive.keystore.path is not None and where.is_relative_to(archive.keystore.path)
    ):
        raise UsageError(
            _("{output}: an export must not be written inside the archive or keystore").format(output=output)
        )
    if os.path.lexists(output):
        raise UsageError(_("{output} already exists").format(output=output))
    if not output.parent.is_dir():
        raise UsageError(_("{parent}: no such directory").format(parent=output.parent))
    household = for_reader(archive, actor, archive_no, identity)
    record_key = household.record_key()
    plain, _kept = records.open_record(household.stored, record_key)
    home = household.home
    with private_output(output) as raw:
        with zipfile.ZipFile(raw, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("record.json", json.dumps(plain, ensure_ascii=False, indent=2))
            for entry in plain.get("documents") or []:
                inner = str(entry["file"]).removesuffix(".age")
                with zf.open(inner, "w", force_zip64=True) as sink:
                    crypto.decrypt_stream(home / entry["file"], sink, record_key)
            zf.writestr(
                "README.txt",
                f"Personal data held for household {archive_no}, "
                f"exported {clock.now_iso()} at the customer's request.\n"
                "record.json is the dossier; attachments/ holds the scans.\n",
            )
        fields = {
            "archive_no": archive_no,
            "to": "customer (own data request, P17)",
            "documents": len(plain.get("documents") or []),
        }
        registers.register(tx, "transfer", "export", actor.member.id, fields, approval=approval)  # before the file
        tx.commit(f"register export of {archive_no}", trailers("export", approval, actor, archive_no), actor)
    return where


def rotate(
    archive: Archive,
    approval: Approval,
    identity: str | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> dict[str, Any]:
    """New record keys for every household, its data re-encrypted to them (a reader may have kept old keys).

    The new keys are added at new addresses; the old ones stay until the
    rotation is approved on main and `keys shred` destroys them, so a rotation
    on a branch that is never merged takes nothing from main.
    """
    from archivectl.keystore import KeyAddress

    with archive.writing() as tx:  # every record and key as they stand under the lock
        actor = approved_writer(archive, approval)
        ssh_identity = crypto.load_identity(identity_for(archive, identity, actor))
        schema = archive.household_schema
        archive.keystore.require()
        plan = []
        for _kind, relpath in archive.record_paths():
            stored = load_stored(archive, relpath)
            number, building = str(stored.get("archive_no")), str(stored.get("building"))
            try:
                record_key = open_key(archive, stored, ssh_identity)
            except ArchiveError as exc:
                raise ArchiveError(
                    _("{number}: {exc}; a manager or gm who reads every building must rotate").format(
                        number=number, exc=exc
                    )
                ) from None
            plan.append((relpath, stored, number, building, record_key))
        per_building: dict[str, list[str]] = {}
        for done, (relpath, stored, number, building, record_key) in enumerate(plan, start=1):
            if progress:
                progress(done, len(plan), "re-keying households")
            if building not in per_building:
                per_building[building] = sorted(m.id for m in readers(archive, building, on_main=True))
                if not wrap_targets(archive, building):
                    raise ArchiveError(_("building {building} has no active reader on main").format(building=building))
            new_key = crypto.new_record_key()
            tx.put_key(
                KeyAddress(number, str(new_key.to_public())),
                crypto.wrap_record_key(new_key, wrap_targets(archive, building)),
            )
            _rekey(archive, tx, relpath, stored, record_key, new_key, schema)
        fields = {"households": len(plan), "readers": per_building}
        registers.register(tx, "keys", "rotate", actor.member.id, fields, approval=approval)
        rekeyed = ", ".join(number for _, _, number, _, _ in plan) if plan else None
        tx.commit(
            f"recipients sync: rotate {len(plan)} record keys", trailers("rotate", approval, actor, rekeyed), actor
        )
    return {"households": len(plan), "rotated": True, "readers": per_building}


def _rekey(archive: Archive, tx: Transaction, relpath: str, stored: dict, old: Any, new: Any, schema: Any) -> None:
    """Re-encrypt a household's sealed block and attachments to a new record key."""
    plain, _kept = records.open_record(stored, old)
    # the blind index is of the same numbers under the same index key: kept as it is
    tx.write_text(relpath, records.dump(records.to_stored(plain, schema, new, None, stored.get("blind_index"))))
    reencrypt_attachments(archive, tx, relpath, stored, old, new)


def grant(
    archive: Archive, staff_id: str, building: str, until: str, approval: Approval, identity: str | None = None
) -> dict[str, Any]:
    """Give someone outside a building a read until a date (P7: approved by the gm)."""
    if not re.fullmatch(r"[A-Z0-9][A-Z0-9-]{0,15}", building):
        raise UsageError(_("--building is not a building code like B03"))
    until = _check_date(until, "--until")
    if until < clock.today().isoformat():
        raise UsageError(_("--until is in the past"))
    with archive.writing() as tx:  # staff, grants and keys as they stand under the lock
        actor = approved_writer(archive, approval, "grant")
        member = archive.staff.get(staff_id)
        if member is None or not member.active:
            raise ArchiveError(
                _("{staff_id} is not an active member of {STAFF_FILE}").format(staff_id=staff_id, STAFF_FILE=STAFF_FILE)
            )
        households = [p for _, p in archive.record_paths() if HouseholdPath.of(p).building == building]
        fields = {"staff": staff_id, "building": building, "until": until}
        entry = registers.register(tx, "grants", "grant", actor.member.id, fields, approval=approval)
        # No key changes here: once the grant is approved on main, `recipients sync` wraps the keys for them.
        tx.commit(f"grant {staff_id} read of {building} until {until}", trailers("grant", approval, actor), actor)
    return {**entry, "households": len(households)}


def lend(archive: Archive, archive_no: str, to: str, due: str, approval: Approval) -> str:
    """Register lending the paper dossier bag (P8)."""
    check_archive_no(archive_no)
    due = _check_date(due, "--due")
    if due < clock.today().isoformat():
        raise UsageError(_("--due is in the past"))
    with archive.writing() as tx:  # who has the bag is read under the lock: two lends cannot both pass
        actor = approved_writer(archive, approval)
        archive.locate(archive_no)
        borrower = archive.staff.get(to)
        if borrower is None or not borrower.active:
            raise ArchiveError(_("{to} is not an active member of {STAFF_FILE}").format(to=to, STAFF_FILE=STAFF_FILE))
        current = registers.lent_out(archive.root).get(archive_no)
        if current:
            raise ArchiveError(
                _("{archive_no} is already lent to {to} (due {due})").format(
                    archive_no=archive_no, to=current.get("to"), due=current.get("due")
                )
            )
        fields = {"archive_no": archive_no, "to": to, "due": due}
        registers.register(tx, "lending", "lend", actor.member.id, fields, approval=approval)
        return tx.commit(f"lend {archive_no} to {to} until {due}", trailers("lend", approval, actor, archive_no), actor)


def return_dossier(archive: Archive, archive_no: str, reason: str | None) -> str:
    """Register the paper dossier bag's return (P8)."""
    from archivectl.identity import actor_of

    check_archive_no(archive_no)
    reason = check_reason(reason)
    with archive.writing() as tx:
        actor = actor_of(archive)
        current = registers.lent_out(archive.root).get(archive_no)
        if not current:
            raise ArchiveError(_("{archive_no} is not lent out").format(archive_no=archive_no))
        fields = {"archive_no": archive_no, "from": current.get("to")}
        registers.register(tx, "lending", "return", actor.member.id, fields, reason=reason)
        return tx.commit(f"return {archive_no}", trailers("return", Approval(reason), actor, archive_no), actor)


def overdue(archive: Archive, today: dt.date | None = None) -> list[dict[str, Any]]:
    """Lent dossiers past their due date."""
    day = (today or clock.today()).isoformat()
    return [e for e in registers.lent_out(archive.root).values() if str(e.get("due")) < day]
