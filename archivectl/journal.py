"""The write journal: what a write is about to change, and settling it after the write or a crash.

A write (archive.Transaction) appends to .git/archivectl/journal/journal.jsonl
before each change: the file, the mark of what it will hold, where the old
version waits (hard-linked beside the journal), the keys it adds and the
numbers it reserves, and, before HEAD moves, the exact commit it is about to
make. settle() reads it back, on the way out of the write or in the next
command after a crash (recover()), and finishes or undoes the write by
comparing HEAD with that commit, nothing else.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from archivectl import gitio
from archivectl.errors import ArchiveError
from archivectl.i18n import _
from archivectl.keystore import KeyAddress

if TYPE_CHECKING:
    from archivectl.archive import Archive

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


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def digest_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def prune_empty_dirs(root: Path, directory: Path) -> None:
    while directory != root and directory.is_relative_to(root):
        try:
            directory.rmdir()
        except OSError:
            return
        directory = directory.parent


def journal_dir(archive: Archive) -> Path:
    """Where a write's journal lives (one at a time: writes hold the archive's lock)."""
    return archive.git_dir / "archivectl" / "journal"


JOURNAL = "journal.jsonl"
JOURNAL_VERSION = 3  # 3: keys are journaled by address and only ever added
GONE = "gone"  # the mark of a change that deletes its file


@dataclass
class JournaledChange:
    """One file or key a write changed: where, where its old version waits, what the write put there."""

    path: Path
    backup: Path | None  # None: there was no old version
    marks: set[str] = field(default_factory=set)  # sha256:..., ino:..., gone; empty: not known (include, old journal)


@dataclass
class JournalState:
    """A journal read back."""

    version: int
    head: str | None
    files: dict[str, JournaledChange] = field(default_factory=dict)
    keys: dict[str, set[str]] = field(default_factory=dict)  # key name in the keystore -> marks of what we put
    numbers: dict[str, str] = field(default_factory=dict)  # archive numbers reserved -> mark of the reservation
    reserving: list[tuple[str, int, str]] = field(default_factory=list)  # (series, from serial, mark) being taken
    old_keys_dir: str | None = None  # a version-2 journal kept replaced keys here
    commit: str | None = None  # the commit the write was about to put on HEAD
    committed: bool = False  # it saw HEAD move to it


def read_journal(archive: Archive, folder: Path) -> JournalState | None:
    """The journal of a write in flight, or None; a torn line (killed mid-write) is skipped."""
    try:
        return _read_entries(archive, folder, _journal_entries(folder / JOURNAL))
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, UnicodeDecodeError):
        raise ArchiveError(
            _("{folder} cannot be read; an interrupted write waits there").format(folder=folder / JOURNAL)
        ) from None


@dataclass
class JournalOutline:
    """What settle() decides by when a write committed: the journal's version and the commit it names."""

    version: int
    commit: str | None = None


def read_outline(folder: Path) -> JournalOutline | None:
    """The journal's version and commit, read without keeping its file and key lines; None: no journal.

    Only the first line and the commit's lines are parsed: every entry is one
    json.dumps of a dict whose first key names its kind, so those lines start
    with '{"commit"'.
    """
    outline: JournalOutline | None = None
    try:
        with open(folder / JOURNAL, encoding="utf-8") as fh:
            for number, line in enumerate(fh):
                if number and not line.startswith('{"commit"'):
                    continue
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(entry, dict):
                    continue
                if number == 0:
                    if "head" not in entry:
                        return None
                    outline = JournalOutline(version=int(entry.get("version", 1)))
                elif outline is not None and "commit" in entry:
                    outline.commit = str(entry["commit"])
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, UnicodeDecodeError):
        raise ArchiveError(
            _("{folder} cannot be read; an interrupted write waits there").format(folder=folder / JOURNAL)
        ) from None
    return outline


def _read_entries(archive: Archive, folder: Path, entries: Iterator[dict]) -> JournalState | None:
    first = next(entries, None)
    if first is None or "head" not in first:
        return None
    state = JournalState(version=int(first.get("version", 1)), head=first.get("head"))
    for entry in entries:
        if "keys-dir" in entry:
            state.old_keys_dir = str(entry["keys-dir"])
        elif "file" in entry:
            _journaled(state.files, entry["file"], entry, archive.root / entry["file"], folder)
        elif "key" in entry:
            state.keys.setdefault(str(entry["key"]), set()).add(str(entry.get("mark")))
        elif "reserving" in entry:
            state.reserving.append((str(entry["reserving"]), int(entry.get("from", 0)), str(entry.get("mark"))))
        elif "numbers" in entry and isinstance(entry["numbers"], list):
            state.numbers.update({str(n): str(entry.get("mark")) for n in entry["numbers"]})
        elif "commit" in entry:
            state.commit = str(entry["commit"])
        elif "committed" in entry:
            state.committed = True
    return state


