"""verify against `git log --format=%G?` over the same history, at 1,000 and 100,000 commits (issue 14).

Run: python bench/bench_verify.py [--commits 1000 100000] [--runs 3] [--real]

Each history is an office's: adds by the clerk approved by a manager, edits by the
manager approved by the gm, reveals with their access-register entries, approvals
signed by the approver naming the changes (bench/history.py writes it straight into
git, every commit really signed; --real builds it with archivectl's own commands
instead, ~0.3 s a commit, and also times one `approve`).

git's %G? (one ssh-keygen per commit) takes ~17 minutes at 100,000: above
--git-full commits it is timed over the newest --git-sample commits and scaled,
and the output says so. Figures: best wall time of --runs, CPU (user+sys, with
every child process), and peak RSS of verify's own process and of its git children.
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

MEASURE = """
import resource, sys, time
from pathlib import Path
from archivectl.archive import Archive
from archivectl.ops import verify
report = verify.verify(Archive(Path(sys.argv[1])))
own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
print(report["ok"], report["commits"], own.ru_maxrss // 1024, children.ru_maxrss // 1024)
"""


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    """(wall seconds, CPU seconds of the command and all its children, the finished process)."""
    before = os.times()
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    after = os.times()
    return wall, (after.children_user - before.children_user) + (after.children_system - before.children_system), proc


def git_signatures_cmd(root: Path, commits: int, full: int, sample: int) -> tuple[list[str], float, str]:
    """(command, scale, how): git log --format=%G? over the whole history, or over the newest `sample` commits."""
    from archivectl import yamlio
    from archivectl.staff import Staff, allowed_signers

    signers = root.parent / "allowed_signers"
    signers.write_text(allowed_signers(Staff.from_yaml(yamlio.loads((root / "staff.yaml").read_bytes()))))
    cmd = ["git", "-C", str(root), "-c", f"gpg.ssh.allowedSignersFile={signers}", "log", "--format=%G?"]
    if commits <= full:
        return cmd, 1.0, "whole history"
    return (
        [*cmd, "-n", str(sample)],
        commits / sample,
        f"estimated: the newest {sample} commits timed, x{commits / sample:.0f}",
    )


def measure(size: int, args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix=f"bench-verify-{size}-") as tmp:
        start = time.perf_counter()
        if args.real:
            root, people = build_real(Path(tmp), size)
        else:
            from history import build

            root, people = build(Path(tmp), size, say=lambda _: None)
        count = subprocess.run(["git", "-C", str(root), "rev-list", "--count", "HEAD"], capture_output=True, text=True)
        print(f"\n{count.stdout.strip()} signed commits, built in {time.perf_counter() - start:.0f} s")
        env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1"}
        verify_cmd = [sys.executable, "-m", "archivectl", "--archive", str(root), "verify"]
        git_cmd, scale, how = git_signatures_cmd(root, size, args.git_full, args.git_sample)
        gits, verifies = [], []
        for _ in range(args.runs):  # side by side: git, then verify, run after run
            gits.append(timed(git_cmd, env)[:2])
            verifies.append(timed(verify_cmd, env)[:2])
        git_wall, git_cpu = (x * scale for x in min(gits))
        wall, cpu = min(verifies)
        ok, _, own_rss, git_rss = subprocess.run(
            [sys.executable, "-c", MEASURE, str(root)], capture_output=True, text=True, env=env, check=True
        ).stdout.split()
        print(f"git log --format=%G?: {git_wall:7.2f} s wall, {git_cpu:7.2f} s CPU ({how})")
        print(f"archivectl verify:    {wall:7.2f} s wall, {cpu:7.2f} s CPU  ({wall / git_wall:.3f}x wall, "
              f"{cpu / git_cpu:.3f}x CPU); clean: {ok}")  # fmt: skip
        print(f"peak RSS: verify's process {own_rss} MB, its largest git child {git_rss} MB")
        if args.real:
            gm_env = {**env, "GIT_CONFIG_GLOBAL": str(people["gm01"])}
            cmd = [sys.executable, "-m", "archivectl", "--archive", str(root), "approve", "--yes", "--reason", "bench"]
            took, _, done = timed(cmd, gm_env)
            print(f"archivectl approve:   {took:.2f} s  ({done.stdout.strip() or done.stderr.strip()})")


def build_real(base: Path, commits: int) -> tuple[Path, dict[str, Path]]:
    """The same kind of history made by archivectl's own commands (~0.3 s a commit); the last edits await gm01."""
    from archivectl.archive import Archive
    from archivectl.demo import acting_as, examples_dir, prepare_people
    from archivectl.ops import approvals, households, reading
    from archivectl.ops.common import Approval
    from archivectl.ops.init import init

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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--commits", type=int, nargs="+", default=[1000, 100000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--git-full", type=int, default=5000, help="above this, git's %%G? is timed on a sample")
    parser.add_argument("--git-sample", type=int, default=2000)
    parser.add_argument("--real", action="store_true", help="build with archivectl's commands (slow) and time approve")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    for size in args.commits:
        measure(size, args)


if __name__ == "__main__":
    main()
