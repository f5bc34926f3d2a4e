"""add and edit: the writes that create and change a household's record."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archivectl import clock, crypto, records, yamlio
from archivectl.archive import Archive, Transaction
from archivectl.errors import ArchiveError, UsageError
from archivectl.estate import place_problems
from archivectl.i18n import _
from archivectl.layout import CATEGORY_CODES, NUMBERS_FILE, HouseholdPath, archive_no_of, check_archive_no
from archivectl.ops.common import (
    Approval,
    approved_writer,
    identity_for,
    load_stored,
    readers,
    require_reader,
    trailers,
    unlock_record_key,
    wrap_targets,
)
from archivectl.ops.finding import kept_index, writer_index
from archivectl.settings import Settings

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
    "sealed_fingerprints": "sealed_fingerprints is written by archivectl",
    "sealed": "the sealed block is written by archivectl",
}


STDIN = "-"  # --set FIELD=- reads the value from stdin, out of sight of ps and shell history


@dataclass
class RecordInput:
    """What the user gave: flags, --set pairs, --set-from file, --unset paths, a --file.

    read_stdin(field) returns the value for the one `--set FIELD=-`; the
    command line supplies it (standard input, or a prompt without echo).
    """

    file: Path | None = None
    sets: list[str] = field(default_factory=list)
    unsets: list[str] = field(default_factory=list)
    flags: dict[str, Any] = field(default_factory=dict)
    set_from: Path | None = None
    read_stdin: Callable[[str], str] | None = None
    _values: list[tuple[str, Any]] | None = field(default=None, init=False, repr=False, compare=False)


def read_input_file(path: Path) -> dict:
    """A record or patch file as a person writes it."""
    data = yamlio.load_file(path)
    if not isinstance(data, dict):
        raise UsageError(_("{path}: must be a YAML mapping of record fields").format(path=path))
    return data


def field_values(given: RecordInput) -> list[tuple[str, Any]]:
    """(field path, value) from --set-from, then --set, in order; values are read once.

    A value is text to be typed by the schema, as on the command line, except
    lists and mappings from a YAML --set-from file. Errors never repeat a value.
    """
    if given._values is None:
        values = read_set_from(given.set_from) if given.set_from else []
        from_stdin = 0
        for pair in given.sets:
            key, sep, raw = pair.partition("=")
            if not sep:
                raise UsageError(_("--set: write it as field=value (no '=' found)"))
            if raw == STDIN:
                from_stdin += 1
                if from_stdin > 1:
                    raise UsageError(
                        _("--set: only one field can read its value from stdin ({STDIN})").format(STDIN=STDIN)
                    )
                if given.read_stdin is None:
                    raise UsageError(
                        _("--set {safe_path}={STDIN}: no standard input to read the value from").format(
                            safe_path=_safe_path(key), STDIN=STDIN
                        )
                    )
                raw = given.read_stdin(_safe_path(key))
            values.append((key, raw))
        given._values = values
    return given._values


def read_set_from(path: Path) -> list[tuple[str, Any]]:
    """`field=value` lines, or a YAML mapping of field paths, from a file (no value on the command line)."""
    try:
        if path.stat().st_size > yamlio.MAX_YAML_BYTES:
            raise UsageError(
                _("{path}: file is larger than {kib} KiB").format(path=path, kib=yamlio.MAX_YAML_BYTES // 1024)
            )
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise UsageError(_("{path}: no such file").format(path=path)) from None
    except UnicodeDecodeError as exc:
        raise UsageError(_("{path}: not UTF-8 text (byte {start})").format(path=path, start=exc.start)) from None
    except OSError as exc:
        raise UsageError(_("{path}: cannot read ({strerror})").format(path=path, strerror=exc.strerror)) from None
    lines = [(n, line.strip()) for n, line in enumerate(text.splitlines(), start=1)]
    lines = [(n, line) for n, line in lines if line and not line.startswith("#")]
    first = lines[0][1] if lines else ""
    if "=" in first and (":" not in first or first.index("=") < first.index(":")):
        pairs = []
        for n, line in lines:
            key, sep, raw = line.partition("=")
            if not sep:
                raise UsageError(_("{path} line {n}: write it as field=value").format(path=path, n=n))
            pairs.append((key.strip(), raw.strip()))
        return pairs
    data = yamlio.loads(text, source=str(path))
    if data is None:
        return []
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise UsageError(_("{path}: must be field=value lines or a YAML mapping of field paths").format(path=path))
    return [(key, str(v) if isinstance(v, (int, float, bool)) else v) for key, v in data.items()]


def _safe_path(key: str) -> str:
    """key for a message: the field path if it is one, else a placeholder (it may be a value typed wrongly)."""
    try:
        records.parse_path(key)
    except UsageError:
        return "FIELD"
    return key


def apply_changes(record: dict, given: RecordInput, schema: Any) -> dict:
    """record with the file merged in, then --set-from, --set and --unset applied in order."""
    out = records.deep_update(record, read_input_file(given.file)) if given.file else dict(record)
    out = records.deep_update(out, {k: v for k, v in given.flags.items() if v is not None})
    for key, value in field_values(given):
        parts = records.parse_path(key)
        node = schema.node_at(parts)
        records.set_path(out, parts, records.convert_value(value, node, key) if isinstance(value, str) else value)
    for key in given.unsets:
        records.unset_path(out, records.parse_path(key))
    return out


PERSONAL_ON_ARGV = (
    "{fields}: personal data on the command line is visible in `ps` and kept in shell history; "
    "use --set FIELD=- (the value on stdin) or --set-from FILE"
)


def personal_on_command_line(sets: list[str], schema: Any) -> list[str]:
    """Field paths whose --set value on the command line is personal data (sealed by the schema)."""
    found = []
    for pair in sets:
        key, sep, raw = pair.partition("=")
        if not sep or raw == STDIN:
            continue
        try:
            parts = records.parse_path(key)
        except UsageError:
            continue
        if schema.path_holds_personal(parts):
            found.append(key)
    return found


def refuse_names_in_reason(reason: str | None, schema: Any, *plain_records: dict) -> None:
    """UsageError if the reason holds the name of a customer of the records being written (P9, P12)."""
    refuse_reason_holding(personal_data_in_reason(reason, schema, *plain_records))


def personal_data_in_reason(reason: str | None, schema: Any, *plain_records: dict) -> str | None:
    """What personal data the reason seems to hold, judged with the names of the records being written.

    Judged in parts (an import's chunks), any part's answer is the whole's: the
    same for every part that has names.
    """
    from archivectl.pii import personal_data_in

    names = [name for record in plain_records for name in schema.names_in(record)]
    return personal_data_in(reason or "", names) if names else None


def refuse_reason_holding(kind: str | None) -> None:
    """UsageError naming the kind of personal data found in a reason, if any."""
    if kind:
        raise UsageError(
            _("--reason seems to hold {kind}; reasons are kept in clear forever (P9), so say why without it").format(
                kind=kind
            )
        )


MAX_LISTED_PROBLEMS = 10


def _first_problem(problems: list[str], what: str) -> None:
    """Refuse with every problem (up to ten) on one line, each with its field path."""
    if problems:
        shown = "; ".join(problems[:MAX_LISTED_PROBLEMS])
        more = f" (and {len(problems) - MAX_LISTED_PROBLEMS} more)" if len(problems) > MAX_LISTED_PROBLEMS else ""
        raise UsageError(f"{what}: {shown}{more}")


def check_field_names(given: RecordInput, schema: Any) -> None:
    """Every --set and --unset names a field of the schema: a typo is named before any permission check."""
    keys = [p.partition("=")[0] for p in given.sets] + list(given.unsets)
    problems = [found for key in keys if (found := schema.unknown_field(records.parse_path(key)))]
    _first_problem(problems, "record")


def prepare_new(record: dict, schema: Any, settings: Settings | None = None) -> dict:
    """A new household's record, checked and completed (placeholder number), or UsageError.

    settings: the archive's, whose declared buildings and unit numbering the record must fit.
    """
    for managed in (
        "archive_no",
        "status",
        "documents",
        "sealed",
        "sealed_fields",
        "sealed_fingerprints",
        "recipient",
        "tombstone",
        "moved_out",
    ):
        if managed in record:
            raise UsageError(f"{managed}: {COMMAND_FIELDS.get(managed, 'written by archivectl')}")
    category = record.get("category")
    if category not in CATEGORY_CODES:
        raise UsageError(_("category: must be one of {items}").format(items=", ".join(CATEGORY_CODES)))
    record.setdefault("occupancy", "vacant")
    placeholder = {"archive_no": f"{CATEGORY_CODES[category]}-{clock.today().year}-00000", "status": "active"}
    record = records.order_like_schema({**placeholder, **record}, schema)
    problems = schema.validate(record)
    if settings is not None:
        problems += place_problems(settings.buildings, settings.unit_floor, record)
    _first_problem(problems, "record")
    return record


class Numbering:
    """Archive numbers for new households, reserved in the keystore (P3: unique, never reused).

    A number is taken by creating it exclusively in the keystore that every
    clone shares, so two clerks on two branches never get the same one. The
    series goes on from the highest of: what the keystore has reserved, what
    this branch holds, and registers/numbers.yaml (kept up to date for archives
    of format version 2, whose verify still reads it).
    """

    def __init__(self, archive: Archive, tx: Transaction):
        self.archive, self.tx = archive, tx
        raw = tx.read(NUMBERS_FILE)
        counters = yamlio.loads(raw, NUMBERS_FILE) if raw else {}
        if not isinstance(counters, dict):
            raise ArchiveError(_("{NUMBERS_FILE} is damaged").format(NUMBERS_FILE=NUMBERS_FILE))
        self.counters: dict[str, int] = {}
        for series, last in counters.items():
            if not isinstance(last, int) or last < 0:
                raise ArchiveError(
                    _("{NUMBERS_FILE}: counter {series} is damaged").format(NUMBERS_FILE=NUMBERS_FILE, series=series)
                )
            self.counters[str(series)] = last
        self.in_tree: dict[str, int] = dict(archive.households().highest)
        self.taken: list[str] = []

    def take(self, category: str, count: int = 1) -> list[str]:
        """count new numbers of the category's series for this year."""
        series = f"{CATEGORY_CODES[category]}-{clock.today().year}"
        start = max(self.counters.get(series, 0), self.in_tree.get(series, 0)) + 1
        numbers = self.tx.reserve_numbers(series, start, count)
        self.counters[series] = max(self.counters.get(series, 0), *(int(n.rsplit("-", 1)[1]) for n in numbers))
        self.taken += numbers
        return numbers

    def record(self) -> None:
        """Write numbers.yaml for a format-2 archive (format 3 keeps numbers in the keystore only)."""
        if self.taken and self.archive.settings.version < 3:
            text = "# Last serial used per series (P3: never reused)\n" + yamlio.dumps(self.counters)
            self.tx.write_text(NUMBERS_FILE, text)


def place_new(archive: Archive, record: dict, archive_no: str) -> str:
    """Give a prepared household its number; its record path (refused if this branch has it already)."""
    record["archive_no"] = archive_no
    relpath = HouseholdPath(record["building"], record["unit"], archive_no).record
    if (archive.root / relpath).parent.exists():
        _refuse_taken(relpath)
    return relpath


def place_many(archive: Archive, places: list[tuple[str, str, str]]) -> list[str]:
    """place_new for many (building, unit, archive number) at once (an import): their record paths.

    A household's folder can be there only if its unit's is, so each building's
    folder is listed once and only a household of a unit found there is looked
    for: 20,000 looks at folders that are not there cost 1.5 s on a busy machine.
    """
    units: dict[str, set[str]] = {}
    relpaths = []
    for building, unit, archive_no in places:
        place = HouseholdPath(building, unit, archive_no)
        if building not in units:
            units[building] = _names_in(archive.root / place.dir.rsplit("/", 2)[0])
        if unit in units[building] and (archive.root / place.dir).exists():
            _refuse_taken(place.record)
        relpaths.append(place.record)
    return relpaths


def _names_in(folder: Path) -> set[str]:
    try:
        return set(os.listdir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return set()


def _refuse_taken(relpath: str) -> None:
    raise ArchiveError(
        _("{relpath} already exists; the keystore's numbers are behind this branch").format(relpath=relpath)
    )


def seal_household(
    archive: Archive, record: dict, targets: list[str], index: Any = None
) -> tuple[Any, bytes, str, str]:
    """A numbered household sealed to a new record key: (key address, wrapped key, record path, record text)."""
    from archivectl.keystore import KeyAddress

    archive_no = record["archive_no"]
    recipient, blob, text = seal_unnumbered(archive, record, targets, index)
    return (
        KeyAddress(archive_no, recipient),
        blob,
        HouseholdPath(record["building"], record["unit"], archive_no).record,
        text,
    )


def seal_unnumbered(archive: Archive, record: dict, targets: list[str], index: Any = None) -> tuple[str, bytes, str]:
    """A household sealed to a new record key, whatever number it holds yet: (the key's recipient, wrapped key, text).

    An import seals while it takes its numbers, then gives each text its
    number (numbered): nothing sealed holds the number, and neither does the key.
    index: the blind index key (ops.finding.writer_index), if the writer has one.
    """
    record_key = crypto.new_record_key()
    stored = records.to_stored(record, archive.household_schema, record_key, None, index)
    return stored["recipient"], crypto.wrap_record_key(record_key, targets), records.dump(stored)


def numbered(text: str, archive_no: str) -> str:
    """A record's text with archive_no as its number (the top-level line; keys are unique, values indented)."""
    start = 0 if text.startswith("archive_no: ") else text.find("\narchive_no: ") + 1
    if start == 0 and not text.startswith("archive_no: "):
        raise ArchiveError(_("the household schema must keep archive_no in the clear"))
    end = text.index("\n", start)
    return f"{text[:start]}archive_no: {archive_no}{text[end:]}"


def write_household(archive: Archive, tx: Transaction, record: dict, targets: list[str], index: Any = None) -> None:
    """Seal a numbered household to a new record key and write record and key."""
    address, blob, relpath, text = seal_household(archive, record, targets, index)
    tx.put_key(address, blob)
    tx.write_text(relpath, text)


def add(archive: Archive, given: RecordInput, approval: Approval, also_active: bool = False) -> str:
    """Create a household with its own record key; return its new archive number.

    P1: one active household per unit; a second is refused naming the first
    (move it out first) unless also_active says it is deliberate.
    """
    check_field_names(given, archive.household_schema)  # a typo is named before any permission check
    with archive.writing() as tx:  # staff, schema, readers, numbers and the unit's households under the lock
        actor = approved_writer(archive, approval)
        schema = archive.household_schema
        record = prepare_new(apply_changes({}, given, schema), schema, archive.settings)
        refuse_names_in_reason(approval.reason, schema, record)
        if not also_active:
            active = active_on_unit(archive, str(record["building"]), str(record["unit"]))
            if active:
                raise ArchiveError(
                    _(
                        "{other} is already the active household of {building}/{unit}: "
                        "move it out first (P1), or give --also-active if both live there"
                    ).format(other=active[0], building=record["building"], unit=record["unit"])
                )
        targets = wrap_targets(archive, record["building"])
        if not targets:
            raise ArchiveError(_("no active reader for this building: add a manager or gm to staff.yaml"))
        numbering = Numbering(archive, tx)
        archive_no = numbering.take(record["category"])[0]
        place_new(archive, record, archive_no)
        write_household(archive, tx, record, targets, writer_index(archive, actor))
        numbering.record()
        tx.commit(
            f"add {archive_no} ({record['building']}/{record['unit']})",
            trailers("add", approval, actor, archive_no, also_active=archive_no if also_active else None),
            actor,
        )
    return archive_no


def active_on_unit(archive: Archive, building: str, unit: str) -> list[str]:
    """Archive numbers of the unit's active households (from their clear parts)."""
    found = []
    for relpath in archive.households().in_folder(HouseholdPath(building, unit, "").dir):
        if load_stored(archive, relpath).get("status") == "active":
            found.append(archive_no_of(relpath))
    return sorted(found)


def edit(
    archive: Archive,
    archive_no: str,
    given: RecordInput,
    approval: Approval,
    identity: str | None,
    forget_previous: bool = False,
) -> str:
    """Change a household's fields (P12); return the commit id.

    forget_previous: the corrected record (and every attachment) is sealed to a new
    record key (Action: forget), so that once the change is approved on main and
    `keys shred` destroys the old key, no earlier version of the household opens (P17, P14).
    """
    check_archive_no(archive_no)
    check_field_names(given, archive.household_schema)  # a typo is named before any permission check
    with archive.writing() as tx:  # the record and its key as they are now, not before a write we waited for
        return _edit(archive, tx, archive_no, given, approval, identity, forget_previous)


def _edit(
    archive: Archive,
    tx: Transaction,
    archive_no: str,
    given: RecordInput,
    approval: Approval,
    identity: str | None,
    forget_previous: bool = False,
) -> str:
    actor = approved_writer(archive, approval, "forget" if forget_previous else "edit")
    relpath = archive.locate(archive_no)
    stored = load_stored(archive, relpath)
    refuse_tombstoned(archive_no, stored)
    schema = archive.household_schema
    touched = _touched_fields(given)
    for name in touched:
        if name in COMMAND_FIELDS:
            raise UsageError(f"{name}: {COMMAND_FIELDS[name]}")

    previous = None
    if forget_previous:  # the old key must open everything it guards, to seal it again to the new one
        require_reader(archive, actor, str(stored.get("building")))
    if (stored.get("sealed") or forget_previous) and actor.member in readers(archive, str(stored.get("building"))):
        record_key = unlock_record_key(archive, stored, identity_for(archive, identity, actor))
        plain, sealed = records.open_record(stored, record_key)
        previous = (sealed, stored.get("sealed", ""))
    else:
        sensitive = sorted(n for n in touched if schema.holds_personal(n))
        if sensitive:
            require_reader(archive, actor, str(stored.get("building")))
            raise ArchiveError(_("{field}: changing personal fields needs the record key").format(field=sensitive[0]))
        plain, record_key = {k: v for k, v in stored.items() if k not in records.STORED_ONLY}, None

    changed = records.order_like_schema(apply_changes(plain, given, schema), schema)
    if changed == plain and not forget_previous:  # forgetting alone re-keys: an earlier edit corrected the value
        raise ArchiveError(_("{archive_no}: nothing to change").format(archive_no=archive_no))
    refuse_names_in_reason(approval.reason, schema, plain, changed)
    settings = archive.settings
    before = place_problems(settings.buildings, settings.unit_floor, plain)  # not this edit's doing
    _first_problem(
        [p for p in place_problems(settings.buildings, settings.unit_floor, changed) if p not in before], archive_no
    )
    if record_key is None:
        clear_only = {**changed, **{k: stored[k] for k in records.STORED_ONLY if k in stored}}
        _first_problem(schema.validate_stored(clear_only), archive_no)
        new_stored = records.order_like_schema(clear_only, schema)
    else:
        _first_problem(schema.validate(changed), archive_no)
        index = writer_index(archive, actor, identity)
        if index is None and previous is not None:  # no index key: the blind index kept if the numbers are kept
            index = kept_index(stored, previous[0], schema.split(changed)[1], schema)
        if forget_previous:
            return _forget(archive, tx, relpath, stored, changed, record_key, index, approval, actor, sorted(touched))
        new_stored = records.to_stored(changed, schema, record_key, previous, index)

    tx.write_text(relpath, records.dump(new_stored))
    return tx.commit(
        f"edit {archive_no}: {', '.join(sorted(touched))}", trailers("edit", approval, actor, archive_no), actor
    )


def _forget(
    archive: Archive,
    tx: Transaction,
    relpath: str,
    stored: dict,
    changed: dict,
    old_key: Any,
    index: Any,
    approval: Approval,
    actor: Any,
    touched: list[str],
) -> str:
    """Seal the corrected record and re-encrypt its attachments to a new record key, kept beside the old one.

    The new key goes to a new address (the record's `recipient:` names it), wrapped
    to the building's readers on main and the recovery recipient like a new
    household's; the old key stays until the change is approved on main and
    `keys shred` destroys it. The fingerprints are keyed from the new key (to_stored); the
    blind index is the office's index key's, the same for any record key.
    """
    from archivectl.keystore import KeyAddress

    archive_no, building = str(stored.get("archive_no")), str(stored.get("building"))
    old = stored.get("recipient")
    if not old or archive.keystore.read_many([(archive_no, old)], fallback=False)[(archive_no, old)] is None:
        # keys shred destroys keys by their address: one kept from before addressing would outlive the forget
        raise ArchiveError(
            _(
                "{archive_no}: its record key is kept from before keys had addresses; run `archivectl recipients "
                "sync` (a record without recipient: `recipients sync --rotate`) first"
            ).format(archive_no=archive_no)
        )
    targets = wrap_targets(archive, building)
    if not targets:
        raise ArchiveError(_("building {building} has no active reader on main").format(building=building))
    new_key = crypto.new_record_key()
    tx.put_key(KeyAddress(archive_no, str(new_key.to_public())), crypto.wrap_record_key(new_key, targets))
    tx.write_text(relpath, records.dump(records.to_stored(changed, archive.household_schema, new_key, None, index)))
    reencrypt_attachments(archive, tx, relpath, stored, old_key, new_key)
    what = ", ".join(touched) if touched else "no field"
    return tx.commit(
        f"edit {archive_no}: {what}, forgetting previous versions",
        trailers("forget", approval, actor, archive_no),
        actor,
    )


def reencrypt_attachments(archive: Archive, tx: Transaction, relpath: str, stored: dict, old: Any, new: Any) -> None:
    """Every attachment of a household encrypted again to its new record key, under the same name."""
    home = HouseholdPath.of(relpath).dir
    recipient = new.to_public()
    for entry in stored.get("documents") or []:
        sealed_copy = tx.scratch()
        crypto.reencrypt_file(archive.root / home / entry["file"], sealed_copy, old, recipient)
        tx.place(f"{home}/{entry['file']}", sealed_copy)


def refuse_tombstoned(archive_no: str, stored: dict) -> None:
    """ArchiveError for a tombstoned household: it awaits its purge and changes no more until restored (P13)."""
    if stored.get("status") == "tombstoned":
        raise ArchiveError(_("{no} is tombstoned; restore it first").format(no=archive_no))


def _touched_fields(given: RecordInput) -> set[str]:
    names = {str(records.parse_path(key)[0]) for key, _ in field_values(given)}
    names |= {str(records.parse_path(p)[0]) for p in given.unsets}
    if given.file:
        names |= set(read_input_file(given.file))
    return names
