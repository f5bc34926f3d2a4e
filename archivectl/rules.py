"""What each archivectl action may change: the one table verify judges commits by.

Every commit says what it is in an `Action:` trailer. For each action this
module says which paths may change and how (A added, M modified, D deleted),
which approval it needs, which registers it appends to, and how a household's
record may change. Nothing here reads a commit subject, except `legacy_action`,
which maps commits made before `Action:` existed (archive.yaml version 1).

Pure functions over plain values: the judge (archivectl/judge/) does the reading.

Merge commits have no row: a merge is clean when its tree is git's own merge
of its parents except in records that hold exactly the field-level merge
archivectl's merge driver gives (judge/merges.py merged_record_problem, the one
place that rule lives). A sealed block both sides changed (same recipient, a
reader's signature) makes the merge an edit of personal fields: it needs an
approval like an edit, named in its Approved-by: trailer and bound to the merge
commit. Any other merge is judged like a commit by this table.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any

from archivectl.i18n import _
from archivectl.layout import HOUSEHOLD_PATTERN

# ------------------------------------------------------------------ paths

_HOUSEHOLD = HOUSEHOLD_PATTERN  # households/<building>/<unit>/<archive-no>, from layout.py
_PATHS: list[tuple[str, re.Pattern[str]]] = [
    ("settings", re.compile(r"archive\.yaml")),
    ("staff", re.compile(r"staff\.yaml")),
    ("schema", re.compile(r"schemas/[a-z]+\.schema\.json")),
    ("record", re.compile(rf"{_HOUSEHOLD}/record\.yaml")),
    (
        "attachment",
        re.compile(
            rf"{_HOUSEHOLD}/attachments/[a-z-]+-[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}-[0-9]+(?:\.[a-z0-9]{{1,10}})?\.age"
        ),
    ),
    ("numbers", re.compile(r"registers/numbers\.yaml")),
    (
        "register",
        re.compile(
            r"registers/(?P<register>[a-z]+)/[0-9]{4}-[0-9]{2}"
            r"(?:\.yaml|/(?P<event>[0-9]{8}T[0-9]{6}-(?P<event_action>[a-z-]+)-(?P<event_who>[a-z][a-z0-9_-]{1,31})"
            r"-[0-9a-f]{8})\.yaml)"
        ),
    ),
    ("meta", re.compile(r"\.gitattributes|\.gitignore|CODEOWNERS|\.pre-commit-config\.yaml")),
]
REGISTERS = ("access", "lending", "transfer", "destruction", "grants", "keys", "requests", "holds")
GOVERNANCE_KINDS = ("settings", "staff", "schema")


@dataclass(frozen=True)
class PathKind:
    """What a path in the archive is: its kind, and the household or register it belongs to."""

    kind: str
    archive_no: str | None = None
    register: str | None = None
    # a register event file (one entry, never rewritten) names its action and who in its name
    event_action: str | None = None
    event_who: str | None = None


@functools.lru_cache(maxsize=1 << 16)
def classify(path: str) -> PathKind | None:
    """The kind of an archive path, or None when it is outside archivectl's layout.

    Kept per path (PathKind is frozen): the judge asks about each path of a commit several
    times, five per record for an import of 20,000.
    """
    for kind, pattern in _PATHS:
        m = pattern.fullmatch(path)
        if m is None:
            continue
        groups = m.groupdict()
        if kind == "register" and groups.get("register") not in REGISTERS:
            return None
        return PathKind(
            kind, groups.get("no"), groups.get("register"), groups.get("event_action"), groups.get("event_who")
        )
    return None


# ------------------------------------------------------------------ the table


@dataclass(frozen=True)
class ActionRule:
    """One row of the table.

    changes: path kind (or "register:<name>") -> the git statuses allowed (A, M, D).
    approval: None (no approval), "change" (archive.yaml approver_roles),
      "grant" (grant_approver_roles) or "governance" (governance_approver_roles).
    record: how a household's record may change (a name in RECORD_CHANGES), if at all.
    registers: the registers it must append to (at least one entry each); each entry's
      `who` is the signer and its `action` this action.
    """

    name: str
    approval: str | None
    changes: dict[str, str] = field(default_factory=dict)
    record: str | None = None
    registers: tuple[str, ...] = ()
    approvers: int = 1  # distinct entitled approvers a change needs (archive.yaml `approvals:` may raise it)


_REGISTER_WRITE = "AM"  # a register file is created for a new month, then appended to

TABLE: dict[str, ActionRule] = {
    r.name: r
    for r in (
        # The founding commit: the only root, the only self-approved commit (a gm).
        ActionRule("init", None, {"settings": "A", "staff": "A", "schema": "A", "meta": "A"}),
        ActionRule("add", "change", {"record": "A", "numbers": "AM"}, record="new"),
        ActionRule("import", "change", {"record": "A", "numbers": "AM"}, record="new"),
        ActionRule("edit", "change", {"record": "M"}, record="edit"),
        # edit --forget-previous: an edit sealed to a new record key, every attachment re-encrypted to it;
        # the old key is shredded once this is approved on main (P17: a correction that forgets).
        ActionRule("forget", "change", {"record": "M", "attachment": "M"}, record="forget"),
        ActionRule("attach", "change", {"record": "M", "attachment": "A"}, record="attach"),
        ActionRule("tombstone", "change", {"record": "M"}, record="tombstone"),
        ActionRule("restore", "change", {"record": "M"}, record="restore"),
        ActionRule("move-out", "change", {"record": "M"}, record="move-out"),
        ActionRule("review", "change", {"record": "M"}, record="review"),
        ActionRule(
            "purge",
            "change",
            {"record": "D", "attachment": "D", "register:destruction": _REGISTER_WRITE},
            record="purge",
            registers=("destruction",),
        ),
        ActionRule(
            "rotate",
            "change",
            {"record": "M", "attachment": "M", "register:keys": _REGISTER_WRITE},
            record="rotate",
            registers=("keys",),
        ),
        ActionRule("rewrap", "change", {"register:keys": _REGISTER_WRITE}, registers=("keys",)),
        # keys shred's record of what it destroyed: the destruction itself was approved on main (P14).
        ActionRule("shred", None, {"register:destruction": _REGISTER_WRITE}, registers=("destruction",)),
        ActionRule("grant", "grant", {"register:grants": _REGISTER_WRITE}, registers=("grants",)),
        ActionRule("lend", "change", {"register:lending": _REGISTER_WRITE}, registers=("lending",)),
        ActionRule("return", None, {"register:lending": _REGISTER_WRITE}, registers=("lending",)),
        ActionRule("export", "change", {"register:transfer": _REGISTER_WRITE}, registers=("transfer",)),
        # Look-ups of personal data: registered, no approval (P8).
        ActionRule("reveal", None, {"register:access": _REGISTER_WRITE}, registers=("access",)),
        ActionRule("open", None, {"register:access": _REGISTER_WRITE}, registers=("access",)),
        ActionRule("view", None, {"register:access": _REGISTER_WRITE}, registers=("access",)),
        # Who works here and the archive's own rules: the gm's signed approval.
        ActionRule("staff", "governance", {"staff": "M"}),
        ActionRule("configure", "governance", {"settings": "M", "schema": "AM", "meta": "AMD"}),
        # A signed approval of named commits: changes nothing, so it binds to their exact content.
        ActionRule("approve", None, {}),
        # Customers' requests (P17): opening one and registering its answer need nobody's approval (the
        # clock must start at once; the export/edit/tombstone that answers is approved itself); refusing
        # one or closing it unanswered stops the clock against the customer: a manager signs that.
        ActionRule("request-open", None, {"register:requests": _REGISTER_WRITE}, registers=("requests",)),
        ActionRule("request-answer", None, {"register:requests": _REGISTER_WRITE}, registers=("requests",)),
        ActionRule("request-refuse", "change", {"register:requests": _REGISTER_WRITE}, registers=("requests",)),
        ActionRule("request-close", "change", {"register:requests": _REGISTER_WRITE}, registers=("requests",)),
        # A legal hold stops tombstone, purge and shred (holds.hold_problem); placing and lifting it are approved.
        ActionRule("hold", "change", {"register:holds": _REGISTER_WRITE}, registers=("holds",)),
        ActionRule("release", "change", {"register:holds": _REGISTER_WRITE}, registers=("holds",)),
        # migrate fingerprints (issue 26): sealed_fingerprints added to records written before them, nothing else.
        ActionRule("fingerprint", "change", {"record": "M"}, record="fingerprint"),
        # Blind index (issue 27): finding a person is a look-up (P8); giving records their blind_index
        # (migrate blind-index) and re-fingerprinting them with a new index key change nothing else.
        ActionRule("find", None, {"register:access": _REGISTER_WRITE}, registers=("access",)),
        ActionRule("blind-index", "change", {"record": "M"}, record="blind-index"),
        ActionRule("rotate-index", "change", {"record": "M"}, record="blind-index"),
    )
}
LOOKUPS = tuple(
    name for name, rule in TABLE.items() if rule.approval is None and name not in ("init", "approve", "shred")
)


def allowed_statuses(rule: ActionRule, kind: PathKind) -> str:
    """The git statuses (A, M, D) the action allows for a path of this kind ('' for none)."""
    if kind.kind == "register":
        return rule.changes.get(f"register:{kind.register}", "")
    return rule.changes.get(kind.kind, "")


def approvals_needed(rule: ActionRule, settings: Any) -> int:
    """How many distinct entitled approvers must sign an approval of this action's change (0: none needed).

    The table's row says 1; archive.yaml `approvals: {purge: 2, staff: 2}` may ask more (never fewer).
    """
    if rule.approval is None:
        return 0
    asked = (getattr(settings, "approvals", None) or {}).get(rule.name, rule.approvers)
    return max(rule.approvers, int(asked))


def approval_roles(rule: ActionRule, settings_rules: Any) -> tuple[str, ...]:
    """The roles that may approve this action under archive.yaml's policy (empty: none needed)."""
    if rule.approval is None:
        return ()
    return {
        "change": settings_rules.approver_roles,
        "grant": settings_rules.grant_approver_roles,
        "governance": settings_rules.governance_approver_roles,
    }[rule.approval]


