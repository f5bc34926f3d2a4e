"""SftpBackend against a real OpenSSH server on 127.0.0.1 (tests/sshd.py): no mocks.

Each person has a HOME with their own key, ~/.ssh/config and known_hosts; ssh is pointed at
that config with -F because ssh reads ~ from the passwd entry, not $HOME (see tests/sshd.py).
The server's disk is this machine's, so tests look at what SFTP did with plain Path calls.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sshd import INSTALL_HINT, SSHD, Sshd, free_port, keygen, running_sshd, ssh_command, ssh_home

from archivectl.errors import ArchiveError, UsageError
from archivectl.sftp import SftpBackend

pytestmark = pytest.mark.skipif(not SSHD.exists() or shutil.which("ssh") is None, reason=INSTALL_HINT)

ALIAS = "keys.estate"


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    with running_sshd(tmp_path_factory.mktemp("server")) as server:
        yield server


@dataclass
class Person:
    home: Path
    key: Path
    config: Path


def make_person(sshd: Sshd, where: Path, authorized: bool = True) -> Person:
    """A person with their own key (authorized on the server or not) and SSH setup."""
    key = where / "keys" / "id_ed25519"
    key.parent.mkdir(parents=True)
    public = keygen(key)
    if authorized:
        sshd.authorize(public)
    home = where / "home"
    return Person(home, key, ssh_home(home, sshd, key, ALIAS))


def act_as(person: Person, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the backend's ssh as this person: their HOME and their config, no agent."""
    monkeypatch.setenv("HOME", str(person.home))
    monkeypatch.setenv("ARCHIVECTL_SSH", ssh_command(person.config))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)


