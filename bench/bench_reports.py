"""Reports at scale: cold and warm `report completeness` against a bare libyaml parse (issue 6).

Targets at 20,000 households: cold within 3x a bare libyaml parse of the same
record files, warm within 0.5x. The archive's record files are written directly
(stored form, a real sealed block), then committed once: reports read only the
clear parts, so this measures exactly what they do.
Run: python bench/bench_reports.py [--households 20000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, make_archive, person_env

from archivectl import records, schema
from archivectl.crypto import new_record_key
from archivectl.ops.demo import examples_dir


def write_households(archive: Path, count: int) -> list[Path]:
    household_schema = schema.household(archive / "schemas")
    sources = sorted((examples_dir() / "households").glob("*.yaml"))
    key = new_record_key()
    templates = []
    for src in sources:
        plain = yaml.safe_load(src.read_text())
        plain = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in plain.items()}
        templates.append(plain)
    paths = []
    for i in range(count):
        plain = dict(templates[i % len(templates)])
        building = f"B{i % 40:02d}"
        unit = f"{i // 40 % 9999:04d}"
        code = {"handed-over": "HO", "not-handed-over": "NH", "special": "SP"}[plain["category"]]
        plain.update(archive_no=f"{code}-2026-{i + 1:05d}", building=building, unit=unit, status="active")
        plain["customers"] = [dict(c) for c in plain["customers"]]
        for c in plain["customers"]:
            c.update({k: v.isoformat() for k, v in c.items() if hasattr(v, "isoformat")})
        for field in ("handover_date", "move_in_date"):
            if hasattr(plain.get(field), "isoformat"):
                plain[field] = plain[field].isoformat()
        if isinstance(plain.get("renovation"), dict):
            plain["renovation"] = {
                k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in plain["renovation"].items()
            }
        stored = records.to_stored(records.order_like_schema(plain, household_schema), household_schema, key)
        path = archive / f"households/{building}/{unit}/{plain['archive_no']}/record.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(records.dump(stored))
        paths.append(path)
    return paths


def bare_parse(paths: list[Path]) -> float:
    start = time.perf_counter()
    for path in paths:
        yaml.load(path.read_bytes(), Loader=yaml.CSafeLoader)
    return time.perf_counter() - start


def run(cmd: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--households", type=int, default=20000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-reports-") as tmp:
        archive, people = make_archive(Path(tmp))
        start = time.perf_counter()
        paths = write_households(archive, args.households)
        env = person_env(people["gm01"])
        subprocess.run(["git", "-C", str(archive), "add", "-A"], check=True, env=env)
        subprocess.run(["git", "-C", str(archive), "commit", "-q", "-m", "bench households"], check=True, env=env)
        print(f"machine: {machine()}")
        print(f"wrote and committed {args.households} records in {time.perf_counter() - start:.1f} s")
        bare = min(bare_parse(paths) for _ in range(3))
        cmd = [
            sys.executable,
            "-m",
            "archivectl",
            "--archive",
            str(archive),
            "report",
            "completeness",
            "--format",
            "json",
            "--output",
            os.devnull,
        ]
        cache = archive / ".git/archivectl/cache"
        colds, warms = [], []
        for _ in range(3):
            shutil.rmtree(cache, ignore_errors=True)
            colds.append(run(cmd, env))
            warms.append(run(cmd, env))
        cold, warm = min(colds), min(warms)
        print(f"bare libyaml parse of {args.households} records: {bare:.2f} s")
        print(f"report completeness cold: {cold:.2f} s ({cold / bare:.2f}x; target 3x)")
        print(f"report completeness warm: {warm:.2f} s ({warm / bare:.2f}x; target 0.5x)")


if __name__ == "__main__":
    main()
