"""Checks and look-ups shared by the write operations."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archivectl import clock, crypto, gitio, policy, records, registers, rules, yamlio
from archivectl.archive import Archive
from archivectl.errors import ArchiveError, UsageError
from archivectl.i18n import _
from archivectl.identity import Actor, actor_of, decrypting_identity
from archivectl.judge.state import approved_commit
from archivectl.layout import STAFF_FILE, HouseholdPath
from archivectl.requestlog import require_open
from archivectl.staff import Staff, StaffMember


@dataclass(frozen=True)
class Approval:
    """--reason and --approver as the user gave them."""

    reason: str | None
    approver: str | None = None
    request: str | None = None  # the customer's request (P17) this write answers: its Request: trailer


def check_reason(reason: str | None, look_up: bool = False) -> str:
    """The reason, or UsageError (exit 2) saying what is wrong with it.

    look_up: the reason for a look-up (reveal, open, review), which is registered, not a change's.
    """
    if look_up and (reason is None or not reason.strip()):
        raise UsageError(_("--reason is required: say why you look (it is registered)"))
    problem = policy.reason_problem(reason)
    if problem:
        raise UsageError(problem)
    assert reason is not None
    return reason.strip()


def approved_writer(archive: Archive, approval: Approval, action: str = "edit") -> Actor:
    """The acting staff member, once reason, actor and approver all pass (nothing written yet).

    Who may approve is what the rule table says for the action (rules.approval_roles), as the judge
    will check it: no write path picks roles of its own.
    """
    roles = rules.approval_roles(rules.TABLE[action], archive.settings.rules) or None
    check_reason(approval.reason)
    if not approval.approver:  # usage, like a missing --reason: exit 2
        raise UsageError(_("--approver is required: name the manager who approved this change"))
    if re.fullmatch(r"[a-z][a-z0-9_-]{1,31}", approval.approver) and archive.staff.get(approval.approver) is None:
        near = difflib.get_close_matches(approval.approver, [m.id for m in archive.staff.members], n=1)
        hint = _(" (did you mean {near}?)").format(near=near[0]) if near else ""
        raise ArchiveError(_("approver {who} is not on staff.yaml{hint}").format(who=approval.approver, hint=hint))
    actor = actor_of(archive)
    for problem in (
        policy.actor_problem(actor.member),
        policy.approval_problem(actor.member, approval.approver, archive.staff, archive.settings.rules, roles),
    ):
        if problem:
            raise ArchiveError(problem)
    if approval.request is not None:
        require_open(archive, approval.request)
    return actor


def trailers(
    action: str, approval: Approval, actor: Actor, archive_no: str | None = None, also_active: str | None = None
) -> dict[str, str | None]:
    """The trailers every archivectl commit carries: what it is (rules.TABLE), why, who asks whom.

    also_active: the new households (of archive_no) meant to live beside a unit's active one (P1).
    """
    return {
        "Action": action,
        "Reason": approval.reason.strip() if approval.reason else None,
        "Approved-by": approval.approver,
        "Archive-No": archive_no,
        "Also-Active": also_active or None,
        "Request": approval.request,
        "Acted-by": actor.member.id,
    }


def readers(archive: Archive, building: str, on_main: bool = False) -> list[StaffMember]:
    """Everyone who may read a building's households now: by role (P7) or by an unexpired grant.

    on_main: as staff.yaml and the grants stand on main (whom keys are wrapped
    to); otherwise as on this branch (whom archivectl lets try).
    """
    tip = archive.main_commit() if on_main else None
    staff = main_staff(archive, tip) if on_main else archive.staff
    grants = _grants_on_main(archive, tip) if tip else None
    return _with_grants(staff, building, grants if grants is not None else registers.active_grants(archive.root))


def _with_grants(staff: Staff, building: str, grants: list[dict[str, Any]]) -> list[StaffMember]:
    """A building's readers by role (P7), then the active staff an unexpired grant names."""
    members = staff.readers_of(building)
    for grant in grants:
        member = staff.get(str(grant.get("staff")))
        if grant.get("building") == building and member and member.active and member not in members:
            members.append(member)
    return members


# What main approves at a given tip never changes (a commit is immutable): read once per process and tip.
# An import asks for every building's readers, a rotation for every household's.
_GRANTS_ON_MAIN: dict[tuple[str, str, str], list[dict[str, Any]] | None] = {}
_STAFF_ON_MAIN: dict[tuple[str, str], Staff] = {}


def _grants_on_main(archive: Archive, tip: str) -> list[dict[str, Any]] | None:
    """The unexpired grants approved at main's tip (expiry as of today)."""
    key = (str(archive.root), tip, clock.today().isoformat())
    if key not in _GRANTS_ON_MAIN:
        _GRANTS_ON_MAIN[key] = registers.active_grants_at(
            archive.root, approved_commit(archive, tip, "registers/grants")
        )
    return _GRANTS_ON_MAIN[key]