@pytest.fixture
def person(sshd: Sshd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Person:
    someone = make_person(sshd, tmp_path / "alice")
    act_as(someone, monkeypatch)
    return someone


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """Where the keystore goes on the server (its parent exists, it does not)."""
    (tmp_path / "srv").mkdir()
    return tmp_path / "srv" / "estate.keys"


@pytest.fixture
def store(person: Person, root: Path) -> Iterator[SftpBackend]:
    with SftpBackend(f"sftp://{ALIAS}{root}") as backend:
        backend.makedirs()
        yield backend


def key_bytes() -> bytes:
    """Something shaped like a wrapped record key: ~300 bytes nobody could guess."""
    return b"age-encryption.org/v1\n" + secrets.token_bytes(278)


def snapshot(directory: Path) -> dict[str, tuple[int, int]]:
    """Every file and directory under directory, with size and mtime."""
    if not directory.exists():
        return {}
    found = {}
    for path in sorted(directory.rglob("*")):
        info = path.lstat()
        found[str(path.relative_to(directory))] = (info.st_size, info.st_mtime_ns)
    return found


# --- the keystore's life ----------------------------------------------------------------


def test_makedirs_then_check(person: Person, root: Path) -> None:
    with SftpBackend(f"sftp://{ALIAS}{root}") as backend:
        with pytest.raises(ArchiveError, match="is missing on the server"):
            backend.check()
        backend.makedirs()
        backend.makedirs()  # again: fine, they exist
        backend.check()
    for folder in (root, root / "keys", root / "numbers"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_create_then_read_back(store: SftpBackend, root: Path) -> None:
    data = key_bytes()
    assert store.create("keys/HO-2026-00001.age1xyz.age", data) is True
    assert store.read("keys/HO-2026-00001.age1xyz.age") == data
    assert (root / "keys" / "HO-2026-00001.age1xyz.age").read_bytes() == data
    assert stat.S_IMODE((root / "keys" / "HO-2026-00001.age1xyz.age").stat().st_mode) == 0o600
    assert store.read("keys/HO-2026-99999.age") is None
    assert store.create("numbers/HO-2026-00001", b"") is True
    assert store.read("numbers/HO-2026-00001") == b""


def test_create_of_an_existing_name_writes_nothing(store: SftpBackend, root: Path) -> None:
    old = key_bytes()
    assert store.create("keys/HO-2026-00002.age", old)
    before = (root / "keys" / "HO-2026-00002.age").stat()
    assert store.create("keys/HO-2026-00002.age", key_bytes()) is False
    assert (root / "keys" / "HO-2026-00002.age").read_bytes() == old
    assert (root / "keys" / "HO-2026-00002.age").stat().st_mtime_ns == before.st_mtime_ns


def test_create_many_and_read_many_2000(store: SftpBackend, root: Path) -> None:
    items = [(f"keys/HO-2026-{n:05d}.age", key_bytes()) for n in range(2000)]
    assert store.create("keys/HO-2026-00007.age", b"already here") is True
    created = store.create_many([*items, ("keys/HO-2026-00001.age", b"twice in one batch")])
    assert created == [n != 7 for n in range(2000)] + [False]
    got = store.read_many([name for name, _ in items] + ["keys/HO-2026-missing.age"])
    assert got[7] == b"already here"
    assert got[:7] + got[8:2000] == [data for _, data in items[:7] + items[8:]]
    assert got[2000] is None
    assert len(list((root / "keys").iterdir())) == 2000


def test_a_failure_inside_a_batch_names_the_item_and_the_connection_stays_usable(
    store: SftpBackend, root: Path
) -> None:
    secret = b"SECRET-KEY-BYTES-" + secrets.token_bytes(16)
    items = [(f"keys/HO-2026-{n:05d}.age", secret) for n in range(100)]
    items[50] = ("nowhere/HO-2026-00050.age", secret)
    with pytest.raises(ArchiveError) as refused:
        store.create_many(items)
    message = str(refused.value)
    assert message == f"keystore sftp://{ALIAS}{root}: create nowhere/HO-2026-00050.age failed: No such file"
    assert "SECRET" not in message
    # Replies still on their way were collected: the same connection answers correctly.
    assert store.read("keys/HO-2026-00000.age") == secret
    assert store.create("keys/HO-2026-after.age", b"x") is True


def test_replace_swaps_the_whole_file_at_once(store: SftpBackend, root: Path) -> None:
    path = root / "keys" / "HO-2026-00003.age"
    old, new = key_bytes(), key_bytes() * 300  # the new one spans several write chunks
    store.replace("keys/HO-2026-00003.age", old)  # a new name is fine too
    with path.open("rb") as reader:  # someone holding the old file keeps reading the old file
        store.replace("keys/HO-2026-00003.age", new)
        assert reader.read() == old  # a rename, not an overwrite in place
    assert store.read("keys/HO-2026-00003.age") == new
    assert sorted(p.name for p in (root / "keys").iterdir()) == ["HO-2026-00003.age"]  # no temporary left


def test_replace_cleans_up_when_the_rename_fails(store: SftpBackend, root: Path) -> None:
    (root / "keys" / "HO-2026-00004.age").mkdir()  # rename(2) cannot put a file over a directory
    (root / "keys" / "HO-2026-00004.age" / "inside").write_bytes(b"")
    with pytest.raises(ArchiveError) as refused:
        store.replace("keys/HO-2026-00004.age", key_bytes())
    assert str(refused.value) == f"keystore sftp://{ALIAS}{root}: replace keys/HO-2026-00004.age failed: Failure"
    assert [p.name for p in (root / "keys").iterdir()] == ["HO-2026-00004.age"]  # the temporary is gone


def test_a_server_without_posix_rename_or_fsync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # sftp-server -P stops offering the refused extensions: a real server lacking them.
    with running_sshd(tmp_path / "plain", "/usr/lib/openssh/sftp-server -P posix-rename,fsync") as server:
        act_as(make_person(server, tmp_path / "bob"), monkeypatch)
        root = tmp_path / "estate.keys"
        with SftpBackend(f"sftp://{ALIAS}{root}") as backend:
            backend.makedirs()
            old = key_bytes()
            assert backend.create("keys/HO-2026-00005.age", old)  # without fsync, as well as it can
            with pytest.raises(ArchiveError) as refused:
                backend.replace("keys/HO-2026-00005.age", key_bytes())
        assert str(refused.value) == (
            f"keystore sftp://{ALIAS}{root}: the server cannot replace a file atomically "
            "(no posix-rename@openssh.com); it needs OpenSSH's sftp-server"
        )
        assert [p.name for p in (root / "keys").iterdir()] == ["HO-2026-00005.age"]
        assert (root / "keys" / "HO-2026-00005.age").read_bytes() == old


def test_list_gives_names_and_mtimes_of_files_only(store: SftpBackend, root: Path) -> None:
    store.create_many([("numbers/HO-2026-00001", b"1"), ("numbers/HO-2026-00002", b"2")])
    os.utime(root / "numbers" / "HO-2026-00001", (1_700_000_000, 1_700_000_000))
    (root / "numbers" / "a-directory").mkdir()
    (root / "numbers" / "a-link").symlink_to(root / "numbers" / "HO-2026-00002")
    listed = store.list("numbers")
    assert [name for name, _ in listed] == ["HO-2026-00001", "HO-2026-00002"]
    assert listed[0][1] == 1_700_000_000.0
    assert listed[1][1] == float(int((root / "numbers" / "HO-2026-00002").stat().st_mtime))
    assert store.list("keys") == []
    assert store.list("no-such-folder") == []
    assert store.list("") == []  # the root holds only folders


def test_remove_overwrites_then_deletes(store: SftpBackend, root: Path) -> None:
    data = key_bytes()
    store.create("keys/HO-2026-00006.age", data)
    path = root / "keys" / "HO-2026-00006.age"
    with path.open("rb") as reader:  # watch the file's own bytes
        assert store.remove("keys/HO-2026-00006.age") is True
        left = reader.read()
    assert len(left) == len(data) and left != data  # overwritten in place before unlinking
    assert not path.exists()
    assert store.remove("keys/HO-2026-00006.age") is False
    assert store.read("keys/HO-2026-00006.age") is None


def test_remove_refuses_what_is_not_a_plain_file(store: SftpBackend, root: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_bytes(b"not a key")
    (root / "keys" / "HO-2026-00008.age").symlink_to(elsewhere)
    with pytest.raises(ArchiveError, match=r"remove keys/HO-2026-00008\.age failed: not a regular file"):
        store.remove("keys/HO-2026-00008.age")
    assert elsewhere.read_bytes() == b"not a key"


def test_a_path_relative_to_the_login_home(person: Person) -> None:
    login_home = Path(pwd.getpwuid(os.getuid()).pw_dir)
    folder = f"archivectl-sftp-test-{secrets.token_hex(6)}"
    try:
        with SftpBackend(f"sftp://{ALIAS}/~/{folder}") as backend:
            backend.makedirs()
            backend.check()
            data = key_bytes()
            assert backend.create("keys/HO-2026-00001.age", data)
            assert backend.read("keys/HO-2026-00001.age") == data
        assert (login_home / folder / "keys" / "HO-2026-00001.age").read_bytes() == data
    finally:
        shutil.rmtree(login_home / folder, ignore_errors=True)


# --- refusals ---------------------------------------------------------------------------


def assert_host_key_refusal(root: Path) -> None:
    with SftpBackend(f"sftp://{ALIAS}{root}") as backend, pytest.raises(ArchiveError) as refused:
        backend.makedirs()
    message = str(refused.value)
    assert f"the host key of {ALIAS} is unknown or has changed" in message
    assert "(nothing was changed)" in message and "\n" not in message
    assert not root.exists()


def test_unknown_host_key_is_refused(person: Person, root: Path) -> None:
    known_hosts = person.home / ".ssh" / "known_hosts"
    known_hosts.write_text("")
    assert_host_key_refusal(root)
    assert known_hosts.read_text() == ""  # ssh did not learn the key on its own


def test_changed_host_key_is_refused(person: Person, root: Path, sshd: Sshd, tmp_path: Path) -> None:
    impostor = keygen(tmp_path / "impostor").split()
    (person.home / ".ssh" / "known_hosts").write_text(f"[127.0.0.1]:{sshd.port} {impostor[0]} {impostor[1]}\n")
    assert_host_key_refusal(root)


def test_a_key_the_server_does_not_know_is_refused(
    sshd: Sshd, root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    act_as(make_person(sshd, tmp_path / "mallory", authorized=False), monkeypatch)
    with SftpBackend(f"sftp://{ALIAS}{root}") as backend, pytest.raises(ArchiveError) as refused:
        backend.makedirs()
    assert str(refused.value) == (
        f"keystore sftp://{ALIAS}{root}: {ALIAS} refused your SSH key (ask the IT person to add it)"
    )
    assert not root.exists()


def test_an_unreachable_server_is_named(person: Person) -> None:
    url = f"sftp://127.0.0.1:{free_port()}/srv/estate.keys"
    with SftpBackend(url) as backend, pytest.raises(ArchiveError) as refused:
        backend.check()
    assert str(refused.value).startswith(f"keystore {url}: cannot reach 127.0.0.1 (ssh: connect to host")


@pytest.mark.parametrize(
    "name", ["../HO-2026-00001.age", "keys/../../etc/passwd", "/etc/passwd", "keys//x", "keys/", "", "keys/./x"]
)
def test_names_that_could_leave_the_root_are_refused(name: str) -> None:
    backend = SftpBackend("sftp://127.0.0.1:1/srv/estate.keys")  # refused before any connection
    for attempt in (
        lambda: backend.create(name, b"x"),
        lambda: backend.create_many([("keys/fine", b"x"), (name, b"x")]),
        lambda: backend.read(name),
        lambda: backend.read_many([name]),
        lambda: backend.replace(name, b"x"),
        lambda: backend.remove(name),
    ):
        with pytest.raises(UsageError, match="must be a relative path"):
            attempt()
    assert backend._session is None


def test_url_forms_become_ssh_command_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ARCHIVECTL_SSH", raising=False)
    plain = SftpBackend("sftp://keys.estate/srv/estate.keys")
    assert plain.command() == ["ssh", "-oBatchMode=yes", "-s", "--", "keys.estate", "sftp"]
    assert plain.root == "/srv/estate.keys"
    full = SftpBackend("sftp://ops@files.example:2222/srv/estate.keys/")
    assert full.command() == ["ssh", "-oBatchMode=yes", "-p", "2222", "-l", "ops", "-s", "--", "files.example", "sftp"]
    assert full.root == "/srv/estate.keys"
    assert SftpBackend("sftp://keys.estate/~/estate.keys").root == "estate.keys"
    monkeypatch.setenv("ARCHIVECTL_SSH", "/opt/ssh -F '/my configs/ssh'")
    assert plain.command()[:3] == ["/opt/ssh", "-F", "/my configs/ssh"]
    for bad in (
        "sftp://ops:hunter2@host/srv/k",
        "ftp://host/srv/k",
        "sftp://host",
        "sftp://host/",
        "sftp://h:x/k",
        "sftp://-oProxyCommand=x/k",
        "sftp://host/~bob/k",
    ):
        with pytest.raises(UsageError):
            SftpBackend(bad)


# --- nothing on the local disk ------------------------------------------------------------


def test_nothing_is_written_on_the_local_disk(
    person: Person, root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "tmpdir"
    scratch.mkdir()
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr(tempfile, "tempdir", None)
    monkeypatch.chdir(workdir)
    login_ssh_dir = Path(pwd.getpwuid(os.getuid()).pw_dir) / ".ssh"
    before = (snapshot(person.home), snapshot(login_ssh_dir), login_ssh_dir.exists())

    with WritesWatched() as writes, SftpBackend(f"sftp://{ALIAS}{root}") as backend:
        backend.makedirs()
        backend.check()
        backend.create("keys/HO-2026-00001.age", key_bytes())
        backend.create_many([(f"keys/HO-2026-{n:05d}.age", key_bytes()) for n in range(2, 50)])
        backend.replace("keys/HO-2026-00001.age", key_bytes())
        backend.read("keys/HO-2026-00001.age")
        backend.read_many(["keys/HO-2026-00002.age", "keys/HO-2026-09999.age"])
        backend.list("keys")
        backend.remove("keys/HO-2026-00002.age")

    assert writes.opened == []
    assert list(scratch.iterdir()) == [] and list(workdir.iterdir()) == []
    assert (snapshot(person.home), snapshot(login_ssh_dir), login_ssh_dir.exists()) == before


class WritesWatched:
    """Records every file this Python process opens for writing while active (audit hook)."""

    _installed = False
    _active: WritesWatched | None = None

    def __init__(self) -> None:
        self.opened: list[str] = []

    @classmethod
    def _hook(cls, event: str, args: tuple) -> None:
        watcher = cls._active
        if watcher is None or event != "open":
            return
        path, mode, flags = args
        writing = (mode is not None and any(c in mode for c in "wax+")) or (
            flags is not None and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
        )
        # An int is an already open descriptor (subprocess wraps its pipes so): no file on disk.
        if writing and not isinstance(path, int) and "__pycache__" not in str(path):
            watcher.opened.append(str(path))

    def __enter__(self) -> WritesWatched:
        if not WritesWatched._installed:
            sys.addaudithook(WritesWatched._hook)  # hooks cannot be removed; it is idle when inactive
            WritesWatched._installed = True
        WritesWatched._active = self
        return self

    def __exit__(self, *exc_info: object) -> None:
        WritesWatched._active = None