# ------------------------------------------------------------------ how a record may change

# Fields only a dedicated command changes; an edit that touches one is not an edit.
COMMAND_FIELDS = ("archive_no", "building", "unit", "category", "status", "documents", "tombstone", "moved_out")


def changed_fields(old: dict, new: dict) -> set[str]:
    """Top-level fields whose value differs between two stored records."""
    return {k for k in set(old) | set(new) if old.get(k) != new.get(k)}


def record_change_problem(
    how: str, old: dict | None, new: dict | None, approved_by: str | None, added_files: set[str]
) -> str | None:
    """Why a stored record's change is not what the action `how` may do, or None.

    old/new are the stored records before and after (None: absent); added_files
    are the attachment file names (attachments/...) the same commit adds (for a
    rotation: the ones it re-encrypts).
    """
    if how == "purge":
        return None if new is None else _("a purge deletes records, it does not change them")
    if how == "new":
        if old is not None or new is None:
            return _("only creates new records")
        if new.get("status") != "active" or new.get("tombstone") or new.get("moved_out"):
            return _("a new household must be active")
        if new.get("documents"):
            return _("a new household has no documents yet (attach adds them)")
        return None
    if old is None or new is None:
        return _("changes an existing record, it does not create or delete one")
    changed = changed_fields(old, new)
    allowed = _ALLOWED_FIELDS.get(how)
    if allowed is not None:
        extra = sorted(changed - allowed)
    else:  # edit: everything but the command fields and the record key's recipient (forget: a new one)
        extra = sorted(changed & {*COMMAND_FIELDS, *(() if how == "forget" else ("recipient",))})
    if extra:
        return _("changes {fields}, which {action} may not change").format(fields=", ".join(extra), action=how)
    return _TRANSITIONS[how](old, new, approved_by, added_files) if how in _TRANSITIONS else None


