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
import re
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from archivectl import clock, gitio, yamlio
from archivectl.errors import ArchiveError, UsageError
from archivectl.files import write_atomic
from archivectl.keystore import Keystore
from archivectl.policy import ApprovalRules
from archivectl.staff import Staff, StaffMember

ARCHIVE_FILE = "archive.yaml"
STAFF_FILE = "staff.yaml"
NUMBERS_FILE = "registers/numbers.yaml"
ARCHIVE_NO = re.compile(r"^(HO|NH|SP)-[0-9]{4}-[0-9]{5}$")
CATEGORY_CODES = {"handed-over": "HO", "not-handed-over": "NH", "special": "SP"}
DEFAULT_LOCK_WAIT_SECONDS = 30.0
FORMAT_VERSION = 2
# Test hook, read here only: ARCHIVECTL_TEST_CRASH_AT=<step>[@n][:stop][,...] makes this very
# process kill itself (SIGKILL; with :stop, SIGSTOP) the n-th time a write reaches <step>.
# The crash tests use it to kill a real archivectl at a precise point; unset, it costs one lookup.
CRASH_AT_ENV = "ARCHIVECTL_TEST_CRASH_AT"
_steps_reached: dict[str, int] = {}


def crash_point(step: str) -> None:
    """Test hook: a named step of a write (see CRASH_AT_ENV); does nothing unless the variable names it."""
    wanted = os.environ.get(CRASH_AT_ENV)
    if not wanted:
        return
    _steps_reached[step] = _steps_reached.get(step, 0) + 1
    for spec in wanted.split(","):
        name, _, how = spec.strip().partition(":")
        name, _, nth = name.partition("@")
        if name == step and str(_steps_reached[step]) == (nth or "1"):
            os.kill(os.getpid(), signal.SIGSTOP if how == "stop" else signal.SIGKILL)


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

    @classmethod
    def from_yaml(cls, data: Any) -> Settings:
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            raise UsageError(f"{ARCHIVE_FILE}: must be a mapping with a name")
        known = {"name", "id_scheme", "retention_days", "review_interval_days", "keystore", "policy", "version", "main"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UsageError(f"{ARCHIVE_FILE}: unknown setting {unknown[0]}")
        policy = data.get("policy") or {}
        if not isinstance(policy, dict):
            raise UsageError(f"{ARCHIVE_FILE}: policy must be a mapping")
        try:
            rules = ApprovalRules(
                approver_roles=tuple(policy.get("approver_roles", ("manager", "gm"))),
                four_eyes=bool(policy.get("four_eyes", True)),
                grant_approver_roles=tuple(policy.get("grant_approver_roles", ("gm",))),
                governance_approver_roles=tuple(policy.get("governance_approver_roles", ("gm",))),
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
        if self.keystore:
            data["keystore"] = self.keystore
        return data


def check_archive_no(value: str) -> str:
    """value if it is a well-formed archive number, else UsageError (no path tricks)."""
    if not isinstance(value, str) or not ARCHIVE_NO.match(value):
        raise UsageError(f"{value!r} is not an archive number like HO-2026-00001")
    return value


class Archive:
    """One archive: a git work tree with archive.yaml at its root, plus its keystore.

    A bare repository (the office's server copy) is an archive too, for verify,
    the server hook and `keys shred`: it has history but no work tree.
    """

    def __init__(self, root: Path, bare: bool = False):
        self.root = root
        self.bare = bare

    @classmethod
    def find(cls, explicit: str | None = None) -> Archive:
        """The archive named by --archive, ARCHIVECTL_ARCHIVE, or found upward from here."""
        given = explicit or os.environ.get("ARCHIVECTL_ARCHIVE")
        start = Path(given).expanduser() if given else Path.cwd()
        if given and not start.is_dir():
            raise UsageError(f"archive {start} does not exist")
        if given and not (start / ARCHIVE_FILE).exists() and gitio.is_bare(start):
            return cls(start.resolve(), bare=True)
        for candidate in [start, *start.resolve().parents] if not given else [start]:
            if (candidate / ARCHIVE_FILE).is_file():
                top = gitio.toplevel(candidate)
                if top is None or top.resolve() != candidate.resolve():
                    raise ArchiveError(f"{candidate} has {ARCHIVE_FILE} but is not the root of a git repository")
                return cls(candidate.resolve())
        where = f"{start}" if given else "this directory or any parent"
        raise UsageError(f"no archive found in {where} (use --archive PATH or ARCHIVECTL_ARCHIVE)")

    @cached_property
    def settings(self) -> Settings:
        """archive.yaml as committed: an uncommitted local edit changes no rule."""
        committed = gitio.show_blob(self.root, "HEAD", ARCHIVE_FILE)
        if committed is not None:
            return Settings.from_yaml(yamlio.loads(committed, ARCHIVE_FILE))
        return Settings.from_yaml(yamlio.load_file(self.root / ARCHIVE_FILE))

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
    def schemas_dir(self) -> Path:
        return self.root / "schemas"

    @cached_property
    def household_schema(self) -> Any:
        from archivectl import schema

        return schema.household(self.schemas_dir)

    @cached_property
    def keystore(self) -> Keystore:
        return Keystore(keystore_path(self.root, self.settings.keystore))

    def household_dir(self, building: str, unit: str, archive_no: str) -> str:
        """Relative path of a household's directory (parts are schema-checked before)."""
        return f"households/{building}/{unit}/{archive_no}"

    def locate(self, archive_no: str) -> str:
        """Relative path of a household's record.yaml, or ArchiveError if there is none."""
        check_archive_no(archive_no)
        found = gitio.ls_files(self.root, f"households/*/*/{archive_no}/record.yaml")
        if not found:
            raise ArchiveError(f"{archive_no}: no such household in this archive")
        return found[0]

    def record_paths(self) -> list[tuple[str, str]]:
        """(blob id, path) of every household record tracked in git."""
        return gitio.ls_files_stage(self.root, "households/*/*/*/record.yaml")

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
                            f"another archivectl command (pid {holder}) is writing to this archive; try again"
                        ) from None
                    time.sleep(0.05)
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
            with gitio.children_inherit(fd):
                yield
        finally:
            os.close(fd)


def _lock_wait() -> float:
    try:
        return float(os.environ.get("ARCHIVECTL_LOCK_WAIT", DEFAULT_LOCK_WAIT_SECONDS))
    except ValueError:
        raise UsageError("ARCHIVECTL_LOCK_WAIT must be a number of seconds") from None


def keystore_path(root: Path, configured: str | None) -> Path:
    """ARCHIVECTL_KEYSTORE, else archive.yaml keystore: (relative to the archive), else <archive>.keys."""
    env = os.environ.get("ARCHIVECTL_KEYSTORE")
    if env:
        return Path(env).expanduser().resolve()
    if configured:
        return (root / configured).resolve()
    return root.resolve().with_name(root.resolve().name + ".keys")


# ---------------------------------------------------------------- the actor


@dataclass(frozen=True)
class Actor:
    """The person at the keyboard: the staff member whose key signs."""

    member: StaffMember
    signing_key: str
    private_key: Path | None


def signing_key_setting(repo: Path | None) -> str:
    """git's user.signingkey, or ArchiveError saying how to configure it."""
    value = gitio.config_get(repo, "user.signingkey")
    if not value:
        raise ArchiveError(
            "no signing key configured: run `git config --global gpg.format ssh` and "
            "`git config --global user.signingkey ~/.ssh/id_ed25519`; nothing was written"
        )
    return value


def public_key_from_setting(value: str) -> tuple[str, Path | None]:
    """(public key, private key path or None) for a user.signingkey value."""
    from archivectl.crypto import public_key_of_private

    if value.startswith("key::"):
        return value[5:].strip(), None
    if value.startswith("ssh-"):
        return value.strip(), None
    path = Path(value).expanduser()
    if path.suffix == ".pub":
        private = path.with_suffix("")
        text = _read_key_file(path)
        return text, (private if private.exists() else None)
    pub = path.with_name(path.name + ".pub")
    if pub.exists():
        return _read_key_file(pub), path
    if not path.exists():
        raise ArchiveError(f"signing key {path} does not exist (git config user.signingkey)")
    return public_key_of_private(path), path


def _read_key_file(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        raise ArchiveError(f"signing key {path} cannot be read (git config user.signingkey)") from None


def actor_of(archive: Archive, staff: Staff | None = None) -> Actor:
    """The staff member whose key git signs with here, or ArchiveError."""
    setting = signing_key_setting(archive.root)
    public, private = public_key_from_setting(setting)
    try:
        member = (staff or archive.staff).by_key(public)
    except UsageError:
        raise ArchiveError("the configured signing key is not an ssh-ed25519 key") from None
    if member is None:
        raise ArchiveError("your signing key is not on staff.yaml: ask a manager to add you")
    return Actor(member=member, signing_key=setting, private_key=private)


def decrypting_identity(actor_private: Path | None, explicit: str | None) -> Path:
    """--identity, else ARCHIVECTL_IDENTITY, else the private half of the signing key."""
    chosen = explicit or os.environ.get("ARCHIVECTL_IDENTITY")
    if chosen:
        return Path(chosen).expanduser()
    if actor_private is None:
        raise ArchiveError("no identity to decrypt with: pass --identity ~/.ssh/id_ed25519")
    return actor_private


# ---------------------------------------------------------- the write transaction


def commit_message(subject: str, trailers: dict[str, Any]) -> str:
    """Subject, blank line, then one 'Key: value' trailer per line (a list: one line each; empty ones left out)."""
    lines = [subject, ""]
    for key, value in trailers.items():
        lines += [f"{key}: {v}" for v in (value if isinstance(value, list) else [value]) if v]
    return "\n".join(lines) + "\n"


class Transaction:
    """One write: files and keys changed, one signed commit, or everything put back.

    Before a file or key is first changed, its old version is hard-linked into a
    journal under .git/archivectl/ (changes always replace files, never write
    into them), so a failed write is undone exactly, and a write killed halfway
    is undone by the next archivectl command.
    """

    def __init__(self, archive: Archive, actor: Actor):
        self.archive = archive
        self.actor = actor
        self.journal_dir = archive.git_dir / "archivectl" / "journal"
        self._files: dict[str, str | None] = {}
        self._keys: dict[str, str | None] = {}
        self._head: str | None = None
        self._stack = contextlib.ExitStack()
        self._scratch = 0
        self._new: set[str] = set()
        self._unchecked: set[str] = set()
        self.committed: str | None = None

    def __enter__(self) -> Transaction:
        self._stack.enter_context(self.archive.lock())
        try:
            crash_point("locked")
            recover(self.archive)
            if gitio.has_staged_changes(self.archive.root):
                raise ArchiveError("the index has staged changes; commit or unstage them first")
            self._head = gitio.head(self.archive.root)
            self._start_journal()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if self.committed is None:
                _undo(self.archive, self.journal_dir, self._files, self._keys)
            else:
                _shred_key_backups(self.journal_dir, self._keys)
        finally:
            shutil.rmtree(self.journal_dir, ignore_errors=True)
            self._stack.close()

    # -- changes

    def read(self, relpath: str) -> bytes | None:
        """Current content of a work-tree file, or None."""
        try:
            return (self.archive.root / relpath).read_bytes()
        except FileNotFoundError:
            return None

    def _target(self, relpath: str) -> Path:
        root = self.archive.root.resolve()
        target = (root / relpath).resolve()
        if not target.is_relative_to(root) or ".git" in Path(relpath).parts:
            raise UsageError(f"{relpath}: path leaves the archive")
        if relpath not in self._files:
            if relpath in self._new:
                dirty = []
            elif not target.exists() and not target.is_symlink():
                dirty = []  # nothing here to clobber; commit() checks it is not a tracked file deleted by hand
                self._unchecked.add(relpath)
            else:
                dirty = gitio.dirty_paths(self.archive.root, [relpath])
            if dirty:
                raise ArchiveError(f"{dirty[0]} has uncommitted changes; commit or discard them first")
            self._files[relpath] = self._backup(target, f"file{len(self._files)}")
            self._journal("file", relpath, self._files[relpath])
        return target

    def expect_new(self, relpaths: list[str]) -> None:
        """Check at once that many files to be created are neither tracked nor lying around.

        One `git ls-files` and one `git status` for a bulk write, instead of one
        status per file.
        """
        wanted = set(relpaths)
        taken = wanted & set(gitio.ls_files(self.archive.root, "households/"))
        taken |= wanted & set(gitio.dirty_paths(self.archive.root, ["households/"]))
        taken |= {p for p in wanted if (self.archive.root / p).exists()}
        if taken:
            raise ArchiveError(f"{sorted(taken)[0]} already exists; {NUMBERS_FILE} is behind")
        self._new |= wanted

    def include(self, relpath: str) -> None:
        """Commit a file as it stands in the work tree (a reviewed hand edit of archive.yaml, say).

        Its current content is journaled, so a failure leaves the edit exactly as it was.
        """
        target = self.archive.root / relpath
        if target.is_symlink() or not target.is_file():
            raise UsageError(f"{relpath}: not a regular file in the archive")
        if relpath not in self._files:
            self._files[relpath] = self._backup(target, f"file{len(self._files)}")
            self._journal("file", relpath, self._files[relpath])

    def write(self, relpath: str, data: bytes | None) -> None:
        """Write (or with None, delete) a file in the archive as part of this change."""
        target = self._target(relpath)
        if data is None:
            target.unlink(missing_ok=True)
            _prune_empty_dirs(self.archive.root, target.parent)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(target, data, durable=False)  # until committed, the journal can undo it

    def write_text(self, relpath: str, text: str) -> None:
        self.write(relpath, text.encode("utf-8"))

    def place(self, relpath: str, prepared: Path) -> None:
        """Move a prepared file (same file system, e.g. an encrypted scan) into the archive."""
        target = self._target(relpath)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(prepared, target)

    def scratch(self) -> Path:
        """A file name for preparing large content beside the archive, cleaned up with the journal."""
        self._scratch += 1
        return self.journal_dir / f"scratch{self._scratch}"

    def write_key(self, archive_no: str, blob: bytes) -> None:
        """Store a wrapped record key in the keystore as part of this change."""
        store = self.archive.keystore
        if archive_no not in self._keys:
            self._keys[archive_no] = self._backup(store.key_path(archive_no), f"key{len(self._keys)}")
            self._journal("key", archive_no, self._keys[archive_no])
        store.write(archive_no, blob)

    def commit(self, subject: str, trailers: dict[str, Any]) -> str:
        """Stage every changed file and make the one signed commit (its Action: says what it is)."""
        if not trailers.get("Action"):
            raise ArchiveError("internal: every archivectl commit names its Action")
        paths = sorted(self._files)
        deleted_by_hand = gitio.ls_files(self.archive.root, *sorted(self._unchecked)) if self._unchecked else []
        if deleted_by_hand:
            raise ArchiveError(f"{deleted_by_hand[0]} was deleted by hand; restore or commit that first")
        gitio.add(self.archive.root, paths)
        who = gitio.Identity(self.actor.member.name, f"{self.actor.member.id}@staff.archivectl")
        message = commit_message(subject, trailers)
        commit, parent = gitio.write_signed_commit(self.archive.root, message, self.actor.signing_key, who)
        crash_point("before-update-ref")
        gitio.move_head(self.archive.root, commit, parent, message)
        crash_point("after-update-ref")
        self.committed = commit
        return self.committed

    # -- undo

    def _backup(self, path: Path, name: str) -> str | None:
        if not path.exists():
            return None
        backup = self.journal_dir / name
        try:
            os.link(path, backup)
        except OSError:  # another file system: copy instead
            shutil.copy2(path, backup)
        return name

    def _start_journal(self) -> None:
        self.journal_dir.mkdir(parents=True, exist_ok=True)
        header = {"head": self._head, "pid": os.getpid()}
        write_atomic(self.journal_dir / JOURNAL, (json.dumps(header) + "\n").encode())

    def _journal(self, kind: str, name: str, backup: str | None) -> None:
        """Append one line before the change it describes (append-only: a bulk write stays linear)."""
        with open(self.journal_dir / JOURNAL, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({kind: name, "backup": backup}) + "\n")


def _undo(archive: Archive, journal_dir: Path, files: dict[str, str | None], keys: dict[str, str | None]) -> None:
    """Put every journaled file and key back (a backup is moved back, a new file removed)."""
    root = archive.root
    for rel, backup in files.items():
        target = root / rel
        if backup is None:
            target.unlink(missing_ok=True)
            _prune_empty_dirs(root, target.parent)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(journal_dir / backup, target)
    gitio.unstage(root, sorted(files))
    for no, backup in keys.items():
        target = archive.keystore.key_path(no)
        if backup is None:
            target.unlink(missing_ok=True)
        else:
            shutil.move(journal_dir / backup, target)  # the keystore may be on another file system


def _shred_key_backups(journal_dir: Path, keys: dict[str, str | None]) -> None:
    """Old versions of record keys (re-wrapped, rotated or destroyed) must not linger anywhere."""
    from archivectl.files import shred

    for backup in keys.values():
        if backup:
            shred(journal_dir / backup)


def _prune_empty_dirs(root: Path, directory: Path) -> None:
    while directory != root and directory.is_relative_to(root):
        try:
            directory.rmdir()
        except OSError:
            return
        directory = directory.parent


JOURNAL = "journal.jsonl"


def read_journal(path: Path) -> tuple[dict, dict[str, str | None], dict[str, str | None]] | None:
    """(header, files, keys) from a journal; a torn last line (killed mid-write) is ignored."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    entries = []
    for line in lines:
        try:
            entries.append(json.loads(line))
        except ValueError:
            continue
    if not entries or "head" not in entries[0]:
        return None
    files = {e["file"]: e.get("backup") for e in entries[1:] if "file" in e}
    keys = {e["key"]: e.get("backup") for e in entries[1:] if "key" in e}
    return entries[0], files, keys


def recover(archive: Archive) -> bool:
    """Undo a write that was killed halfway (call with the lock held). True if it did."""
    journal_dir = archive.git_dir / "archivectl" / "journal"
    found = read_journal(journal_dir / JOURNAL)
    if found is None:
        shutil.rmtree(journal_dir, ignore_errors=True)
        return False
    state, files, keys = found
    index_lock = archive.git_dir / "index.lock"
    if index_lock.exists():
        index_lock.unlink()  # left by the killed git; we hold the archive lock
    if gitio.head(archive.root) == state.get("head"):
        _undo(archive, journal_dir, files, keys)
    else:  # the commit was made: finish the job by shredding old key versions
        _shred_key_backups(journal_dir, keys)
    shutil.rmtree(journal_dir, ignore_errors=True)
    return True


def now_iso() -> str:
    """The current time as an ISO string with seconds and zone."""
    return clock.now().isoformat(timespec="seconds")
