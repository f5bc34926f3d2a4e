"""approve + verify of a large import against the import's own time (issue 30: "validated once, on both cores").

Run: python bench/bench_approve_import.py [--households 20000] [--code /path/to/other/checkout ...]

The README's flow: the clerk imports bench_scale's CSV (`import FILE -r ... -a mgr01`, one signed
commit awaiting mgr01), the manager signs `approve --yes`, and the server hook judges the push with
`verify --range BASE..HEAD` (the import and its approval). Each code (this checkout, and every
--code, run through PYTHONPATH) gets its own archive, and the three commands are timed in one pass,
the codes one after the other. Figures: wall seconds, CPU seconds (user + system of the command and
its children, os.times), and (approve + verify) / import, by wall and by CPU.
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
from bench_scale import write_csv
from common import machine, make_archive, person_env


def timed(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of the command and its children, stdout); exits on failure.

    cwd: not a checkout (`python -m` puts the working directory first on sys.path, before PYTHONPATH:
    run from a checkout's root, every code would be that checkout's).
    """
    before = os.times()
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd)
    wall = time.perf_counter() - start
    after = os.times()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[3:6])} failed ({proc.returncode}): {proc.stderr.strip()[-400:]}")
    return (
        wall,
        (after.children_user - before.children_user) + (after.children_system - before.children_system),
        proc.stdout,
    )


def measure(code: Path, size: int, base: Path) -> dict[str, tuple[float, float]]:
    env_code = {"PYTHONPATH": str(code)}
    archive, people = make_archive(base)  # founded by this checkout: the format is the same
    csv_path = base / "households.csv"
    write_csv(csv_path, size)
    git = ["git", "-C", str(archive)]
    start = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    cli = [sys.executable, "-m", "archivectl", "--archive", str(archive)]
    clerk = {**person_env(people["clk01"]), **env_code}
    manager = {**person_env(people["mgr01"]), **env_code}
    got = {"import": timed([*cli, "import", str(csv_path), "-r", "bench import", "-a", "mgr01"], clerk, base)[:2]}
    got["approve"] = timed([*cli, "approve", "--yes", "--reason", "bench approval"], manager, base)[:2]
    wall, cpu, out = timed([*cli, "verify", "--range", f"{start}..HEAD", "--format", "json"], manager, base)
    if '"ok": true' not in out:
        raise SystemExit(f"verify --range is not clean: {out[:400]}")
    got["verify --range"] = (wall, cpu)
    return got


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--households", type=int, default=20000)
    parser.add_argument("--code", type=Path, nargs="*", default=[], help="other checkouts to compare (PYTHONPATH)")
    args = parser.parse_args()
    print(machine())
    codes = [Path(__file__).resolve().parent.parent, *args.code]
    for code in codes:
        with tempfile.TemporaryDirectory(prefix=f"bench-approve-import-{args.households}-") as tmp:
            got = measure(code.resolve(), args.households, Path(tmp))
        print(f"\n{code} ({args.households} households; load {os.getloadavg()[0]:.1f})")
        for name, (wall, cpu) in got.items():
            print(f"  {name:15s} {wall:8.2f} s wall {cpu:8.2f} s CPU")
        both = [got["approve"][i] + got["verify --range"][i] for i in (0, 1)]
        print(
            f"  approve + verify {both[0]:7.2f} s wall {both[1]:8.2f} s CPU: "
            f"{both[0] / got['import'][0]:.2f}x the import by wall, {both[1] / got['import'][1]:.2f}x by CPU"
        )


if __name__ == "__main__":
    main()