def _journal_entries(path: Path) -> Iterator[dict]:
    """Each whole line of a journal, read a line at a time (an import's journal has a line per file and key)."""
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict):
                yield entry


def _journaled(found: dict[str, JournaledChange], name: str, entry: dict, path: Path, backups: Path) -> None:
    if name not in found:
        backup = entry.get("backup")
        found[name] = JournaledChange(path, backups / backup if backup else None)
    if entry.get("mark"):
        found[name].marks.add(str(entry["mark"]))


def recover(archive: Archive) -> bool:
    """Settle a write that was killed halfway (call with the lock held). True if there was one.

    The keystore is tidied (staged copies of keys whose writer is dead shredded)
    only when a write left its journal: a write stages a key only after
    journaling it, and tidying lists the whole keystore (0.4 s at 100,000
    keys). `keys sync` and `keys fsck`, which stage keys without a journal or
    look for leftovers, tidy for themselves.
    """
    if journal_dir(archive).exists():
        archive.keystore.tidy()
    return settle(archive, after_crash=True)


# How the last write this process settled ended: "committed" or "undone" (None: it settled none).
# What an interrupted command says it did is read from here (cli.app), never guessed.
settled_as: str | None = None


@contextlib.contextmanager
def ctrl_c_deferred() -> Iterator[None]:
    """Ctrl-C (SIGINT) waits until the block is done, then raises KeyboardInterrupt as it would have.

    Settling a write must run to its end: an undo stopped halfway by a second
    Ctrl-C leaves keys and numbers in the shared keystore until some later
    write settles them. Only the main thread can do this; elsewhere (and when
    SIGINT is not Python's to handle) the block runs as it is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    try:
        before = signal.getsignal(signal.SIGINT)
    except ValueError:  # pragma: no cover - not the main interpreter
        yield
        return
    if before is not signal.default_int_handler:
        yield  # ignored, or someone else's handler: leave it be
        return
    pending: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, _frame: pending.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)
    if pending:
        raise KeyboardInterrupt


def settle(archive: Archive, after_crash: bool = False) -> bool:
    """Finish or undo the write the journal describes, then remove the journal. True if there was one.

    Ctrl-C waits until it is done (ctrl_c_deferred): a first Ctrl-C is what
    usually brings a write here, and a second must not leave it half undone.

    The write committed exactly when HEAD is the commit the journal names, or
    has it in its history (someone committed or pulled on top): then there is
    nothing left to do (keys are only added, and the new ones are in use).
    Otherwise, if that commit never was on HEAD, every file the write still
    holds is put back (a file someone else changed since is left alone) and
    the keys it added are taken out of the keystore again.
    A commit that was on HEAD and is no longer (reset, checkout) is neither
    undone nor finished: the command refuses and its keys stay.
    Each step can be done again, and the journal goes last, so a crash during
    settling is settled by the next command.
    """
    with ctrl_c_deferred():
        return _settle(archive, after_crash)


def _settle(archive: Archive, after_crash: bool) -> bool:
    global settled_as
    where = journal_dir(archive)
    outline = read_outline(where)
    if outline is None:
        shutil.rmtree(where, ignore_errors=True)  # killed before its first line: nothing was changed
        return False
    if after_crash:
        index_lock = archive.git_dir / "index.lock"
        # left by a killed git: git started by archivectl holds the archive lock while it lives, and we hold it
        index_lock.unlink(missing_ok=True)
    head = gitio.head(archive.root)
    if outline.version == JOURNAL_VERSION and _holds_commit(archive, head, outline.commit):
        # The way out of every write that committed: decided from the commit alone, without building a
        # state for each file and key (an import's journal has a line for each: 28 MB at 20,000).
        crash_point("settled")
        shutil.rmtree(where, ignore_errors=True)
        if not after_crash:  # this command's own write (recover() settles one a killed command left)
            settled_as = "committed"
        return True
    state = read_journal(archive, where)
    if state is None:
        shutil.rmtree(where, ignore_errors=True)
        return False
    outcome = None
    if state.old_keys_dir and state.keys:
        raise ArchiveError(
            _(
                "a write killed under an older archivectl kept record keys in {old_keys_dir}; compare them "
                "with the keystore and remove {where} by hand"
            ).format(old_keys_dir=state.old_keys_dir, where=where)
        )
    if _holds_commit(archive, head, state.commit):
        outcome = "committed"  # the keys it added are in use, and it replaced none
    elif state.commit and (state.committed or gitio.in_reflog(archive.root, state.commit)):
        raise ArchiveError(
            _(
                "a write killed after its commit {commit} left {where}, and HEAD no longer holds that commit; "
                "bring it back (git merge {commit}) so the record keys it made stay in use, then run "
                "archivectl again"
            ).format(commit=state.commit[:12], where=where)
        )
    elif state.version < JOURNAL_VERSION and head != state.head:
        raise ArchiveError(
            _(
                "a write killed by an older archivectl left {where} and HEAD has moved since; whether it "
                "committed cannot be told: compare HEAD with the keys kept there before removing it"
            ).format(where=where)
        )
    else:
        _undo(archive, state)
        outcome = "undone"
    crash_point("settled")
    shutil.rmtree(where, ignore_errors=True)
    if not after_crash:
        settled_as = outcome
    return True


def _holds_commit(archive: Archive, head: str | None, commit: str | None) -> bool:
    """True when HEAD is the commit, or has it in its history (committed or pulled on top since)."""
    return bool(commit and head and (head == commit or gitio.is_ancestor(archive.root, commit, head)))


def _undo(archive: Archive, state: JournalState) -> None:
    """The write did not commit: put back every file and key it still holds, index entries too.

    Files are put back by several threads at once (an undone import removes
    thousands: each unlink waits on the file system, and 8 wait together).
    """
    from archivectl.keystore import in_threads

    def put_back(change: JournaledChange) -> None:
        if _put_back(change):
            crash_point("restored")
        if change.backup is None:
            prune_empty_dirs(archive.root, change.path.parent)  # each after its own file: the last one empties it

    in_threads(put_back, list(state.files.values()))
    gitio.unstage(archive.root, sorted(state.files))
    keys = [(address, marks) for name, marks in state.keys.items() if (address := _address_of(name)) is not None]
    if _remove_ours(archive, [(address.name, marks) for address, marks in keys]):
        crash_point("restored")
    numbers = dict(state.numbers)
    if state.reserving:  # taken, perhaps, before the journal could name them
        reserved = archive.keystore.reserved()  # listed once, for every series (each name a NUMBER_FILE)
        for series, start, mark in state.reserving:
            prefix = series + "-"
            for number in reserved:
                if number.startswith(prefix) and int(number[len(prefix) :]) >= start:
                    numbers.setdefault(number, mark)
    _give_back_numbers(archive, numbers)


def _give_back_numbers(archive: Archive, numbers: dict[str, str]) -> None:
    """Release the numbers this uncommitted write reserved (never used in any commit, so P3 allows them again)."""
    from archivectl.keystore import NUMBERS

    _remove_ours(archive, [(f"{NUMBERS}/{number}", {mark}) for number, mark in sorted(numbers.items())], False)


def _address_of(name: str) -> KeyAddress | None:
    from archivectl.keystore import ADDRESSED

    m = ADDRESSED.fullmatch(name.rpartition("/")[2])
    return KeyAddress(m["no"], m["recipient"]) if m else None


def _remove_ours(archive: Archive, wanted: list[tuple[str, set[str]]], secret: bool = True) -> bool:
    """Remove what the uncommitted write put in the keystore, where what is there is what it wrote. Repeatable.

    Read together and removed together (one flush on a directory keystore, not
    two a file). What a shredding that was killed left (all zeros) is ours
    too: a key's address is random, and another writer's number is never blank.
    secret: keys are shredded (zeroed first); a number's reservation holds nothing secret.
    True if anything was removed.
    """
    backend = archive.keystore.backend
    wanted = [(name, marks) for name, marks in wanted if not _kept(archive, name)]
    if not wanted:
        return False
    names = [name for name, _ in wanted]
    from archivectl.keystore import DirectoryBackend, in_threads

    if isinstance(backend, DirectoryBackend):  # each read waits on the file system: several wait together
        blobs = in_threads(backend.read, names)
    else:
        blobs = backend.read_many(names)  # pipelined by the backend itself
    ours = [
        name
        for (name, marks), blob in zip(wanted, blobs, strict=True)
        if blob is not None and (digest(blob) in marks or not blob.strip(b"\0"))
    ]
    remove_many = getattr(backend, "remove_many", None)
    removed = remove_many(ours, secret) if remove_many else [backend.remove(name) for name in ours]
    return any(removed)


def _kept(archive: Archive, name: str) -> bool:
    """True when the keystore keeps what an uncommitted write made (a key server: members may not delete)."""
    release = getattr(archive.keystore.backend, "release", None)
    return release is not None and not release(name)


def _put_back(change: JournaledChange) -> bool:
    """Undo one file change if the write's own version is still there; True if something was put back. Repeatable."""
    if change.backup is not None and not change.backup.exists():
        return False  # already put back by an earlier recovery that was killed
    if change.marks and not _holds(change.path, change.marks):
        return False  # not this write's any more (or never written): leave it
    if change.backup is None:
        change.path.unlink(missing_ok=True)
    else:
        change.path.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(change.backup, change.path)  # a rename; a copy for an old journal on another file system
    return True


def _holds(path: Path, marks: set[str]) -> bool:
    """True when path holds what a journaled write put there (or is gone, when it deleted it)."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return GONE in marks
    if not stat.S_ISREG(info.st_mode):
        return False
    if f"ino:{info.st_dev}:{info.st_ino}:{info.st_size}" in marks:
        return True
    return any(m.startswith("sha256:") for m in marks) and digest_file(path) in marks
