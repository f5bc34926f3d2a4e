"""find: every household that holds an ID or phone number, from the clear parts' blind index (#27, P17).

The index key (blindindex.py) is kept in the keystore at `index/<key id>.age`,
wrapped like a record key: to everyone who reads a building (P7: butlers,
cashiers, managers, the gm, as staff.yaml stands approved on main) and to the
recovery recipient. Whoever can open it fingerprints what they write; `find`
fingerprints the searched number with it and reads only clear parts.

- migrate blind-index: an approved commit giving every sealed record its
  blind index (creating the index key the first time), by a reader of every
  building;
- find: registered in the access register like a reveal (P8), with the
  searched number's fingerprint, never the number; it lists only households
  of buildings the user reads (P7) and is refused to someone who reads none;
- keys rotate-index: a new index key and every record re-fingerprinted in one
  commit awaiting approval; `keys shred` destroys the old key once main no
  longer uses it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from archivectl import agewrite, blindindex, crypto, gitio, records, registers
from archivectl.archive import Archive, Transaction
from archivectl.errors import ArchiveError
from archivectl.i18n import _
from archivectl.identity import Actor, actor_of
from archivectl.layout import HouseholdPath
from archivectl.ops.common import (
    Approval,
    approved_writer,
    check_reason,
    identity_for,
    load_stored,
    main_staff,
    open_key,
    readers,
    sealed_records_to_rewrite,
    trailers,
)
from archivectl.staff import ALL_BUILDINGS_ROLES, BUILDING_READER_ROLES

_USED = re.compile(rb"\nblind_index:\n  key: (ix-[0-9a-f]{8})\n")
_NAME = re.compile(rf"({blindindex.KEY_ID.pattern})\.age")
_OPENED: dict[tuple[str, str], blindindex.IndexKey] = {}  # per process: a key id never names another key


# ------------------------------------------------------------------ the index key in the keystore


def index_targets(archive: Archive) -> list[str]:
    """Whom the index key is wrapped to: each active reader of a building on main's staff.yaml, the recovery key."""
    staff = main_staff(archive)
    keys = [
        m.key
        for m in staff.active()
        if m.role in ALL_BUILDINGS_ROLES or (m.role in BUILDING_READER_ROLES and m.buildings)
    ]
    recovery = archive.main_settings.recovery
    return [*keys, recovery] if recovery else keys


def key_ids(archive: Archive) -> list[str]:
    """The index keys the keystore holds, by id."""
    archive.keystore.require()
    return sorted(
        m[1] for name, _when in archive.keystore.backend.list(blindindex.FOLDER) if (m := _NAME.fullmatch(name))
    )


def used_key_ids(archive: Archive, first_only: bool = False) -> set[str]:
    """The index key ids this branch's records name (first_only: the first found is enough)."""
    found: set[str] = set()
    for _blob, relpath in archive.record_paths():
        try:
            data = (archive.root / relpath).read_bytes()
        except OSError:
            continue
        m = _USED.search(data)
        if m:
            found.add(m[1].decode())
            if first_only:
                break
    return found


def current_key_id(archive: Archive) -> str | None:
    """The index key writes use: the only one, or (a rotation awaiting approval) the one this branch's records use."""
    ids = key_ids(archive)
    if len(ids) <= 1:
        return ids[0] if ids else None
    used = used_key_ids(archive, first_only=True) & set(ids)
    return next(iter(used)) if used else ids[-1]


def may_open(archive: Archive, key_id: str, member_key: str) -> bool:
    """True when the index key is wrapped to this staff key (read from the age header, nothing opened)."""
    blob = archive.keystore.backend.read(blindindex.key_name(key_id))
    return blob is not None and crypto.ssh_tag(member_key) in crypto.wrapped_for(blob)[0]


def open_index(archive: Archive, key_id: str, identity: Any) -> blindindex.IndexKey:
    """An index key unwrapped with a loaded identity, or ArchiveError."""
    cached = _OPENED.get((archive.keystore.url, key_id))
    if cached is not None:
        return cached
    blob = archive.keystore.backend.read(blindindex.key_name(key_id))
    if blob is None:
        raise ArchiveError(
            _("index key {key_id} is missing from the keystore {url}").format(key_id=key_id, url=archive.keystore.url)
        )
    try:
        body = crypto._pyrage().decrypt(blob, [identity])
    except Exception:
        raise ArchiveError(
            _("the index key {key_id} is not wrapped to your key: a manager runs `archivectl recipients sync`").format(
                key_id=key_id
            )
        ) from None
    try:
        key = blindindex.key_from_text(key_id, body)
    except ValueError:
        raise ArchiveError(
            _("the index key {key_id} is damaged; restore it from a backup").format(key_id=key_id)
        ) from None
    _OPENED[(archive.keystore.url, key_id)] = key
    return key


