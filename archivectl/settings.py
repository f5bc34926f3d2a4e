"""archive.yaml: an archive's settings, and where its keystore is.

The approval rules' defaults are `policy.ApprovalRules`'s; this module only
reads and writes the file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archivectl.errors import UsageError
from archivectl.i18n import _
from archivectl.layout import ARCHIVE_FILE
from archivectl.policy import ApprovalRules

# 3: archive numbers are reserved in the keystore (numbers.yaml no longer written)
FORMAT_VERSION = 3
DEFAULT_RULES = ApprovalRules()


@dataclass(frozen=True)
class Settings:
    """archive.yaml."""

    name: str
    retention_days: int = 30
    review_interval_days: int = 365
    keystore: str | None = None
    rules: ApprovalRules = field(default_factory=ApprovalRules)
    # 1: made before commits carried Action: (see rules.legacy_action); 2: every commit says its action
    version: int = FORMAT_VERSION
    main: str = "main"
    # 保管期限: days a household of a class (a status such as moved-out, or a category) is kept
    keeping: dict[str, int] = field(default_factory=dict)
    # the company's offline recovery recipient (age1...): every record key is wrapped to it too
    recovery: str | None = None
    # the company's own closures (days off beyond the official calendar), ISO dates: P17's working days
    closures: tuple[str, ...] = ()
    # the estate's buildings (None: not declared, any building accepted) and whether units number by floor
    buildings: tuple[str, ...] | None = None
    unit_floor: bool = False
    # the interface's language for everyone working in this archive (ARCHIVECTL_LANG still overrides)
    language: str | None = None
    # distinct approvers an action needs beyond the rule table's one, e.g. {"purge": 2, "staff": 2}
    approvals: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_yaml(cls, data: Any) -> Settings:
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            raise UsageError(f"{ARCHIVE_FILE}: must be a mapping with a name")
        known = {
            "name",
            "id_scheme",
            "retention_days",
            "review_interval_days",
            "keystore",
            "policy",
            "version",
            "main",
            "keeping",
            "recovery",
            "closures",
            "buildings",
            "unit_floor",
            "language",
            "approvals",
        }
        unknown = sorted(set(data) - known)
        if unknown:
            raise UsageError(f"{ARCHIVE_FILE}: unknown setting {unknown[0]}")
        policy = data.get("policy") or {}
        if not isinstance(policy, dict):
            raise UsageError(f"{ARCHIVE_FILE}: policy must be a mapping")
        try:
            rules = ApprovalRules(
                approver_roles=tuple(policy.get("approver_roles", DEFAULT_RULES.approver_roles)),
                four_eyes=bool(policy.get("four_eyes", DEFAULT_RULES.four_eyes)),
                grant_approver_roles=tuple(policy.get("grant_approver_roles", DEFAULT_RULES.grant_approver_roles)),
                governance_approver_roles=tuple(
                    policy.get("governance_approver_roles", DEFAULT_RULES.governance_approver_roles)
                ),
            )
            main = str(data.get("main", "main"))
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,63}", main) or ".." in main:
                raise UsageError(f"{ARCHIVE_FILE}: main must be a branch name")
            return cls(
                name=data["name"],
                retention_days=int(data.get("retention_days", 30)),
                review_interval_days=int(data.get("review_interval_days", 365)),
                keystore=data.get("keystore"),
                rules=rules,
                version=int(data.get("version", 1)),
                main=main,
                keeping=_keeping(data.get("keeping") or {}),
                recovery=check_recovery(data.get("recovery")),
                closures=_closures(data.get("closures") or []),
                buildings=_buildings(data.get("buildings")),
                unit_floor=_unit_floor(data.get("unit_floor", False)),
                language=_language(data.get("language")),
                approvals=_approvals(data.get("approvals")),
            )
        except (TypeError, ValueError):
            raise UsageError(f"{ARCHIVE_FILE}: a setting has the wrong type") from None

    def to_yaml(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "version": self.version,
            "id_scheme": "category code (HO/NH/SP) + year + 5-digit serial, e.g. HO-2026-00001",
            "retention_days": self.retention_days,
            "review_interval_days": self.review_interval_days,
            "policy": {
                "approver_roles": list(self.rules.approver_roles),
                "four_eyes": self.rules.four_eyes,
                "grant_approver_roles": list(self.rules.grant_approver_roles),
                "governance_approver_roles": list(self.rules.governance_approver_roles),
            },
        }
        if self.main != "main":
            data["main"] = self.main
        if self.keeping:
            data["keeping"] = {k: {"days": v} for k, v in self.keeping.items()}
        if self.keystore:
            data["keystore"] = self.keystore
        if self.recovery:
            data["recovery"] = self.recovery
        if self.closures:
            data["closures"] = list(self.closures)
        if self.language:
            data["language"] = self.language
        if self.approvals:
            data["approvals"] = dict(self.approvals)
        if self.buildings is not None:
            data["buildings"] = list(self.buildings)
        if self.unit_floor:
            data["unit_floor"] = True
        return data


def check_recovery(value: Any) -> str | None:
    """archive.yaml recovery: an age public key (age1...), or None."""
    if value in (None, ""):
        return None
    if not isinstance(value, str) or not re.fullmatch(r"age1[0-9a-z]{58}", value.strip()):
        raise UsageError(f"{ARCHIVE_FILE}: recovery must be an age public key (age1...), from age-keygen")
    return value.strip()


def _approvals(value: Any) -> dict[str, int]:
    """archive.yaml approvals: {action: N}: N distinct approvers for that action (actions that need approval)."""
    from archivectl import rules

    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UsageError(f"{ARCHIVE_FILE}: approvals must map actions to numbers, e.g. {{purge: 2}}")
    found = {}
    for action, number in value.items():
        rule = rules.TABLE.get(str(action))
        if rule is None or rule.approval is None:
            raise UsageError(f"{ARCHIVE_FILE}: approvals: {action} is not an action that needs approval")
        if not isinstance(number, int) or isinstance(number, bool) or not 1 <= number <= 5:
            raise UsageError(f"{ARCHIVE_FILE}: approvals: {action} needs a number of approvers from 1 to 5")
        found[str(action)] = number
    return found


def _language(value: Any) -> str | None:
    """archive.yaml language: one of the interface's languages (i18n.LANGUAGES), or not given."""
    from archivectl.i18n import LANGUAGES

    if value is None:
        return None
    if value not in LANGUAGES:
        raise UsageError(f"{ARCHIVE_FILE}: language must be one of {', '.join(LANGUAGES)}")
    return str(value)


