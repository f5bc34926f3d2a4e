"""An archive on disk: finding it, its settings and paths, the lock and the write transaction.

Every write goes through Transaction: take the lock, write files, stage them,
sign one commit, and on any failure put tree, index and keystore back.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import stat
import time
from collections.abc import Callable, Iterable, Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

from archivectl import clock, gitio, yamlio
from archivectl.errors import ArchiveError, UsageError
from archivectl.files import keep, write_atomic
from archivectl.i18n import _
from archivectl.identity import Actor, check_can_sign
from archivectl.journal import (
    GONE,
    JOURNAL,
    JOURNAL_VERSION,
    crash_point,
    digest,
    journal_dir,
    prune_empty_dirs,
    recover,
    settle,
)
from archivectl.keystore import KeyAddress, Keystore, backend_for
from archivectl.layout import (
    ARCHIVE_FILE,
    HOUSEHOLD_SCHEMA,
    HOUSEHOLDS,
    NUMBERS_FILE,
    RECORD,
    STAFF_FILE,
    HouseholdPath,
    archive_no_of,
    check_archive_no,
)
from archivectl.settings import Settings, keystore_url
from archivectl.staff import Staff
from archivectl.streams import batches

DEFAULT_LOCK_WAIT_SECONDS = 30.0
# A write of at most this many files builds its commit's tree from their paths alone (nothing read
# grows with the archive); a bigger one (an import) from the index, which it rewrites anyway.
SMALL_WRITE = 32
# Local git settings every write relies on, set by init and by the first write of an older archive.
# core.splitIndex: a write of one household rewrites a small index file (the changed entries and the
# cache-tree), not all 100,000 entries; the shared part is rewritten when a fifth of it has changed.
WRITE_SETTINGS = {"core.splitIndex": "true"}


class Archive:
    """One archive: a git work tree with archive.yaml at its root, plus its keystore.

    A bare repository (the office's server copy) is an archive too, for verify,
    the server hook and `keys shred`: it has history but no work tree.
    """

    def __init__(self, root: Path, bare: bool = False):
        self.root = root
        self.bare = bare
        self._households: Households | None = None  # households(): the memo as of its commit

    @classmethod
    def find(cls, explicit: str | None = None) -> Archive:
        """The archive named by --archive, ARCHIVECTL_ARCHIVE, or found upward from here."""
        given = explicit or os.environ.get("ARCHIVECTL_ARCHIVE")
        start = Path(given).expanduser() if given else Path.cwd()
        if given and not start.is_dir():
            raise UsageError(_("archive {start} does not exist").format(start=start))
        if given and not (start / ARCHIVE_FILE).exists() and gitio.is_bare(start):
            return cls(start.resolve(), bare=True)
        for candidate in [start, *start.resolve().parents] if not given else [start]:
            if (candidate / ARCHIVE_FILE).is_file():
                top = gitio.toplevel(candidate)
                if top is None or top.resolve() != candidate.resolve():
                    raise ArchiveError(
                        _("{candidate} has {ARCHIVE_FILE} but is not the root of a git repository").format(
                            candidate=candidate, ARCHIVE_FILE=ARCHIVE_FILE
                        )
                    )
                return cls(candidate.resolve())
        if not given and gitio.is_bare(start):  # the server's copy: `install-hooks --server` typed inside it
            return cls(Path(gitio.out(start, "rev-parse", "--absolute-git-dir")), bare=True)
        where = f"{start}" if given else _("this directory or any parent")
        raise UsageError(
            _("no archive found in {where} (use --archive PATH or ARCHIVECTL_ARCHIVE)").format(where=where)
        )

    @cached_property
    def settings(self) -> Settings:
        """archive.yaml as committed: an uncommitted local edit changes no rule."""
        committed = gitio.show_blob(self.root, "HEAD", ARCHIVE_FILE)
        if committed is not None:
            return Settings.from_yaml(yamlio.loads(committed, ARCHIVE_FILE))
        return Settings.from_yaml(yamlio.load_file(self.root / ARCHIVE_FILE))

    def declared_language(self) -> str | None:
        """archive.yaml's `language:` (zh_CN or en) for messages, read as text: no git, no YAML parser."""
        from archivectl.i18n import archive_language

        try:
            return archive_language((self.root / ARCHIVE_FILE).read_text(encoding="utf-8", errors="replace"))
        except OSError:
            return None

    @cached_property
    def staff(self) -> Staff:
        """staff.yaml as committed (a local edit gives nobody a role)."""
        committed = gitio.show_blob(self.root, "HEAD", STAFF_FILE)
        if committed is not None:
            return Staff.from_yaml(yamlio.loads(committed, STAFF_FILE), STAFF_FILE)
        return Staff.from_yaml(yamlio.load_file(self.root / STAFF_FILE), STAFF_FILE)

    @cached_property
    def git_dir(self) -> Path:
        return gitio.git_dir(self.root)

    @property
    def no_index(self) -> str:
        """A path under the git directory where no file is: git reads it as an empty index (gitio.changed_paths)."""
        return str(self.git_dir / "archivectl" / "no-index")

    @property
    def schemas_dir(self) -> Path:
        return self.root / "schemas"

    # Set by the command line to the judge's answer (judge.approved_commit): the commit of main's
    # history whose version of a path is approved. Without it, main's tip is taken as judged.
    approved_at: Callable[[Archive, str, str], str] | None = None

    def judged_blob(self, path: str) -> bytes | None:
        """path as main's judged state holds it: never the work tree, the checked-out branch or the index.

        What decides sealing, masking and whom keys are wrapped to is read from here, so
        a proposal (or a hand edit) that drops `x-sensitive` or names another recovery
        recipient changes nothing until it is approved on main. None before main exists.
        """
        tip = self.main_commit()
        if tip is None:
            return None
        commit = type(self).approved_at(self, tip, path) if type(self).approved_at else tip
        return gitio.show_blob(self.root, commit, path)

    @cached_property
    def main_settings(self) -> Settings:
        """archive.yaml as approved on main (recovery recipient, keystore): a branch's edit gives nothing."""
        judged = self.judged_blob(ARCHIVE_FILE)
        return self.settings if judged is None else Settings.from_yaml(yamlio.loads(judged, ARCHIVE_FILE))

    @cached_property
    def household_schema(self) -> Any:
        """The household schema as approved on main: which fields are sealed, how they are masked."""
        from archivectl import schema

        judged = self.judged_blob(HOUSEHOLD_SCHEMA)
        if judged is None:
            return schema.household(self.schemas_dir)  # an archive being founded
        return schema.HouseholdSchema(schema.parse_json(judged, HOUSEHOLD_SCHEMA))

    @cached_property
    def keystore(self) -> Keystore:
        return Keystore(backend_for(keystore_url(self.root, self.main_settings.keystore)))

    def main_commit(self) -> str | None:
        """Where main stands as far as this copy knows: the newer of origin/main and main (else HEAD)."""
        main = self.settings.main
        tips = gitio.ref_commits(self.root, f"refs/heads/{main}", f"refs/remotes/origin/{main}")
        ours, theirs = tips.get(f"refs/heads/{main}"), tips.get(f"refs/remotes/origin/{main}")
        if ours and theirs and ours != theirs:
            return ours if gitio.is_ancestor(self.root, theirs, ours) else theirs
        return theirs or ours or gitio.head(self.root)

    def locate(self, archive_no: str) -> str:
        """Relative path of a household's record.yaml (as committed), or ArchiveError if there is none."""
        check_archive_no(archive_no)
        found = self.households().find(archive_no)
        if found is None:
            raise ArchiveError(_("{archive_no}: no such household in this archive").format(archive_no=archive_no))
        return found

    def households(self) -> Households:
        """Where each household's record is in HEAD (read from a memo kept beside the index, not by listing it)."""
        head = gitio.head(self.root)
        if self._households is None or self._households.commit != head:
            self._households = Households.at(self, head)
        return self._households

    def _index_memo(self) -> Path:
        return self.git_dir / "archivectl" / "index-clean"

    def index_equals(self) -> str | None:
        """The commit the index is known to equal (a write made or checked it so), while the index is unchanged.

        A memo of (commit, the index file's checksum), kept by every write: equal
        checksums, equal index. None when not known (git or a person changed the
        index since, or no write has run here yet).
        """
        try:
            known = self._index_memo().read_text().split()
        except OSError:
            return None
        stamp = gitio.index_stamp(self.git_dir)
        return known[0] if stamp is not None and len(known) == 2 and known[1] == stamp else None

    def remember_index_equals(self, commit: str | None) -> None:
        """Note that the index, as it is now, equals commit (a write just made or checked it so)."""
        stamp = gitio.index_stamp(self.git_dir)
        if commit is not None and stamp is not None:
            keep(self._index_memo(), f"{commit} {stamp}\n".encode())

    def record_paths(self) -> list[tuple[str, str]]:
        """(blob id, path) of every household record tracked in git."""
        return gitio.ls_files_stage(self.root, HouseholdPath.records_glob())

    def allowed_signers_path(self) -> Path:
        return self.git_dir / "archivectl" / "allowed_signers"

    def write_allowed_signers(self, staff: Staff | None = None) -> Path:
        """Regenerate the allowed-signers file from staff.yaml and point git at it."""
        from archivectl.staff import allowed_signers

        path = self.allowed_signers_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        text = allowed_signers(staff or self.staff)
        if not path.exists() or path.read_text() != text:
            write_atomic(path, text.encode())
        if gitio.config_get(self.root, "gpg.ssh.allowedSignersFile") != str(path):
            gitio.config_set(self.root, "gpg.ssh.allowedSignersFile", str(path))
        return path

    def refresh(self) -> None:
        """Forget settings, staff, schemas and keystore read so far: the next use reads them as they stand."""
        for name in ("settings", "main_settings", "staff", "household_schema", "keystore"):
            self.__dict__.pop(name, None)
        self._households = None

    def writing(self, actor: Actor | None = None) -> Transaction:
        """The write transaction: lock and recovery first, then the operation reads and writes inside it."""
        return Transaction(self, actor)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the archive's write lock; wait up to ARCHIVECTL_LOCK_WAIT seconds for it.

        flock is released by the kernel when a process dies, so a crash never leaves
        a stale lock behind; git processes started meanwhile inherit it, so a git
        that outlives a killed archivectl keeps the archive locked until it ends.
        """
        path = self.git_dir / "archivectl.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            deadline = time.monotonic() + _lock_wait()
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                    if time.monotonic() >= deadline:
                        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                        raise ArchiveError(
                            _("another archivectl command (pid {holder}) is writing to this archive; try again").format(
                                holder=holder
                            )
                        ) from None
                    time.sleep(0.05)
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
            with gitio.children_inherit(fd):
                yield
        finally:
            os.close(fd)


class Households:
    """Every household record's path in one commit, and the highest serial of each series.

    Listing them from git costs in proportion to the archive (100,000 paths
    from the index or the tree); so the list is kept in
    .git/archivectl/cache/households, named by its commit, and brought up to
    date from what changed since (`git diff-tree`, which costs what changed).
    A write moves it on with the paths it committed.
    `highest` only ever grows along a line of history: a purged household's
    number is not used again anyway (P3), so starting a series past it is
    what the keystore would make of it.

    The kept listing is 16 MB at 297,000 households: a write of a few paths
    does not copy and write it again, it keeps what it changed beside it in
    households-recent (paths added and gone since the listing's commit, valid
    only while that listing is the one beside it); past RECENT_MAX paths the
    listing is written whole again. The listing itself is read where it lies
    (mmap), not copied.
    """

    RECENT_MAX = 2000  # paths kept beside the listing before it is written whole again

    def __init__(
        self,
        commit: str | None,
        text: Any,
        highest: dict[str, int],
        added: list[str] | None = None,
        gone: set[str] | None = None,
        base: str | None = None,
        kept: bool = False,
    ):
        # text: the listing of base ("\n" then one path a line; bytes or an mmap of the kept file), and what
        # changed from base to commit; kept: that listing is the one in the memo file, as written.
        self.commit, self._base_text, self.highest = commit, text, highest
        self.added, self.gone = added or [], gone or set()
        self.base = commit if base is None else base
        self.kept = kept

    @staticmethod
    def memo(archive: Archive) -> Path:
        return archive.git_dir / "archivectl" / "cache" / "households"

    @staticmethod
    def recent_memo(archive: Archive) -> Path:
        return archive.git_dir / "archivectl" / "cache" / "households-recent"

    @classmethod
    def read(cls, archive: Archive) -> Households | None:
        """The kept listing, moved on by what households-recent says changed since (when it is of that listing)."""
        import mmap

        try:
            with open(cls.memo(archive), "rb") as f:
                header = f.readline()
                known = json.loads(header)
                commit = str(known["commit"])
                highest = {str(k): int(v) for k, v in known["highest"].items()}
                size = os.fstat(f.fileno()).st_size
                if size > len(header):
                    view: Any = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
                    text = _Tail(view, len(header) - 1)
                else:
                    text = b"\n"
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None
        found = cls(commit, text, highest, kept=True)
        try:
            recent = json.loads(cls.recent_memo(archive).read_bytes())
            if recent["base"] == commit and isinstance(recent["commit"], str):
                found.commit = recent["commit"]
                found.added = [str(p) for p in recent["added"]]
                found.gone = {str(p) for p in recent["gone"]}
                found.highest = {str(k): int(v) for k, v in recent["highest"].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass
        return found

    @classmethod
    def at(cls, archive: Archive, commit: str | None) -> Households:
        """The households of commit: from the memo, moved on by what changed since, else listed whole."""
        if commit is None:
            return cls(None, b"\n", {})
        known = cls.read(archive)
        if known is not None and known.commit == commit:
            return known
        if known is not None and known.commit and gitio.is_ancestor(archive.root, known.commit, commit):
            changes = gitio.changed_paths(archive.root, known.commit, commit, HOUSEHOLDS, no_index=archive.no_index)
            found = known.moved_on(commit, changes)
        else:
            listed = [p for p in gitio.tree_paths(archive.root, commit, HOUSEHOLDS) if HouseholdPath.of_record(p)]
            found = cls(commit, b"\n" + "".join(p + "\n" for p in listed).encode("utf-8"), {})
            found.raise_highest(listed)
        found.save(archive)
        return found

    @property
    def text(self) -> bytes:
        """The whole listing of commit: "\n", then one record path a line."""
        base = self._base_text
        data = base.whole() if isinstance(base, _Tail) else base
        if self.gone:
            gone = {p.encode("utf-8") for p in self.gone}
            data = b"\n" + b"".join(line + b"\n" for line in data.split(b"\n") if line and line not in gone)
        return data + "".join(p + "\n" for p in self.added).encode("utf-8")

    def moved_on(self, commit: str, changes: list[tuple[str, str]]) -> Households:
        """These households after changes (status, path) made by commit."""
        records = [(status, path) for status, path in changes if HouseholdPath.of_record(path)]
        if len(records) > SMALL_WRITE:  # an import or a pull: one pass over the list, not one per path
            text = self.text
            lines = text.split(b"\n")
            gone = {p.encode("utf-8") for status, p in records if status == "D"}
            known = set(lines)
            added = list(dict.fromkeys(p for status, p in records if status == "A" and p.encode("utf-8") not in known))
            text = b"\n" + b"".join(line + b"\n" for line in lines if line and line not in gone)
            text += "".join(p + "\n" for p in added).encode("utf-8")
            found = Households(commit, text, dict(self.highest))
            found.raise_highest(added)
            return found
        added, gone, new = list(self.added), set(self.gone), []
        for status, path in records:
            if status == "D":
                if path in added:
                    added.remove(path)
                elif self._in_base(path):
                    gone.add(path)
            elif status == "A":
                if path in gone:
                    gone.discard(path)
                elif path not in added and not self._in_base(path):
                    added.append(path)
                    new.append(path)
        found = Households(commit, self._base_text, dict(self.highest), added, gone, self.base, self.kept)
        found.raise_highest(new)
        return found

    def _in_base(self, path: str) -> bool:
        return self._base_text.find(("\n" + path + "\n").encode("utf-8")) >= 0

    def raise_highest(self, paths: list[str]) -> None:
        for path in paths:
            series, _sep, serial = archive_no_of(path).rpartition("-")
            if serial.isdigit():
                self.highest[series] = max(self.highest.get(series, 0), int(serial))

    def save(self, archive: Archive) -> None:
        """Keep the memo (a cache: losing it costs one listing; a reader may write it too)."""
        if self.kept and self.commit != self.base and len(self.added) + len(self.gone) <= self.RECENT_MAX:
            recent = {
                "base": self.base,
                "commit": self.commit,
                "added": self.added,
                "gone": sorted(self.gone),
                "highest": self.highest,
            }
            keep(self.recent_memo(archive), json.dumps(recent).encode())
            return
        header = json.dumps({"commit": self.commit, "highest": self.highest}).encode()
        text = self.text
        keep(self.memo(archive), header + text)
        with contextlib.suppress(OSError):  # of the listing just replaced: it would be passed over anyway
            self.recent_memo(archive).unlink()
        self._base_text, self.added, self.gone, self.base, self.kept = text, [], set(), self.commit, True

    def find(self, archive_no: str) -> str | None:
        """The record path of a household, or None."""
        tail = f"/{archive_no}/{RECORD}"
        for path in self._base_lines(tail.encode() + b"\n", prefix=False):
            return path
        return next((path for path in self.added if path.endswith(tail)), None)

    def in_folder(self, folder: str) -> list[str]:
        """Record paths under folder (households/B/U)."""
        prefix = folder.rstrip("/") + "/"
        found = list(self._base_lines(("\n" + prefix).encode("utf-8"), prefix=True))
        return sorted(found + [p for p in self.added if p.startswith(prefix)])

    def _base_lines(self, needle: bytes, prefix: bool) -> Iterator[str]:
        """The lines of the base listing holding needle (at their start with prefix, else at their end), not gone."""
        text = self._base_text
        at = text.find(needle)
        while at >= 0:
            if prefix:
                start, end = at + 1, text.find(b"\n", at + 1)
            else:
                start, end = text.rfind(b"\n", 0, at) + 1, at + len(needle) - 1
            path = text[start:end].decode("utf-8")
            if path not in self.gone:
                yield path
            at = text.find(needle, end)


class _Tail:
    """The listing part of a kept memo file (an mmap), from its first "\n" on: found in where it lies, not copied."""

    def __init__(self, view: Any, start: int):
        self.view, self.start = view, start

    def find(self, needle: bytes, at: int = 0) -> int:
        found = self.view.find(needle, self.start + at)
        return found - self.start if found >= 0 else -1

    def rfind(self, needle: bytes, at: int, end: int) -> int:
        found = self.view.rfind(needle, self.start + at, self.start + end)
        return found - self.start if found >= 0 else -1

    def __getitem__(self, part: slice) -> bytes:
        return self.view[self.start + part.start : self.start + part.stop]

    def whole(self) -> bytes:
        return self.view[self.start :]


def _lock_wait() -> float:
    try:
        return float(os.environ.get("ARCHIVECTL_LOCK_WAIT", DEFAULT_LOCK_WAIT_SECONDS))
    except ValueError:
        raise UsageError(_("ARCHIVECTL_LOCK_WAIT must be a number of seconds")) from None


# ---------------------------------------------------------- the write transaction


def commit_message(subject: str, trailers: dict[str, Any]) -> str:
    """Subject, blank line, then one 'Key: value' trailer per line (a list: one line each; empty ones left out)."""
    lines = [subject, ""]
    for key, value in trailers.items():
        lines += [f"{key}: {v}" for v in (value if isinstance(value, list) else [value]) if v]
    return "\n".join(lines) + "\n"


class Transaction:
    """One write: files and keys changed, one signed commit, or everything put back.

    Enter it (Archive.writing()) *before* reading what the write decides on: it
    takes the lock and settles whatever a killed write left, so the operation
    reads the archive as it really stands and nobody can change it meanwhile.

    Before each change the journal (.git/archivectl/journal/journal.jsonl,
    append-only) says what is about to change, what the change will put there
    and where the old version waits: old files hard-linked beside the journal.
    Keys are only ever added (a new address each), so the journal names the
    new key's address and nothing of the key itself. Before HEAD moves it
    names the exact commit about to be made. settle() reads it back, on the way
    out of this write or in the next command after a crash, and decides by
    comparing HEAD with that commit, nothing else.
    """

    def __init__(self, archive: Archive, actor: Actor | None = None):
        self.archive = archive
        self.actor = actor
        self.journal_dir = journal_dir(archive)
        self._files: set[str] = set()
        self._journal_fd: int | None = None
        self._head: str | None = None
        self._stack = contextlib.ExitStack()
        self._scratch = 0
        self._new: set[str] = set()
        self._unchecked: set[str] = set()
        self._blobs: dict[str, str] = {}  # path -> id of a placed file already in the object store
        self._staged: set[str] = set()  # files write_many staged already, as written
        self.committed: str | None = None

    def __enter__(self) -> Transaction:
        check_can_sign(self.archive.root)  # before the lock and any work: a write that cannot sign does none
        self._stack.enter_context(self.archive.lock())
        try:
            crash_point("locked")
            recover(self.archive)
            self.archive.refresh()  # what an operation reads from here on is what it changes
            for key, value in WRITE_SETTINGS.items():
                if gitio.config_get(self.archive.root, key) is None:  # an archive made before: set once
                    gitio.config_set(self.archive.root, key, value)
            self._head = gitio.head(self.archive.root)
            if not self._index_known_clean():
                if gitio.has_staged_changes(self.archive.root):
                    raise ArchiveError(_("the index has staged changes; commit or unstage them first"))
                self.archive.remember_index_equals(self._head)
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if self._journal_fd is not None:
                os.close(self._journal_fd)
                self._journal_fd = None
                settle(self.archive)  # the very code the next command runs after a crash
        finally:
            self._stack.close()

    def abandon(self) -> None:
        """Stop as a killed process would: the lock is released, the journal left for the next command to settle."""
        if self._journal_fd is not None:
            os.close(self._journal_fd)
            self._journal_fd = None
        self._stack.close()

    # -- the index equals HEAD

    def _index_known_clean(self) -> bool:
        """True when the index is, byte for byte, one already found (or made) equal to HEAD as it stands.

        Comparing the index with HEAD (`git diff --cached`) reads the whole
        index: 60 ms at 100,000 households. The index file's own checksum names
        its content, so a check already made need not be made again.
        """
        return self._head is not None and self.archive.index_equals() == self._head

    # -- changes

    def read(self, relpath: str) -> bytes | None:
        """Current content of a work-tree file, or None."""
        try:
            return (self.archive.root / relpath).read_bytes()
        except FileNotFoundError:
            return None

    def _target(self, relpath: str, mark: str | None = None) -> Path:
        """The file to change, journaled (with what the change will put there) before it is first touched."""
        root = self.archive.root.resolve()
        here = root
        for part in Path(relpath).parts:  # a link in the work tree could send a write wherever it points
            here = here / part
            if here.is_symlink():
                raise ArchiveError(
                    _("{relative_to} is a symbolic link; archivectl does not write through links").format(
                        relative_to=here.relative_to(root)
                    )
                )
        target = (root / relpath).resolve()
        if not target.is_relative_to(root) or ".git" in Path(relpath).parts:
            raise UsageError(_("{relpath}: path leaves the archive").format(relpath=relpath))
        if relpath not in self._files:
            if relpath in self._new:
                dirty = []
            elif not target.exists() and not target.is_symlink():
                dirty = []  # nothing here to clobber; commit() checks it is not a tracked file deleted by hand
                self._unchecked.add(relpath)
            elif self._head and gitio.same_as_in(self.archive.root, self._head, relpath):
                dirty = []  # as committed, and the index equals HEAD (checked on entering)
            else:
                dirty = gitio.dirty_paths(self.archive.root, [relpath])
            if dirty:
                raise ArchiveError(
                    _("{dirty} has uncommitted changes; commit or discard them first").format(dirty=dirty[0])
                )
            backup = self._backup(target, self._journal(), f"file{len(self._files)}")
            self._files.add(relpath)
            self._log({"file": relpath, "backup": backup, "mark": mark})
        elif mark:
            self._log({"file": relpath, "mark": mark})
        return target

    def expect_new(self, relpaths: list[str]) -> None:
        """Check at once that many files to be created are neither tracked nor lying around.

        One `git ls-files` and one `git status` for a bulk write, instead of one
        status per file.
        """
        wanted = set(relpaths)
        taken = wanted & set(gitio.ls_files(self.archive.root, f"{HOUSEHOLDS}/"))
        taken |= wanted & set(gitio.dirty_paths(self.archive.root, [f"{HOUSEHOLDS}/"]))
        taken |= {p for p in wanted if (self.archive.root / p).exists()}
        if taken:
            raise ArchiveError(
                _("{taken} already exists; {NUMBERS_FILE} is behind").format(
                    taken=sorted(taken)[0], NUMBERS_FILE=NUMBERS_FILE
                )
            )
        self._new |= wanted

    def include(self, relpath: str) -> None:
        """Commit a file as it stands in the work tree (a reviewed hand edit of archive.yaml, say).

        Its current content is journaled, so a failure leaves the edit exactly as it was.
        """
        target = self.archive.root / relpath
        if target.is_symlink() or not target.is_file():
            raise UsageError(_("{relpath}: not a regular file in the archive").format(relpath=relpath))
        if relpath not in self._files:
            backup = self._backup(target, self._journal(), f"file{len(self._files)}")
            self._files.add(relpath)
            self._log({"file": relpath, "backup": backup, "mark": None})

    def write(self, relpath: str, data: bytes | None) -> None:
        """Write (or with None, delete) a file in the archive as part of this change."""
        target = self._target(relpath, GONE if data is None else digest(data))
        self._staged.discard(relpath)  # written again after write_many staged it: commit() stages it anew
        self._blobs.pop(relpath, None)  # nor is a placed file's blob id its id any more
        crash_point("file-journaled")
        if data is None:
            target.unlink(missing_ok=True)
            prune_empty_dirs(self.archive.root, target.parent)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            # Prepared inside the journal, then renamed: a kill leaves no temporary file in the work tree.
            write_atomic(target, data, durable=False, staged=self._journal() / f"new{self._next()}")
        crash_point("file-written")

    def write_text(self, relpath: str, text: str) -> None:
        self.write(relpath, text.encode("utf-8"))

    def write_many(self, items: Iterable[tuple[str, bytes]], progress: Any = None) -> None:
        """Create many new files at once (an import): what write() does for each, with the per-file costs shared.

        items may be a stream: it is taken in chunks of WRITE_CHUNK, each
        journaled in one append and written, and nothing of it is kept, so
        memory does not grow with the number of files. A path announced with
        expect_new() (checked there with one ls-files and one status for all)
        takes this shared path; anything else goes through write(). Each
        path's parent folders are checked for links once, and a folder found
        missing is made without looking again. The blobs and trees are packed
        by one `git fast-import` (gitio.Preload) fed each file as it is
        written, so that commit() writes no loose object per file, and each
        file is staged as it is written (gitio.Stager), so that commit() does
        not read them all again.
        """
        root = self.archive.root.resolve()
        stager = gitio.Stager(self.archive.root)
        with gitio.Preload(self.archive.root, self._head) as preload:
            try:
                self._write_fresh(root, items, preload, stager, progress)
                preload.finish()
            except BaseException:
                with contextlib.suppress(ArchiveError):
                    stager.close()  # the index written all the same: a failed write puts it back with the rest
                raise
            stager.close()

    def _write_fresh(
        self,
        root: Path,
        items: Iterable[tuple[str, bytes]],
        preload: gitio.Preload,
        stager: gitio.Stager,
        progress: Any,
    ) -> None:
        """write_many's loop: each file journaled, written, handed to fast-import and staged."""
        checked: set[str] = set()
        missing: set[str] = set()  # folders not there when checked: made here, nothing below them to look at
        written = 0
        for chunk in batches(items, WRITE_CHUNK):
            fresh = [(p, d) for p, d in chunk if p in self._new and p not in self._files]
            if len(fresh) < len(chunk):
                for relpath, data in chunk:
                    self.write(relpath, data)
                continue
            for relpath, _data in fresh:
                _check_links(str(root), relpath, checked, missing)
            journal = str(self._journal())
            lines = [json.dumps({"file": p, "backup": None, "mark": digest(d)}, ensure_ascii=False) for p, d in fresh]
            os.write(self._journal_fd, ("\n".join(lines) + "\n").encode("utf-8"))  # type: ignore[arg-type]
            self._files.update(p for p, _ in fresh)
            for relpath, data in fresh:
                crash_point("file-journaled")
                _make_folders(str(root), relpath.rpartition("/")[0], missing)
                write_atomic(root / relpath, data, durable=False, staged=f"{journal}/new{self._next()}")
                crash_point("file-written")
                preload.add(relpath, data)
                stager.add(relpath)
                self._staged.add(relpath)
                written += 1
                if progress and written % 500 == 0:
                    progress(written, 0, "writing")

    def place(self, relpath: str, prepared: Path, blob: str | None = None) -> None:
        """Move a prepared file (same file system, e.g. an encrypted scan) into the archive.

        blob: its id when it is in the object store already (gitio.LooseBlob): commit stages it without reading it.
        """
        if blob is not None:
            self._blobs[relpath] = blob
        info = prepared.stat()
        target = self._target(relpath, f"ino:{info.st_dev}:{info.st_ino}:{info.st_size}")
        crash_point("file-journaled")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(prepared, target)
        crash_point("file-written")

    def scratch(self) -> Path:
        """A file name for preparing large content beside the archive, cleaned up with the journal."""
        return self._journal() / f"scratch{self._next()}"

    def put_key(self, address: KeyAddress, blob: bytes) -> None:
        """Store a new record key in the keystore as part of this change (never over another key).

        The journal names the address first (an address holds no secret), so a
        write that does not commit takes its new key away again.
        """
        self.archive.keystore.require()
        self._log({"key": address.name, "mark": digest(blob)}, durable=True)
        crash_point("key-journaled")
        self.archive.keystore.put(address, blob)
        crash_point("key-written")

    def reserve_numbers(self, series: str, start: int, count: int) -> list[str]:
        """Take archive numbers in the keystore for this change; a write that does not commit gives them back."""
        self.archive.keystore.require()
        note = f"reserved {clock.now_iso()} by pid {os.getpid()} ({os.urandom(8).hex()})\n".encode()
        # Journaled before the first is taken: a kill right after taking one still gives it back.
        self._log({"reserving": series, "from": start, "mark": digest(note)}, durable=True)
        numbers = self.archive.keystore.reserve_many(series, start, count, note)
        self._log({"numbers": numbers, "mark": digest(note)}, durable=True)
        return numbers

    def put_keys(self, items: list[tuple[KeyAddress, bytes]]) -> None:
        """Store many new keys at once (an import): journaled first, then sent together."""
        for address, blob in items:
            self._log({"key": address.name, "mark": digest(blob)})
        self._log({"keys": len(items)}, durable=True)
        crash_point("key-journaled")
        self.archive.keystore.put_many(items)
        crash_point("key-written")

    def commit(self, subject: str, trailers: dict[str, Any], actor: Actor | None = None) -> str:
        """Stage every changed file and make the one signed commit (its Action: says what it is), as actor."""
        actor = actor or self.actor
        if actor is None:
            raise ArchiveError(_("internal: a commit needs the acting staff member"))
        if not trailers.get("Action"):
            raise ArchiveError(_("internal: every archivectl commit names its Action"))
        paths = sorted(self._files)
        # The index equals HEAD here (checked on entering), so HEAD's tree says what is tracked.
        unchecked = sorted(self._unchecked) if self._head else []
        deleted_by_hand = gitio.tree_paths(self.archive.root, self._head, *unchecked) if unchecked else []
        if deleted_by_hand:
            raise ArchiveError(
                _("{deleted_by_hand} was deleted by hand; restore or commit that first").format(
                    deleted_by_hand=deleted_by_hand[0]
                )
            )
        # A household's write builds its tree from the paths it changed, so the index's
        # cached trees of households/ are dropped (see gitio.add); an import's, from the index.
        changed = paths if len(paths) <= SMALL_WRITE else None
        small = changed is not None and (self.archive.root / HOUSEHOLDS).is_dir()
        unstaged = [p for p in paths if p not in self._staged]  # write_many stages as it writes
        known = {p: self._blobs[p] for p in unstaged if p in self._blobs}
        gitio.add(self.archive.root, unstaged, forget_trees_of=HOUSEHOLDS if small else None, known=known)
        crash_point("staged")
        who = gitio.Identity(actor.member.name, f"{actor.member.id}@staff.archivectl")
        message = commit_message(subject, trailers)
        commit, parent = gitio.write_signed_commit(self.archive.root, message, actor.signing_key, who, changed, known)
        crash_point("signed")
        # From here the journal names the commit: settle() calls the write done exactly when HEAD holds it.
        self._log({"commit": commit, "parent": parent}, durable=True)
        crash_point("before-update-ref")
        gitio.move_head(self.archive.root, commit, parent, message)
        crash_point("after-update-ref")
        self._log({"committed": commit})
        crash_point("committed")
        self.archive.remember_index_equals(commit)  # staged exactly what it holds, on an index equal to its parent
        self._move_households_on(parent, commit, paths)
        self.committed = commit
        return commit

    def _move_households_on(self, parent: str | None, commit: str, paths: list[str]) -> None:
        """Bring the households memo from parent to commit with the paths this write committed."""
        known = self.archive._households
        if known is None or known.commit != parent:
            known = Households.read(self.archive) if parent else None
        if known is None or known.commit != parent:
            return  # the next reader brings it up to date with diff-tree
        gone = [p for p in paths if p not in self._staged and not os.path.lexists(self.archive.root / p)]
        changes = [("D" if p in gone else "A", p) for p in paths]
        moved = known.moved_on(commit, changes)
        moved.save(self.archive)
        self.archive._households = moved

    # -- the journal

    def _next(self) -> int:
        self._scratch += 1
        return self._scratch

    def _journal(self) -> Path:
        """The journal directory, started (header line first) on the first change."""
        if self._journal_fd is None:
            self.journal_dir.mkdir(parents=True, exist_ok=True)
            try:
                self._journal_fd = os.open(
                    self.journal_dir / JOURNAL, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600
                )
            except FileExistsError:
                raise ArchiveError(
                    _("{journal_dir} appeared while writing; another process is at work").format(
                        journal_dir=self.journal_dir
                    )
                ) from None
            self._log({"version": JOURNAL_VERSION, "head": self._head, "pid": os.getpid()})
        return self.journal_dir

    def _log(self, entry: dict[str, Any], durable: bool = False) -> None:
        """Append one line, before the change it describes (one write(2): a line is there whole or torn last)."""
        self._journal()
        assert self._journal_fd is not None
        os.write(self._journal_fd, (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8"))
        if durable:
            os.fsync(self._journal_fd)

    def _backup(self, path: Path, directory: Path, name: str) -> str | None:
        """Keep the current version of path as directory/name (a hard link: changes replace, never write into)."""
        if not path.exists():
            return None
        backup = directory / name
        try:
            os.link(path, backup)
        except OSError:  # a file system without hard links: copy instead
            shutil.copy2(path, backup)
        return name


WRITE_CHUNK = 500  # files journaled per append in write_many


def _check_links(top: str, relpath: str, checked: set[str], missing: set[str]) -> None:
    """Refuse a path that leaves the archive or passes through a link; note the folders that are not there yet.

    Each folder is looked at once (an import's 20,000 households share their
    buildings), and nothing below a missing folder is looked at: it is made
    by this write, under the archive lock.
    """
    parts = relpath.split("/")
    if relpath.startswith("/") or any(part in ("", ".", "..", ".git") for part in parts):
        raise UsageError(_("{relpath}: path leaves the archive").format(relpath=relpath))
    prefix = ""
    for depth, part in enumerate(parts, start=1):
        above, prefix = prefix, f"{prefix}/{part}" if prefix else part
        if prefix in checked:
            continue
        folder = depth < len(parts)
        if above in missing:
            gone = True
        else:
            try:
                gone = False
                if stat.S_ISLNK(os.lstat(f"{top}/{prefix}").st_mode):
                    raise ArchiveError(
                        _("{prefix} is a symbolic link; archivectl does not write through links").format(prefix=prefix)
                    )
            except FileNotFoundError:
                gone = True
        if folder:
            checked.add(prefix)
            if gone:
                missing.add(prefix)


def _make_folders(top: str, folder: str, missing: set[str]) -> None:
    """Make folder and the folders above it that _check_links found missing (each once)."""
    if folder not in missing:
        return
    _make_folders(top, folder.rpartition("/")[0], missing)
    try:
        os.mkdir(f"{top}/{folder}")
    except FileExistsError:  # made meanwhile by hand: look at it as any folder that was there
        if not stat.S_ISDIR(os.lstat(f"{top}/{folder}").st_mode):
            raise ArchiveError(
                _("{folder} is not a folder; archivectl does not write through links").format(folder=folder)
            ) from None
    missing.discard(folder)