def writer_index(archive: Archive, actor: Actor, identity: str | None = None) -> blindindex.IndexKey | None:
    """The index key a write fingerprints with, if the archive has one and it is wrapped to the writer; else None.

    A writer it is not wrapped to (a clerk) writes no blind index; `migrate blind-index` adds it later.
    """
    key_id = current_key_id(archive)
    if key_id is None or not may_open(archive, key_id, actor.member.key):
        return None
    return open_index(archive, key_id, crypto.load_identity(identity_for(archive, identity, actor)))


def kept_index(stored: dict, old_sealed: dict, new_sealed: dict, schema: Any) -> dict | None:
    """The stored blind_index, when a writer without the index key leaves the numbers as they were; else None."""
    index = stored.get(blindindex.FIELD)
    if isinstance(index, dict) and blindindex.numbers_in(old_sealed, schema) == blindindex.numbers_in(
        new_sealed, schema
    ):
        return index
    return None


def _create_key(archive: Archive) -> blindindex.IndexKey:
    """A new index key, wrapped and stored under a new id (never over another)."""
    targets = index_targets(archive)
    if not targets:
        raise ArchiveError(_("no active reader to wrap the index key to: add a manager or gm to staff.yaml"))
    for _try in range(5):
        key = blindindex.new_key()
        if archive.keystore.backend.create(blindindex.key_name(key.key_id), agewrite.encrypt(key.text(), targets)):
            _OPENED[(archive.keystore.url, key.key_id)] = key
            return key
    raise ArchiveError(_("could not store a new index key in the keystore"))


def _drop_key(archive: Archive, key: blindindex.IndexKey) -> None:
    """Take back an index key this command made, when its commit did not happen."""
    archive.keystore.backend.remove(blindindex.key_name(key.key_id))
    _OPENED.pop((archive.keystore.url, key.key_id), None)


# ------------------------------------------------------------------ find


def _reads(archive: Archive, actor: Actor, building: str, cache: dict[str, bool]) -> bool:
    if building not in cache:
        cache[building] = actor.member in readers(archive, building)
    return cache[building]


def find(archive: Archive, kind: str, number: str, reason: str | None, identity: str | None = None) -> dict[str, Any]:
    """The households holding a number, of the buildings the user reads, after registering the look-up (P7, P8).

    kind: "phone" or "id". Returns {households: [rows], unindexed, opened, limited, commit}: opened
    households had no blind index and were opened in memory to be searched; unindexed ones could not be.
    Refused (nothing written) to someone who reads no building, or who cannot open the index key.
    """
    normalized = blindindex.normalize(kind, number)
    reason = check_reason(reason, look_up=True)
    with archive.writing() as tx:
        actor = actor_of(archive)
        if not actor.member.active:
            raise ArchiveError(_("{id} is no longer active; their key cannot sign changes").format(id=actor.member.id))
        all_buildings = actor.member.role in ALL_BUILDINGS_ROLES
        readable: dict[str, bool] = {}
        if not all_buildings and not actor.member.buildings and not _granted_any(archive, actor):
            raise ArchiveError(
                _(
                    "{id} ({role}) reads no building: finding a person reads personal data; "
                    "ask the general manager for a grant (P7)"
                ).format(id=actor.member.id, role=actor.member.role)
            )
        ids = key_ids(archive)
        if not ids:
            raise ArchiveError(_("this archive has no index key yet: a manager runs `archivectl migrate blind-index`"))
        loaded = None
        wanted: dict[str, str] = {}
        for key_id in ids:
            if not may_open(archive, key_id, actor.member.key):
                continue
            if loaded is None:
                loaded = crypto.load_identity(identity_for(archive, identity, actor))
            wanted[key_id] = open_index(archive, key_id, loaded).fingerprint(kind, normalized)
        if not wanted:
            raise ArchiveError(
                _("the index key is not wrapped to {id}: a manager runs `archivectl recipients sync`").format(
                    id=actor.member.id
                )
            )
        found, without = [], []
        for stored in _clear_parts(archive):
            building = str(stored.get("building"))
            if not _reads(archive, actor, building, readable):
                continue
            if blindindex.holds(stored, wanted):
                found.append(_row(stored))
            elif stored.get("sealed_fields") and blindindex.FIELD not in stored:
                without.append(stored)
        # A household written by someone the index key is not wrapped to (a clerk's add) has no blind index
        # until a reader writes it again: this reader opens it here, in memory, and looks at its numbers.
        opened = 0
        schema = archive.household_schema
        for clear in without:
            try:
                stored = load_stored(archive, archive.locate(str(clear["archive_no"])))  # its sealed block too
                plain, _sealed = records.open_record(stored, open_key(archive, stored, loaded))
            except ArchiveError:
                continue  # counted below as not searched
            opened += 1
            if (kind, normalized) in blindindex.numbers_in(schema.split(plain)[1], schema):
                found.append(_row(clear))
        unindexed = len(without) - opened
        found.sort(key=lambda r: str(r["archive_no"]))
        numbers = ", ".join(str(r["archive_no"]) for r in found) or None
        current = current_key_id(archive) or sorted(wanted)[-1]
        registers.register(
            tx,
            "access",
            "find",
            actor.member.id,
            {
                "archive_no": numbers,
                "searched": kind,
                "fingerprint": f"{current} {wanted.get(current) or next(iter(wanted.values()))}",
                "found": len(found),
            },
            reason=reason,
        )
        commit = tx.commit(
            f"register find by {kind}: {len(found)} households",
            trailers("find", Approval(reason), actor, numbers),
            actor,
        )
    return {
        "households": found,
        "unindexed": unindexed,
        "opened": opened,
        "limited": not all_buildings,
        "commit": commit,
    }


