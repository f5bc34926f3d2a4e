"""verify against `git log --format=%G?` over the same range (issue 5 target: within 2x at 1,000 commits).

Run: python bench/bench_verify.py [--commits 1000]
Commits are reveals and edits made in-process by demo staff (real signatures).
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
from archivectl.ops import households, reading
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
    made = 1 + len(numbers)
    with acting_as(people["mgr01"]):
        while made < commits:
            number = numbers[made % len(numbers)]
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
            made += 1
    return archive.root


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
        root = build(Path(tmp), args.commits)
        print(f"machine: {machine()}")
        print(f"built {args.commits} signed commits in {time.perf_counter() - start:.1f} s")
        env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1"}
        git_log = best_of(["git", "-C", str(root), "log", "--format=%G?"], env=env)
        verify = best_of([sys.executable, "-m", "archivectl", "--archive", str(root), "verify"], env=env)
        print(f"git log --format=%G?: {git_log:.2f} s")
        print(f"archivectl verify:    {verify:.2f} s  ({verify / git_log:.2f}x)")


if __name__ == "__main__":
    main()
