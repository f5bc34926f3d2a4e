"""backup of an imported archive: this checkout against another (--before), alternating.

An archive of --households imported households (directory keystore; kept in --dir between
runs, built on the first), then `backup --output` with each code in turn, --runs rounds: wall
time, peak RSS and the tar's size. Issue 30's target: backup streams at disk speed.

Run: python bench/bench_backup.py [--households 20000] [--runs 2] [--dir /tmp/bench-backup] [--before /path/to/main]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scale import write_csv
from common import machine, make_archive, person_env, run_cli, timed_rss


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--households", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/bench-backup"))
    parser.add_argument("--before", type=Path, default=None, help="a checkout of main to run side by side")
    args = parser.parse_args()
    base = args.dir.resolve() / str(args.households)
    base.mkdir(parents=True, exist_ok=True)
    os.chdir(base)  # `-m` puts the working directory first on sys.path: never a checkout's
    if not (base / "archive").exists():
        archive, people = make_archive(base)
        write_csv(base / "households.csv", args.households)
        seconds, _, _ = run_cli(person_env(people["clk01"]), "--archive", str(archive), "import",
                                str(base / "households.csv"), "-r", "bench", "-a", "mgr01")  # fmt: skip
        (base / "gm.gitconfig").write_text(str(people["gm01"]))
        print(f"built: import of {args.households:,} in {seconds:.1f} s")
    env = person_env(Path((base / "gm.gitconfig").read_text()))
    codes = {"this checkout": None, **({f"{args.before}": args.before.resolve()} if args.before else {})}
    print(f"machine: {machine()}; {time.strftime('%Y-%m-%d %H:%M')} UTC")
    print("| round | code | wall | CPU | peak RSS | tar | load |")
    print("|---|---|---|---|---|---|---|")
    for round_ in range(1, args.runs + 1):
        for label, code in codes.items():
            run_env = {**env, **({"PYTHONPATH": str(code)} if code else {})}
            out = base / f"backup-{os.getpid()}.tar"
            cmd = [sys.executable, "-m", "archivectl", "--archive", str(base / "archive"), "backup", "-o", str(out)]
            before = os.times()
            seconds, rss = timed_rss(cmd, run_env)
            cpu = _cpu_since(before)
            size = out.stat().st_size >> 20
            load = os.getloadavg()[0]
            row = f"| {round_} | {label} | {seconds:.2f} s | {cpu:.2f} s | {rss} MB | {size} MB | {load:.1f} |"
            print(row, flush=True)
            # disk-speed references over the same bytes: the tar copied, and the archive's .git and keystore tarred
            for what, ref in (
                ("cat of the backup", f"cat {out} > {out}.copy"),
                ("tar of .git + archive.keys", f"tar -cf {out}.ref -C {base} archive/.git archive.keys"),
            ):
                before = os.times()
                start = time.perf_counter()
                subprocess.run(["sh", "-c", ref], check=True)
                wall = time.perf_counter() - start
                print(f"| {round_} | {what} | {wall:.2f} s | {_cpu_since(before):.2f} s | | | |", flush=True)
            for leftover in (out, Path(f"{out}.copy"), Path(f"{out}.ref")):
                leftover.unlink(missing_ok=True)


def _cpu_since(before: os.times_result) -> float:
    after = os.times()
    return (after.children_user - before.children_user) + (after.children_system - before.children_system)


if __name__ == "__main__":
    main()
