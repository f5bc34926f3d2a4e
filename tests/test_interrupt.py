"""Ctrl-C stops a long command: one true line, exit 130, no traceback, nothing left behind (issue 29 item 4).

A terminal's Ctrl-C is SIGINT to the whole process group: archivectl, its
import workers and every git it runs. Each command here is a real child process
in a group of its own, signalled as a terminal would. How fast it stops is
measured in bench/bench_interrupt.py; here it only has to end.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import World, assert_unchanged
from crashkit import child_env, keystore_files, problems, wait_stopped
from test_import_many import IMPORT, many_csv

ROWS = 3000  # past importing.MIN_PARALLEL: checked and sealed by forked workers, keys stored by a thread
ENDS_WITHIN = 300  # seconds: "it ended", not how fast (a loaded CI machine is slow)
INTERRUPTED = "archivectl: interrupted; nothing was written"


def start(world: World, who: str, *args: str, argv: list[str] | None = None, **extra: str) -> subprocess.Popen:
    """archivectl as who, in a process group of its own (a terminal's job)."""
    return subprocess.Popen(
        [*(argv or [sys.executable, "-m", "archivectl"]), "--archive", str(world.root), *args],
        env=child_env(world, who, **extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def ctrl_c(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGINT)


def keys_stored(world: World) -> int:
    return sum(1 for name in os.listdir(world.keys / "keys") if name.endswith(".age"))


def wait_sealing(world: World, proc: subprocess.Popen, keys_before: int) -> None:
    """Until the import has stored keys: it is sealing and writing, with numbers reserved."""
    deadline = time.monotonic() + ENDS_WITHIN
    while keys_stored(world) <= keys_before:
        assert proc.poll() is None, f"ended before storing a key: {proc.stderr.read() if proc.stderr else ''}"
        assert time.monotonic() < deadline, "stored no key in time"
        time.sleep(0.01)


def assert_interrupted(proc: subprocess.Popen, line: str = INTERRUPTED) -> str:
    """It ended, exit 130, with exactly one line on stderr and no traceback (its workers' neither)."""
    try:
        _out, err = proc.communicate(timeout=ENDS_WITHIN)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise AssertionError("still running long after Ctrl-C") from None
    assert "Traceback" not in err, err
    assert "KeyboardInterrupt" not in err, err
    assert [ln for ln in err.splitlines() if ln.strip()] == [line], err
    assert proc.returncode == 130, (proc.returncode, err)
    return err


def assert_nothing_left(world: World, before: dict, keys_before: dict) -> None:
    """Work tree, HEAD, index and keystore as before: no record, key, number reservation or journal."""
    assert_unchanged(world, before)
    assert keystore_files(world) == keys_before
    assert not (world.root / ".git/archivectl/journal").exists()
    assert not (world.root / ".git/index.lock").exists()
    assert problems(world) == []


@pytest.fixture
def import_args(world: World) -> list[str]:
    return [IMPORT[0], str(many_csv(world, ROWS)), *IMPORT[1:]]


def test_ctrl_c_while_an_import_seals_stops_it_and_leaves_nothing(world: World, import_args: list[str]):  # P3
    before, keys_before = world.snapshot(), keystore_files(world)
    proc = start(world, "clk01", *import_args)
    wait_sealing(world, proc, 0)
    ctrl_c(proc)
    assert_interrupted(proc)
    assert_nothing_left(world, before, keys_before)
    world.add()  # the archive takes the next write as if nothing had happened (its number: the first)
    assert problems(world) == []


def test_a_second_ctrl_c_while_the_import_is_undone_still_leaves_nothing(world: World, import_args: list[str]):  # P3
    """The second Ctrl-C lands in the middle of the undo (the import stops itself there: a crash point)."""
    before, keys_before = world.snapshot(), keystore_files(world)
    proc = start(world, "clk01", *import_args, crash_at="restored:stop")
    wait_sealing(world, proc, 0)
    ctrl_c(proc)
    wait_stopped(proc)  # undoing: some of what it wrote is taken back, not all
    ctrl_c(proc)
    os.killpg(proc.pid, signal.SIGCONT)
    assert_interrupted(proc)
    assert_nothing_left(world, before, keys_before)


def test_ctrl_c_twice_at_once_on_an_import_leaves_nothing(world: World, import_args: list[str]):  # P3
    before, keys_before = world.snapshot(), keystore_files(world)
    proc = start(world, "clk01", *import_args)
    wait_sealing(world, proc, 0)
    ctrl_c(proc)
    time.sleep(0.05)
    ctrl_c(proc)
    assert_interrupted(proc)
    assert_nothing_left(world, before, keys_before)


# Runs archivectl with one function wrapped so that the process stops itself (SIGSTOP) as it is called:
# the test then presses Ctrl-C and lets it go on, so that the interrupt lands inside that function.
# argv: target ("module:attribute.path"), then archivectl's arguments.
_STOP_INSIDE = """
import os, runpy, signal, sys
from pkgutil import resolve_name
target = sys.argv[1]
module, _, path = target.partition(":")
*outer, name = path.split(".")
owner = resolve_name(module + (":" + ".".join(outer) if outer else ""))
original = getattr(owner, name)
def stopping(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGSTOP)
    return original(*args, **kwargs)
setattr(owner, name, stopping)
sys.argv = ["archivectl", *sys.argv[2:]]
runpy.run_module("archivectl", run_name="__main__", alter_sys=True)
"""


def interrupted_inside(world: World, who: str, target: str, *args: str) -> subprocess.Popen:
    """Run archivectl args as who; once it reaches target, Ctrl-C."""
    proc = start(world, who, *args, argv=[sys.executable, "-c", _STOP_INSIDE, target])
    wait_stopped(proc)
    ctrl_c(proc)
    os.killpg(proc.pid, signal.SIGCONT)
    return proc


@pytest.mark.parametrize(
    ("who", "target", "args"),
    [
        ("gm01", "archivectl.ops.verify:keystore_findings", ["verify"]),
        ("mgr01", "archivectl.reports.stats:_counts", ["report", "stats"]),
        ("gm01", "archivectl.ops.keys:_staged_leftovers", ["keys", "fsck"]),
    ],
    ids=["verify", "report", "keys-fsck"],
)
def test_ctrl_c_stops_a_long_read_in_one_line(world: World, household: str, who: str, target: str, args: list[str]):
    before, keys_before = world.snapshot(), keystore_files(world)
    assert_interrupted(interrupted_inside(world, who, target, *args))
    assert_nothing_left(world, before, keys_before)


def test_ctrl_c_during_a_backup_leaves_no_backup_file(world: World, household: str, tmp_path: Path):  # P16
    before, keys_before = world.snapshot(), keystore_files(world)
    out = tmp_path / "backups"
    out.mkdir()
    proc = interrupted_inside(world, "gm01", "archivectl.gitio:bundle_create", "backup", "--into", str(out))
    assert_interrupted(proc)
    assert list(out.iterdir()) == []  # no backup, no partial one
    assert_nothing_left(world, before, keys_before)


def test_ctrl_c_after_a_write_committed_says_it_is_written(world: World, household: str):  # P12
    """Interrupted once its commit is on HEAD (while it tidies up): the line says the change is written."""
    head = world.git("rev-parse", "HEAD").strip()
    review = ["review", household, "-r", "yearly", "-a", "mgr01"]
    proc = interrupted_inside(world, "but01", "archivectl.archive:Transaction._move_households_on", *review)
    assert_interrupted(proc, "archivectl: interrupted after the change was committed; it is written")
    assert world.git("rev-parse", "HEAD~1").strip() == head
    assert problems(world) == []


def test_keys_fsck_names_each_key_a_killed_import_left_as_an_orphan(world: World, household: str):  # P3 P14
    """Killed before the next command could undo it, an import leaves keys in the shared keystore: fsck lists
    each as named by no branch (its number never was main's), and main's own key is no stray."""
    from crashkit import killed_at, stored_keys

    keys_before = stored_keys(world)
    killed_at(world, "key-written@1", "clk01", IMPORT[0], str(many_csv(world, 1200)), *IMPORT[1:])
    left = stored_keys(world) - keys_before
    assert len(left) == 1000  # the first batch
    rows = json.loads(world.ok("aud01", "keys", "fsck", "--format", "json"))
    notes = {(r["archive_no"], r["note"]) for r in rows if "note" in r}
    assert {number for number, _ in notes} == {number for number, _ in left}
    assert {note for _, note in notes} == {"named by no branch here; 0 days old (removable after 7)"}
    assert not [r for r in rows if "problem" in r]
