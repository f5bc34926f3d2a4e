"""add and edit: the writes that create and change a household's record."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archivectl import clock, crypto, records, yamlio
from archivectl.archive import (
    CATEGORY_CODES,
    NUMBERS_FILE,
    Archive,
    Transaction,
    check_archive_no,
)
from archivectl.errors import ArchiveError, UsageError
from archivectl.ops.common import (
    Approval,
    approved_writer,
    identity_for,
    load_stored,
    reader_keys,
    readers,
    require_reader,
    trailers,
    unlock_record_key,
)

# Fields only commands change: edit refuses them and says which command to use.
COMMAND_FIELDS = {
    "archive_no": "archive numbers are assigned by add and never change",
    "building": "a household does not move: add a new household for the new unit",
    "unit": "a household does not move: add a new household for the new unit",
    "category": "the category is part of the archive number; add a new household",
    "status": "status is set by tombstone, restore and move-out",
    "documents": "documents are added by attach",
    "tombstone": "use tombstone / restore",
    "moved_out": "use move-out",
    "sealed_fields": "sealed_fields is written by archivectl",
    "sealed": "the sealed block is written by archivectl",
}


@dataclass
class RecordInput:
    """What the user gave: flags, --set pairs, --unset paths, a --file."""

    file: Path | None = None
    sets: list[str] = field(default_factory=list)
    unsets: list[str] = field(default_factory=list)
    flags: dict[str, Any] = field(default_factory=dict)


def read_input_file(path: Path) -> dict:
    """A record or patch file as a person writes it."""
    data = yamlio.load_file(path)
    if not isinstance(data, dict):
        raise UsageError(f"{path}: must be a YAML mapping of record fields")
    return data


def apply_changes(record: dict, given: RecordInput, schema: Any) -> dict:
    """record with the file merged in, then --set and --unset applied in order."""
    out = records.deep_update(record, read_input_file(given.file)) if given.file else dict(record)
    out = records.deep_update(out, {k: v for k, v in given.flags.items() if v is not None})
    for pair in given.sets:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise UsageError(f"--set {pair!r}: write it as field=value")
        parts = records.parse_path(key)
        node = schema.node_at(parts)
        records.set_path(out, parts, records.convert_value(raw, node, key))
    for key in given.unsets:
        records.unset_path(out, records.parse_path(key))
    return out


def _first_problem(problems: list[str], what: str) -> None:
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise UsageError(f"{what}: {problems[0]}{more}")


def prepare_new(record: dict, schema: Any) -> dict:
    """A new household's record, checked and completed (placeholder number), or UsageError."""
    for managed in (
        "archive_no",
        "status",
        "documents",
        "sealed",
        "sealed_fields",
        "recipient",
        "tombstone",
        "moved_out",
    ):
        if managed in record:
            raise UsageError(f"{managed}: {COMMAND_FIELDS.get(managed, 'written by archivectl')}")
    category = record.get("category")
    if category not in CATEGORY_CODES:
        raise UsageError(f"category: must be one of {', '.join(CATEGORY_CODES)}")
    record.setdefault("occupancy", "vacant")
    placeholder = {"archive_no": f"{CATEGORY_CODES[category]}-{clock.today().year}-00000", "status": "active"}
    record = records.order_like_schema({**placeholder, **record}, schema)
    _first_problem(schema.validate(record), "record")
    return record


def read_numbers(tx: Transaction) -> dict:
    """registers/numbers.yaml: the last serial used per series."""
    raw = tx.read(NUMBERS_FILE)
    numbers = yamlio.loads(raw, NUMBERS_FILE) if raw else {}
    if not isinstance(numbers, dict):
        raise ArchiveError(f"{NUMBERS_FILE} is damaged")
    return numbers


def write_numbers(tx: Transaction, numbers: dict) -> None:
    tx.write_text(NUMBERS_FILE, "# Last serial used per series (P3: never reused)\n" + yamlio.dumps(numbers))


def number(archive: Archive, record: dict, numbers: dict) -> str:
    """Give a prepared household the next archive number of its series (numbers is updated); its record path."""
    code = CATEGORY_CODES[record["category"]]
    archive_no, updated = records.next_archive_no(numbers, code, clock.today().year)
    numbers.clear()
    numbers.update(updated)
    record["archive_no"] = archive_no
    return f"{archive.household_dir(record['building'], record['unit'], archive_no)}/record.yaml"


