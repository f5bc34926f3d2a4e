"""Every call to the git binary archivectl makes lives here.

The real `git` does the work (GitPython's index.commit cannot sign); this module
turns git's answers into plain values and its failures into ArchiveError.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import stat
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archivectl.errors import ArchiveError
from archivectl.i18n import _

# Keep git's output stable and never let it open an editor or pager; and let git read history as it
# is: a replace ref (refs/replace/*, pushable by anyone who may push a branch) or a grafts file makes
# every git call see a stand-in for a commit, so what verify judged would not be what main holds.
_BASE_ENV = {
    "LC_ALL": "C",
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_EDITOR": "true",
    "GIT_PAGER": "cat",
    "GIT_NO_REPLACE_OBJECTS": "1",
    "GIT_GRAFT_FILE": os.path.join(os.devnull, "none"),  # a path that cannot exist: no grafts, and no hint
}

# Descriptors every git child inherits: the archive's write lock while it is held.
# kill -9 of archivectl does not kill the git it started; an orphaned update-ref or
# update-index must keep the archive locked until it is done, or the next command's
# recovery would race it (and decide on a HEAD that is about to move).
_INHERITED_FDS: list[int] = []


@contextlib.contextmanager
def children_inherit(fd: int) -> Iterator[None]:
    """Hand fd to every git process started in this block (flock stays held while any of them lives)."""
    _INHERITED_FDS.append(fd)
    try:
        yield
    finally:
        _INHERITED_FDS.remove(fd)


def inherited_fds() -> tuple[int, ...]:
    """The files every git started now is handed (children_inherit): a forked worker keeps them open too."""
    return tuple(_INHERITED_FDS)


def run(
    repo: Path | None,
    *args: str,
    input: bytes | None = None,
    env: dict[str, str] | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[bytes]:
    """Run `git args...` in repo; raise ArchiveError with git's first error line on failure."""
    cmd = ["git"]
    if repo is not None:
        cmd += ["-C", str(repo)]
    cmd += list(args)
    full_env = {**os.environ, **_BASE_ENV, **(env or {})}
    try:
        proc = subprocess.run(
            cmd, input=input, capture_output=True, env=full_env, check=False, pass_fds=tuple(_INHERITED_FDS)
        )
    except FileNotFoundError:
        raise ArchiveError(_("git is not installed or not on PATH")) from None
    if check and proc.returncode != 0:
        raise ArchiveError(
            _("git {command} failed: {problem}").format(command=args[0], problem=_first_line(proc.stderr))
        )
    return proc


def out(repo: Path | None, *args: str) -> str:
    """Run git and return its stdout as text without the trailing newline."""
    return run(repo, *args).stdout.decode("utf-8", "replace").rstrip("\n")


