"""A read-only view of history as the judge reads it: commits in batches, and the governance state
(staff.yaml, archive.yaml, schemas/) each commit is judged by, as it stood in the main it goes into.

Nothing here reads the work tree, the index or a replace ref (gitio disables them): only objects.
"""

from __future__ import annotations

import pickle
import re
import tempfile
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from archivectl import facts, forked, gitio, rules, yamlio
from archivectl.archive import SMALL_WRITE, Archive, Households
from archivectl.errors import ArchiveError, UsageError
from archivectl.i18n import _
from archivectl.judge.records import check_record_text, check_stored_record
from archivectl.schema import HouseholdSchema, parse_json
from archivectl.settings import Settings
from archivectl.staff import Staff, allowed_signers

_GOVERNANCE = ("staff.yaml", "archive.yaml", "schemas/household.schema.json")


_PARSED_RECORDS = 1024  # parsed records kept by blob id (a miss costs a parse: the batch has read the blob)


_VALID_RECORDS = 65536  # record versions known valid, for checking only what an edit changes

_SHARED_FROM = 2000  # records one commit writes from which a forked process checks half of them


# changed paths between the kept listing and a range's tip before it is moved up to the base: past
# SMALL_WRITE, moving it on reads the whole listing line by line (0.4 s at 297,000) on every push
_KEEP_AFTER = SMALL_WRITE
_FEW_NUMBERS = 64  # above this many added numbers, the listing is read once whole instead of once per number


