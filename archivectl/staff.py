"""staff.yaml: who works here, in which role and buildings, with which key.

A staff member's SSH ed25519 public key is both the key git verifies their
signatures with and their age recipient.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from archivectl.errors import UsageError
from archivectl.i18n import _

ROLES = ("butler", "cashier", "clerk", "manager", "gm", "auditor")
ALL_BUILDINGS_ROLES = ("manager", "gm")  # P7: they read every building
BUILDING_READER_ROLES = ("butler", "cashier")  # P7: they read their own buildings


@dataclass(frozen=True)
class StaffMember:
    """One person on staff.yaml."""

    id: str
    name: str
    role: str
    key: str
    buildings: tuple[str, ...] = ()
    active: bool = True
    deactivated: str | None = None
    handle: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def key_id(self) -> str:
        """The key without its comment: what signatures and recipients are compared by."""
        return key_id(self.key)

    def to_yaml(self) -> dict[str, Any]:
        """The member as written to staff.yaml."""
        data: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "role": self.role,
            "buildings": list(self.buildings),
            "key": self.key,
            "active": self.active,
        }
        if self.deactivated:
            data["deactivated"] = self.deactivated
        if self.handle:
            data["handle"] = self.handle
        return data


def key_id(key: str) -> str:
    """'ssh-ed25519 AAAA...' without comment, or raise UsageError if it is not one."""
    parts = key.strip().split()
    if len(parts) < 2 or parts[0] != "ssh-ed25519":
        raise UsageError(_("staff keys must be 'ssh-ed25519 AAAA...' public keys"))
    try:
        raw = base64.b64decode(parts[1], validate=True)
    except ValueError:
        raise UsageError(_("staff key is not valid base64")) from None
    if not raw.startswith(b"\x00\x00\x00\x0bssh-ed25519") or len(raw) != 51:
        raise UsageError(_("staff key is not an ed25519 public key"))
    return f"{parts[0]} {parts[1]}"


class Staff:
    """The staff list with the look-ups the rules need."""

    def __init__(self, members: Iterable[StaffMember]):
        self.members = list(members)
        self._by_id = {m.id: m for m in self.members}

    @classmethod
    def from_yaml(cls, data: Any, source: str = "staff.yaml") -> Staff:
        """Build from parsed staff.yaml, checked against schemas/staff.schema.json."""
        from archivectl import schema

        schema.check_staff(data, source)
        members = []
        seen_keys: dict[str, str] = {}
        for raw in data["staff"]:
            member = StaffMember(
                id=raw["id"],
                name=raw["name"],
                role=raw["role"],
                key=raw["key"].strip(),
                buildings=tuple(raw.get("buildings") or ()),
                active=raw.get("active", True),
                deactivated=raw.get("deactivated"),
                handle=raw.get("handle"),
            )
            kid = key_id(member.key)
            if kid in seen_keys:
                raise UsageError(
                    _("{source}: {id} and {seen_keys} share one key; each person needs their own").format(
                        source=source, id=member.id, seen_keys=seen_keys[kid]
                    )
                )
            seen_keys[kid] = member.id
            members.append(member)
        ids = [m.id for m in members]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise UsageError(
                _("{source}: staff id {dupes} appears more than once").format(source=source, dupes=dupes[0])
            )
        return cls(members)

    def to_yaml(self) -> dict[str, Any]:
        """The whole file as written to staff.yaml."""
        return {"staff": [m.to_yaml() for m in self.members]}

    def get(self, staff_id: str) -> StaffMember | None:
        """The member with that id, active or not."""
        return self._by_id.get(staff_id)

    def by_key(self, key: str) -> StaffMember | None:
        """The member whose public key this is (comment ignored), active or not."""
        kid = key_id(key)
        for member in self.members:
            if member.key_id == kid:
                return member
        return None

    def active(self) -> list[StaffMember]:
        """Everyone currently on staff."""
        return [m for m in self.members if m.active]

    def readers_of(self, building: str) -> list[StaffMember]:
        """Active staff who may read a building's households (P7), without grants."""
        return [m for m in self.active() if may_read(m, building)]

    def replace(self, member: StaffMember) -> Staff:
        """A new list with member added, or replacing the one with its id."""
        members = [member if m.id == member.id else m for m in self.members]
        if member.id not in self._by_id:
            members.append(member)
        return Staff(members)


def may_read(member: StaffMember, building: str) -> bool:
    """P7: managers and the gm read all; butlers and cashiers read their buildings."""
    if not member.active:
        return False
    if member.role in ALL_BUILDINGS_ROLES:
        return True
    return member.role in BUILDING_READER_ROLES and building in member.buildings


def allowed_signers(staff: Staff) -> str:
    """The ssh allowed-signers file git verifies commit signatures with.

    A departed member keeps a line with valid-before= their departure, so the
    commits they signed while on staff still verify and later ones do not.
    """
    lines = []
    for m in staff.members:
        options = 'namespaces="git"'
        if not m.active:
            stamp = _signer_time(m.deactivated) if m.deactivated else "19700102"
            options += f',valid-before="{stamp}"'
        lines.append(f"{m.id} {options} {m.key_id}")
    return "\n".join(lines) + "\n"


def _signer_time(iso: str) -> str:
    import datetime as dt

    moment = dt.datetime.fromisoformat(iso).astimezone(dt.UTC)
    return moment.strftime("%Y%m%d%H%M%SZ")


def deactivate(member: StaffMember, when: str) -> StaffMember:
    """The member marked as departed at the given ISO time."""
    return replace(member, active=False, deactivated=when)


@functools.lru_cache(maxsize=4096)
def fingerprint(key: str) -> str:
    """The SHA256 fingerprint ssh-keygen and git print for a public key (kept per key: verify asks per commit)."""
    import hashlib

    blob = base64.b64decode(key.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