_ALLOWED_FIELDS: dict[str, set[str]] = {
    "attach": {"documents"},
    "tombstone": {"status", "tombstone"},
    "restore": {"status", "tombstone"},
    "move-out": {"status", "moved_out"},
    "review": {"last_reviewed"},
    # a new record key: new fingerprints (and the blind index a correction's rekey may bring, issue 27)
    "rotate": {"sealed", "recipient", "sealed_fingerprints", "blind_index"},
    "fingerprint": {"sealed_fingerprints"},
    "blind-index": {"blind_index"},
}


def _attach(old: dict, new: dict, _approver: str | None, added: set[str]) -> str | None:
    before = [d for d in old.get("documents") or [] if isinstance(d, dict)]
    after = [d for d in new.get("documents") or [] if isinstance(d, dict)]
    if any(d not in after for d in before):
        return _("an attach may only add documents, never change or drop one (P6)")
    listed = {str(d.get("file")) for d in after if d not in before}
    if not listed or listed != added:
        return _("the documents it lists must be exactly the attachments it adds")
    return None


def _tombstone(old: dict, new: dict, approver: str | None, _added: set[str]) -> str | None:
    tomb = new.get("tombstone")
    if old.get("status") not in ("active", "moved-out") or new.get("status") != "tombstoned":
        return _("a tombstone turns an active or moved-out household into a tombstoned one")
    if not isinstance(tomb, dict) or tomb.get("previous_status") != old.get("status"):
        return _("the tombstone block must say the previous status")
    if tomb.get("approver") != approver:
        return _("the tombstone block must name the approver the commit names")
    return None


