"""Kill real archivectl processes and check what they leave behind.

Shared by tests/test_crash.py (bounded, in CI) and bench/bench_crash.py (long
runs by hand). Everything is real: child processes, SIGKILL, git, ssh-keygen
signing, age. A kill lands either at a named step of a write
(ARCHIVECTL_TEST_CRASH_AT, see archive.crash_point) or after a random delay.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyrage
import yaml
from conftest import LIVE_RECORD, LIVE_SECRETS, RECORD, SECRETS, Person, World, at, ok_at, process_env, staff_yaml

READER = "gm01"  # reads every building (P7): whoever can open a household, the gm can
# Steps a write passes (archive.crash_point), in order; "restored" and "shredded" are recovery steps.
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
RECOVERY_STEPS = ["restored", "shredded", "settled"]


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


def head_records(world: World) -> dict[str, dict]:
    """archive number -> stored record, for every household on HEAD."""
    paths = world.git("ls-tree", "-r", "--name-only", "HEAD", "households").split()
    found = {}
    for path in paths:
        if path.endswith("/record.yaml"):
            found[path.split("/")[3]] = yaml.safe_load(world.git("show", f"HEAD:{path}"))
    return found


def unreadable(world: World) -> list[str]:
    """Households on HEAD whose sealed block or attachments a reader cannot open with the keystore's key."""
    identity = pyrage.ssh.Identity.from_buffer(world.people[READER].key.read_bytes())
    problems = []
    for number, stored in head_records(world).items():
        key_file = world.key_file(number)
        try:
            text = pyrage.decrypt(key_file.read_bytes(), [identity]).decode()
            line = next(ln for ln in text.splitlines() if ln.startswith("AGE-SECRET-KEY-"))
            record_key = pyrage.x25519.Identity.from_str(line)
        except Exception as exc:
            problems.append(f"{number}: record key cannot be opened ({exc.__class__.__name__})")
            continue
        if stored.get("sealed"):
            try:
                pyrage.decrypt(stored["sealed"].encode(), [record_key])
            except Exception:
                problems.append(f"{number}: sealed block does not open with the keystore's key")
        home = f"households/{stored['building']}/{stored['unit']}/{number}"
        for doc in stored.get("documents") or []:
            blob = subprocess.run(
                ["git", "-C", str(world.root), "cat-file", "blob", f"HEAD:{home}/{doc['file']}"],
                capture_output=True,
                check=True,
            ).stdout
            try:
                pyrage.decrypt(blob, [record_key])
            except Exception:
                problems.append(f"{number}: {doc['file']} does not open with the keystore's key")
    return problems


def destroyed(world: World) -> set[str]:
    """Households in HEAD's destruction register (their keys wait for `keys shred`)."""
    found = set()
    for path in world.git("ls-tree", "-r", "--name-only", "HEAD", "registers/destruction").split():
        data = yaml.safe_load(world.git("show", f"HEAD:{path}")) or []
        for entry in data if isinstance(data, list) else [data]:  # month files of old; one entry per file now
            found.add(str(entry.get("archive_no")))
    return found


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
    households = set(head_records(world))
    keys = {p.name.removesuffix(".age") for p in world.keys.iterdir() if p.is_file() and p.suffix == ".age"}
    extra = sorted(p.name for p in world.keys.iterdir() if p.name.startswith(".") or not p.is_file())
    if extra:
        found.append(f"keystore holds more than keys: {extra}")
    if households - keys:
        found.append(f"households without a key: {sorted(households - keys)}")
    if keys - households - destroyed(world):
        found.append(f"keys of no household: {sorted(keys - households - destroyed(world))}")
    return found + unreadable(world) + leftovers(world)


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
        ("gm01", ["recipients", "sync", *why]),
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
        if step in ("file-journaled", "file-written", "key-journaled", "key-written", "restored", "shredded"):
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
    # approve never got to the lock: the command that must settle what the kills left is another write.
    who, args = rng.choice([c for c in commands if c[1][0] != "approve"])
    result = run(world, who, *args)
    tally.log.append(f"{args[0]} to its end: exit {result.returncode} {result.stderr.strip()[-300:]}")
    tally.commands += 1
    if result.returncode not in (0, 1) or "Traceback" in result.stderr:
        tally.losses.append(f"round {round_no}: {' '.join(args[:2])} exit {result.returncode}: {result.stderr[-400:]}")
    tally.rounds += 1
    if check:
        tally.losses += [f"round {round_no}: {p}" for p in problems(world)]
