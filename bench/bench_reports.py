"""Reports at scale: `report completeness` cold, warm and warm after one edit, against a bare libyaml parse.

Targets (issue 14): warm at 100,000 households under 0.5 s whole process; cold at
most 1.0x a bare `yaml.load(CSafeLoader)` of the same record files. The archive's
record files are written directly (stored form, a real sealed block), then
committed once: reports read only the clear parts, so this measures exactly what
they do.

Each round runs, for every checkout given (this one first, then --compare ones,
alternating so load on the machine falls on all alike): cold (no cache), warm
(nothing changed), warm after one household's record was edited and committed.
Run: python bench/bench_reports.py --households 1000 20000 [--compare /work/main] [--keep DIR] [--ranges]

--ranges (issue 30) also times, after the edit and after an added household, what the
server hook runs for a one-commit push: `verify --range HEAD~1..HEAD`. Peak RSS is
GNU time's %M of each whole process.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, machine, make_archive, person_env

from archivectl import records, schema
from archivectl.crypto import new_record_key
from archivectl.demo import examples_dir


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


def build(base: Path, count: int, fast: bool = False) -> tuple[Path, dict[str, str], list[Path]]:
    """An archive of count households under base, made once and reused by later runs with --keep."""
    archive = base / "archive"
    if (base / "built").exists():
        people = {"gm01": base / "keys" / "gm01.gitconfig"}
        env = person_env(people["gm01"])
        listed = subprocess.run(
            ["git", "-C", str(archive), "ls-files", "-z", "households/*/*/*/record.yaml"],
            capture_output=True, check=True, text=True,
        ).stdout  # fmt: skip
        paths = sorted(archive / p for p in listed.split("\0") if p)
        print(f"reusing the archive of {len(paths)} households in {base}")
        return archive, env, paths
    start = time.perf_counter()
    archive, found = make_archive(base)
    env = person_env(found["gm01"])
    if fast:
        paths = write_fast(archive, count, env)
        (base / "built").write_text(str(count))
        print(f"wrote and committed {count} records through git fast-import in {time.perf_counter() - start:.1f} s")
        return archive, env, paths
    paths = write_households(archive, count)
    subprocess.run(["git", "-C", str(archive), "add", "-A"], check=True, env=env)
    subprocess.run(
        ["git", "-C", str(archive), "commit", "-q", "--no-verify", "-m", "bench households"], check=True, env=env
    )
    (base / "built").write_text(str(count))
    print(f"wrote and committed {count} records in {time.perf_counter() - start:.1f} s")
    return archive, env, paths


def write_fast(archive: Path, count: int, env: dict[str, str]) -> list[Path]:
    """count records committed by `git fast-import` straight from a dozen sealed templates, not written as files.

    Each household is a template's stored text with its number, building and unit put in
    (the sealed block is the template's: reports read clear parts, a range's verify reads
    what the range changes). The index then holds them all and the work tree none: a
    round's edit writes back the one file it changes (see materialise). Numbers past a
    series' 99,999 go on in an earlier year's series. Minutes less than writing 300,000
    files and sealing each; for the cold figures, build without --fast.
    """
    templates = [p.read_bytes() for p in write_households(archive, 12)]
    shutil.rmtree(archive / "households")
    serials: dict[str, int] = {}
    stream = []
    paths = []
    for i in range(count):
        text = templates[i % len(templates)]
        code = re.search(rb"^archive_no: (HO|NH|SP)-", text, re.M).group(1).decode()  # type: ignore[union-attr]
        k = serials[code] = serials.get(code, -1) + 1
        number = f"{code}-{2026 - k // 99999}-{k % 99999 + 1:05d}"
        building, unit = f"B{i % 40:02d}", f"{i // 40 % 9999:04d}"
        text = re.sub(rb"^archive_no: .*$", f"archive_no: {number}".encode(), text, count=1, flags=re.M)
        text = re.sub(rb"^building: .*$", f"building: {building}".encode(), text, count=1, flags=re.M)
        text = re.sub(rb"^unit: .*$", f"unit: '{unit}'".encode(), text, count=1, flags=re.M)
        path = f"households/{building}/{unit}/{number}/record.yaml"
        stream.append(b"M 100644 inline %s\ndata %d\n%s\n" % (path.encode(), len(text), text))
        paths.append(archive / path)
    head = subprocess.run(["git", "-C", str(archive), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    message = b"bench households"
    commit = b"commit refs/heads/main\ncommitter bench <bench@example.org> %d +0000\ndata %d\n%s\nfrom %s\n" % (
        int(time.time()),
        len(message),
        message,
        head.strip().encode(),
    )
    subprocess.run(["git", "-C", str(archive), "fast-import", "--quiet"], input=commit + b"".join(stream), check=True)
    subprocess.run(["git", "-C", str(archive), "reset", "-q"], check=True, env=env)  # the index: every record
    return sorted(paths)


def materialise(archive: Path, path: Path) -> None:
    """The committed file at path into the work tree (a --fast archive has none there)."""
    if not path.exists():
        rel = path.relative_to(archive).as_posix()
        data = subprocess.run(["git", "-C", str(archive), "show", f"HEAD:{rel}"], capture_output=True, check=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.stdout)


def bare_parse(paths: list[Path]) -> float:
    start = time.perf_counter()
    for path in paths:
        yaml.load(path.read_bytes(), Loader=yaml.CSafeLoader)
    return time.perf_counter() - start


def run(checkout: Path, archive: Path, env: dict[str, str], *args: str) -> float:
    """One whole `report completeness --format json` process (or `archivectl args`), with checkout's code first.

    Also prints its CPU seconds (user + system, its children included): on a shared
    machine they move much less with the load than the wall time does; and its peak
    RSS (GNU time's %M: the largest of the process and its children), into PEAK.
    """
    cmd = [sys.executable, "-m", "archivectl", "--archive", str(archive)]
    cmd += list(args) or ["report", "completeness", "--format", "json", "--output", os.devnull]
    if Path("/usr/bin/time").exists():
        cmd = ["/usr/bin/time", "-f", "%M", *cmd]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    # cwd too: `python -m` puts the working directory first on sys.path, before PYTHONPATH
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**env, "PYTHONPATH": str(checkout)}, cwd=checkout)
    took = time.perf_counter() - start
    if proc.returncode not in (0, 1):  # verify of an unsigned bench commit exits 1: its time is what counts
        raise SystemExit(f"{' '.join(cmd[-6:])} failed: {proc.stderr.strip()[-300:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    PEAK[0] = int(proc.stderr.strip().splitlines()[-1]) // 1024 if cmd[0] == "/usr/bin/time" else -1
    PEAK[1] = cpu
    print(f"    cpu {cpu:.2f} s, peak {PEAK[0]} MB", end="", flush=True)
    return took


PEAK: list[Any] = [0, 0.0]  # peak RSS in MB and CPU seconds of the last run()
RANGE = ["verify", "--range", "HEAD~1..HEAD", "--format", "json"]  # what the server hook runs for one commit


def add_one(archive: Path, paths: list[Path], env: dict[str, str], round_no: int) -> None:
    """A new household (a copy of one, renumbered past every other) committed: what an add does to the tree."""
    source = paths[(round_no * 104729) % len(paths)]
    materialise(archive, source)
    serial = (os.getpid() * 100 + round_no) % 99999 + 1  # a new number in every run of the bench
    number = f"SP-2030-{serial:05d}"
    target = archive / f"households/B99/{serial % 10000:04d}/{number}/record.yaml"
    target.parent.mkdir(parents=True, exist_ok=True)
    text = re.sub(r"^archive_no: .*$", f"archive_no: {number}", source.read_text(), count=1, flags=re.M)
    text = re.sub(r"^building: .*$", "building: B99", text, count=1, flags=re.M)  # as its folder: the report's
    text = re.sub(r"^unit: .*$", f"unit: '{serial % 10000:04d}'", text, count=1, flags=re.M)  # parts stay per building
    target.write_text(text)
    git = ["git", "-C", str(archive)]
    subprocess.run([*git, "add", str(target)], check=True, env=env)
    subprocess.run([*git, "commit", "-q", "--no-verify", "-m", f"bench add {round_no}"], check=True, env=env)
    as_a_write_leaves_it(archive)


def edit_one(archive: Path, paths: list[Path], env: dict[str, str], round_no: int) -> None:
    """Change one household's occupancy and commit it: what a day's `edit` does to the tree."""
    path = paths[(round_no * 7919) % len(paths)]
    materialise(archive, path)
    text = path.read_text()
    now = re.search(r"^occupancy: (.*)$", text, re.M)
    new = "owner-occupied" if now and now.group(1) == "rented" else "rented"
    if now:
        text = text[: now.start()] + f"occupancy: {new}" + text[now.end() :]
    else:
        text = text.replace("\nstatus:", f"\noccupancy: {new}\nstatus:", 1)
    path.write_text(text)
    git = ["git", "-C", str(archive)]
    subprocess.run(
        [*git, "commit", "-q", "--no-verify", "-m", f"bench edit {round_no}", "--", str(path)], check=True, env=env
    )
    as_a_write_leaves_it(archive)


def as_a_write_leaves_it(archive: Path) -> None:
    """Note, as every archivectl write does (Archive.remember_index_equals), that the index equals the new commit.

    The bench's hand-made commit stands in for `edit` / `add`; without the note a report
    pays a `write-tree` of the whole index (0.37 s at 297,000) that no real write leaves it.
    """
    from archivectl.archive import Archive

    head = subprocess.run(["git", "-C", str(archive), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    Archive(archive).remember_index_equals(head.stdout.strip())


def measure(
    count: int,
    checkouts: list[Path],
    rounds: int,
    keep: Path | None,
    ranges: bool = False,
    fast: bool = False,
    warm_only: bool = False,
) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-reports-") as tmp:
        base = (keep / str(count)) if keep else Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        archive, env, paths = build(base, count, fast)
        bare = float("nan") if fast else min(bare_parse(paths) for _ in range(3))
        times: dict[tuple[Path, str], list[float]] = {}
        peaks: dict[tuple[Path, str], list[int]] = {}
        cpus: dict[tuple[Path, str], list[float]] = {}
        kinds = (*(() if warm_only else ("cold",)), "warm", "edit", *(("range-edit", "range-add") if ranges else ()))
        for round_no in range(rounds):
            for checkout in checkouts:
                if warm_only:  # the caches as the last run left them, brought up to date by one untimed run
                    run(checkout, archive, env)
                else:
                    shutil.rmtree(archive / ".git/archivectl/cache", ignore_errors=True)
                n = round_no * len(checkouts) + checkouts.index(checkout)
                for kind in kinds:
                    if kind == "edit":
                        edit_one(archive, paths, env, n)
                    if kind == "range-add":  # the hook's second push: it kept the households listing of the first
                        add_one(archive, paths, env, 2 * n)
                        run(checkout, archive, env, *RANGE)
                        add_one(archive, paths, env, 2 * n + 1)
                    took = run(checkout, archive, env, *(RANGE if kind.startswith("range") else ()))
                    times.setdefault((checkout, kind), []).append(took)
                    peaks.setdefault((checkout, kind), []).append(PEAK[0])
                    cpus.setdefault((checkout, kind), []).append(PEAK[1])
                    print(f"  round {round_no + 1} {checkout} {kind}: {took:.2f} s", flush=True)
        print(f"\n{count} households; bare libyaml parse {bare:.2f} s (best of 3); median of {rounds} rounds")
        print(f"load average at the end: {os.getloadavg()[0]:.1f}")
        print(f"{'checkout':<28} " + " ".join(f"{k:>24}" for k in kinds))
        for checkout in checkouts:
            cells = []
            for kind in kinds:
                t = statistics.median(times[(checkout, kind)])
                peak = max(peaks[(checkout, kind)])
                ratio = f"{t / bare:5.2f}x" if not kind.startswith("range") else "      "
                cells.append(f"{t:6.2f} s {ratio} {peak:5d} MB")
            print(f"{checkout!s:<28} " + " ".join(f"{c:>24}" for c in cells))
            cpu = [f"cpu {statistics.median(cpus[(checkout, kind)]):6.2f} s" for kind in kinds]
            print(f"{'':<28} " + " ".join(f"{c:>24}" for c in cpu))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--households", type=int, nargs="+", default=[20000])
    parser.add_argument("--compare", type=Path, nargs="*", default=[], help="other checkouts run side by side")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="build archives under this directory once and reuse them")
    parser.add_argument("--ranges", action="store_true", help="also time `verify --range HEAD~1..HEAD` (#30)")
    parser.add_argument("--fast", action="store_true", help="build through git fast-import (no bare-parse figure)")
    parser.add_argument("--warm-only", action="store_true", help="no cold run: caches kept from the last run")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print("targets: cold <= 1.0x the bare parse; warm at 100,000 < 0.5 s")
    for count in args.households:
        measure(count, [ROOT, *args.compare], args.rounds, args.keep, args.ranges, args.fast, args.warm_only)


if __name__ == "__main__":
    main()