def _row(stored: dict) -> dict[str, Any]:
    return {k: stored.get(k) for k in ("archive_no", "building", "unit", "status", "category")}


def _granted_any(archive: Archive, actor: Actor) -> bool:
    return any(g.get("staff") == actor.member.id for g in registers.active_grants(archive.root) if isinstance(g, dict))


def _clear_parts(archive: Archive) -> list[dict]:
    """Every household's clear part from the work tree (the sealed block is cut off unread)."""
    from archivectl.facts import stored_record

    out = []
    for _blob, relpath in archive.record_paths():
        try:
            parsed = stored_record((archive.root / relpath).read_bytes(), relpath)
        except (OSError, ArchiveError):
            continue
        parsed.setdefault("archive_no", HouseholdPath.of(relpath).archive_no)
        out.append(parsed)
    return out


# ------------------------------------------------------------------ migrate blind-index, keys rotate-index

MIGRATE = "blind-index"
ROTATE = "rotate-index"


def migrate_blind_index(archive: Archive, approval: Approval, identity: str | None = None) -> dict[str, Any]:
    """Give every sealed record without a current blind index one, in one approved commit: {households, key, commit}.

    The index key is made (and wrapped) here the first time. Refused (nothing
    written) when a record that needs one is in a building the actor does not
    read, or none needs one.
    """
    return _refingerprint(archive, approval, identity, rotate=False)


def rotate_index(archive: Archive, approval: Approval, identity: str | None = None) -> dict[str, Any]:
    """A new index key, and every sealed record re-fingerprinted with it, in one commit awaiting approval.

    The old key stays in the keystore (main's records use it until the rotation
    is approved and merged); `keys shred` destroys it once main no longer does.
    """
    return _refingerprint(archive, approval, identity, rotate=True)


def _refingerprint(archive: Archive, approval: Approval, identity: str | None, rotate: bool) -> dict[str, Any]:
    action = ROTATE if rotate else MIGRATE
    with archive.writing() as tx:
        actor = approved_writer(archive, approval, action)
        current = current_key_id(archive)
        if rotate and current is None:
            raise ArchiveError(_("this archive has no index key to rotate: run `archivectl migrate blind-index`"))

        def needs(stored: dict) -> bool:  # a rotation rewrites every record; a migration those without current's
            index = stored.get(blindindex.FIELD)
            return rotate or not (isinstance(index, dict) and index.get("key") == current)

        todo = sealed_records_to_rewrite(archive, actor, needs)
        if not todo:
            raise ArchiveError(_("every sealed record already has its blind index; nothing to migrate"))
        loaded = crypto.load_identity(identity_for(archive, identity, actor))
        made = None
        try:
            if rotate or current is None:
                made = key = _create_key(archive)
            else:
                key = open_index(archive, current, loaded)
            numbers = _rewrite(archive, tx, todo, loaded, key)
            commit = tx.commit(
                f"blind index of {len(numbers)} households with index key {key.key_id}"
                if not rotate
                else f"rotate the index key: {len(numbers)} households re-fingerprinted with {key.key_id}",
                trailers(action, approval, actor, ", ".join(sorted(numbers))),
                actor,
            )
        except BaseException:
            if made is not None:
                _drop_key(archive, made)
            raise
    return {"households": sorted(numbers), "key": key.key_id, "previous": current, "commit": commit}