def write_new(archive: Archive, tx: Transaction, record: dict, numbers: dict, readers: list[str]) -> str:
    """Number a prepared household, give it a record key, seal and write it; numbers is updated."""
    relpath = number(archive, record, numbers)
    if (archive.root / relpath).parent.exists():
        raise ArchiveError(f"{relpath} already exists; {NUMBERS_FILE} is behind")
    write_household(archive, tx, record, readers)
    return str(record["archive_no"])


def write_household(archive: Archive, tx: Transaction, record: dict, readers: list[str]) -> None:
    """Seal a numbered household to a new record key and write record and key."""
    archive_no = record["archive_no"]
    home = archive.household_dir(record["building"], record["unit"], archive_no)
    record_key = crypto.new_record_key()
    stored = records.to_stored(record, archive.household_schema, record_key)
    tx.write_key(archive_no, crypto.wrap_record_key(record_key, readers))
    tx.write_text(f"{home}/record.yaml", records.dump(stored))


def add(archive: Archive, given: RecordInput, approval: Approval) -> str:
    """Create a household with its own record key; return its new archive number."""
    with archive.writing() as tx:  # staff, schema, readers and numbers are read under the lock
        actor = approved_writer(archive, approval)
        schema = archive.household_schema
        record = prepare_new(apply_changes({}, given, schema), schema)
        readers = reader_keys(archive, record["building"])
        numbers = read_numbers(tx)
        archive_no = write_new(archive, tx, record, numbers, readers)
        write_numbers(tx, numbers)
        tx.commit(
            f"add {archive_no} ({record['building']}/{record['unit']})",
            trailers("add", approval, actor, archive_no),
            actor,
        )
    return archive_no


def edit(archive: Archive, archive_no: str, given: RecordInput, approval: Approval, identity: str | None) -> str:
    """Change a household's fields (P12); return the commit id."""
    check_archive_no(archive_no)
    with archive.writing() as tx:  # the record and its key as they are now, not before a write we waited for
        return _edit(archive, tx, archive_no, given, approval, identity)


def _edit(
    archive: Archive, tx: Transaction, archive_no: str, given: RecordInput, approval: Approval, identity: str | None
) -> str:
    actor = approved_writer(archive, approval)
    relpath = archive.locate(archive_no)
    stored = load_stored(archive, relpath)
    schema = archive.household_schema
    touched = _touched_fields(given)
    for name in touched:
        if name in COMMAND_FIELDS:
            raise UsageError(f"{name}: {COMMAND_FIELDS[name]}")

    previous = None
    if stored.get("sealed") and actor.member in readers(archive, str(stored.get("building"))):
        record_key = unlock_record_key(archive, archive_no, identity_for(archive, identity, actor))
        plain, sealed = records.open_record(stored, record_key)
        previous = (sealed, stored["sealed"])
    else:
        sensitive = sorted(n for n in touched if schema.holds_personal(n))
        if sensitive:
            require_reader(archive, actor, str(stored.get("building")))
            raise ArchiveError(f"{sensitive[0]}: changing personal fields needs the record key")
        plain, record_key = {k: v for k, v in stored.items() if k not in records.STORED_ONLY}, None

    changed = records.order_like_schema(apply_changes(plain, given, schema), schema)
    if changed == plain:
        raise ArchiveError(f"{archive_no}: nothing to change")
    if record_key is None:
        clear_only = {**changed, **{k: stored[k] for k in records.STORED_ONLY if k in stored}}
        _first_problem(schema.validate_stored(clear_only), archive_no)
        new_stored = records.order_like_schema(clear_only, schema)
    else:
        _first_problem(schema.validate(changed), archive_no)
        new_stored = records.to_stored(changed, schema, record_key, previous)

    tx.write_text(relpath, records.dump(new_stored))
    return tx.commit(
        f"edit {archive_no}: {', '.join(sorted(touched))}", trailers("edit", approval, actor, archive_no), actor
    )


def _touched_fields(given: RecordInput) -> set[str]:
    names = {str(records.parse_path(p.partition("=")[0])[0]) for p in given.sets}
    names |= {str(records.parse_path(p)[0]) for p in given.unsets}
    if given.file:
        names |= set(read_input_file(given.file))
    return names
