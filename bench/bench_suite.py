"""The test suite (or some of its files) on two checkouts, side by side (issue #17).

    git worktree add --detach /tmp/before main
    python bench/bench_suite.py --before /tmp/before --rounds 2 --workers 2 tests/test_reports.py tests/test_office.py

Runs `python -m pytest -q -n WORKERS --durations=0 FILES` in the --before checkout and in this one
(--after), alternating, ROUNDS times each, and prints per run the wall time, the time tests spent in
set-up (fixtures) and in their calls as pytest reports them, the CPU time of every process the run
waited for, and the pass count; then the best of each side and the ratio after/before. On a shared
machine read the ratios (CPU time least disturbed by others' load), not the times.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
PHASE = re.compile(r"^([0-9.]+)s (setup|call|teardown) ", re.M)
PASSED = re.compile(r"([0-9]+) passed")


def cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(checkout: Path, files: list[str], workers: str) -> dict[str, float]:
    """One pytest run in checkout: wall and CPU seconds (every process it waited for), setup and call seconds."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider", "--durations=0"]
    cmd += ["-n", workers] if workers != "0" else []
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    started, cpu = time.monotonic(), cpu_of_children()
    done = subprocess.run([*cmd, *files], cwd=checkout, capture_output=True, text=True, env=env)
    wall, cpu = time.monotonic() - started, cpu_of_children() - cpu
    sums = {"setup": 0.0, "call": 0.0, "teardown": 0.0}
    for seconds, phase in PHASE.findall(done.stdout):
        sums[phase] += float(seconds)
    passed = PASSED.search(done.stdout.splitlines()[-1] if done.stdout else "")
    if done.returncode != 0:
        print(done.stdout[-3000:], done.stderr[-2000:], file=sys.stderr)
    found = float(passed[1]) if passed else 0.0
    return {"wall": wall, "cpu": cpu, **sums, "passed": found, "rc": float(done.returncode)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="checkout of the code to compare against")
    parser.add_argument("--after", type=Path, default=HERE, help="checkout measured (default: this one)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", default="2", help="pytest-xdist workers: a number, auto, or 0 (no xdist)")
    parser.add_argument("files", nargs="*", default=[], help="test files (default: the whole suite)")
    args = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    print(f"{'round':>5} {'side':>6} {'wall s':>8} {'CPU s':>8} {'setup s':>8} {'call s':>8} {'passed':>6}")
    for round_no in range(1, args.rounds + 1):
        for side, checkout in (("before", args.before), ("after", args.after)):
            r = run(checkout, args.files, args.workers)
            results[side].append(r)
            print(
                f"{round_no:>5} {side:>6} {r['wall']:8.1f} {r['cpu']:8.1f} {r['setup']:8.1f} {r['call']:8.1f}"
                f" {int(r['passed']):>6}" + ("" if r["rc"] == 0 else f"  (exit {int(r['rc'])})"),
                flush=True,
            )
    for key in ("wall", "cpu", "setup", "call"):
        before, after = (min(r[key] for r in results[side]) for side in ("before", "after"))
        print(f"best {key}: before {before:.1f} s, after {after:.1f} s, ratio {after / before:.2f}x")


if __name__ == "__main__":
    main()
