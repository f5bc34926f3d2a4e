"""company report completeness over N estates of M households (issue 30), beside a bare libyaml parse.

Targets (issue 30, at 200 archives x 5,000 households): cold at most 1.2x the bare
libyaml parse of the same clear parts; warm (nothing changed) under 2 s; one
estate changed: under 1.2x that estate's own warm report after the change plus
the company's warm run (the other caches' read).
Each estate is a real archive made by `archivectl init` + `archivectl import`;
half of them are served through a bare repository (file:// URL), half by path.
Run: python bench/bench_company.py [--estates 10] [--households 1000] [--runs 3] [--same] [--base DIR]
    [--compare SRC]
(--same: one archive imported and served as every estate from a bare clone each: the big sizes in minutes;
--base DIR: build there once and keep it, later runs reuse it; --compare SRC: every company run also made,
side by side, by the archivectl source tree at SRC (`git worktree add --detach SRC main`), with a company
folder of its own, and the ratios given for both)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scale import write_csv
from common import machine, make_archive, person_env, run_cli, timed_rss


def build(base: Path, estates: int, households: int, same: bool = False) -> tuple[Path, list[Path], dict[str, Path]]:
    """(company folder, estate archives, people) under base.

    same: one archive imported, every other estate a bare clone of it served by file:// (the big sizes in
    minutes; every estate still has its own server repository, copy, clone and report).
    """
    roots: list[Path] = []
    people: dict[str, Path] = {}
    lines = ["company: Bench Property", "estates:"]
    for i in range(estates):
        home = base / f"e{i:03d}"
        home.mkdir()
        if same and roots:
            server = home / "server.git"
            subprocess.run(["git", "clone", "-q", "--bare", str(roots[0]), str(server)], check=True)
            lines.append(f"  - {{id: e{i:03d}, name: Estate {i}, archive: '{server.as_uri()}'}}")
            roots.append(roots[0])
            continue
        root, people = make_archive(home)
        write_csv(home / "households.csv", households)
        env = person_env(people["clk01"])
        run_cli(env, "--archive", str(root), "import", str(home / "households.csv"), "-r", "bench", "-a", "mgr01")
        if i % 2:
            server = home / "server.git"
            subprocess.run(["git", "clone", "-q", "--bare", str(root), str(server)], check=True)
            source = server.as_uri()
        else:
            source = str(root)
        lines.append(f"  - {{id: e{i:03d}, name: Estate {i}, archive: '{source}'}}")
        roots.append(root)
        print(f"  built estate {i + 1}/{estates}", file=sys.stderr, flush=True)
    company = base / "hq"
    company.mkdir()
    (company / "company.yaml").write_text("\n".join(lines) + "\n")
    return company, roots, people


def bare_parse(roots: list[Path]) -> tuple[float, float]:
    """(Seconds, CPU seconds) for libyaml (CSafeLoader) to parse the clear part of every estate's records, one core."""
    import yaml

    from archivectl.facts import clear_part

    texts = []
    for root in roots:
        for path in root.glob("households/*/*/*/record.yaml"):
            data = path.read_bytes()
            texts.append(clear_part(data) or data)
    start = time.perf_counter()
    cpu = time.process_time()
    for text in texts:
        yaml.load(text, Loader=yaml.CSafeLoader)
    return time.perf_counter() - start, time.process_time() - cpu


