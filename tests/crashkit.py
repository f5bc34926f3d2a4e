"""Kill real archivectl processes and check what they leave behind.

Shared by tests/test_crash.py (bounded, in CI) and bench/bench_crash.py (long
runs by hand). Everything is real: child processes, SIGKILL, git, ssh-keygen
signing, age. A kill lands either at a named step of a write
(ARCHIVECTL_TEST_CRASH_AT, see journal.crash_point) or after a random delay.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyrage
import yaml
from conftest import LIVE_RECORD, LIVE_SECRETS, RECORD, SECRETS, Person, World, at, ok_at, process_env, staff_yaml

from archivectl.keystore import ADDRESSED, NUMBER_FILE

READER = "gm01"  # reads every building (P7): whoever can open a household, the gm can
# Steps a write passes (journal.crash_point), in order; "restored" and "settled" are recovery steps.
WRITE_STEPS = [
    "locked",
    "file-journaled",
    "file-written",
    "key-journaled",
    "key-written",
    "staged",
    "signed",
    "before-update-ref",
    "after-update-ref",
    "committed",
]
RECOVERY_STEPS = ["restored", "settled"]


def child_env(world: World, who: str, crash_at: str | None = None, **extra: str) -> dict[str, str]:
    """The environment of an archivectl child acting as who, with its own HOME and TMPDIR to scan later."""
    home, tmp = world.tmp / "home", world.tmp / "tmpdir"
    home.mkdir(exist_ok=True)
    tmp.mkdir(exist_ok=True)
    env = {**process_env(world.people[who]), "HOME": str(home), "TMPDIR": str(tmp), "ARCHIVECTL_LOCK_WAIT": "120"}
    if crash_at:
        env["ARCHIVECTL_TEST_CRASH_AT"] = crash_at
    env.update(extra)
    return env


def spawn(
    world: World, who: str, *args: str, crash_at: str | None = None, archive: Path | None = None, **extra: str
) -> subprocess.Popen:
    """Start `python -m archivectl --archive ROOT args...` as who (ROOT: world's, or archive); output captured."""
    return subprocess.Popen(
        [sys.executable, "-m", "archivectl", "--archive", str(archive or world.root), *args],
        env=child_env(world, who, crash_at, **extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run(
    world: World, who: str, *args: str, crash_at: str | None = None, archive: Path | None = None, **extra: str
) -> subprocess.CompletedProcess:
    """Run archivectl as who to its end (or its crash point)."""
    proc = spawn(world, who, *args, crash_at=crash_at, archive=archive, **extra)
    out, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def killed_at(world: World, step: str, who: str, *args: str) -> None:
    """Run a write that kills itself at step; fail if it did not get there."""
    result = run(world, who, *args, crash_at=step)
    assert result.returncode == -signal.SIGKILL, (step, result.returncode, result.stderr)


# Runs archivectl with one function replaced by a wrapper that kills the process (SIGKILL) just before or
# just after the real call: a kill -9 at a moment that has no crash point of its own. argv: target
# ("module:attribute.path"), "before"|"after", a text the call's arguments must show (or ""), archivectl args.
_KILL_INSIDE = """
import os, runpy, signal, sys
from pkgutil import resolve_name
target, when, only = sys.argv[1:4]
module, _, path = target.partition(":")
*outer, name = path.split(".")
owner = resolve_name(module + (":" + ".".join(outer) if outer else ""))
original = getattr(owner, name)
def killing(*args, **kwargs):
    if only and only not in repr(args):
        return original(*args, **kwargs)
    if when == "before":
        os.kill(os.getpid(), signal.SIGKILL)
    original(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)
setattr(owner, name, killing)
sys.argv = ["archivectl", *sys.argv[4:]]
runpy.run_module("archivectl", run_name="__main__", alter_sys=True)
"""


def killed_inside(world: World, target: str, when: str, who: str, *args: str, only: str = "") -> None:
    """Run archivectl as who, killed just before or after target (module:attr.path) is called; fail if it was not."""
    result = subprocess.run(
        [sys.executable, "-c", _KILL_INSIDE, target, when, only, "--archive", str(world.root), *args],
        env=child_env(world, who),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == -signal.SIGKILL, (target, when, result.returncode, result.stderr)


def wait_stopped(proc: subprocess.Popen, timeout: float = 120) -> None:
    """Wait until a child stopped itself (SIGSTOP at a crash point)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"exited with {proc.returncode} before stopping: {proc.stderr.read()}")
        if _proc_state(proc.pid) == "T":
            return
        time.sleep(0.02)
    raise AssertionError("did not stop in time")


def wait_holding(proc: subprocess.Popen, path: Path, timeout: float = 120) -> None:
    """Wait until a child has path open (archivectl opens the lock file when it asks for the lock)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"exited with {proc.returncode} before opening {path.name}")
        try:
            links = [os.readlink(f"/proc/{proc.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{proc.pid}/fd")]
        except OSError:
            links = []
        if str(path) in links:
            return
        time.sleep(0.02)
    raise AssertionError(f"never opened {path}")


def _proc_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "?"


# ------------------------------------------------------------------ what must hold after recovery


def git_blobs(world: World, names: list[str]) -> list[bytes]:
    """The content of many blobs (object names or rev:path) from one `git cat-file --batch`."""
    if not names:
        return []
    out = subprocess.run(
        ["git", "-C", str(world.root), "cat-file", "--batch"],
        input="".join(f"{n}\n" for n in names).encode(),
        capture_output=True,
        check=True,
    ).stdout
    found, at = [], 0
    for name in names:
        header_end = out.index(b"\n", at)
        header = out[at:header_end].split()
        assert len(header) == 3, (name, header)  # "<object> <type> <size>"; "<name> missing" otherwise
        size = int(header[2])
        found.append(out[header_end + 1 : header_end + 1 + size])
        at = header_end + 1 + size + 1
    return found


def head_records(world: World) -> dict[str, dict]:
    """archive number -> stored record, for every household on HEAD."""
    paths = [
        p for p in world.git("ls-tree", "-r", "--name-only", "HEAD", "households").split() if p.endswith("/record.yaml")
    ]
    blobs = git_blobs(world, [f"HEAD:{p}" for p in paths])
    return {p.split("/")[3]: yaml.load(b, Loader=yaml.CSafeLoader) for p, b in zip(paths, blobs, strict=True)}


def keystore_files(world: World) -> dict[str, bytes]:
    """Every file in the keystore, by path inside it: what a write that did not commit must leave byte-identical."""
    return {str(p.relative_to(world.keys)): p.read_bytes() for p in sorted(world.keys.rglob("*")) if p.is_file()}


def stored_keys(world: World) -> set[tuple[str, str]]:
    """(archive number, recipient) of every addressed key in the keystore (keys/<no>.<recipient>.age)."""
    found = set()
    for path in (world.keys / "keys").iterdir():
        m = ADDRESSED.fullmatch(path.name)
        if m:
            found.add((m["no"], m["recipient"]))
    return found


def reserved_numbers(world: World) -> set[str]:
    """Archive numbers reserved in the keystore (numbers/<no>)."""
    return {p.name for p in (world.keys / "numbers").iterdir() if NUMBER_FILE.fullmatch(p.name)}


def history_keys(world: World) -> tuple[set[tuple[str, str]], set[str]]:
    """What HEAD's history ever held: (archive number, recipient) of every record version, and every number.

    A key a commit on HEAD named may wait in the keystore (a rotation's or purge's old key, until `keys
    shred`); a key or a reserved number no commit ever named was left by a write that did not commit.
    """
    raw = world.git("log", "-m", "--format=", "--raw", "--no-abbrev", "--no-renames", "HEAD", "--", "households")
    blobs: dict[str, str] = {}
    numbers = set()
    for line in raw.splitlines():
        meta, _, path = line.partition("\t")
        parts = path.split("/")
        if len(parts) < 5:
            continue
        numbers.add(parts[3])
        if parts[4] == "record.yaml":
            for blob in meta.split()[2:4]:
                if blob.strip("0"):
                    blobs[blob] = parts[3]
    keys = set()
    for (blob, number), body in zip(blobs.items(), git_blobs(world, list(blobs)), strict=True):
        m = re.search(rb"^recipient: *['\"]?(age1[0-9a-z]+)", body, re.M)
        if m:
            keys.add((number, m[1].decode()))
    return keys, numbers


def _open_key(path: Path, identity) -> pyrage.x25519.Identity:
    text = pyrage.decrypt(path.read_bytes(), [identity]).decode()
    line = next(ln for ln in text.splitlines() if ln.startswith("AGE-SECRET-KEY-"))
    return pyrage.x25519.Identity.from_str(line)


def unreadable(world: World, records: dict[str, dict] | None = None) -> list[str]:
    """Keys a reader cannot open, or that are not the key their address names; households on HEAD whose
    sealed block or attachments do not open with the key their record names."""
    identity = pyrage.ssh.Identity.from_buffer(world.people[READER].key.read_bytes())
    problems = []
    for number, recipient in sorted(stored_keys(world)):  # old keys too: no key may be lost before keys shred
        try:
            key = _open_key(world.keys / "keys" / f"{number}.{recipient}.age", identity)
        except Exception as exc:
            problems.append(f"{number}: key {recipient[:16]}... cannot be opened ({exc.__class__.__name__})")
            continue
        if str(key.to_public()) != recipient:
            problems.append(f"{number}: key {recipient[:16]}... is another key than its address says")
    records = head_records(world) if records is None else records
    documents: list[tuple[str, str, pyrage.x25519.Identity]] = []
    for number, stored in records.items():
        key_file = world.keys / "keys" / f"{number}.{stored.get('recipient')}.age"
        try:
            record_key = _open_key(key_file, identity)
        except Exception as exc:
            problems.append(f"{number}: record key cannot be opened ({exc.__class__.__name__})")
            continue
        if stored.get("sealed"):
            try:
                pyrage.decrypt(stored["sealed"].encode(), [record_key])
            except Exception:
                problems.append(f"{number}: sealed block does not open with the keystore's key")
        home = f"households/{stored['building']}/{stored['unit']}/{number}"
        documents += [(number, f"{home}/{doc['file']}", record_key) for doc in stored.get("documents") or []]
    blobs = git_blobs(world, [f"HEAD:{path}" for _, path, _ in documents])
    for (number, path, record_key), blob in zip(documents, blobs, strict=True):
        try:
            pyrage.decrypt(blob, [record_key])
        except Exception:
            problems.append(f"{number}: {path.rsplit('/', 1)[1]} does not open with the keystore's key")
    return problems


def leftovers(world: World) -> list[str]:
    """Personal data or key material outside the keystore: .git/archivectl, the children's TMPDIR and HOME."""
    found = []
    places = [world.root / ".git" / "archivectl", world.tmp / "tmpdir", world.tmp / "home"]
    for place in places:
        for path in place.rglob("*") if place.exists() else []:
            if not path.is_file():
                continue
            data = path.read_bytes()
            text = data.decode("utf-8", "replace")
            if any(s in text for s in SECRETS + LIVE_SECRETS):
                found.append(f"{path}: personal data in clear")
            if "AGE-SECRET-KEY-" in text or data.startswith(b"age-encryption.org/v1"):
                found.append(f"{path}: key or sealed data outside the keystore")
    return found


def keystore_problems(world: World, records: dict[str, dict] | None = None) -> list[str]:
    """The keystore against HEAD: each household's key at its address, no key or number that no commit made,
    nothing else (a stray file holding a wrapped key would outlive `keys shred`)."""
    found = []
    top = sorted(p.name for p in world.keys.iterdir())
    if top != ["keys", "numbers"]:
        found.append(f"keystore holds more than keys/ and numbers/: {top}")
    for folder, pattern in (("keys", ADDRESSED), ("numbers", NUMBER_FILE)):
        extra = sorted(
            p.name for p in (world.keys / folder).iterdir() if not pattern.fullmatch(p.name) or not p.is_file()
        )
        if extra:
            found.append(f"keystore {folder}/ holds more than {folder}: {extra}")
    stored = stored_keys(world)
    records = head_records(world) if records is None else records
    current = {(n, str(r.get("recipient"))) for n, r in records.items()}
    if current - stored:
        found.append(f"households without their key: {sorted(current - stored)}")
    ever_keys, ever_numbers = history_keys(world)
    if stored - ever_keys:
        found.append(f"keys no commit on HEAD ever named: {sorted(stored - ever_keys)}")
    reserved = reserved_numbers(world)
    if reserved - ever_numbers:
        found.append(f"numbers reserved that no commit on HEAD uses: {sorted(reserved - ever_numbers)}")
    if ever_numbers - reserved:
        found.append(f"numbers used on HEAD without a reservation (P3): {sorted(ever_numbers - reserved)}")
    return found


def problems(world: World) -> list[str]:
    """Everything wrong with the archive after the last command; [] when it is whole."""
    found = []
    fsck = subprocess.run(["git", "-C", str(world.root), "fsck", "--no-dangling"], capture_output=True, text=True)
    if fsck.returncode != 0:
        found.append(f"git fsck: {(fsck.stdout + fsck.stderr).strip()[:300]}")
    if (world.root / ".git/archivectl/journal").exists():
        found.append("a journal is left")
    status = world.git("status", "--porcelain", "--untracked-files=all")
    if status:
        found.append(f"work tree or index differs from HEAD: {status.strip()[:300]}")
    records = head_records(world)
    return found + keystore_problems(world, records) + unreadable(world, records) + leftovers(world)


# ------------------------------------------------------------------ random rounds


def old_archive(tmp: Path, people: dict[str, Person], tombstoned: int = 2) -> World:
    """An archive made 35 days ago (faketime): households with a scan, some tombstoned then (so purge can run)."""
    tmp.mkdir(parents=True, exist_ok=True)
    world = World(tmp, people)
    (tmp / "staff.yaml").write_text(staff_yaml(people))
    result = at(
        world, "-35d", "gm01", "init", str(world.root), "--name", "Crash", "--staff-file", str(tmp / "staff.yaml")
    )
    assert result.returncode == 0, result.stderr
    (tmp / "scan.pdf").write_bytes(b"%PDF scan " + SECRETS[1].encode() + os.urandom(64 * 1024))
    for i in range(tombstoned + 1):
        record = tmp / f"old-{i}.yaml"
        record.write_text((LIVE_RECORD if i == 0 else RECORD).replace('unit: "120', f'unit: "13{i}'))
        why = ["-r", "set-up", "-a", "mgr01"]
        number = ok_at(world, "-35d", "clk01", "add", "--file", str(record), *why).strip()
        ok_at(world, "-35d", "clk01", "attach", number, str(tmp / "scan.pdf"), "--type", "other", *why)
        if i:
            ok_at(world, "-35d", "but01", "tombstone", number, *why)
    ok_at(world, "-35d", "mgr01", "approve", "--yes", "--reason", "set-up")
    return world


def write_commands(world: World, rng: random.Random, round_no: int) -> list[tuple[str, list[str]]]:
    """Every kind of write, with arguments that fit the archive as it stands: (who, args)."""
    records = head_records(world)
    active = sorted(n for n, r in records.items() if r.get("status") == "active")
    pick = rng.choice(active) if active else "HO-2026-99999"
    scan = world.tmp / "scan.pdf"
    if not scan.exists():
        scan.write_bytes(b"%PDF scan " + SECRETS[1].encode() + os.urandom(64 * 1024))
    batch = world.tmp / f"import-{round_no}.yaml"
    units = [f"{rng.randrange(100, 3000):04d}" for _ in range(2)]
    batch.write_text("---\n".join(RECORD.replace('unit: "1203"', f'unit: "{u}"') for u in units))
    single = world.tmp / f"add-{round_no}.yaml"
    single.write_text(RECORD.replace('unit: "1203"', f'unit: "{rng.randrange(100, 3000):04d}"'))
    why = ["-r", f"crash round {round_no}", "-a", "mgr01"]
    return [
        ("clk01", ["add", "--file", str(single), *why]),
        ("but01", ["edit", pick, "--set", f"special_requests=第{round_no}轮请求", *why]),
        ("clk01", ["attach", pick, str(scan), "--type", "other", *why]),
        ("but01", ["tombstone", pick, *why]),
        ("clk01", ["purge", "--eligible", *why]),
        ("gm01", ["recipients", "sync"]),  # re-wraps to main's readers: no commit, so no reason or approver
        ("gm01", ["recipients", "sync", "--rotate", *why]),
        ("clk01", ["import", str(batch), *why]),
        ("mgr01", ["approve", "--yes", "--reason", f"crash round {round_no}"]),
    ]


@dataclass
class Tally:
    """What a run of random rounds did."""

    rounds: int = 0
    commands: int = 0
    killed_at_step: int = 0
    killed_at_random: int = 0
    killed_while_a_journal_waited: int = 0
    completed: int = 0
    by_command: dict[str, int] = field(default_factory=dict)
    losses: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)  # what each command was and how it ended, for a failing round


def kill_somewhere(world: World, rng: random.Random, who: str, args: list[str], tally: Tally) -> None:
    """Run one write and kill it: at a random named step, or after a random delay (maybe it finishes)."""
    tally.commands += 1
    name = args[0] if args[0] != "recipients" else ("rotate" if "--rotate" in args else "rewrap")
    tally.by_command[name] = tally.by_command.get(name, 0) + 1
    pending = (world.root / ".git/archivectl/journal").exists()
    if rng.random() < 0.5:
        # With a killed write's journal waiting, aim at the recovery this command starts with, half the time.
        steps = RECOVERY_STEPS if pending and rng.random() < 0.5 else WRITE_STEPS + RECOVERY_STEPS
        step = rng.choice(steps)
        if step in ("file-journaled", "file-written", "key-journaled", "key-written", "restored"):
            step += f"@{rng.randint(1, 3)}"
        result = run(world, who, *args, crash_at=step)
        tally.log.append(f"{name} killed at {step}: exit {result.returncode} {result.stderr.strip()[-200:]}")
        if result.returncode == -signal.SIGKILL:
            tally.killed_at_step += 1
            tally.killed_while_a_journal_waited += pending
        else:
            tally.completed += 1
        return
    proc = spawn(world, who, *args)
    delay = rng.uniform(0.1, 0.5) if pending else rng.uniform(0.0, 1.5)  # early: the recovery, if any
    time.sleep(delay)
    tally.log.append(f"{name} killed after {delay:.2f} s: exit {proc.poll()}")
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
        tally.killed_at_random += 1
        tally.killed_while_a_journal_waited += pending
    else:
        tally.completed += 1
    proc.communicate()


def crash_round(world: World, rng: random.Random, round_no: int, tally: Tally, check: bool = True) -> None:
    """Kill one or two writes, let one more command run to its end, and check the archive is whole."""
    commands = write_commands(world, rng, round_no)
    who, args = rng.choice(commands)
    kill_somewhere(world, rng, who, args, tally)
    if (world.root / ".git/archivectl/journal").exists() and rng.random() < 0.6:
        who, args = rng.choice(commands)  # this one starts by recovering the first: kill it too, maybe there
        kill_somewhere(world, rng, who, args, tally)
    # approve reads and shows its plan before it takes the lock (HEAD is checked under it), so a refused
    # approve never got to the lock, and a plain recipients sync makes no commit and takes no lock: the
    # command that must settle what the kills left is another write.
    who, args = rng.choice([c for c in commands if c[1][0] != "approve" and c[1] != ["recipients", "sync"]])
    result = run(world, who, *args)
    tally.log.append(f"{args[0]} to its end: exit {result.returncode} {result.stderr.strip()[-300:]}")
    tally.commands += 1
    if result.returncode not in (0, 1) or "Traceback" in result.stderr:
        tally.losses.append(f"round {round_no}: {' '.join(args[:2])} exit {result.returncode}: {result.stderr[-400:]}")
    tally.rounds += 1
    if check:
        tally.losses += [f"round {round_no}: {p}" for p in problems(world)]