def main_staff(archive: Archive, tip: str | None = None) -> Staff:
    """staff.yaml as approved on main: whom record keys are wrapped to (a branch's staff change gives nothing).

    A change of staff.yaml on main that still awaits its signed approval (on
    a desk without a server, main can hold one) gives nothing either: the
    version read is that of the newest approved change.
    """
    tip = tip or archive.main_commit()
    if tip is None:
        return archive.staff
    key = (str(archive.root), tip)
    if key not in _STAFF_ON_MAIN:
        committed = gitio.show_blob(archive.root, approved_commit(archive, tip, STAFF_FILE), STAFF_FILE)
        if committed is None:
            return archive.staff
        _STAFF_ON_MAIN[key] = Staff.from_yaml(yamlio.loads(committed, STAFF_FILE), STAFF_FILE)
    return _STAFF_ON_MAIN[key]


def require_reader(archive: Archive, actor: Actor, building: str) -> None:
    """ArchiveError unless actor may read the building's personal data now (P7)."""
    granted = actor.member in readers(archive, building)
    for problem in (policy.actor_problem(actor.member), policy.reader_problem(actor.member, building, granted)):
        if problem:
            raise ArchiveError(problem)


@dataclass(frozen=True)
class ReaderCopy:
    """A household located and loaded for an entitled reader: locate -> load -> require reader (P7).

    The record key is unwrapped only when asked for (record_key), so that a
    wrong document name is told before any key is touched.
    """

    archive: Archive
    actor: Actor
    relpath: str
    stored: dict
    identity: str | None

    @property
    def home(self) -> Path:
        return self.archive.root / HouseholdPath.of(self.relpath).dir

    def record_key(self) -> Any:
        return unlock_record_key(self.archive, self.stored, identity_for(self.archive, self.identity, self.actor))

    def plain(self) -> dict:
        """The record in clear, its sealed block opened with the reader's key (none sealed: the clear part)."""
        if not self.stored.get("sealed"):
            return {k: v for k, v in self.stored.items() if k not in records.STORED_ONLY}
        return records.open_record(self.stored, self.record_key())[0]


def for_reader(archive: Archive, actor: Actor, archive_no: str, identity: str | None) -> ReaderCopy:
    """The household of archive_no for actor, or ArchiveError if there is none or actor may not read it."""
    relpath = archive.locate(archive_no)
    stored = load_stored(archive, relpath)
    require_reader(archive, actor, str(stored.get("building")))
    return ReaderCopy(archive, actor, relpath, stored, identity)


def sealed_records_to_rewrite(archive: Archive, actor: Actor, needs: Callable[[dict], bool]) -> list[tuple[str, dict]]:
    """(path, stored record) of every sealed household needs() picks, for a migration that opens each one.

    Refused, before anything is written, at the first in a building the actor does not read.
    """
    todo = []
    for _blob, relpath in archive.record_paths():
        stored = load_stored(archive, relpath)
        if stored.get("sealed") and needs(stored):
            if actor.member not in readers(archive, str(stored.get("building"))):
                raise ArchiveError(
                    _("{no}: {who} does not read building {building}; a manager or gm migrates the archive").format(
                        no=stored.get("archive_no"), who=actor.member.id, building=stored.get("building")
                    )
                )
            todo.append((relpath, stored))
    return todo


def load_stored(archive: Archive, relpath: str) -> dict:
    """A household's stored record from the work tree."""
    path = archive.root / relpath
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ArchiveError(_("{relpath} is missing from the work tree").format(relpath=relpath)) from None
    return records.load_stored(data, relpath)


def unlock_record_key(archive: Archive, stored: dict, identity_path: Path) -> Any:
    """The record key a stored household is sealed to, unwrapped with the reader's SSH identity."""
    identity = crypto.load_identity(identity_path)
    return open_key(archive, stored, identity)


def open_key(archive: Archive, stored: dict, identity: Any) -> Any:
    """The record key of a stored household (the one its `recipient:` names), with a loaded identity.

    The key must be the one the record says: a key that opens but is another
    household's (or an older one of this household's) is refused here.
    """
    number, recipient = str(stored.get("archive_no")), stored.get("recipient")
    key = crypto.unwrap_record_key(archive.keystore.read(number, recipient), identity)
    if recipient and str(key.to_public()) != recipient:
        raise ArchiveError(
            _(
                "{number}: the record key found is not this household's: "
                "check the keystore (`archivectl keys fsck --deep`)"
            ).format(number=number)
        )
    return key


def wrap_targets(archive: Archive, building: str) -> list[str]:
    """Whom a building's record keys are wrapped to: its readers as approved on main, and the recovery recipient."""
    return wrap_targets_of(archive, [building])[building]


def wrap_targets_of(archive: Archive, buildings: list[str]) -> dict[str, list[str]]:
    """wrap_targets of several buildings, with main's tip and grants read once for all (an import)."""
    tip = archive.main_commit()
    staff = main_staff(archive, tip)
    grants = _grants_on_main(archive, tip) if tip else None
    if grants is None:
        grants = registers.active_grants(archive.root)
    recovery = archive.main_settings.recovery  # as approved on main: a branch's recovery: gives nothing
    out = {}
    for building in buildings:
        targets = [m.key for m in _with_grants(staff, building, grants)]
        out[building] = [*targets, recovery] if recovery else targets
    return out


def identity_for(archive: Archive, explicit: str | None, actor: Actor | None = None) -> Path:
    """Which private key to decrypt with: --identity, env, or the signing key's private half."""
    if explicit:
        return decrypting_identity(None, explicit)
    if actor is None:
        try:
            actor = actor_of(archive)
        except ArchiveError:
            return decrypting_identity(None, None)
    return decrypting_identity(actor.private_key, None)