def _rewrite(
    archive: Archive, tx: Transaction, todo: list[tuple[str, dict]], loaded: Any, key: blindindex.IndexKey
) -> list[str]:
    schema = archive.household_schema
    numbers = []
    for relpath, stored in todo:
        record_key = open_key(archive, stored, loaded)
        plain, sealed = records.open_record(stored, record_key)
        new = records.to_stored(plain, schema, record_key, (sealed, stored["sealed"]), key)
        if {k: v for k, v in new.items() if k != blindindex.FIELD} != {
            k: v for k, v in stored.items() if k != blindindex.FIELD
        }:
            raise ArchiveError(
                _("{no}: the record does not read back as it is stored; run `archivectl validate`").format(
                    no=stored.get("archive_no")
                )
            )
        tx.write_text(relpath, records.dump(new))
        numbers.append(str(stored["archive_no"]))
    return numbers


# ------------------------------------------------------------------ keys shred: index keys main no longer uses


def _keys_at(archive: Archive, rev: str) -> set[str]:
    """The index key ids the records at rev name."""
    found = gitio.run(
        archive.root, "grep", "-h", "-E", "^  key: ix-[0-9a-f]{8}$", rev, "--", "households/", check=False
    ).stdout.decode()
    return {line.split("key: ", 1)[1].strip() for line in found.splitlines() if "key: " in line}


def obsolete_index_keys(archive: Archive, tip: str, judge: Callable[[str], str | None]) -> list[dict[str, Any]]:
    """Index keys an approved `keys rotate-index` on main replaced and main's records no longer name.

    One row each: {key, change, problem}; problem (from judge: awaiting approval, broken) keeps the key.
    A key main never used (a rotation still on a branch) is never listed.
    """
    held, in_use = set(key_ids(archive)), _keys_at(archive, tip)
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for entry in gitio.log(archive.root, tip, f"--grep=^Action: {ROTATE}$"):
        if entry.trailers.get("Action") != ROTATE:
            continue
        for old in sorted(_keys_at(archive, f"{entry.commit}~1") - in_use - seen):
            seen.add(old)
            if old in held:
                rows.append({"key": old, "change": entry.commit, "problem": judge(entry.commit)})
    return rows


def shred_index_keys(archive: Archive, doomed: list[dict[str, Any]], where: str) -> None:
    """Register the index keys destroyed (P14: who, when, how) in one signed commit, then destroy them."""
    registered = {
        str(line).split()[0]
        for entry in registers.entries(archive.root, "destruction")
        for line in entry.get("index_keys") or []
        if str(line).split()
    }
    unregistered = [row for row in doomed if row["key"] not in registered]  # a killed run registered them already
    if unregistered:
        _register_index_shred(archive, unregistered, where)
    for row in doomed:
        archive.keystore.backend.remove(blindindex.key_name(row["key"]))
        _OPENED.pop((archive.keystore.url, row["key"]), None)


def _register_index_shred(archive: Archive, doomed: list[dict[str, Any]], where: str) -> None:
    with archive.writing() as tx:
        actor = actor_of(archive)
        fields = {
            "index_keys": [f"{row['key']} ({ROTATE} {row['change'][:12]})" for row in doomed],
            "method": f"index keys overwritten and deleted in keystore {where} (crypto-shredding)",
        }
        registers.register(tx, "destruction", "shred", actor.member.id, fields)
        reason = f"shred {len(doomed)} index keys main no longer uses"
        tx.commit(f"keys shred: {len(doomed)} index keys", trailers("shred", Approval(reason), actor), actor)


# ------------------------------------------------------------------ recipients sync: the index key follows main


def rewrap_index_keys(archive: Archive, identity_path: Any) -> dict[str, list]:
    """Wrap every index key held to exactly index_targets (main's readers, recovery); {rewrapped, failed}.

    Like a record key's: one already wrapped right is left as it is (read from its
    age header), and each is opened and checked before its new wrapping replaces the old.
    """
    targets = index_targets(archive)
    wanted = (
        {crypto.ssh_tag(k) for k in targets if not k.startswith("age1")},
        sum(k.startswith("age1") for k in targets),
    )
    identity, rewrapped, failed = None, [], []
    for key_id in key_ids(archive):
        name = blindindex.key_name(key_id)
        blob = archive.keystore.backend.read(name)
        if blob is None or crypto.wrapped_for(blob) == wanted:
            continue
        if not targets:
            failed.append({"archive_no": key_id, "problem": "no active reader on main to wrap the index key to"})
            continue
        if identity is None:
            identity = crypto.load_identity(identity_path)
        try:
            key = open_index(archive, key_id, identity)
        except ArchiveError as exc:
            failed.append({"archive_no": key_id, "problem": str(exc)})
            continue
        archive.keystore.backend.replace(name, agewrite.encrypt(key.text(), targets))
        rewrapped.append(key_id)
    return {"rewrapped": rewrapped, "failed": failed}