def company_report(company: Path, source: str | None = None) -> tuple[float, int, float]:
    """(seconds, peak RSS MB of its largest process, CPU seconds of the whole process tree, git included).

    source: another archivectl source tree to run instead of this one (PYTHONPATH comes before the
    editable install)."""
    # -P: not the current folder first on the path, where this tree's archivectl would come before source's
    cmd = [sys.executable, "-P", "-m", "archivectl", "company", "report", "completeness", "--company", str(company)]
    env = {**os.environ, "PYTHONPATH": source} if source else None
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    seconds, peak = timed_rss([*cmd, "-f", "json", "-o", os.devnull], env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return seconds, peak, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def own_report(root: Path) -> tuple[float, int]:
    cmd = [sys.executable, "-m", "archivectl", "--archive", str(root), "report", "completeness"]
    return timed_rss([*cmd, "-f", "json", "-o", os.devnull])


def change_one(root: Path, people: dict[str, Path], n: int) -> None:
    """One more household in this estate (a real signed import of one row)."""
    data = root.parent / f"one-{n}.csv"
    lines = (root.parent / "households.csv").read_text().splitlines()
    row = lines[1].split(",")
    row[2] = f"9{n:03d}"  # a unit no one lives in yet
    data.write_text(lines[0] + "\n" + ",".join(row) + "\n")
    env = person_env(people["clk01"])
    run_cli(env, "--archive", str(root), "import", str(data), "-r", "bench", "-a", "mgr01")


def built(base: Path, estates: int, households: int, same: bool) -> tuple[Path, list[Path], dict[str, Path]]:
    """build() into base, or what an earlier run with --base built there."""
    note = base / "built.json"
    if note.exists():
        kept = json.loads(note.read_text())
        if kept["size"] != [estates, households, same]:
            raise SystemExit(f"{base} holds {kept['size']}: choose another --base")
        return Path(kept["company"]), [Path(r) for r in kept["roots"]], {k: Path(v) for k, v in kept["people"].items()}
    base.mkdir(parents=True, exist_ok=True)
    company, roots, people = build(base, estates, households, same)
    note.write_text(
        json.dumps(
            {
                "size": [estates, households, same],
                "company": str(company),
                "roots": [str(r) for r in roots],
                "people": {k: str(v) for k, v in people.items()},
            }
        )
    )
    return company, roots, people


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--estates", type=int, default=10)
    parser.add_argument("--households", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--same", action="store_true", help="import one archive, serve it as every estate")
    parser.add_argument("--base", type=Path, help="build here once and keep it (later runs reuse it)")
    parser.add_argument("--compare", help="another archivectl source tree, run side by side")
    args = parser.parse_args()
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.2f}")
    base = args.base.resolve() if args.base else Path(tempfile.mkdtemp(prefix="bench-company-"))
    try:
        company, roots, people = built(base, args.estates, args.households, args.same)
        variants: dict[str, tuple[Path, str | None]] = {"this tree": (company, None)}
        if args.compare:
            other = company.parent / "hq-compare"
            other.mkdir(exist_ok=True)
            shutil.copy(company / "company.yaml", other / "company.yaml")
            variants[args.compare] = (other, str(Path(args.compare).resolve()))
        served = [roots[0].parent / "server.git" if (roots[0].parent / "server.git").exists() else roots[0]]
        bare, bare_cpu = min(bare_parse(roots) for _ in range(args.runs))
        runs_of = {
            name: {k: [] for k in ("cold", "cold_cpu", "warm", "warm_cpu", "changed", "rss")} for name in variants
        }
        own: list[float] = []
        for _n in range(args.runs):
            for name, (folder, source) in variants.items():
                got = runs_of[name]
                shutil.rmtree(folder / ".cache", ignore_errors=True)
                seconds, peak, cpu = company_report(folder, source)
                got["cold"].append(seconds)
                got["cold_cpu"].append(cpu)
                got["rss"].append(peak)
            for name, (folder, source) in variants.items():
                best = min(company_report(folder, source) for _ in range(2))
                runs_of[name]["warm"].append(best[0])
                runs_of[name]["warm_cpu"].append(best[2])
            own_report(roots[0])  # the estate's own cache, warm before the change
            change_one(roots[0], people, len(list(roots[0].parent.glob("one-*.csv"))))  # a unit not used yet
            if served[0] != roots[0]:
                subprocess.run(["git", "-C", str(roots[0]), "push", "-q", str(served[0]), "main"], check=True)
            own.append(own_report(roots[0])[0])
            for name, (folder, source) in variants.items():
                runs_of[name]["changed"].append(company_report(folder, source)[0])
        households = args.estates * args.households
        m = statistics.median
        runs = ", ".join
        print(f"{args.estates} estates x {args.households} households ({households} in all), median of {args.runs}:")
        print(f"  bare libyaml parse of the clear parts (one core): {bare:.2f} s ({bare_cpu:.2f} s CPU)")
        print(f"  that estate's own report after each change: {m(own):.2f} s; runs {runs(f'{c:.2f}' for c in own)}")
        for name, got in runs_of.items():
            cold, cold_cpu, warm, warm_cpu, changed = (
                got[k] for k in ("cold", "cold_cpu", "warm", "warm_cpu", "changed")
            )
            print(f"  [{name}]")
            print(
                f"    cold: {m(cold):.2f} s ({m(cold) / bare:.2f}x the bare parse; target 1.2x), "
                f"CPU {m(cold_cpu):.2f} s ({m(cold_cpu) / bare_cpu:.2f}x the bare parse's), "
                f"largest process {max(got['rss'])} MB; runs {runs(f'{c:.2f}' for c in cold)}"
            )
            print(
                f"    warm (nothing changed): {m(warm):.2f} s (target under 2 s), CPU {m(warm_cpu):.2f} s; "
                f"runs {runs(f'{c:.2f}' for c in warm)}"
            )
            bound = m(own) + m(warm)
            print(
                f"    one estate changed: {m(changed):.2f} s; own {m(own):.2f} s + warm {m(warm):.2f} s = "
                f"{bound:.2f} s: {m(changed) / bound:.2f}x (target 1.2x); runs {runs(f'{c:.2f}' for c in changed)}"
            )
        print(f"  load average now {os.getloadavg()[0]:.2f}")
    finally:
        if not args.base:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
