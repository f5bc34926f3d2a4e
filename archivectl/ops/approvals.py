"""approve and pending: signed approvals of proposed changes (P12, four-eyes that holds).

A change that needs approval is a proposal until the approver named in its
`Approved-by:` signs an approval commit naming it (`Approves: <commit id>`).
The approval changes no file, so it binds to the exact content of the commits
it names; a commit made after it is not covered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from archivectl import crypto, fingerprints, gitio, policy, records, rules, yamlio
from archivectl.archive import Archive
from archivectl.errors import ArchiveError, UsageError
from archivectl.i18n import _
from archivectl.identity import actor_of
from archivectl.ops.common import Approval, check_reason, identity_for, open_key, readers, trailers
from archivectl.ops.verify import pending as pending_in
from archivectl.ops.verify import verify
from archivectl.screen import inert


def default_range(archive: Archive) -> str | None:
    """This branch's proposals: <main's upstream or main>..HEAD, or the whole history on main itself."""
    main = archive.settings.main
    upstream = f"origin/{main}"
    if gitio.rev_parse(archive.root, upstream):
        return f"{upstream}..HEAD"
    if gitio.current_branch(archive.root) not in (None, main) and gitio.rev_parse(archive.root, main):
        return f"{main}..HEAD"
    return None


def pending(archive: Archive, range_spec: str | None = None, every_branch: bool = False) -> list[dict[str, Any]]:
    """What awaits whose approval: on this branch (or range), or on every branch not yet on main."""

    if not every_branch:
        return pending_in(archive, range_spec or default_range(archive))
    main = archive.settings.main
    base = f"origin/{main}" if gitio.rev_parse(archive.root, f"origin/{main}") else main
    rows: dict[str, dict[str, Any]] = {}
    for branch in gitio.branches(archive.root):
        if branch in (main, f"origin/{main}"):
            continue
        for row in pending_in(archive, f"{base}..{branch}"):
            rows.setdefault(row["commit"], {"branch": branch, **row})
    return list(rows.values())


@dataclass(frozen=True)
class ApprovalPlan:
    """What an approver is about to sign: the commits, and what each changes, as lines to show."""

    range: str
    commits: list[dict[str, Any]]
    lines: list[str]
    households: list[str]
    head: str | None = None  # the HEAD this was read from: approve signs only if it has not moved


def plan(archive: Archive, range_spec: str | None, reveal: bool = False, identity: str | None = None) -> ApprovalPlan:
    """Check that the acting staff member may approve what awaits them in the range, and describe it."""

    head = gitio.head(archive.root)
    actor = actor_of(archive)
    problem = policy.actor_problem(actor.member)
    if problem:
        raise ArchiveError(problem)
    chosen = range_spec or default_range(archive)
    report = verify(archive, chosen, allow_pending=True, keystore=False)
    waiting = report["pending"]
    settings = archive.settings.rules
    every_role = {*settings.approver_roles, *settings.grant_approver_roles, *settings.governance_approver_roles}
    if actor.member.role not in every_role:
        raise ArchiveError(
            _("{id} is a {role}; approvals need a {items}").format(
                id=actor.member.id, role=actor.member.role, items=_(" or ").join(sorted(every_role))
            )
        )
    me = actor.member
    mine = [  # named, or one more of several approvers an action needs (archive.yaml approvals:)
        row
        for row in waiting
        if row["awaiting"] == me.id
        or (
            row["more_from"]
            and me.role in row["more_from"].split(", ")
            and me.id != row["acted_by"]
            and me.id not in row["signed"].split(", ")
        )
    ]
    where = chosen or "HEAD"
    if not mine:
        if settings.four_eyes and any(row["acted_by"] == actor.member.id for row in waiting):
            raise ArchiveError(_("{id} cannot approve their own change (four-eyes rule)").format(id=actor.member.id))
        others = sorted({row["awaiting"] or _("one more {roles}").format(roles=row["more_from"]) for row in waiting})
        if others:
            raise ArchiveError(
                _("nothing in {where} awaits {id}; it awaits {items}").format(
                    where=where, id=actor.member.id, items=", ".join(others)
                )
            )
        raise ArchiveError(_("nothing in {where} awaits approval").format(where=where))
    if report["findings"]:
        first = report["findings"][0]
        raise ArchiveError(
            _(
                "{where} has {n} findings (first: {commit} {message}); "
                "run `archivectl verify --range {where}` and fix them before approving"
            ).format(where=where, n=len(report["findings"]), commit=first["commit"][:12], message=first["message"])
        )
    lines: list[str] = []
    households: set[str] = set()
    opener = _Opener(archive, actor, identity)
    for row in mine:
        households |= {n.strip() for n in row["archive_no"].split(",") if n.strip()}
        lines.append(
            _("{commit}  {action} by {who}: {reason}").format(
                commit=row["commit"][:12], action=row["action"], who=row["acted_by"], reason=row["reason"]
            )
        )
        lines += ["    " + line for line in describe(archive, row["commit"], opener, reveal)]
    return ApprovalPlan(where, mine, lines, sorted(households), head)


def approve(
    archive: Archive,
    range_spec: str | None,
    reason: str | None,
    confirm: Callable[[ApprovalPlan], bool],
    reveal: bool = False,
    identity: str | None = None,
) -> tuple[ApprovalPlan, str]:
    """Sign one approval commit naming every change in the range that awaits the acting staff member.

    confirm is shown the plan and decides (a terminal asks; --yes always agrees).
    With reveal, personal fields were shown in clear, so that viewing is registered first (P8).
    """
    reason = check_reason(reason)
    # The plan is read (and shown, and confirmed) without the lock: a person may take
    # their time. Under the lock it still holds exactly when HEAD has not moved since.
    shown = plan(archive, range_spec, reveal, identity)
    if not confirm(shown):
        raise ArchiveError(_("not approved; nothing was written"))
    numbers = ", ".join(shown.households) or None
    expected = shown.head
    if reveal and shown.households:
        from archivectl import registers

        with archive.writing() as tx:
            actor = _unmoved(archive, expected)
            fields = {"archive_no": numbers, "commits": [c["commit"][:12] for c in shown.commits]}
            registers.register(tx, "access", "view", actor.member.id, fields, reason=reason)
            expected = tx.commit(
                f"register view of {numbers} for approval", trailers("view", Approval(reason), actor, numbers), actor
            )
    with archive.writing() as tx:
        actor = _unmoved(archive, expected)
        who = sorted({c["acted_by"] for c in shown.commits})
        subject = f"approve {len(shown.commits)} change{'s' if len(shown.commits) > 1 else ''} by {', '.join(who)}"
        message = {
            **trailers("approve", Approval(reason), actor, numbers),
            "Approves": [c["commit"] for c in shown.commits],
        }
        commit = tx.commit(subject, message, actor)
    return shown, commit


def _unmoved(archive: Archive, expected: str | None) -> Any:
    """The acting staff member, under the lock, once HEAD is still what the approver was shown."""
    now = gitio.head(archive.root)
    if now != expected:
        raise ArchiveError(
            _(
                "the branch moved while you were approving (now {commit}); nothing was written: run approve again"
            ).format(commit=str(now)[:12])
        )
    return actor_of(archive)


# ---------------------------------------------------------------------- what a commit changes, for people


def describe(archive: Archive, commit: str, opener: _Opener, reveal: bool) -> list[str]:
    """One line per thing a commit changes: record fields (personal ones masked, or opened with reveal)."""
    parent = f"{commit}^"
    text = gitio.out(archive.root, "diff-tree", "-r", "--no-commit-id", "--name-status", "--no-renames", parent, commit)
    lines: list[str] = []
    for row in text.splitlines():
        status, path = row.split("\t", 1)
        kind = rules.classify(path)
        if kind is None:
            lines.append(f"{status} {path}")
        elif kind.kind == "record":
            lines += _record_lines(archive, parent, commit, path, opener, reveal)
        elif kind.kind == "register":
            lines += [
                _("{register} register: {entry}").format(register=kind.register, entry=_entry_text(e))
                for e in _added_entries(archive, parent, commit, path)
            ]
        elif kind.kind == "attachment":
            said = {"A": _("adds {path}"), "D": _("removes {path}"), "M": _("re-encrypts {path}")}
            lines.append(said[status].format(path=path) if status in said else f"{status} {path}")
        elif kind.kind in ("numbers",):
            continue
        else:
            diff = gitio.out(archive.root, "diff", "--no-color", "-U1", parent, commit, "--", path)
            lines += [f"{path}:"] + [ln for ln in diff.splitlines() if ln[:1] in "+-" and ln[:3] not in ("+++", "---")]
    return [inert(line) for line in lines]  # what the approver signs is what they read: nothing typed acts on it


def _record_lines(archive: Archive, parent: str, commit: str, path: str, opener: _Opener, reveal: bool) -> list[str]:
    old_raw, new_raw = gitio.show_blob(archive.root, parent, path), gitio.show_blob(archive.root, commit, path)
    old = records.load_stored(old_raw, path) if old_raw else {}
    new = records.load_stored(new_raw, path) if new_raw else {}
    number = str((new or old).get("archive_no"))
    if not new:
        return [f"{number}: removed from the tree"]
    schema = archive.household_schema
    old_plain, new_plain = opener.both(old, new)
    if new_plain is None:
        old_plain = {k: v for k, v in old.items() if k not in records.STORED_ONLY}
        new_plain = {k: v for k, v in new.items() if k not in records.STORED_ONLY}
        sealed_note = old.get("sealed") != new.get("sealed")
    else:
        sealed_note = False
        if not reveal:
            old_plain, new_plain = schema.mask(old_plain), schema.mask(new_plain)
    before, after = _flatten(old_plain), _flatten(new_plain)
    head = _("{number}: new household").format(number=number) if not old else f"{number}:"
    lines = [head]
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key):
            lines.append(f"  {key}: {before.get(key, '-')} -> {after.get(key, '-')}")
    if sealed_note:
        fields = ", ".join(new.get("sealed_fields") or [])
        lines.append(f"  personal fields changed ({fields}): sealed, you cannot open this household's record key")
    return lines


class _Opener:
    """Opens the records an approver is shown, with their identity loaded (and a passphrase asked) once.

    Once the keystore or the identity proves out of reach, it stops trying and
    every later record is shown as its clear part.
    """

    def __init__(self, archive: Archive, actor: Any, identity: str | None):
        self.archive, self.actor, self.identity = archive, actor, identity
        self.loaded: Any = None
        self.unreachable = False

    def both(self, old: dict, new: dict) -> tuple[dict | None, dict | None]:
        """Both versions in clear for a reader of the household, else (None, None)."""
        if self.unreachable or self.actor.member not in readers(self.archive, str(new.get("building"))):
            return None, None
        try:
            if self.loaded is None:
                self.loaded = crypto.load_identity(identity_for(self.archive, self.identity, self.actor))
            key = open_key(self.archive, new, self.loaded)
            new_plain, sealed = records.open_record(new, key)
            old_plain = records.open_record(old, open_key(self.archive, old, self.loaded))[0] if old else {}
        except ArchiveError as exc:
            # the key (it did not load) or the keystore (its messages start "keystore", in either language)
            if self.loaded is None or str(exc).startswith(("keystore ", _("keystore"))):
                self.unreachable = True
            return None, None
        # what the forge's diff showed (fingerprints in clear) must be what is sealed: else nobody approves it
        mismatch = fingerprints.check_stored(new, sealed, key)
        number = new.get("archive_no")
        if mismatch:
            raise ArchiveError(
                _("{archive_no}: {problem}; nothing was signed").format(archive_no=number, problem=mismatch.message())
            )
        if old.get("sealed_fingerprints") and not new.get("sealed_fingerprints"):
            raise ArchiveError(
                _("{archive_no}: the change drops the sealed-field fingerprints; nothing was signed").format(
                    archive_no=number
                )
            )
        return old_plain, new_plain


def _flatten(value: Any) -> dict[str, str]:
    """Dotted paths to short text values, as --set names fields."""
    return {
        path: yamlio.dump_flow(leaf) if isinstance(leaf, list | dict) else str(leaf)
        for path, leaf in records.field_paths(value).items()
    }


def _added_entries(archive: Archive, parent: str, commit: str, path: str) -> list[dict]:
    old = gitio.show_blob(archive.root, parent, path) or b""
    new = gitio.show_blob(archive.root, commit, path) or b""
    try:
        before = yamlio.loads(old, path) if old else []
        after = yamlio.loads(new, path) or []
    except UsageError:
        return []
    if isinstance(after, dict):  # a register event file: one entry
        return [] if before else [after]
    return [e for e in after[len(before or []) :] if isinstance(e, dict)]


def _entry_text(entry: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in entry.items() if k not in ("when",))