def _first_line(stderr: bytes) -> str:
    lines = [ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    fatal = [ln for ln in lines if ln.startswith(("fatal:", "error:"))]
    return (fatal or lines or ["no message"])[0]


@dataclass(frozen=True)
class Layout:
    """Where a repository keeps its git directory and objects, and which hash names them."""

    git_dir: Path  # absolute
    object_format: str  # sha1 or sha256
    objects: Path


_LAYOUT_ARGS = ("--absolute-git-dir", "--show-object-format", "--git-path", "objects")
_LAYOUTS: dict[tuple[str, ...], Layout] = {}  # a repository's layout does not change while a process runs


def _layout_key(repo: Path) -> tuple[str, ...]:
    return (os.path.abspath(repo), os.environ.get("GIT_DIR", ""), os.environ.get("GIT_OBJECT_DIRECTORY", ""))


def _keep_layout(repo: Path, asked_in: Path, answer: list[str]) -> Layout:
    """Keep git's answer to _LAYOUT_ARGS, asked with `-C asked_in`, as repo's layout.

    `--git-path` answers relative to asked_in (a subfolder of repo, or a path relative to the
    current folder): it is made absolute here, where asked_in is known.
    """
    git_dir, object_format, objects = answer
    found = Layout(Path(git_dir), object_format, Path.cwd() / asked_in / objects)
    _LAYOUTS[_layout_key(repo)] = found
    return found


def layout(repo: Path) -> Layout:
    """The repository's Layout: asked of git once per repository in a process (every command needs it)."""
    found = _LAYOUTS.get(_layout_key(repo))
    if found is None:
        found = _keep_layout(repo, repo, out(repo, "rev-parse", *_LAYOUT_ARGS).splitlines())
    return found


def toplevel(start: Path) -> Path | None:
    """The root of the work tree containing start, or None outside a repository (its layout kept on the way)."""
    proc = run(start, "rev-parse", "--show-toplevel", *_LAYOUT_ARGS, check=False)
    if proc.returncode != 0:
        return None
    top, *answer = proc.stdout.decode().splitlines()
    _keep_layout(Path(top), start, answer)
    return Path(top)


def git_dir(repo: Path) -> Path:
    """The repository's .git directory (absolute)."""
    return layout(repo).git_dir


class LooseBlob:
    """One blob written straight into the object store as its bytes come, hashed in the same pass (an attachment).

    What `git update-index --add` would store, without reading the file again:
    the object id is SHA-1 of "blob <size>\\0" and the bytes, and the loose object
    is that deflated in zlib stored blocks (the ciphertext of a scan does not
    compress). Its size must be known first; the object appears under its id at
    finish(), made durable, or not at all (abort). None of it for a repository
    whose objects are not SHA-1 (open() returns None; the caller stages as usual).
    """

    _BLOCK = 0xFFFF  # the largest stored block deflate allows

    @classmethod
    def open(cls, repo: Path, size: int) -> LooseBlob | None:
        objects = _sha1_objects(repo)
        return cls(objects, size) if objects is not None else None

    def __init__(self, objects: Path, size: int) -> None:
        import hashlib
        import tempfile
        import zlib

        self._adler32 = zlib.adler32
        self.objects = objects
        self.size = size
        self._written = 0
        fd, self._temp = tempfile.mkstemp(prefix="tmp_obj_", dir=objects)
        self._fd: int | None = fd
        prefix = b"blob %d\0" % size
        self._sha = hashlib.sha1(prefix, usedforsecurity=False)  # git's object id
        self._adler = 1
        os.write(fd, b"\x78\x01")  # zlib: deflate, 32 KiB window, no dictionary, "fastest"
        self._placed: Path | None = None
        self._blocks([prefix])

    def _blocks(self, pieces: list[bytes]) -> int:
        parts: list[bytes | memoryview] = []
        adler = self._adler
        for data in pieces:
            view = memoryview(data)
            adler = self._adler32(view, adler)
            for at in range(0, len(view), self._BLOCK):
                block = view[at : at + self._BLOCK]
                size = len(block)
                parts += [b"\x00" + size.to_bytes(2, "little") + (size ^ 0xFFFF).to_bytes(2, "little"), block]
        self._adler = adler
        assert self._fd is not None
        total = sum(len(p) for p in parts)
        if os.writev(self._fd, parts) != total:
            raise OSError(0, "short write to the object store")
        return total

    def write(self, data: bytes) -> None:
        """The next bytes of the blob."""
        self.write_many([data])

    def write_many(self, pieces: list[bytes]) -> int:
        """The next bytes of the blob, in pieces (one writev for all); how many bytes that added to the file."""
        self._written += sum(len(p) for p in pieces)
        if self._written > self.size:
            raise ArchiveError(_("internal: a blob's bytes are not the size it announced"))
        for piece in pieces:
            self._sha.update(piece)
        return self._blocks(pieces)

    def fileno(self) -> int:
        """The file the object is being written to (until finish or abort)."""
        assert self._fd is not None
        return self._fd

    def complete(self) -> bool:
        """Whether every byte announced has been written."""
        return self._written == self.size

    def finish(self) -> str:
        """Close the object and put it under its id (durably); the blob id."""
        if self._written != self.size:
            raise ArchiveError(_("internal: a blob's bytes are not the size it announced"))
        assert self._fd is not None
        os.write(self._fd, b"\x01\x00\x00\xff\xff" + self._adler.to_bytes(4, "big"))  # the final, empty block
        os.fchmod(self._fd, 0o444)
        os.fsync(self._fd)
        os.close(self._fd)
        self._fd = None
        blob = self._sha.hexdigest()
        folder = self.objects / blob[:2]
        folder.mkdir(exist_ok=True)
        target = folder / blob[2:]
        if target.exists():
            os.unlink(self._temp)  # the same bytes stored already
        else:
            os.rename(self._temp, target)
            self._placed = target
        return blob

    def abort(self) -> None:
        """Throw away what was written: nothing of it stays in the object store (even once finished)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._temp)
        elif self._placed is not None:  # finished, then its caller failed: no commit will name it
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._placed)
            self._placed = None


def init(path: Path) -> None:
    """Create an empty repository whose first branch is main."""
    run(None, "init", "-q", "-b", "main", str(path))


def head(repo: Path) -> str | None:
    """The commit HEAD points to, or None in a repository with no commits."""
    proc = run(repo, "rev-parse", "-q", "--verify", "HEAD^{commit}", check=False)
    return proc.stdout.decode().strip() or None


def config_get(repo: Path | None, key: str) -> str | None:
    """One git config value as git resolves it (local, global, env), or None."""
    proc = run(repo, "config", "--get", key, check=False)
    value = proc.stdout.decode("utf-8", "replace").strip()
    return value or None


def config_set(repo: Path, key: str, value: str) -> None:
    """Set a value in the repository's local config."""
    run(repo, "config", "--local", key, value)


# Encrypted scans do not compress: store them as they are, streamed into a
# pack rather than read whole into memory (a 200 MB scan stays at ~40 MB RSS).
_SEALED_OPTIONS = ["-c", "core.bigFileThreshold=8m", "-c", "core.compression=0"]


def _by_kind(paths: list[str]) -> list[tuple[list[str], list[str]]]:
    """(paths, git options) groups: sealed files (.age) streamed, the rest as usual."""
    sealed = [p for p in paths if p.endswith(".age")]
    plain = [p for p in paths if not p.endswith(".age")]
    return [(group, options) for group, options in ((sealed, _SEALED_OPTIONS), (plain, [])) if group]


def add(repo: Path, paths: list[str], forget_trees_of: str | None = None, known: dict[str, str] | None = None) -> None:
    """Stage paths (additions, changes and deletions alike), names fed on stdin (no argv limit).

    With forget_trees_of (a folder), the index's cached trees of that folder
    are dropped in the same call; its entries are unchanged. The cache-tree
    holds one node per folder: at 100,000 households it is 6.7 MB of the
    index, and every `update-index` reads, hashes and rewrites it whole
    (0.12-0.15 s a write, against 0.02 s without). A write that builds its
    commit's tree from its own paths (tree_with_files) never needs it; a full
    `write-tree` (an import) builds it again. (git drops a folder's cached
    trees when a path naming that folder is removed: --force-remove of the
    folder itself, which no entry is, removes nothing else.)

    With known (path -> id of a blob already in the object store, a
    LooseBlob), those paths are staged by id and not read again; git refreshes
    their stat data the next time it looks at them.
    """
    if known:
        listing = "".join(f"100644 {blob}\t{path}\n" for path, blob in sorted(known.items()))
        run(repo, "update-index", "--add", "--index-info", input=listing.encode("utf-8"))
        paths = [p for p in paths if p not in known]
    forget = ["--force-remove", forget_trees_of, "--no-force-remove"] if forget_trees_of else []
    if forget and not paths:
        run(repo, "update-index", *forget)
    for group, options in _by_kind(paths):
        names = b"".join(p.encode("utf-8") + b"\0" for p in group)
        run(repo, *options, "update-index", *forget, "--add", "--remove", "-z", "--stdin", input=names)
        forget = []


def unstage(repo: Path, paths: list[str]) -> None:
    """Put the index entries for paths back to HEAD (or remove them with no HEAD); names on stdin, taken literally."""
    if not paths:
        return
    names = b"".join(p.encode("utf-8") + b"\0" for p in paths)
    literal = {"GIT_LITERAL_PATHSPECS": "1"}
    if head(repo) is None:
        args = ["rm", "-q", "--cached", "-r", "--ignore-unmatch"]
    else:
        args = ["reset", "-q", "HEAD"]
    run(repo, *args, "--pathspec-from-file=-", "--pathspec-file-nul", input=names, env=literal, check=False)


def has_staged_changes(repo: Path) -> bool:
    """True when the index differs from HEAD (someone staged work by hand)."""
    if head(repo) is None:
        return bool(out(repo, "ls-files"))
    return run(repo, "diff", "--cached", "--quiet", check=False).returncode != 0


def dirty_paths(repo: Path, paths: list[str]) -> list[str]:
    """Paths among those given with uncommitted changes in the work tree or index."""
    if not paths:
        return []
    text = out(repo, "status", "--porcelain", "--untracked-files=all", "--", *paths)
    return [line[3:] for line in text.splitlines() if line]


@dataclass(frozen=True)
class Identity:
    """Who a commit is written as: the staff member the signing key belongs to."""

    name: str
    email: str


def commit_signed(repo: Path, message: str, signing_key: str, who: Identity) -> str:
    """Make one SSH-signed commit of the index with message and move HEAD to it; return its id."""
    commit, parent = write_signed_commit(repo, message, signing_key, who)
    move_head(repo, commit, parent, message)
    return commit


def write_signed_commit(
    repo: Path,
    message: str,
    signing_key: str,
    who: Identity,
    changed: list[str] | None = None,
    known: dict[str, str] | None = None,
) -> tuple[str, str | None]:
    """Write one SSH-signed commit on top of HEAD, on no branch yet; return (commit, parent).

    Its tree is the index's (write-tree), or with changed, HEAD's tree with
    those paths as the work tree holds them (tree_with_files: what write-tree
    gives after add(changed) on an index equal to HEAD, without reading an
    index whose size follows the archive's).
    Plumbing (commit-tree -S) rather than `git commit`: it does not re-stat
    every file of a large archive, and the caller can journal the commit id
    before move_head makes it the branch's.
    """
    env = {
        "GIT_AUTHOR_NAME": who.name,
        "GIT_AUTHOR_EMAIL": who.email,
        "GIT_COMMITTER_NAME": who.name,
        "GIT_COMMITTER_EMAIL": who.email,
    }
    parent = head(repo)
    if changed is not None and parent:
        tree = tree_with_files(repo, parent, changed, known)
    else:
        tree = out(repo, "write-tree")
    proc = run(
        repo,
        "-c",
        "gpg.format=ssh",
        "-c",
        f"user.signingkey={signing_key}",
        "commit-tree",
        "-S",
        tree,
        *(["-p", parent] if parent else []),
        "-F",
        "-",
        input=message.encode("utf-8"),
        env=env,
        check=False,
    )
    commit = proc.stdout.decode().strip()
    if proc.returncode != 0 or not commit:
        raise ArchiveError(_("signing the commit failed: {first_line}").format(first_line=_first_line(proc.stderr)))
    return commit, parent


def hash_files(repo: Path, paths: list[str]) -> dict[str, str]:
    """Blob id of each work-tree file, as `update-index` would store it (same filters), without writing."""
    ids: dict[str, str] = {}
    for group, options in _by_kind(paths):
        names = "".join(p + "\n" for p in group).encode("utf-8")
        found = run(repo, *options, "hash-object", "--stdin-paths", input=names).stdout.decode().split()
        if len(found) != len(group):
            raise ArchiveError(_("git hash-object gave fewer ids than files"))
        ids.update(zip(group, found, strict=True))
    return ids


def tree_with_files(repo: Path, base: str, paths: list[str], known: dict[str, str] | None = None) -> str:
    """base's tree with paths as the work tree holds them (a missing file: removed); returns the new tree.

    Only the trees along those paths are read (one `cat-file --batch`) and
    written (spliced, as loose objects; else one `mktree --batch`): a household's
    write costs the same in an archive of 100 or 100,000. Modes follow git's: 100755 for an executable
    file where core.fileMode is trusted, else the mode the path had.
    """
    for p in paths:
        if "\n" in p or "\0" in p or p.startswith("/") or "" in p.split("/"):
            raise ArchiveError(_("internal: {path!r} is not a path git can store").format(path=p))
    present = [p for p in paths if os.path.lexists(repo / p)]
    if any(os.path.islink(repo / p) for p in present):
        raise ArchiveError(_("internal: archivectl does not commit symbolic links"))
    known = {p: blob for p, blob in (known or {}).items() if p in present}  # stored already: not read again
    blobs = {**hash_files(repo, [p for p in present if p not in known]), **known}
    exec_bit = (config_get(repo, "core.fileMode") or "true").lower() in ("true", "yes", "on", "1")
    folders = {""}
    for p in paths:
        parts = p.split("/")
        folders.update("/".join(parts[:i]) for i in range(1, len(parts)))
    raw: dict[str, bytes] = {}
    with BlobReader(repo) as reader:
        for folder, found in zip(folders, reader.read_many_typed([f"{base}:{f}" for f in folders]), strict=True):
            raw[folder] = found[1] if found and found[0] == "tree" else b""
    objects = _sha1_objects(repo)
    if objects is not None:
        made = _spliced_trees(repo, objects, raw, paths, blobs, exec_bit, folders)
        if made is not None:
            return made
    listing = {folder: _tree_entries(data) for folder, data in raw.items()}
    for p in paths:
        folder, _sep, name = p.rpartition("/")
        entries = listing[folder]
        if p not in blobs:
            entries.pop(name, None)
            continue
        old_mode = entries.get(name, ("100644", ""))[0]
        if exec_bit:
            mode = "100755" if os.stat(repo / p).st_mode & stat.S_IXUSR else "100644"
        else:
            mode = old_mode if old_mode in ("100644", "100755") else "100644"
        entries[name] = (mode, blobs[p])
    made = _TreeWriter(repo)
    try:
        for folder in sorted(folders - {""}, key=lambda f: -f.count("/")):  # the deepest first
            parent, _sep, name = folder.rpartition("/")
            if listing[folder]:
                listing[parent][name] = ("40000", made.write(listing[folder]))
            else:
                listing[parent].pop(name, None)  # git keeps no empty folder
        return made.write(listing[""])
    finally:
        made.close()


_RAW_ENTRY = re.compile(rb"[0-7]+ [^\0]*\0.{20}", re.S)  # one entry of a SHA-1 tree object, as stored


def _sha1_objects(repo: Path) -> Path | None:
    """The object directory of a repository whose objects are SHA-1 (else None)."""
    found = layout(repo)
    return found.objects if found.object_format == "sha1" else None


def _entry_key(entry: bytes) -> bytes:
    """The order git keeps a tree's entries in: by name, a folder's name as if it ended in "/"."""
    mode, _sep, rest = entry.partition(b" ")
    name = rest[: rest.index(b"\0")]
    return name + b"/" if mode == b"40000" else name


def _spliced_trees(
    repo: Path,
    objects: Path,
    raw: dict[str, bytes],
    paths: list[str],
    blobs: dict[str, str],
    exec_bit: bool,
    folders: set[str],
) -> str | None:
    """tree_with_files' trees, written as loose objects: each changed folder's stored tree with only its changed
    entries taken out and put in at their place (found by bisection), never parsed or listed whole.

    A household's building holds thousands of units: parsing its tree and handing every entry to
    `git mktree` cost 25 ms and more of every add at 297,000 households. None when a stored tree is
    not one this reads (the caller then uses mktree).
    """
    entries: dict[str, list[bytes]] = {}
    for folder, data in raw.items():
        found = _RAW_ENTRY.findall(data)
        if sum(map(len, found)) != len(data):
            return None
        entries[folder] = found
    changes: dict[str, dict[bytes, tuple[bytes, bytes] | None]] = {f: {} for f in folders}
    for p in paths:
        folder, _sep, name = p.rpartition("/")
        if p not in blobs:
            changes[folder][name.encode("utf-8", "surrogateescape")] = None
            continue
        if exec_bit:
            mode = b"100755" if os.stat(repo / p).st_mode & stat.S_IXUSR else b"100644"
        else:
            old = _entry_at(entries[folder], name.encode("utf-8", "surrogateescape"))
            old_mode = old.partition(b" ")[0] if old is not None else b"100644"
            mode = old_mode if old_mode in (b"100644", b"100755") else b"100644"
        changes[folder][name.encode("utf-8", "surrogateescape")] = (mode, bytes.fromhex(blobs[p]))
    for folder in sorted(folders - {""}, key=lambda f: -f.count("/")):  # the deepest first
        parent, _sep, name = folder.rpartition("/")
        listed = _splice(entries[folder], changes[folder])
        key = name.encode("utf-8", "surrogateescape")
        changes[parent][key] = (b"40000", bytes.fromhex(_write_tree(objects, listed))) if listed else None
    return _write_tree(objects, _splice(entries[""], changes[""]))


def _entry_index(entries: list[bytes], name: bytes) -> int | None:
    """Where the entry of that name (a file's or a folder's) is in entries (sorted as git keeps them), or None."""
    import bisect

    for key in (name, name + b"/"):
        at = bisect.bisect_left(entries, key, key=_entry_key)
        if at < len(entries) and _entry_key(entries[at]) == key:
            return at
    return None


def _entry_at(entries: list[bytes], name: bytes) -> bytes | None:
    """The entry of that name (a file's or a folder's), or None."""
    at = _entry_index(entries, name)
    return None if at is None else entries[at]


def _splice(entries: list[bytes], changes: dict[bytes, tuple[bytes, bytes] | None]) -> list[bytes]:
    """entries (sorted as git keeps them) with each changed name taken out, then put in anew where it sorts."""
    import bisect

    for name, new in changes.items():
        at = _entry_index(entries, name)
        if at is not None:
            del entries[at]
        if new is not None:
            entry = new[0] + b" " + name + b"\0" + new[1]
            entries.insert(bisect.bisect_left(entries, _entry_key(entry), key=_entry_key), entry)
    return entries


def _write_tree(objects: Path, entries: list[bytes]) -> str:
    """Store a tree object of entries (sorted) as a loose object, as `git mktree` would; its id.

    Like mktree with git's default core.fsync, the object is not synced: the commit naming it is
    journaled durably before HEAD moves to it (archive.Transaction.commit).
    """
    import hashlib
    import tempfile
    import zlib

    data = b"".join(entries)
    whole = b"tree %d\0" % len(data) + data
    tree = hashlib.sha1(whole, usedforsecurity=False).hexdigest()
    folder = objects / tree[:2]
    target = folder / tree[2:]
    if target.exists():
        return tree
    folder.mkdir(exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix="tmp_obj_", dir=objects)
    with open(fd, "wb") as fh:
        fh.write(zlib.compress(whole, 1))
        os.fchmod(fh.fileno(), 0o444)
    os.rename(temp, target)
    return tree


def _tree_entries(data: bytes) -> dict[str, tuple[str, str]]:
    """A tree object's entries: name -> (mode, object id)."""
    entries = {}
    at = 0
    while at < len(data):
        space = data.index(b" ", at)
        nul = data.index(b"\0", space)
        mode, name = data[at:space].decode(), data[space + 1 : nul].decode("utf-8", "surrogateescape")
        entries[name] = (mode, data[nul + 1 : nul + 21].hex())
        at = nul + 21
    return entries


_KINDS = {"40000": "tree", "160000": "commit"}  # the object type of a tree entry by its mode (else blob)


class _TreeWriter:
    """One `git mktree --batch -z`: writes a tree per call (mktree sorts and checks every entry exists)."""

    def __init__(self, repo: Path):
        self._proc = subprocess.Popen(
            ["git", "-C", str(repo), "mktree", "--batch", "-z"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **_BASE_ENV},
            pass_fds=tuple(_INHERITED_FDS),
        )

    def write(self, entries: dict[str, tuple[str, str]]) -> str:
        assert self._proc.stdin and self._proc.stdout
        lines = b"".join(
            f"{mode} {_KINDS.get(mode, 'blob')} {oid}\t".encode() + name.encode("utf-8", "surrogateescape") + b"\0"
            for name, (mode, oid) in entries.items()
        )
        try:
            self._proc.stdin.write(lines + b"\0")
            self._proc.stdin.flush()
        except BrokenPipeError:
            pass
        tree = self._proc.stdout.readline().decode().strip()
        if len(tree) < 40:
            self.close()
            stderr = self._proc.stderr.read() if self._proc.stderr else b""
            raise ArchiveError(_("git mktree failed: {first_line}").format(first_line=_first_line(stderr)))
        return tree

    def close(self) -> None:
        if self._proc.stdin and not self._proc.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self._proc.stdin.close()
        self._proc.wait()


def move_head(repo: Path, commit: str, parent: str | None, message: str) -> None:
    """Point HEAD's branch at commit, only if it still points at parent (nobody moved it meanwhile)."""
    subject = message.splitlines()[0] if message else ""
    moved = run(repo, "update-ref", "-m", f"commit: {subject}", "HEAD", commit, parent or "", check=False)
    if moved.returncode != 0:
        raise ArchiveError(
            _("HEAD moved while committing; nothing was committed ({first_line})").format(
                first_line=_first_line(moved.stderr)
            )
        )


def in_reflog(repo: Path, commit: str, ref: str = "HEAD") -> bool:
    """True when ref once pointed at commit (its reflog says so)."""
    proc = run(repo, "log", "-g", "--format=%H", ref, "--", check=False)
    return commit in proc.stdout.decode().split()


def ls_files(repo: Path, *pathspecs: str) -> list[str]:
    """Tracked paths matching the pathspecs (git glob syntax)."""
    text = run(repo, "ls-files", "-z", "--", *pathspecs).stdout.decode("utf-8")
    return [p for p in text.split("\0") if p]


def ls_files_stage(repo: Path, *pathspecs: str) -> list[tuple[str, str]]:
    """(blob id, path) for tracked paths: the blob id names the content for caching."""
    text = run(repo, "ls-files", "-s", "-z", "--", *pathspecs).stdout.decode("utf-8")
    rows = []
    for entry in text.split("\0"):
        if entry:
            meta, path = entry.split("\t", 1)
            rows.append((meta.split()[1], path))
    return rows


def tracked_links(repo: Path) -> list[str]:
    """Tracked paths that are symbolic links (mode 120000) in the index."""
    text = run(repo, "ls-files", "-s", "-z").stdout.decode("utf-8")
    return [e.split("\t", 1)[1] for e in text.split("\0") if e.startswith("120000 ")]


def show_blob(repo: Path, rev: str, path: str) -> bytes | None:
    """A file's content at rev, or None when it does not exist there."""
    proc = run(repo, "cat-file", "blob", f"{rev}:{path}", check=False)
    return proc.stdout if proc.returncode == 0 else None


@dataclass(frozen=True)
class LogEntry:
    """One commit as history and verify see it."""

    commit: str
    parents: tuple[str, ...]
    committer_date: str
    signer_status: str
    signer_key: str
    subject: str
    trailers: dict[str, str]


_FIELD = "%x1f"
_RECORD = "%x1e"


def log(repo: Path, *args: str, with_signatures: bool = False) -> list[LogEntry]:
    """Commits selected by git-log args, newest first, with trailers parsed."""
    sig = "%G?" + _FIELD + "%GF" if with_signatures else "N" + _FIELD
    fmt = _FIELD.join(["%H", "%P", "%cI", sig, "%s", "%(trailers:only,unfold)"]) + _RECORD
    text = run(repo, "log", f"--format={fmt}", *args).stdout.decode("utf-8", "replace")
    entries = []
    for chunk in text.split("\x1e"):
        chunk = chunk.strip("\n")
        if not chunk:
            continue
        commit, parents, date, status, key, subject, trailer_text = chunk.split("\x1f")
        trailers: dict[str, str] = {}
        for line in trailer_text.splitlines():
            if ":" in line:
                k, v = line.split(":", 1)
                trailers.setdefault(k.strip(), v.strip())
        entries.append(LogEntry(commit, tuple(parents.split()), date, status, key, subject, trailers))
    return entries


def path_history(repo: Path, path: str, rev: str = "HEAD") -> list[tuple[str, tuple[str, ...], str]]:
    """(commit, parents, committer ISO date) of commits of rev that changed path, newest first."""
    text = out(repo, "log", "--format=%H%x1f%P%x1f%cI", rev, "--", path)
    rows = []
    for line in text.splitlines():
        commit, parents, date = line.split("\x1f")
        rows.append((commit, tuple(parents.split()), date))
    return rows


def committer_date(repo: Path, commit: str) -> str:
    """A commit's committer date, ISO 8601."""
    return out(repo, "log", "-1", "--format=%cI", commit)


def first_parent_line(repo: Path, rev: str = "HEAD") -> list[str]:
    """The main line: rev and its first parents, newest first."""
    return out(repo, "rev-list", "--first-parent", rev).split()


def first_mainline_containing(repo: Path, commit: str, rev: str = "HEAD") -> str | None:
    """The oldest main-line (first-parent) commit of rev that contains commit (itself if on the line)."""
    if commit in set(first_parent_line(repo, rev)):
        return commit
    later = out(repo, "rev-list", "--first-parent", "--ancestry-path", f"{commit}..{rev}").split()
    return later[-1] if later else None


def bundle_create(repo: Path, target: Path) -> None:
    """A git bundle of every ref."""
    run(repo, "bundle", "create", "-q", str(target), "--all")


def bundle_verify(bundle: Path) -> None:
    """ArchiveError unless the bundle is complete and readable."""
    proc = run(None, "bundle", "verify", "-q", str(bundle), check=False)
    if proc.returncode != 0:
        raise ArchiveError(
            _("the backup's git bundle does not verify: {first_line}").format(first_line=_first_line(proc.stderr))
        )


def clone(source: str, target: Path, branch: str | None = None) -> None:
    """Clone source (a path, URL or bundle) into target."""
    args = ["clone", "-q"] + (["-b", branch] if branch else []) + [source, str(target)]
    run(None, *args)


class BlobReader:
    """One long-lived `git cat-file --batch` for reading many blobs quickly."""

    def __init__(self, repo: Path):
        self._proc = subprocess.Popen(
            ["git", "-C", str(repo), "cat-file", "--batch"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**os.environ, **_BASE_ENV},
            pass_fds=tuple(_INHERITED_FDS),
        )

    def read(self, spec: str) -> bytes | None:
        """Content of an object named by id or rev:path, or None if it does not exist."""
        assert self._proc.stdin
        self._proc.stdin.write(spec.encode("utf-8") + b"\n")
        self._proc.stdin.flush()
        return self._receive()

    def _receive(self) -> bytes | None:
        """The next answer of cat-file --batch: content, or None for a missing object."""
        found = self._receive_typed()
        return found[1] if found else None

    def _receive_typed(self) -> tuple[str, bytes] | None:
        """The next answer of cat-file --batch: (object type, content), or None for a missing object."""
        assert self._proc.stdout
        header = self._proc.stdout.readline().decode("utf-8", "replace").split()
        if len(header) < 3 or header[1] == "missing":
            return None
        data = self._proc.stdout.read(int(header[2]))
        self._proc.stdout.read(1)  # the newline after the content
        return header[1], data

    def read_many_typed(self, specs: list[str]) -> list[tuple[str, bytes] | None]:
        """(type, content) of a few objects, or None for each missing one (all asked at once)."""
        assert self._proc.stdin
        self._proc.stdin.write(b"".join(s.encode("utf-8") + b"\n" for s in specs))
        self._proc.stdin.flush()
        return [self._receive_typed() for _ in specs]

    def read_many(self, specs: list[str]) -> Iterator[bytes | None]:
        """Contents of many objects, in order; requests are written ahead from a thread (no ping-pong)."""
        import threading

        assert self._proc.stdin
        stdin = self._proc.stdin

        def feed() -> None:
            stdin.write(b"".join(s.encode("utf-8") + b"\n" for s in specs))
            stdin.flush()

        writer = threading.Thread(target=feed, daemon=True)
        writer.start()
        for _spec in specs:
            yield self._receive()
        writer.join()

    def close(self) -> None:
        if self._proc.stdin:
            self._proc.stdin.close()
        self._proc.wait()

    def __enter__(self) -> BlobReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class Change:
    """One file changed by a commit (against its first parent), from `git log --raw`."""

    status: str
    old_blob: str
    new_blob: str
    path: str
    new_mode: str = "100644"


@dataclass(frozen=True)
class CommitInfo:
    """A commit as verify needs it: signature, dates, trailers, and what it changed."""

    commit: str
    parents: tuple[str, ...]
    committer_date: str
    signature: str
    fingerprint: str
    principal: str
    subject: str
    trailers: dict[str, tuple[str, ...]]
    changes: tuple[Change, ...]

    def trailer(self, key: str) -> str | None:
        """The first value of a trailer, or None."""
        values = self.trailers.get(key)
        return values[0] if values else None


def parse_trailers(text: str) -> dict[str, tuple[str, ...]]:
    """`Key: value` lines (as %(trailers:only,unfold) prints them) to every value of each key."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if ":" in line:
            key, value = line.split(":", 1)
            found.setdefault(key.strip(), []).append(value.strip())
    return {k: tuple(v) for k, v in found.items()}


def commit_trailers(repo: Path, commit: str) -> dict[str, tuple[str, ...]]:
    """A commit's trailers, every value of each key."""
    return parse_trailers(out(repo, "log", "-1", "--format=%(trailers:only,unfold)", commit))


def commits_for_verify(repo: Path, revs: list[str]) -> list[CommitInfo]:
    """Commits of revs, oldest first, with what each changed, in one git call (signatures left to the caller).

    A merge's changes are its diff against its first parent (--diff-merges=first-parent):
    what it brings to the main line.
    """
    return list(iter_commits_for_verify(repo, revs))


_VERIFY_LOG_FORMAT = "%x1e" + "%x1f".join(["%H", "%P", "%cI", "", "", "", "%s", "%(trailers:only,unfold)"]) + "%x1f"


def iter_commits_for_verify(repo: Path, revs: list[str]) -> Iterator[CommitInfo]:
    """commits_for_verify as a stream: one `git log` read as it prints, so a long history is never held whole."""
    import tempfile

    cmd = ["git", "-C", str(repo), "-c", "core.quotePath=false", "log", "--reverse", "--topo-order"]
    cmd += [f"--format={_VERIFY_LOG_FORMAT}", "--raw", "--no-abbrev", "--no-renames", "--diff-merges=first-parent"]
    cmd += [*revs, "--"]
    with tempfile.TemporaryFile() as errors:
        try:
            proc = subprocess.Popen(
                cmd,
                stdout=subprocess.PIPE,
                stderr=errors,
                env={**os.environ, **_BASE_ENV},
                pass_fds=tuple(_INHERITED_FDS),
            )
        except FileNotFoundError:
            raise ArchiveError(_("git is not installed or not on PATH")) from None
        assert proc.stdout is not None
        try:
            pending = b""
            while block := proc.stdout.read(1 << 20):
                *whole, pending = (pending + block).split(b"\x1e")
                for chunk in whole:
                    if chunk.strip():
                        yield _commit_for_verify(chunk.decode("utf-8", "replace"))
            if pending.strip():
                yield _commit_for_verify(pending.decode("utf-8", "replace"))
            if proc.wait() != 0:
                errors.seek(0)
                raise ArchiveError(_("git log failed: {first_line}").format(first_line=_first_line(errors.read())))
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.stdout.close()
            proc.wait()


def _commit_for_verify(chunk: str) -> CommitInfo:
    commit, parents, date, status, fingerprint, principal, subject, trailer_text, raw = chunk.split("\x1f")
    changes = []
    for line in raw.splitlines():
        if line.startswith(":") and "\t" in line:
            meta, path = line.split("\t", 1)
            parts = meta.split()
            changes.append(Change(parts[4][0], parts[2], parts[3], path, parts[1]))
    return CommitInfo(
        commit,
        tuple(parents.split()),
        date,
        status,
        fingerprint,
        principal,
        subject,
        parse_trailers(trailer_text),
        tuple(changes),
    )


def count_commits(repo: Path, revs: list[str]) -> int:
    """How many commits revs select (for a progress bar's total)."""
    return int(out(repo, "rev-list", "--count", *revs, "--") or 0)


def signature_verdicts(repo: Path, commits: list[str], allowed_signers: Path) -> dict[str, tuple[str, str, str]]:
    """git's own %G?, %GF, %GS for commits, checked against an allowed-signers file (one ssh-keygen each)."""
    if not commits:
        return {}
    text = out(
        repo,
        "-c",
        f"gpg.ssh.allowedSignersFile={allowed_signers}",
        "log",
        "--no-walk=unsorted",
        "--format=%H%x1f%G?%x1f%GF%x1f%GS",
        *commits,
    )
    rows = [line.split("\x1f") for line in text.splitlines() if line]
    return {row[0]: (row[1], row[2], row[3]) for row in rows}


def is_ancestor(repo: Path, ancestor: str, descendant: str) -> bool:
    """True when ancestor is reachable from descendant (or is it)."""
    return run(repo, "merge-base", "--is-ancestor", ancestor, descendant, check=False).returncode == 0


def rev_parse(repo: Path, rev: str) -> str | None:
    """The commit id rev names, or None."""
    proc = run(repo, "rev-parse", "-q", "--verify", f"{rev}^{{commit}}", check=False)
    return proc.stdout.decode().strip() or None


def ref_commits(repo: Path, *refs: str) -> dict[str, str]:
    """The commits full ref names (refs/...) point at, peeled as rev_parse peels them; one git for them all.

    A ref that is missing, or names no commit, is left out.
    """
    text = out(
        repo, "for-each-ref", "--format=%(refname) %(objecttype) %(objectname) %(*objecttype) %(*objectname)", *refs
    )
    found = {}
    for line in text.splitlines():
        name, kind, oid, peeled_kind, peeled = line.split(" ", 4)
        if name in refs and (kind == "commit" or peeled_kind == "commit"):
            found[name] = oid if kind == "commit" else peeled
    return found


def current_branch(repo: Path) -> str | None:
    """The branch HEAD is on, or None when detached."""
    proc = run(repo, "symbolic-ref", "-q", "--short", "HEAD", check=False)
    return proc.stdout.decode().strip() or None


def branches(repo: Path) -> list[str]:
    """Local and remote-tracking branch names (refs/heads/x as x, refs/remotes/o/x as o/x)."""
    text = out(repo, "for-each-ref", "--format=%(refname:short)", "refs/heads", "refs/remotes")
    return [b for b in text.splitlines() if b and not b.endswith("/HEAD")]


def is_bare(repo: Path) -> bool:
    """True for a bare repository (a server's)."""
    proc = run(repo, "rev-parse", "--is-bare-repository", check=False)
    return proc.stdout.decode().strip() == "true"


def tree_paths(repo: Path, rev: str, *pathspecs: str) -> list[str]:
    """Every file path in rev's tree under pathspecs."""
    text = run(repo, "ls-tree", "-r", "-z", "--name-only", rev, "--", *pathspecs).stdout.decode("utf-8")
    return [p for p in text.split("\0") if p]


def tree_files(repo: Path, rev: str, *pathspecs: str) -> list[tuple[str, str]]:
    """(path, blob id) of every file in rev's tree under pathspecs.

    Reading a file by its blob id costs one object; by `rev:path`, git walks the
    tree from the top for each, reading every folder on the way (a building of
    2,500 units: 100,000 records took `cat-file` 2 min of CPU in `keys fsck`).
    """
    text = run(repo, "ls-tree", "-r", "-z", rev, "--", *pathspecs).stdout.decode("utf-8")
    found = []
    for entry in text.split("\0"):
        if entry:
            meta, path = entry.split("\t", 1)
            _mode, kind, oid = meta.split()
            if kind == "blob":
                found.append((path, oid))
    return found


def first_parent_dates(repo: Path, rev: str) -> list[tuple[str, str]]:
    """(commit, committer ISO date) along rev's first-parent line, newest first."""
    text = out(repo, "log", "--first-parent", "--format=%H %cI", rev)
    return [tuple(line.split(" ", 1)) for line in text.splitlines() if line]  # type: ignore[misc]


def same_as_in(repo: Path, rev: str, path: str) -> bool:
    """True when the work-tree file path is exactly what rev holds there (content and executable bit).

    Reads one tree entry and hashes one file, where `git status` would read
    the whole index. False also means "cannot tell cheaply": ask dirty_paths.
    """
    listed = run(repo, "ls-tree", "-z", rev, "--", path, check=False).stdout.decode("utf-8", "surrogateescape")
    entry = listed.rstrip("\0")
    if not entry or "\0" in entry or entry.split("\t", 1)[-1] != path:
        return False
    mode, kind, blob = entry.split("\t", 1)[0].split()
    try:
        info = os.lstat(repo / path)
    except OSError:
        return False
    if kind != "blob" or not stat.S_ISREG(info.st_mode) or (mode == "100755") != bool(info.st_mode & stat.S_IXUSR):
        return False
    return hash_files(repo, [path]).get(path) == blob


def changed_paths(
    repo: Path, old: str, new: str, *pathspecs: str, no_index: str | None = None
) -> list[tuple[str, str]]:
    """(A, M or D, path) of files that differ between two commits' trees; costs what differs, not their size.

    no_index: a path under the git directory where no file is. `git diff-tree` reads the index first (for
    attributes, which --name-status does not use): 0.1-0.3 s at 297,000 households, where every record is
    in it. Pointed there, git reads an empty index instead.
    """
    env = {"GIT_INDEX_FILE": no_index} if no_index else None
    args = ("diff-tree", "-r", "-z", "--no-renames", "--name-status", old, new, "--", *pathspecs)
    text = run(repo, *args, env=env).stdout
    fields = text.decode("utf-8", "surrogateescape").split("\0")
    return [(fields[i][:1], fields[i + 1]) for i in range(0, len(fields) - 1, 2) if fields[i]]


def index_stamp(dot_git: Path) -> str | None:
    """Size and trailing checksum of the index file: equal stamps, equal contents. Read from its last
    bytes, not by running git (a write and a report ask it every time, to learn whether it changed).

    None when git is pointed at another index (GIT_INDEX_FILE), there is none, or
    it has no checksum (index.skipHash).
    """
    if os.environ.get("GIT_INDEX_FILE"):
        return None
    try:
        with open(dot_git / "index", "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            if size < 32:
                return None
            fh.seek(size - 20)
            checksum = fh.read(20)
    except OSError:
        return None
    return None if checksum == bytes(20) else f"{size}:{checksum.hex()}"


def tree_at(repo: Path, commit: str, path: str) -> str | None:
    """The id of the tree at path in commit, or None when there is none."""
    # (`rev-parse commit:path^{tree}` would take ^{tree} as part of the path and always fail)
    proc = run(repo, "ls-tree", "-z", commit, "--", path, check=False)
    mode_kind_id, _, name = proc.stdout.partition(b"\t")
    fields = mode_kind_id.split()
    if proc.returncode != 0 or len(fields) != 3 or fields[1] != b"tree" or name.rstrip(b"\0") != path.encode():
        return None
    return fields[2].decode()


def tree_of(repo: Path, commit: str) -> str:
    return out(repo, "rev-parse", f"{commit}^{{tree}}")


def staff_blobs_ever(repo: Path) -> list[str]:
    """Every version of staff.yaml in any ref's history (blob ids)."""
    text = out(repo, "log", "--all", "--format=", "--raw", "--no-abbrev", "--", "staff.yaml")
    blobs = {line.split()[3] for line in text.splitlines() if line.startswith(":")}
    return sorted(b for b in blobs if set(b) != {"0"})


def signed_commit_on(
    repo: Path, parent: str, files: dict[str, str], message: str, signing_key: str, who: Identity
) -> str:
    """A signed commit of parent's tree plus files (path -> blob id), made in a private index: no work tree touched."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="archivectl-index-", dir=git_dir(repo)) as scratch:
        env = {"GIT_INDEX_FILE": str(Path(scratch) / "index")}
        run(repo, "read-tree", parent, env=env)
        listing = "".join(f"100644 {blob}\t{path}\n" for path, blob in sorted(files.items()))
        run(repo, "update-index", "--add", "--index-info", input=listing.encode("utf-8"), env=env)
        tree = run(repo, "write-tree", env=env).stdout.decode().strip()
    people = {
        "GIT_AUTHOR_NAME": who.name,
        "GIT_AUTHOR_EMAIL": who.email,
        "GIT_COMMITTER_NAME": who.name,
        "GIT_COMMITTER_EMAIL": who.email,
    }
    proc = run(
        repo, "-c", "gpg.format=ssh", "-c", f"user.signingkey={signing_key}", "commit-tree", "-S", tree,
        "-p", parent, "-F", "-", input=message.encode("utf-8"), env=people, check=False,
    )  # fmt: skip
    commit = proc.stdout.decode().strip()
    if proc.returncode != 0 or not commit:
        raise ArchiveError(_("signing the commit failed: {first_line}").format(first_line=_first_line(proc.stderr)))
    return commit


# fast-import frees and allocates in small steps, and glibc hands the top of its heap back to
# the system (and asks for it again) each time: 210,000 brk calls for 20,000 files. A higher
# trim threshold keeps that memory: the same 20,000 files in 1.2 s instead of 3.8 s. A
# GLIBC_TUNABLES the user set is left as it is; a C library other than glibc ignores it.
_FAST_IMPORT_MALLOC = "glibc.malloc.trim_threshold=67108864:glibc.malloc.top_pad=16777216"

PRELOAD_REF = "ARCHIVECTL_PRELOAD"  # a pseudo-ref in .git: never listed by for-each-ref, --all or a bundle


class _Fed:
    """A git command fed on stdin by a thread of its own, so that the writer never waits on the pipe.

    A few chunks are queued at most (memory stays flat). The command starts
    with the first chunk; close() waits for it and raises if it failed.
    """

    QUEUED = 8  # chunks waiting for the command at most

    def __init__(self, repo: Path, args: list[str], env: dict[str, str] | None = None):
        self.repo, self.args, self.env = repo, args, env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.feeder: threading.Thread | None = None
        self.queue: queue.Queue[bytes | None] = queue.Queue(maxsize=self.QUEUED)
        self.broken = False

    def send(self, data: bytes) -> None:
        if self.proc is None:
            self._start()
        if self.broken:
            self._failed()
        self.queue.put(data)

    def _start(self) -> None:
        env = {**os.environ, **_BASE_ENV}
        for name, value in self.env.items():
            env.setdefault(name, value)
        try:
            self.proc = subprocess.Popen(
                ["git", "-C", str(self.repo), *self.args],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env=env,
                pass_fds=tuple(_INHERITED_FDS),
            )
        except FileNotFoundError:
            raise ArchiveError(_("git is not installed or not on PATH")) from None
        self.feeder = threading.Thread(target=self._feed, name=f"archivectl-git-{self.args[0]}", daemon=True)
        self.feeder.start()

    def _feed(self) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        while (data := self.queue.get()) is not None:
            if not self.broken:  # after a failure chunks are only taken, so that send() never blocks
                try:
                    self.proc.stdin.write(data)
                except OSError:  # BrokenPipeError: the command stopped reading
                    self.broken = True

    def _failed(self) -> None:
        assert self.proc is not None
        self.proc.wait()
        raise self._failure(_first_line(self.proc.stderr.read()) if self.proc.stderr else "")

    def _failure(self, stderr: str) -> ArchiveError:
        return ArchiveError(
            _("git {command} failed: {problem}").format(command=self.args[0], problem=stderr or "it stopped reading")
        )

    def close(self, kill: bool = False) -> None:
        """The end of the input; wait for the command (kill: stop it first), and raise if it failed."""
        if self.proc is None:
            return
        if kill and self.proc.poll() is None:
            self.proc.kill()  # a feeder blocked on the pipe gets an error and goes on taking chunks
        if self.feeder is not None:
            self.queue.put(None)
            self.feeder.join()
            self.feeder = None
        with contextlib.suppress(OSError):
            self.proc.stdin.close()  # type: ignore[union-attr]
        stderr = _first_line(self.proc.stderr.read()) if self.proc.stderr else ""
        with contextlib.suppress(OSError):
            self.proc.stderr.close()  # type: ignore[union-attr]
        code, self.proc = self.proc.wait(), None
        if not kill and (code != 0 or self.broken):
            raise self._failure(stderr)


class Preload:
    """The blobs of many new files, and the trees that will hold them, put into one pack (a bulk write).

    `update-index` and `write-tree` write one loose object per blob and per
    tree: for 20,000 households some 60,000 files under .git/objects. Here one
    `git fast-import`, fed a file at a time as the files are written, puts them
    into a single pack instead, by building a throw-away, unsigned commit of
    parent's tree plus the files (on a pseudo-ref that is removed at once). The
    index and the signed commit are still made the usual way; git finds each
    object already stored and writes nothing more. Nothing is kept of a file
    but its path. Leaving the `with` without finish() stops fast-import; a
    write that is undone leaves only unreachable objects.
    """

    CHUNK = 256 * 1024  # bytes of blobs handed over at a time

    def __init__(self, repo: Path, parent: str | None):
        self.repo, self.parent = repo, parent
        # --depth=0: no delta of each blob against the one before it (another household's record):
        # 1.15 s of fast-import's CPU against 1.50 s for 20,000 records, for a pack 14% larger
        # (27.6 MB against 24.2 MB) until it is repacked; a push sends them with deltas.
        args = ["fast-import", "--quiet", "--force", "--done", "--depth=0"]
        self.fed = _Fed(repo, args, {"GLIBC_TUNABLES": _FAST_IMPORT_MALLOC})
        self.paths: list[str] = []
        self.chunk: list[bytes] = []
        self.size = 0

    def __enter__(self) -> Preload:
        return self

    def add(self, path: str, data: bytes) -> None:
        self.paths.append(path)
        self.chunk.append(b"blob\nmark :%d\ndata %d\n%s\n" % (len(self.paths), len(data), data))
        self.size += len(data)
        if self.size > self.CHUNK:
            self.fed.send(b"".join(self.chunk))
            self.chunk, self.size = [], 0

    def finish(self) -> None:
        """The commit that holds them all (so that their trees are packed too), and fast-import's end."""
        if not self.paths:
            return
        self.chunk.append(
            b"commit %s\ncommitter archivectl <preload@archivectl.invalid> 0 +0000\ndata 0\n" % PRELOAD_REF.encode()
        )
        if self.parent:
            self.chunk.append(b"from %s\n" % self.parent.encode())
        self.chunk += [b"M 100644 :%d %s\n" % (mark, _fast_import_path(p)) for mark, p in enumerate(self.paths, 1)]
        self.chunk.append(b"\ndone\n")
        self.fed.send(b"".join(self.chunk))
        self.chunk = []
        self.fed.close()

    def __exit__(self, *exc: Any) -> None:
        self.fed.close(kill=True)
        (git_dir(self.repo) / PRELOAD_REF).unlink(missing_ok=True)


class Stager:
    """Stage new files as they are written (`update-index --info-only`): an import's hashing beside its writing.

    Their objects are not written here: Preload packs them, and must have
    finished before the index is used. close() writes the index; it is
    called on the way out of a failed write too (the index is then put back
    with the rest), never killed, so no index.lock is left behind.
    """

    def __init__(self, repo: Path):
        self.fed = _Fed(repo, ["update-index", "--add", "--info-only", "-z", "--stdin"])
        self.chunk: list[bytes] = []

    def add(self, path: str) -> None:
        self.chunk.append(path.encode("utf-8") + b"\0")
        if len(self.chunk) >= 500:
            self.send()

    def send(self) -> None:
        if self.chunk:
            self.fed.send(b"".join(self.chunk))
            self.chunk = []

    def close(self) -> None:
        self.send()
        self.fed.close()


def _fast_import_path(path: str) -> bytes:
    """A path as fast-import reads it: quoted C-style when it holds a character that needs it."""
    raw = path.encode("utf-8")
    if raw.startswith(b'"') or any(c in raw for c in (b"\n", b"\\")) or b" " in raw:
        escaped = raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"').replace(b"\n", b"\\n")
        return b'"' + escaped + b'"'
    return raw


def index_tree(repo: Path, prefix: str) -> str | None:
    """The id of the tree prefix/ as the index holds it (what `git ls-files` lists there), or None.

    `git write-tree --prefix` on a private copy of the index: the index itself is
    never locked (a writer holding index.lock is not disturbed by a report, nor a
    report by it), and subtrees the index's cache-tree already knows cost nothing.
    Trees it has to build go to the object store, as any write-tree's do. None when
    nothing is under prefix, the index holds a conflict, or the copy cannot be made.
    """
    import shutil
    import tempfile

    source = git_dir(repo) / "index"
    proc = None
    for where in (source.parent, None):  # None: the system's temp dir, for a repository this user cannot write
        try:
            with tempfile.TemporaryDirectory(prefix="archivectl-index-", dir=where) as scratch:
                copy = Path(scratch) / "index"
                shutil.copyfile(source, copy)
                env = {"GIT_INDEX_FILE": str(copy)}
                proc = run(repo, "write-tree", f"--prefix={prefix}/", env=env, check=False)
            break
        except OSError:
            continue
    if proc is None:
        return None
    tree = proc.stdout.decode().strip()
    return tree if proc.returncode == 0 and len(tree) >= 40 else None


def tree_entries(repo: Path, tree: str, recursive: bool = False) -> list[tuple[str, str, str]]:
    """(type, object id, path) of a tree's entries: one level, or every file below it with recursive."""
    args = ["ls-tree", "-z", *(["-r"] if recursive else []), tree]
    text = run(repo, *args).stdout.decode("utf-8")
    rows = []
    for entry in text.split("\0"):
        if entry:
            meta, path = entry.split("\t", 1)
            _, kind, oid = meta.split()
            rows.append((kind, oid, path))
    return rows