def _closures(data: Any) -> tuple[str, ...]:
    """archive.yaml closures: [2026-12-24, ...] as ISO dates."""
    import datetime as dt

    if not isinstance(data, list):
        raise UsageError(f"{ARCHIVE_FILE}: closures must be a list of dates")
    try:
        return tuple(sorted({dt.date.fromisoformat(str(d)).isoformat() for d in data}))
    except ValueError:
        raise UsageError(f"{ARCHIVE_FILE}: closures must be dates like 2026-12-24") from None


BUILDING = re.compile(r"[A-Z0-9][A-Z0-9-]{0,15}")  # as the household schema's building pattern


def _buildings(value: Any) -> tuple[str, ...] | None:
    """archive.yaml buildings: a list of building names (B01, B02...), or None when not declared."""
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise UsageError(
            _("{file}: buildings must be a list of building names, e.g. [B01, B02]").format(file=ARCHIVE_FILE)
        )
    names = []
    for item in value:
        name = str(item) if isinstance(item, (str, int)) and not isinstance(item, bool) else ""
        if not BUILDING.fullmatch(name):
            raise UsageError(
                _("{file}: buildings: {name} is not a building name (capital letters, digits and '-')").format(
                    file=ARCHIVE_FILE, name=name or type(item).__name__
                )
            )
        if name in names:
            raise UsageError(_("{file}: buildings: {name} is listed twice").format(file=ARCHIVE_FILE, name=name))
        names.append(name)
    return tuple(names)


def _unit_floor(value: Any) -> bool:
    if not isinstance(value, bool):
        raise UsageError(_("{file}: unit_floor must be true or false").format(file=ARCHIVE_FILE))
    return value


KEEPING_CLASSES = ("moved-out", "active", "handed-over", "not-handed-over", "special")


def _keeping(data: Any) -> dict[str, int]:
    """archive.yaml keeping: {moved-out: {years: 3}, not-handed-over: {days: 365}} as days per class."""
    if not isinstance(data, dict):
        raise UsageError(f"{ARCHIVE_FILE}: keeping must map a class to a period")
    periods = {}
    for name, period in data.items():
        if name not in KEEPING_CLASSES:
            raise UsageError(f"{ARCHIVE_FILE}: keeping: {name} is not one of {', '.join(KEEPING_CLASSES)}")
        if not isinstance(period, dict) or set(period) - {"years", "days"} or not period:
            raise UsageError(f"{ARCHIVE_FILE}: keeping: {name} needs years: N or days: N")
        days = int(period.get("days", 0)) + 365 * int(period.get("years", 0))
        if days <= 0:
            raise UsageError(f"{ARCHIVE_FILE}: keeping: {name} must be a positive period")
        periods[str(name)] = days
    return periods


def keystore_url(root: Path, configured: str | None) -> str:
    """ARCHIVECTL_KEYSTORE, else archive.yaml keystore: (a directory relative to the archive, or
    sftp://host/path), else the directory <archive>.keys beside the archive."""
    env = os.environ.get("ARCHIVECTL_KEYSTORE")
    value = env or configured
    if value and "://" in value:
        return value
    if env:
        return str(Path(env).expanduser().resolve())
    if configured:
        return str((root / Path(configured).expanduser()).resolve())
    return str(root.resolve().with_name(root.resolve().name + ".keys"))
