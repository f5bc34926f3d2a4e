"""Real archives for tests: real ssh-keygen keys, real git signing, real age.

Each person has their own git config (GIT_CONFIG_GLOBAL), as they would on
their own machine; `cli(person, ...)` runs archivectl as that person.

What many tests start from (people, `world`, `household`, `old_world`, ...) is
built once per run and copied into each test's tmp_path (`as_built`, `once`):
each test still has an archive, keystore and files of its own.
"""

from __future__ import annotations

import compileall
import contextlib
import functools
import hashlib
import os
import pickle
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest
import typer.main
import typer.testing
import yaml
from hypothesis import HealthCheck, settings
from typer.testing import CliRunner

# The suite reads English messages whatever the contributor's locale (tests/test_i18n.py runs the Chinese).
os.environ["ARCHIVECTL_LANG"] = "en"

from archivectl.cli import app

# typer's CliRunner builds the whole command tree again on every invoke (inspecting every command's
# signature: 0.3 s of CPU a call, a third of the suite); a process runs archivectl once, so the
# suite builds the tree once per worker too, as `archivectl` itself does per process.
typer.testing._get_command = functools.cache(typer.main.get_command)


def pytest_configure(config: pytest.Config) -> None:
    """Compile the package's bytecode once, before any worker starts.

    The suite runs `python -m archivectl` (people's commands, git's hooks, merge driver and textconv)
    thousands of times from this checkout. An editable install has no bytecode of its own, and where
    PYTHONDONTWRITEBYTECODE is set (CI machines often set it) no run writes any: each process would
    compile every module it imports again, a third of a small command's CPU. A wheel install has its
    bytecode compiled by pip; this gives the checkout the same (__pycache__ is ignored by git).
    """
    if not hasattr(config, "workerinput"):  # the xdist controller, or a run without workers
        compileall.compile_dir(Path(__file__).resolve().parent.parent / "archivectl", quiet=1)


