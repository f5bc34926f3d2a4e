"""Scale: import throughput, add latency against archive size, reports, start-up (issue 7).

Targets: `add` at 20k households within 1.5x of a small archive (nothing scans
the archive on a write); `archivectl --help` under 0.3 s.
Run: python bench/bench_scale.py [--sizes 1000 20000 100000]
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, make_archive, person_env

from archivectl import idcheck

HEADER = [
    "building",
    "floor",
    "unit",
    "category",
    "occupancy",
    "customers.0.role",
    "customers.0.name",
    "customers.0.phone",
    "customers.0.id_type",
    "customers.0.id_number",
    "emergency_contacts.0.name",
    "emergency_contacts.0.phone",
    "handover_date",
    "vehicles.0.plate",
    "vehicles.0.parking_space",
]


def write_csv(path: Path, count: int) -> None:
    with open(path, "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(HEADER)
        for i in range(count):
            body = f"110105{1950 + i % 50}{1 + i % 12:02d}{1 + i % 28:02d}{i % 1000:03d}"
            out.writerow(
                [
                    f"B{i % 40:02d}",
                    1 + i % 30,
                    f"{i // 40 % 9999:04d}",
                    ("handed-over", "not-handed-over", "special")[i % 3],  # a series holds 99,999 numbers
                    "owner-occupied",
                    "owner",
                    f"演示{i}",
                    f"139{i:08d}",
                    "resident-id",
                    body + idcheck.check_digit(body),
                    f"联系人{i}",
                    f"138{i:08d}",
                    "2024-03-01",
                    f"京A{i % 100000:05d}",
                    f"P{i % 500}",
                ]
            )


def cli(env: dict, archive: Path, *args: str) -> float:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "archivectl", "--archive", str(archive), *args], capture_output=True, text=True, env=env
    )
    if proc.returncode != 0:
        raise SystemExit(f"archivectl {args[0]} failed: {proc.stderr.strip()}")
    return time.perf_counter() - start


def measure(size: int) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"bench-scale-{size}-") as tmp:
        base = Path(tmp)
        archive, people = make_archive(base)
        clerk = person_env(people["clk01"])
        write_csv(base / "households.csv", size)
        imported = cli(clerk, archive, "import", str(base / "households.csv"), "-r", "bench", "-a", "mgr01")
        record = base / "one.yaml"
        record.write_text(
            "building: B99\nfloor: 1\nunit: '0101'\ncategory: handed-over\ncustomers:\n- {role: owner, name: 单户}\n"
        )
        adds = [cli(clerk, archive, "add", "--file", str(record), "-r", "bench", "-a", "mgr01") for _ in range(7)]
        cache = archive / ".git/archivectl/cache"
        shutil.rmtree(cache, ignore_errors=True)
        cold = cli(clerk, archive, "report", "completeness", "--format", "json", "--output", str(base / "c.json"))
        warm = cli(clerk, archive, "report", "completeness", "--format", "json", "--output", str(base / "c.json"))
        return {"size": size, "import": imported, "add": statistics.median(adds), "cold": cold, "warm": warm}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 20000])
    args = parser.parse_args()
    print(f"machine: {machine()}")
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull}
    helps = []
    for _ in range(5):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "archivectl", "--help"], capture_output=True, env=env, check=True)
        helps.append(time.perf_counter() - start)
    print(f"archivectl --help: {min(helps):.3f} s (best of 5; target < 0.3 s)")
    base_add = None
    for size in args.sizes:
        r = measure(size)
        base_add = base_add or r["add"]
        print(
            f"{size:>7} households: import {r['import']:.1f} s ({size / r['import']:.0f}/s), "
            f"add median {r['add']:.3f} s ({r['add'] / base_add:.2f}x of {args.sizes[0]}), "
            f"report completeness cold {r['cold']:.2f} s, warm {r['warm']:.2f} s",
            flush=True,
        )


if __name__ == "__main__":
    main()
