"""A reader's check of sealed blocks against their fingerprints: one implementation for every command (issue 26).

`review --open`, `approve` and `verify --open` open the record versions a range
writes, in memory, with the reader's own key, and recompute the keyed
fingerprints (fingerprints.check), so a sealed block changed behind
fingerprints that say otherwise is caught. What comes out is field paths and
why something could not be opened, never a value; the values a reader is shown
(masked, or revealed when asked) come out of compare() through `present`.

This sits below ops: how a record key is unwrapped and who reads a building are
the commands' to say (ops/common), so they are handed in (ops.verify.reader_check
builds a Reader with them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from archivectl import fingerprints, records, yamlio
from archivectl.errors import ArchiveError
from archivectl.i18n import _
from archivectl.screen import inert


class OutOfReach(ArchiveError):
    """The reader's identity or the keystore cannot be reached from here: no record will open, stop trying."""


@dataclass(frozen=True)
class Look:
    """What a reader's opening of one stored record found: the opened parts, problems, and what went unchecked."""

    plain: dict | None = None  # the record in clear (None: not opened)
    sealed: dict | None = None
    problems: list[str] = field(default_factory=list)  # the block is not what its fingerprints say
    unchecked: list[str] = field(default_factory=list)  # why it was not opened (not a problem of the record)


@dataclass(frozen=True)
class Comparison:
    """Two versions of a record as a reader sees them: sealed fields old -> new, problems, what went unchecked."""

    values: list[dict[str, str]] = field(default_factory=list)  # {"field", "old", "new"}, presented
    problems: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)


class Reader:
    """Opens stored records for one reader and checks them; callable as review's old SealedCheck (problems only).

    who: the reader's staff id (for the words); may_read(building): whether they read it (P7);
    record_key(stored): the household's record key (raises ArchiveError, or OutOfReach to stop trying);
    present(plain record): what the reader is shown of it (masked, or as it is when they asked to reveal);
    prepare(): loads what record_key needs (the reader's identity) where that asks the person nothing, and
    says whether it did (a command forks a second process to open records only once it is loaded).
    """

    def __init__(
        self,
        who: str,
        may_read: Callable[[str], bool],
        record_key: Callable[[dict], Any],
        present: Callable[[dict], dict] | None = None,
        prepare: Callable[[], bool] | None = None,
    ):
        self.who, self.may_read, self.record_key = who, may_read, record_key
        self.prepare = prepare or (lambda: False)  # what opening needs, loaded now if that asks nothing: ready?
        self.present = present or (lambda plain: plain)
        self.out_of_reach: str | None = None
        self.checked = 0  # record versions opened and checked
        self.asked = False  # record_key was called: the reader's identity was loaded (a passphrase asked) or not
        self.reveals = present is None  # values are shown as they are (approve --reveal), not masked

    def look(self, stored: dict) -> Look:
        """Open one stored record in memory and check its fingerprints; paths and reasons only in the words."""
        if not stored.get("sealed"):
            return Look(plain={k: v for k, v in stored.items() if k not in records.STORED_ONLY}, sealed={})
        building = str(stored.get("building"))
        if not self.may_read(building):
            why = _("fingerprints: not checked, {who} does not read building {building}")
            return Look(unchecked=[why.format(who=self.who, building=inert(building))])
        if self.out_of_reach is not None:
            return Look(unchecked=[_("fingerprints: not checked ({why})").format(why=self.out_of_reach)])
        self.asked = True
        try:
            key = self.record_key(stored)
            plain, sealed = records.open_record(stored, key)
        except OutOfReach as exc:
            self.out_of_reach = inert(exc)
            return Look(unchecked=[_("fingerprints: not checked ({why})").format(why=self.out_of_reach)])
        except ArchiveError as exc:
            return Look(unchecked=[_("fingerprints: not checked ({why})").format(why=inert(exc))])
        self.checked += 1
        found = fingerprints.check_stored(stored, sealed, key)
        return Look(plain, sealed, [f"fingerprints: {found.message()}"] if found else [])

    def __call__(self, stored: dict) -> list[str]:
        """The problems of one stored record (the SealedCheck review took before Reader existed)."""
        return self.look(stored).problems

    def compare(self, old: dict, new: dict) -> Comparison:
        """The sealed fields that changed between two stored versions, as the reader is shown them.

        Problems are the new version's (what is about to be signed or merged); the old one was judged when
        it was written. A version that does not open leaves its side as "?".
        """
        after = self.look(new) if new else Look(plain={}, sealed={})
        before = self.look(old) if old else Look(plain={}, sealed={})
        unchecked = sorted(set(after.unchecked) | set(before.unchecked))
        if after.sealed is None and before.sealed is None:
            return Comparison([], after.problems, unchecked)
        old_leaves = fingerprints.leaves(before.sealed) if before.sealed is not None else None
        new_leaves = fingerprints.leaves(after.sealed) if after.sealed is not None else None
        shown_old = records.field_paths(self.present(before.plain)) if before.plain is not None else {}
        shown_new = records.field_paths(self.present(after.plain)) if after.plain is not None else {}
        paths = set(old_leaves or {}) | set(new_leaves or {})
        values = []
        for path in sorted(paths):
            if old_leaves is not None and new_leaves is not None and old_leaves.get(path) == new_leaves.get(path):
                continue
            values.append(
                {
                    "field": inert(path),
                    "old": _side(old_leaves, shown_old, path),
                    "new": _side(new_leaves, shown_new, path),
                }
            )
        return Comparison(values, after.problems, unchecked)


def _side(leaves: dict | None, shown: dict, path: str) -> str:
    if leaves is None:
        return "?"
    if path not in leaves:
        return "-"
    if path not in shown:
        return "***"  # never the value itself: only what present() made of it is shown
    value = shown[path]
    return inert(yamlio.dump_flow(value) if isinstance(value, list | dict) else str(value))