# The files whose tests each take a minute or more of a worker (real servers, browsers, whole office days):
# run first, so the workers share them and the run does not end with one worker alone on one of them.
LONG_FIRST = (
    "test_openbao.py",
    "test_keystore_office.py",
    "test_it_setup.py",
    "test_openbao_cluster.py",
    "test_merge.py",
    "test_forget.py",
    "test_adversary.py",
    "test_desk.py",
    "test_crash.py",
)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto`: one worker more than the machine has cores.

    A test often waits rather than computes: for a real sshd, OpenBao node or browser to start, for a
    killed process's lock to be taken over, for a desk page to answer. With one worker per core those
    waits leave a core idle (on 2 cores the suite used 1.65 of them); a third worker fills them.
    Measured on 2 cores (bench/RESULTS.md): 272 s with 2 workers, 244 s with 3, 244 s with 4.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return cores + 1


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONG_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONG_FIRST)))  # stable: the rest keep their order


# Hypothesis's timing checks are timed assertions: on a loaded machine "input generation is slow" failed
# a property test that passes in 2 s on a quiet one. The suite asserts behaviour, never time.
settings.register_profile("archivectl", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("archivectl")

T = TypeVar("T")

STAFF = [
    # id, name, role, buildings
    ("gm01", "总经理甲", "gm", []),
    ("mgr01", "经理乙", "manager", []),
    ("mgr02", "经理丙", "manager", []),
    ("but01", "管家丁", "butler", ["B03"]),
    ("but02", "管家戊", "butler", ["B05"]),
    ("cas01", "收费员己", "cashier", ["B03"]),
    ("clk01", "客服庚", "clerk", []),
    ("aud01", "审计辛", "auditor", []),
]

# A fictitious owner whose values the leak checks look for.
OWNER_NAME = "欧阳测试"
OWNER_PHONE = "13812345678"
OWNER_ID = "110101198005170011"
RECORD = f"""\
building: B03
floor: 12
unit: "1203"
category: handed-over
occupancy: owner-occupied
customers:
  - role: owner
    name: {OWNER_NAME}
    birth_date: 1980-05-17
    phone: "{OWNER_PHONE}"
    id_type: resident-id
    id_number: "{OWNER_ID}"
    mailing_address: 测试市测试路1号
    hobbies: [围棋]
emergency_contacts:
  - {{name: 李测试, relation: spouse, phone: "13900001111"}}
vehicles:
  - {{plate: 京A12345, parking_space: P2-045}}
handover_date: 2024-03-01
renovation: {{started: 2024-03-15, finished: 2024-05-10, permit_no: ZX-2024-031}}
special_requests: 需要无障碍通道
"""
SECRETS = [OWNER_NAME, OWNER_PHONE, OWNER_ID, "13900001111", "京A12345", "测试市测试路1号", "需要无障碍通道"]


@dataclass
class Person:
    id: str
    key: Path
    pub: str
    gitconfig: Path


def _keygen(path: Path, comment: str) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], check=True)


def make_person(directory: Path, staff_id: str) -> Person:
    """A key pair and a git config that signs with it (user.email deliberately misleading)."""
    directory.mkdir(parents=True, exist_ok=True)
    key = directory / staff_id
    _keygen(key, f"{staff_id}@test")
    config = directory / f"{staff_id}.gitconfig"
    config.write_text(
        f"[user]\n\tname = someone\n\temail = not-{staff_id}@example.invalid\n\tsigningkey = {key}\n"
        "[gpg]\n\tformat = ssh\n[init]\n\tdefaultBranch = main\n"
    )
    return Person(staff_id, key, (directory / f"{staff_id}.pub").read_text().strip(), config)


def load_person(directory: Path, staff_id: str) -> Person:
    """A person make_person made earlier in directory."""
    key = directory / staff_id
    return Person(
        staff_id, key, (directory / f"{staff_id}.pub").read_text().strip(), directory / f"{staff_id}.gitconfig"
    )


# ---------------------------------------------------------------------------------------------- built once (#17)
# What many tests start from (the people, a new archive, an archive with a household, ...) is built once per
# run, by whichever xdist worker needs it first (the others wait on a file lock), kept under the run's temporary
# directory, and copied into each test's tmp_path: every test still gets its own archive, keystore and files.


@pytest.fixture(scope="session")
def built_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory shared by every worker of this run where things built once are kept."""
    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "built-once"
    shared.mkdir(exist_ok=True)
    return shared


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on path (a file) across processes: one worker builds, the others wait."""
    import fcntl

    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def once(built: Path, name: str, build: Callable[[Path], T]) -> tuple[Path, T]:
    """build(directory) run once per test run across workers; its directory (kept) and its return value."""
    directory, value_file = built / name, built / f"{name}.pickle"
    with locked(built / f"{name}.lock"):
        if not value_file.exists():
            shutil.rmtree(directory, ignore_errors=True)  # a build that failed half-way
            directory.mkdir()
            value = build(directory)
            value_file.write_bytes(pickle.dumps(value))
    return directory, pickle.loads(value_file.read_bytes())


@pytest.fixture(scope="session")
def people(built_once: Path) -> dict[str, Person]:
    def build(base: Path) -> list[str]:
        ids = [sid for sid, *_ in STAFF] + ["outsider"]
        for sid in ids:
            make_person(base, sid)
        return ids

    base, ids = once(built_once, "people", build)
    return {sid: load_person(base, sid) for sid in ids}


def staff_yaml(people: dict[str, Person]) -> str:
    lines = ["staff:"]
    for sid, name, role, buildings in STAFF:
        lines += [
            f"  - id: {sid}",
            f"    name: {name}",
            f"    role: {role}",
            f"    buildings: [{', '.join(buildings)}]",
            f"    key: {people[sid].pub}",
            "    active: true",
        ]
    return "\n".join(lines) + "\n"


def process_env(person: Person | None) -> dict[str, str]:
    """os.environ for a child process acting as person (archivectl's own variables cleared)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIVECTL_")}
    env.update({k: v for k, v in person_env(person).items() if v})
    env["ARCHIVECTL_LANG"] = "en"
    return env


class Result:
    def __init__(self, exit_code: int, stdout: str, stderr: str):
        self.exit_code, self.stdout, self.stderr = exit_code, stdout, stderr

    def __repr__(self) -> str:
        return f"Result(exit={self.exit_code}, stdout={self.stdout[:300]!r}, stderr={self.stderr[:300]!r})"


def person_env(person: Person | None) -> dict[str, str | None]:
    return {
        "GIT_CONFIG_GLOBAL": str(person.gitconfig) if person else os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "ARCHIVECTL_IDENTITY": None,
        "ARCHIVECTL_ARCHIVE": None,
        "ARCHIVECTL_KEYSTORE": None,
        "ARCHIVECTL_LOCK_WAIT": None,
        "ARCHIVECTL_KEY_PASSPHRASE": None,
    }


def acting_as(monkeypatch: pytest.MonkeyPatch, person: Person) -> None:
    """This process acts as person (their git config and key), as the CLI would run for them."""
    for key, value in person_env(person).items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)


def counting_forks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """os.fork as it is, each child's pid kept: whether a command shared its work with a forked process."""
    forks: list[int] = []
    real = os.fork

    def fork() -> int:
        pid = real()
        if pid:
            forks.append(pid)
        return pid

    monkeypatch.setattr(os, "fork", fork)
    return forks


class World:
    """An archive plus the people who use it."""

    OWN = ("tmp", "people", "root", "keys")  # what every World has; other attributes are a fixture's

    def __init__(self, tmp: Path, people: dict[str, Person]):
        self.tmp = tmp
        self.people = people
        self.root = tmp / "archive"
        self.keys = tmp / "archive.keys"

    def cli(self, who: str | None, *args: str, env: dict[str, str] | None = None) -> Result:
        """Run archivectl in-process as a person, against this archive."""
        full_env = {**person_env(self.people[who] if who else None), **(env or {})}
        result = CliRunner().invoke(app, ["--archive", str(self.root), *args], env=full_env)
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return Result(result.exit_code, result.stdout, result.stderr)

    def ok(self, who: str, *args: str, **kw) -> str:
        result = self.cli(who, *args, **kw)
        assert result.exit_code == 0, result
        return result.stdout

    def approve(self, *approvers: str, reason: str = "checked the change") -> None:
        """Each approver signs an approval of what awaits them here (approve --yes)."""
        for who in approvers:
            self.ok(who, "approve", "--yes", "--reason", reason)

    def git(self, *args: str, who: str | None = "gm01") -> str:
        env = process_env(self.people.get(who or ""))
        return subprocess.run(
            ["git", "-C", str(self.root), *args], check=True, capture_output=True, text=True, env=env
        ).stdout

    def add(self, who: str = "clk01", approver: str = "mgr01", text: str = RECORD, *extra: str) -> str:
        path = self.tmp / "new-record.yaml"
        path.write_text(text)
        return self.ok(
            who, "add", "--file", str(path), "--reason", "new customer", "--approver", approver, *extra
        ).strip()

    def try_add(self, who: str | None = "clk01", approver: str = "mgr01", env: dict | None = None) -> Result:
        """Attempt to add the test household (RECORD, on a unit that may have one already); the caller checks."""
        path = self.tmp / "r.yaml"
        path.write_text(RECORD)
        args = ["add", "--file", str(path), "--also-active", "--reason", "r", "--approver", approver]
        return self.cli(who, *args, env=env)

    def add_command(self, reason: str = "batch") -> list[str]:
        """The real `python -m archivectl add` of RECORD, for child processes."""
        path = self.tmp / "r.yaml"
        path.write_text(RECORD)
        return [
            sys.executable,
            "-m",
            "archivectl",
            "--archive",
            str(self.root),
            "add",
            "--file",
            str(path),
            "--also-active",  # many households on one unit: these tests are about numbering and crashes
            "--reason",
            reason,
            "--approver",
            "mgr01",
        ]

    def broken_signing_env(self, who: str) -> dict[str, str]:
        """A git config whose signing program fails: git cannot sign, though nothing says so before the commit.

        (A key archivectl can tell is unusable, a .pub or a protected key without an agent, is refused before
        any work: tests/test_keys_words.py.)
        """
        config = self.tmp / f"{who}-broken.gitconfig"
        config.write_text(
            f"[user]\n\tsigningkey = {self.people[who].key}\n[gpg]\n\tformat = ssh\n"
            f'[gpg "ssh"]\n\tprogram = {shutil.which("false") or "/bin/false"}\n'
        )
        return {"GIT_CONFIG_GLOBAL": str(config), "SSH_AUTH_SOCK": "/nonexistent"}

    def key_file(self, number: str) -> Path:
        """The record key the household's record names now (keys/<no>.<recipient>.age; after a
        rotation the old one waits for `keys shred` beside it)."""
        records = list(self.root.glob(f"households/*/*/{number}/record.yaml"))
        if records:
            recipient = yaml.safe_load(records[0].read_text()).get("recipient")
            return self.keys / "keys" / f"{number}.{recipient}.age"
        found = sorted((self.keys / "keys").glob(f"{number}.age1*.age"))
        assert len(found) == 1, f"{number}: {len(found)} keys in the keystore"
        return found[0]

    def key_files(self) -> list[Path]:
        """Every record key in the keystore."""
        return sorted((self.keys / "keys").glob("*.age"))

    def snapshot(self) -> dict:
        """Everything a failed command must leave alone: HEAD, status, index, tree, keystore."""
        files = {}
        for base in (self.root, self.keys):
            for p in sorted(base.rglob("*")) if base.exists() else []:
                rel = str(p.relative_to(self.tmp))
                if "/.git/" in f"/{rel}/":
                    continue
                if p.is_file():
                    files[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
        return {
            "head": self.git("rev-parse", "HEAD").strip(),
            "status": self.git("status", "--porcelain", "--untracked-files=all"),
            # the index's entries; its stat cache may be refreshed by any git command
            "index": self.git("ls-files", "--stage"),
            "files": files,
        }

    def all_git_objects(self) -> bytes:
        return subprocess.run(
            ["git", "-C", str(self.root), "cat-file", "--batch-all-objects", "--batch"],
            check=True,
            capture_output=True,
        ).stdout

    def signature_status(self, rev: str = "HEAD") -> str:
        return self.git("log", "-1", "--format=%G?", rev).strip()

    def trailers(self, rev: str = "HEAD") -> dict[str, str]:
        text = self.git("log", "-1", "--format=%(trailers:only,unfold)", rev)
        return dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)


def new_world(tmp_path: Path, people: dict[str, Person], built: Path) -> World:
    """An empty World in tmp_path for as_built (its own copy of people: a test may add someone)."""
    w = World(tmp_path, dict(people))
    w._built, w._foreign = built, set(os.listdir(tmp_path))
    return w


def as_built(world: World, name: str, build: Callable[[], T]) -> T:
    """Put world as build() leaves it, and return what build returned.

    The first test of the run to ask runs build() on its own world and keeps a copy of what the world's
    fixtures made in its tmp_path, with the world's attributes and build's value; every later test gets
    that copy in its own tmp_path (absolute paths in git configs and the like pointed at it).
    """
    built_here = False

    def keep(directory: Path) -> dict:
        nonlocal built_here
        built_here = True
        value = build()
        names = sorted(set(os.listdir(world.tmp)) - world._foreign)
        for entry in names:
            _copy(world.tmp / entry, directory / entry)
        attrs = {k: v for k, v in vars(world).items() if not k.startswith("_") and k not in World.OWN}
        return {"at": str(world.tmp), "names": names, "attrs": attrs, "value": value}

    directory, kept = once(world._built, name, keep)
    if built_here:
        return kept["value"]
    for entry in kept["names"]:
        target = world.tmp / entry
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        _copy(directory / entry, target)
        _repoint(target, kept["at"], str(world.tmp))
    for key, value in kept["attrs"].items():
        if isinstance(value, Path) and value.is_relative_to(kept["at"]):
            value = world.tmp / value.relative_to(kept["at"])
        setattr(world, key, value)
    return kept["value"]


def _copy(source: Path, target: Path) -> None:
    if source.is_dir() and not source.is_symlink():
        shutil.copytree(source, target, symlinks=True)
    else:
        shutil.copy2(source, target, follow_symlinks=False)


def _repoint(path: Path, old: str, new: str) -> None:
    """Rewrite old/ as new/ in the small files under path (git configs, remotes, ssh configs); objects stay."""
    before, after = f"{old}/".encode(), f"{new}/".encode()
    for directory, dirs, files in os.walk(path) if path.is_dir() else [(str(path.parent), [], [path.name])]:
        dirs[:] = [d for d in dirs if d != "objects"]  # git objects are compressed: no path reads plainly there
        for name in files:
            file = Path(directory, name)
            if file.is_symlink() or file.stat().st_size > 1 << 20:
                continue
            data = file.read_bytes()
            if before in data:
                mode = file.stat().st_mode
                file.chmod(mode | 0o200)
                file.write_bytes(data.replace(before, after))
                file.chmod(mode)


def found_world(w: World) -> None:
    """gm01 founds the test archive in w."""
    staff_file = w.tmp / "staff.yaml"
    staff_file.write_text(staff_yaml(w.people))
    result = CliRunner().invoke(
        app,
        ["init", str(w.root), "--name", "Test Estate", "--staff-file", str(staff_file)],
        env=person_env(w.people["gm01"]),
    )
    assert result.exit_code == 0, result.output
    without_client_hooks(w.root)


def without_client_hooks(root: Path) -> None:
    """Take away the hooks `init` installs: the tests' hand-made commits stand for someone who skips them
    (git commit --no-verify), which is what verify and the server are there for (tests/test_it_setup.py
    checks that init installs them)."""
    for name in ("pre-commit", "pre-push"):
        (root / ".git" / "hooks" / name).unlink(missing_ok=True)


@pytest.fixture
def world(tmp_path: Path, people: dict[str, Person], built_once: Path) -> World:
    """A freshly initialised archive, founded by gm01 (founded once per run, copied here)."""
    w = new_world(tmp_path, people, built_once)
    as_built(w, "world", lambda: found_world(w))
    return w


@pytest.fixture
def household(world: World) -> str:
    """The test household (RECORD) added to world by clk01, approved by mgr01; its archive number."""
    return as_built(world, "household", world.add)


def assert_unchanged(world: World, before: dict) -> None:
    """The archive is byte-for-byte as it was: HEAD, status, index, work tree, keystore."""
    after = world.snapshot()
    assert after["head"] == before["head"]
    assert after["status"] == before["status"]
    assert after["index"] == before["index"]
    assert after["files"] == before["files"]


def assert_refused(result: Result, code: int, *words: str) -> None:
    """Refused with the documented exit code and one line naming the problem."""
    assert result.exit_code == code, result
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result
    assert lines[0].startswith("archivectl: error:"), result
    for word in words:
        assert word in lines[0], result
    assert "Traceback" not in result.stderr


def no_secrets_in(text: str | bytes) -> list[str]:
    """The test owner's personal values found in text."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return [s for s in SECRETS if s in text]


def on_terminal(argv: list[str], env: dict[str, str], prompt: bytes, answer: bytes, cwd: Path | None = None):
    """Run argv on a pseudo-terminal of its own, type answer once prompt shows; return (exit code, screen)."""
    import pty
    import time

    pid, fd = pty.fork()
    if pid == 0:  # the child, on its own terminal
        if cwd is not None:
            os.chdir(cwd)
        os.execve(argv[0], argv, env)
    seen = b""
    deadline = time.monotonic() + 60
    while prompt not in seen and time.monotonic() < deadline:
        try:
            seen += os.read(fd, 1024)
        except OSError:
            break
    os.write(fd, answer)
    while time.monotonic() < deadline:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), seen


def have(tool: str) -> bool:
    return shutil.which(tool) is not None


LIVE_NAME, LIVE_PHONE, LIVE_ID = "司马活人", "13755556666", "11010519491231002X"
LIVE_RECORD = (
    RECORD.replace("欧阳测试", LIVE_NAME)
    .replace("13812345678", LIVE_PHONE)
    .replace("110101198005170011", LIVE_ID)
    .replace("1980-05-17", "1949-12-31")
    .replace('unit: "1203"', 'unit: "1204"')
    .replace("13900001111", "13900002222")
    .replace("京A12345", "京B54321")
    .replace("测试市测试路1号", "活人路2号")
    .replace("需要无障碍通道", "活人请求")
)
LIVE_SECRETS = [LIVE_NAME, LIVE_PHONE, LIVE_ID]


def at(world: World, offset: str | None, who: str, *args: str) -> subprocess.CompletedProcess:
    """Run the real archivectl as a person, under faketime's offset (e.g. '-35d') if given."""
    env = {**process_env(world.people[who]), "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
    cmd = [sys.executable, "-m", "archivectl", *args]
    if offset:
        cmd = ["faketime", "-f", offset, *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)


def ok_at(world: World, offset: str | None, who: str, *args: str) -> str:
    result = at(world, offset, who, "--archive", str(world.root), *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def old_world(tmp_path: Path, people, built_once: Path) -> World:
    """An archive whose whole history was made 35 days ago: two households, one tombstoned then."""
    if shutil.which("faketime") is None:
        pytest.skip("faketime missing: apt-get install faketime")
    w = new_world(tmp_path, people, built_once)
    as_built(w, "old_world", lambda: found_old_world(w))
    return w


def found_old_world(w: World) -> None:
    """old_world's history, made under faketime 35 days ago (w.doomed, w.live: its two households)."""
    tmp_path, people = w.tmp, w.people
    (tmp_path / "staff.yaml").write_text(staff_yaml(people))
    result = at(w, "-35d", "gm01", "init", str(w.root), "--name", "Old", "--staff-file", str(tmp_path / "staff.yaml"))
    assert result.returncode == 0, result.stderr
    without_client_hooks(w.root)
    (tmp_path / "doomed.yaml").write_text(RECORD)
    (tmp_path / "live.yaml").write_text(LIVE_RECORD)
    w.doomed = ok_at(
        w, "-35d", "clk01", "add", "--file", str(tmp_path / "doomed.yaml"), "-r", "new", "-a", "mgr01"
    ).strip()
    (tmp_path / "scan.pdf").write_bytes(b"scan with " + SECRETS[1].encode())
    ok_at(
        w,
        "-35d",
        "clk01",
        "attach",
        w.doomed,
        str(tmp_path / "scan.pdf"),
        "--type",
        "owner-id-copy",
        "-r",
        "scan",
        "-a",
        "mgr01",
    )
    w.live = ok_at(w, "-35d", "clk01", "add", "--file", str(tmp_path / "live.yaml"), "-r", "new", "-a", "mgr01").strip()
    ok_at(w, "-35d", "but01", "tombstone", w.doomed, "--reason", "customer asked for deletion", "--approver", "mgr01")
    ok_at(w, "-35d", "mgr01", "approve", "--yes", "--reason", "checked then")
