"""verify against `git log --format=%G?` over the same history, and one `approve`, at 1,000 commits.

Run: python bench/bench_verify.py [--commits 1000]
Commits are reveals and edits made in-process by demo staff (real signatures), every
change signed off by a real approval commit (one per ten edits), as an office works.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine

from archivectl.archive import Archive
from archivectl.ops import approvals, households, reading
from archivectl.ops.common import Approval
from archivectl.ops.demo import acting_as, examples_dir, prepare_people
from archivectl.ops.init import init


def build(base: Path, commits: int) -> Path:
    people = prepare_people(examples_dir(), base / "keys")
    with acting_as(people["gm01"]):
        archive, _ = init(base / "archive", "bench", examples_dir() / "staff.yaml")
    archive = Archive(archive.root)
    with acting_as(people["clk01"]):
        numbers = [
            households.add(archive, households.RecordInput(file=f), Approval("bench", "mgr01"))
            for f in sorted((examples_dir() / "households").glob("*.yaml"))
        ]
    with acting_as(people["mgr01"]):
        approvals.approve(archive, None, "bench approval", lambda plan: True)
    made = 2 + len(numbers)
    edits = 0
    while made < commits - 1:
        number = numbers[made % len(numbers)]
        with acting_as(people["mgr01"]):
            if made % 2:
                reading.reveal(archive, number, "bench look-up")
            else:
                households.edit(
                    archive,
                    number,
                    households.RecordInput(sets=[f"floor={made % 30 + 1}"]),
                    Approval("bench edit", "gm01"),
                    None,
                )
                edits += 1
        made += 1
        if edits == 10 and made < commits - 1:
            with acting_as(people["gm01"]):
                approvals.approve(archive, None, "bench approval", lambda plan: True)
            edits, made = 0, made + 1
    return archive.root, people


def best_of(cmd: list[str], runs: int = 3, env: dict | None = None) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, check=False, capture_output=True, env=env)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--commits", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-verify-") as tmp:
        start = time.perf_counter()
        root, people = build(Path(tmp), args.commits)
        print(f"machine: {machine()}")
        count = subprocess.run(["git", "-C", str(root), "rev-list", "--count", "HEAD"], capture_output=True, text=True)
        print(f"built {count.stdout.strip()} signed commits in {time.perf_counter() - start:.1f} s")
        env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1"}
        git_log = best_of(["git", "-C", str(root), "log", "--format=%G?"], env=env)
        verify = best_of([sys.executable, "-m", "archivectl", "--archive", str(root), "verify"], env=env)
        print(f"git log --format=%G?: {git_log:.2f} s")
        print(f"archivectl verify:    {verify:.2f} s  ({verify / git_log:.2f}x)")
        # the last edits await gm01: time the whole approve command (it verifies the history first)
        gm_env = {**env, "GIT_CONFIG_GLOBAL": str(people["gm01"])}
        cmd = [sys.executable, "-m", "archivectl", "--archive", str(root), "approve", "--yes", "--reason", "bench"]
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, env=gm_env)
        took = time.perf_counter() - start
        print(f"archivectl approve:   {took:.2f} s  ({done.stdout.strip() or done.stderr.strip()})")


if __name__ == "__main__":
    main()