def _restore(old: dict, new: dict, _approver: str | None, _added: set[str]) -> str | None:
    previous = (old.get("tombstone") or {}).get("previous_status", "active")
    if old.get("status") != "tombstoned" or new.get("status") != previous or new.get("tombstone"):
        return _("a restore returns a tombstoned household to its previous status")
    return None


def _move_out(old: dict, new: dict, _approver: str | None, _added: set[str]) -> str | None:
    if old.get("status") != "active" or new.get("status") != "moved-out" or not new.get("moved_out"):
        return _("a move-out turns an active household into a moved-out one with its date")
    return None


def _rotate(old: dict, new: dict, _approver: str | None, rekeyed: set[str]) -> str | None:
    # A new record key re-encrypts everything it guards; a recipient swapped alone would send every
    # scan attached from then on to whoever holds the new key, outside the keystore.
    documents = {str(d.get("file")) for d in new.get("documents") or [] if isinstance(d, dict)}
    if (
        new.get("recipient") == old.get("recipient")
        or (old.get("sealed") and new.get("sealed") == old.get("sealed"))
        or rekeyed != documents
    ):
        return _("a rotation re-encrypts the sealed block and every attachment to a new record key (recipient)")
    return None


def _forget(old: dict, new: dict, approver: str | None, rekeyed: set[str]) -> str | None:
    # an edit, and a rotation of one household: the old key must guard nothing this version still needs
    if _rotate(old, new, approver, rekeyed):
        return _("must seal the record and re-encrypt every attachment to a new record key (recipient)")
    return None


_TRANSITIONS = {
    "attach": _attach,
    "tombstone": _tombstone,
    "restore": _restore,
    "move-out": _move_out,
    "rotate": _rotate,
    "forget": _forget,
}


# ------------------------------------------------------------------ commits made before Action:

_LEGACY_SUBJECTS = (
    ("init archive ", "init"),
    ("add ", "add"),
    ("import ", "import"),
    ("edit ", "edit"),
    ("attach ", "attach"),
    ("tombstone ", "tombstone"),
    ("restore ", "restore"),
    ("move-out ", "move-out"),
    ("review ", "review"),
    ("purge ", "purge"),
    ("recipients sync: rotate", "rotate"),
    ("recipients sync: re-wrap", "rewrap"),
    ("grant ", "grant"),
    ("lend ", "lend"),
    ("return ", "return"),
    ("register export of ", "export"),
    ("register reveal of ", "reveal"),
    ("register open of ", "open"),
    ("staff ", "staff"),
)


def legacy_action(subject: str) -> str | None:
    """The action of a commit made before `Action:` existed (archive.yaml version 1), by its subject.

    The one place a subject is read: such a commit is then judged by that action's
    row like any other, so a misleading subject only selects rules it must meet.
    """
    for prefix, action in _LEGACY_SUBJECTS:
        if subject.startswith(prefix):
            return action
    return None