class History:
    """The repository, the governance state each commit is judged by, and parse caches.

    Commits are read in batches: their commit objects (for the signatures) and
    every blob their checks read come through one pipelined `git cat-file`
    request per batch. What is kept across batches is small per commit (parents,
    date, the blob ids of the governance files), so a long history is never held whole.
    """

    def __init__(self, archive: Archive, blobs: gitio.BlobReader, base: str | None, allowed_root: str | None):
        self.archive = archive
        self.blobs = blobs
        self.base = base  # range mode: every commit judged against the range's base
        self.allowed_root = allowed_root  # whole history: the one founding commit
        self._parsed: dict[tuple[str, str], Any] = {}  # governance files by blob id (few)
        self._records: OrderedDict[str, Any] = OrderedDict()  # parsed records by blob id (or rev:path), oldest first
        self._records_kept = _PARSED_RECORDS  # raised for a commit that changes more records (keep_records)
        self._valid: dict[str, HouseholdSchema] = {}  # record blob -> the schema that found it valid, oldest first
        self._checked: dict[tuple[str, str], list[str]] = {}  # this commit's records checked ahead: problems
        self._batch: dict[str, bytes | None] = {}  # this batch's objects by id
        self._prepared: dict[str, Any] = {}  # this batch's signatures prepared ahead (sshsig.Prepared), by commit
        self.dates: dict[str, str] = {}  # commit -> committer date, for its children
        self.parents: dict[str, tuple[str, ...]] = {}
        self._governance: dict[str, tuple[str | None, ...]] = {}  # commit -> blob ids of _GOVERNANCE there
        self._signers: dict[str, tuple[Any, str]] = {}  # staff.yaml version -> (signature checker, allowed signers)
        self.object_format = gitio.layout(archive.root).object_format

    def judged_by(self, info: gitio.CommitInfo) -> str:
        """The commit whose staff.yaml, archive.yaml and schemas/ judge info."""
        if self.base:
            return self.base
        return info.parents[0] if info.parents else info.commit

    # -- reading

    def fetch(self, infos: list[gitio.CommitInfo], prepared: dict[str, Any] | None = None) -> None:
        """Read one batch: each commit's object (for its signature) and the blobs its checks read.

        prepared: signatures already read and prepared (judge.signatures), by commit; their objects are not read.
        """
        self._prepared = prepared or {}
        wanted = [i.commit for i in infos if i.commit not in self._prepared]
        for info in infos:
            for change in info.changes:
                kind = rules.classify(change.path)
                if change.status != "D" and not change.path.endswith(".age"):
                    wanted.append(change.new_blob)
                if change.status != "A" and kind is not None and kind.kind in ("record", "register", "numbers"):
                    wanted.append(change.old_blob)
        wanted = list(dict.fromkeys(wanted))
        self._batch = dict(zip(wanted, self.blobs.read_many(wanted), strict=True))

    def signed(self, info: gitio.CommitInfo) -> gitio.CommitInfo:
        """info with git's verdict on its signature (%G?, %GF, %GS) against the staff.yaml it is judged by.

        The allowed signers are what staff.allowed_signers makes of that staff.yaml
        (namespace git; a departed member's key valid before their departure), checked
        in process by archivectl/sshsig.py, which reproduces git's verdicts exactly;
        what it cannot reproduce ('E') is asked of git itself.
        """
        from archivectl import sshsig

        prepared = self._prepared.pop(info.commit, None)
        if prepared is None:
            raw = self._batch.pop(info.commit, None)
            if raw is None:
                raise ArchiveError(_("commit {commit} is not in the repository").format(commit=info.commit))
            prepared = sshsig.prepare(raw, self.object_format)
        judge = self.judged_by(info)
        key = self._at(judge, "staff.yaml")[0]
        if key not in self._signers:
            staff = self.staff_at(judge)
            text = allowed_signers(staff) if isinstance(staff, Staff) else ""
            checker = sshsig.SignatureChecker(sshsig.parse_allowed_signers(text), self.object_format)
            self._signers[key] = (checker, text)
        checker, text = self._signers[key]
        verdict = checker.decide(prepared)
        found = (verdict.status, verdict.fingerprint or "", verdict.principal or "")
        if verdict.status == sshsig.CANNOT_CHECK:
            with tempfile.TemporaryDirectory(prefix="archivectl-verify-") as tmp:
                signers = Path(tmp) / "allowed_signers"
                signers.write_text(text)
                found = gitio.signature_verdicts(self.archive.root, [info.commit], signers)[info.commit]
        return gitio.CommitInfo(
            info.commit, info.parents, info.committer_date, *found, info.subject, info.trailers, info.changes
        )

    def read(self, blob: str) -> bytes | None:
        """A blob of this batch (or any object, asked of git)."""
        if blob in self._batch:
            return self._batch[blob]
        return self.blobs.read(blob)

    def remember(self, info: gitio.CommitInfo) -> None:
        """Keep what later commits need of this one: its date, parents and governance files."""
        self.dates[info.commit] = info.committer_date
        self.parents[info.commit] = info.parents
        before = self._governance.get(info.parents[0]) if info.parents else (None,) * len(_GOVERNANCE)
        if before is None:
            return  # its first parent is outside the range: read by path (_at)
        after = list(before)
        for change in info.changes:
            if change.path in _GOVERNANCE:
                after[_GOVERNANCE.index(change.path)] = None if change.status == "D" else change.new_blob
        self._governance[info.commit] = before if after == list(before) else tuple(after)

    def _at(self, commit: str, path: str) -> tuple[str, str]:
        """(cache key, spec to read) for a governance file as it stands in commit."""
        known = self._governance.get(commit)
        if known is not None:
            blob = known[_GOVERNANCE.index(path)]
            return (blob or "-", blob or "")
        return (f"{commit}:{path}", f"{commit}:{path}")

    def _load(self, kind: str, commit: str, path: str, parse: Callable[[bytes], Any]) -> Any:
        key, spec = self._at(commit, path)
        if (kind, key) not in self._parsed:
            data = self.read(spec) if spec else None
            self._parsed[(kind, key)] = None if data is None else parse_or_error(parse, data)
        return self._parsed[(kind, key)]

    def staff_at(self, commit: str) -> Staff | Exception | None:
        return self._load("staff", commit, "staff.yaml", lambda d: Staff.from_yaml(yamlio.loads(d), "staff.yaml"))

    def settings_at(self, commit: str) -> Settings:
        found = self._load("settings", commit, "archive.yaml", lambda d: Settings.from_yaml(yamlio.loads(d)))
        return found if isinstance(found, Settings) else Settings(name="?")

    def schema_at(self, commit: str) -> HouseholdSchema | None:
        found = self._load(
            "schema",
            commit,
            "schemas/household.schema.json",
            lambda d: HouseholdSchema(parse_json(d, "schemas/household.schema.json")),
        )
        return found if isinstance(found, HouseholdSchema) else None

    def stored(self, blob: str, path: str) -> dict | None:
        """A stored record from a blob id (or rev:path), or None if it does not parse."""
        found = self._records.get(blob)
        if found is None:
            data = self.read(blob)
            found = self._records[blob] = (
                None if data is None else parse_or_error(lambda d: facts.whole_record(d, path), data)
            )
            while len(self._records) > self._records_kept:
                self._records.popitem(last=False)
        else:
            self._records.move_to_end(blob)
        return found if isinstance(found, dict) else None

    def keep_records(self, changed: int) -> None:
        """Keep the parsed records of a commit that changes this many (an import's records are each read by three
        checks one after the other: with 1,024 kept, every one of 2,000 was parsed three times)."""
        self._records_kept = _PARSED_RECORDS + changed

    def check_records_ahead(self, schema: HouseholdSchema, changes: list[gitio.Change]) -> None:
        """For a commit that writes many records (an import): half of them parsed and checked by a forked process
        while this one checks the other half, so that record_problems() answers for each from what was found.

        The same record_problems() runs in both, on the same memory (the child is a fork): the
        answers are the ones one process gives. Without a child (forked.possible), or if it fails,
        this process checks its half too.
        """
        self._checked = {}
        todo = {}
        for change in changes:
            kind = rules.classify(change.path)
            if change.status != "D" and kind is not None and kind.kind == "record":
                todo[(change.new_blob, change.path)] = change
        if len(todo) < _SHARED_FROM or not forked.possible():
            return
        part = list(todo.values())
        half = len(part) // 2

        def check(changes: list[gitio.Change]) -> list[tuple[str, str, Any, list[str]]]:
            return [
                (
                    c.new_blob,
                    c.path,
                    self.stored(c.new_blob, c.path),
                    self.record_problems(schema, c, self.read(c.new_blob) or b""),
                )
                for c in changes
            ]

        with forked.in_child(lambda: check(part[half:]), dumps=pickle.dumps, loads=pickle.loads) as theirs:
            mine = check(part[:half])
        found = theirs()
        if not isinstance(found, list) or len(found) != len(part) - half:
            found = check(part[half:])
        else:
            for blob, _path, stored, problems in found:
                if stored is not None and blob not in self._records:
                    self._records[blob] = stored
                if not problems:
                    self._note_valid(blob, schema)
        self._checked = {(blob, path): problems for blob, path, _stored, problems in mine + found}

    def record_problems(self, schema: HouseholdSchema, change: gitio.Change, data: bytes) -> list[str]:
        """validate.check_record_text for a changed record, on the parse the record rules share.

        When the version it replaces was found valid under the same schema in this run,
        the schema checks only the fields that changed (HouseholdSchema.validate_stored).
        """
        checked = self._checked.pop((change.new_blob, change.path), None)
        if checked is not None:
            return checked  # check_records_ahead found it, with this schema, for this commit
        stored = self.stored(change.new_blob, change.path)
        if stored is None:
            return check_record_text(schema, change.path, data)  # its own words for what does not parse
        valid_before = None
        if change.status == "M" and self._valid.get(change.old_blob) is schema:
            valid_before = self.stored(change.old_blob, change.path)
        problems = check_stored_record(schema, change.path, stored, valid_before)
        if not problems:
            self._note_valid(change.new_blob, schema)
        return problems

    def _note_valid(self, blob: str, schema: HouseholdSchema) -> None:
        self._valid[blob] = schema
        if len(self._valid) > _VALID_RECORDS:
            del self._valid[next(iter(self._valid))]

    # -- archive numbers (P3), at the cost of what a range adds

    def numbers_added(self, commit: str, since: str) -> dict[str, list[str]]:
        """Archive numbers of the records commit's tree has and since's has not, each with every record path
        that holds it in commit (more than one: the number is used twice).

        Costs what differs between the two trees and between commit's and the households
        listing kept in .git/archivectl/cache/households (Households), not the archive's size.
        """
        added = {}
        for status, path in self._changed(since, commit):
            kind = rules.classify(path)
            if status == "A" and kind is not None and kind.kind == "record" and kind.archive_no is not None:
                added.setdefault(kind.archive_no, []).append(path)
        if not added:
            return {}
        found: dict[str, list[str]] | None = None
        if len(added) <= _FEW_NUMBERS:
            found = self._looked_up(list(added), commit)
        if found is None:
            found = self._found_in(self._listing(commit).text, added)
        return {
            number: sorted(p for p in paths if (k := rules.classify(p)) is not None and k.kind == "record")
            for number, paths in found.items()
        }

    def _looked_up(self, numbers: list[str], commit: str) -> dict[str, list[str]] | None:
        """The record paths holding numbers in commit, looked up in the kept listing where it lies (not read whole,
        not copied), then put right by the tree diff from its commit to commit. None when there is no usable
        listing, or its diff has grown past _KEEP_AFTER (then _listing reads it once and moves it up to the base).
        """
        import json
        import mmap

        try:
            with open(Households.memo(self.archive), "rb") as f:
                kept = json.loads(f.readline())["commit"]
                if not isinstance(kept, str) or not kept or gitio.rev_parse(self.archive.root, kept) is None:
                    return None
                changes = self._changed(kept, commit)
                if len(changes) > _KEEP_AFTER:
                    return None
                with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as text:
                    listed = self._found_in(text, dict.fromkeys(numbers))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        gone = {path for status, path in changes if status == "D"}
        found: dict[str, list[str]] = {}
        for number in numbers:
            tail = f"/{number}/record.yaml"
            paths = [p for p in listed.get(number, []) if p not in gone]
            paths += [p for status, p in changes if status == "A" and p.endswith(tail) and p not in paths]
            if paths:
                found[number] = paths
        return found

    @staticmethod
    def _found_in(text: Any, added: dict[str, Any]) -> dict[str, list[str]]:
        """The lines of a listing (bytes, or an mmap of one) that are record paths of the numbers in added."""
        found: dict[str, list[str]] = {}
        if len(added) <= _FEW_NUMBERS:
            for number in added:
                tail, at = f"/{number}/record.yaml\n".encode(), 0
                while (at := text.find(tail, at)) >= 0:
                    start = text.rfind(b"\n", 0, at) + 1
                    found.setdefault(number, []).append(text[start : at + len(tail) - 1].decode("utf-8"))
                    at += len(tail)
        else:
            for line in _RECORD_LINE.findall(text):
                path = line.decode("utf-8")
                number = path.split("/")[3]
                if number in added:
                    found.setdefault(number, []).append(path)
        return found

    def _changed(self, old: str, new: str) -> list[tuple[str, str]]:
        """What changed under households/ between two commits, without git reading the index first."""
        return gitio.changed_paths(self.archive.root, old, new, "households", no_index=self.archive.no_index)

    def _listing(self, commit: str) -> Households:
        """Every household record path in commit: the kept listing moved on by a tree diff to commit.

        With no listing kept (or one of a commit this repository does not have), the range's
        base is listed once and kept: the server's hook then pays only for what each push changes.
        A kept listing whose diff has grown past _KEEP_AFTER paths is moved up to the base (16 MB
        are written at 297,000 households: not on every push, but before moving it costs more).
        """
        root = self.archive.root
        known = Households.read(self.archive)
        if known is not None and (not known.commit or gitio.rev_parse(root, known.commit) is None):
            known = None
        if known is None:
            return (
                Households.at(self.archive, commit)
                if not self.base
                else self._moved(Households.at(self.archive, self.base), commit)
            )
        return self._moved(known, commit)

    def _moved(self, known: Households, commit: str) -> Households:
        """known moved on to commit; when that diff has grown large, the kept listing is moved up to the base."""
        if known.commit == commit:
            return known
        root = self.archive.root
        changes = self._changed(known.commit, commit)
        if len(changes) > _KEEP_AFTER and self.base and known.commit != self.base:
            if gitio.is_ancestor(root, known.commit, self.base):
                known = Households.at(self.archive, self.base)  # kept there: the next push's diff is its own again
                changes = self._changed(self.base, commit)
        return known.moved_on(commit, changes)


_RECORD_LINE = re.compile(rb"^households/[^/\n]+/[^/\n]+/[^/\n]+/record\.yaml$", re.M)


def parse_or_error(parse: Callable[[bytes], Any], data: bytes) -> Any:
    try:
        return parse(data)
    except (UsageError, ValueError, RecursionError) as exc:
        return exc
