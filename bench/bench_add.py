"""One household's write and read against archive size: `add`, `show` (masked), `--help` (issue 14).

Targets: `add` at 100,000 households at most 1.3x an add in a 100-household
archive; `show` (masked) and `archivectl --help` under 0.2 s.

Each size is built by a real `archivectl import` (so the keystore holds every
key and reserved number, as a real archive's does); with --keep DIR the built
archives are kept there and reused by the next run (an import of 100,000 takes
minutes). The timed commands alternate between the sizes, whole processes,
median of --rounds. With --trace, one more add and show per size run under
GIT_TRACE2_EVENT and every git call they make is listed with its time.

Run: python bench/bench_add.py --sizes 100 100000 [--keep /tmp/bench-add] [--rounds 9] [--trace]
     [--history 100000]: also an archive of 2,000 households and 100,000 signed commits (#30)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scale import write_csv
from common import machine, make_archive, person_env


def build(base: Path, size: int) -> Path:
    """base/archive holding size households from one real import (reused when base/built says so)."""
    done = base / "built"
    if done.exists():
        return base / "archive"
    base.mkdir(parents=True, exist_ok=True)
    for leftover in ("archive", "archive.keys", "keys"):
        subprocess.run(["rm", "-rf", str(base / leftover)], check=True)
    archive, people = make_archive(base)
    clerk = person_env(people["clk01"])
    write_csv(base / "households.csv", size)
    start = time.perf_counter()
    for part in split_csv(base / "households.csv", IMPORT_MAX):
        run(clerk, archive, "import", str(part), "-r", "bench", "-a", "mgr01")
    print(f"  built {size} households in {time.perf_counter() - start:.0f} s", flush=True)
    done.write_text(f"{size}\n")
    return archive


IMPORT_MAX = 200_000  # one import takes at most 250,000 households: larger archives are made by several


def split_csv(path: Path, rows: int) -> list[Path]:
    """path itself when it holds at most rows households, else parts of rows households each (header repeated)."""
    lines = path.read_text().splitlines(keepends=True)
    if len(lines) - 1 <= rows:
        return [path]
    parts = []
    for n, start in enumerate(range(1, len(lines), rows)):
        part = path.with_name(f"{path.stem}-{n + 1}.csv")
        part.write_text(lines[0] + "".join(lines[start : start + rows]))
        parts.append(part)
    return parts


HISTORY_HOUSEHOLDS = 2000  # what bench/history.py imports for 100,000 commits (one in 50)


def long_history(base: Path, commits: int) -> None:
    """base/archive with a signed office history of commits commits (made once; base/built says so)."""
    if (base / "built").exists():
        return
    from history import build as build_history

    subprocess.run(["rm", "-rf", str(base)], check=True)
    start = time.perf_counter()
    build_history(base, commits, HISTORY_HOUSEHOLDS)
    print(f"  built {commits} commits in {time.perf_counter() - start:.0f} s", flush=True)
    (base / "built").write_text(f"{commits}\n")


def envs(base: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(clerk, manager) environments: each their own git config and key."""
    keys = base / "keys"
    return person_env(keys / "clk01.gitconfig"), person_env(keys / "mgr01.gitconfig")


CPU: list[float] = []  # CPU seconds (user + system, the command and every git it ran) of each run(), in order


def run(env: dict[str, str], archive: Path, *args: str, extra: dict[str, str] | None = None) -> float:
    """Wall seconds of one whole archivectl process; its CPU seconds are appended to CPU."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "archivectl", "--archive", str(archive), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**env, **(extra or {})},
        cwd=archive.parent,  # not a checkout: `-m` puts the working directory before PYTHONPATH
    )
    assert proc.stderr is not None
    stderr = proc.stderr.read()
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - start
    CPU.append(usage.ru_utime + usage.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(f"archivectl {args[0]} failed: {stderr.decode(errors='replace').strip()}")
    return elapsed


def copy_of(built: Path, target: Path) -> None:
    """A copy of a built archive (with its keystore and people) for another version of the code."""
    if (target / "built").exists():
        return
    subprocess.run(["rm", "-rf", str(target)], check=True)
    subprocess.run(["cp", "-a", str(built), str(target)], check=True)
    signers = target / "archive" / ".git" / "archivectl" / "allowed_signers"
    subprocess.run(["git", "-C", str(target / "archive"), "config", "gpg.ssh.allowedSignersFile", str(signers)])
    for config in (target / "keys").glob("*.gitconfig"):
        config.write_text(config.read_text().replace(str(built / "keys"), str(target / "keys")))


class Sized:
    """One built archive, the code that runs on it, and the next add to make (a new unit each time: P1)."""

    def __init__(self, base: Path, size: int, code: Path | None = None, label: str | None = None):
        self.size = size
        self.label = label or f"{size:>7} households"
        self.base = base
        self.archive = build(base, size)
        self.clerk, self.manager = envs(base)
        if code is not None:  # this checkout's archivectl or another (PYTHONPATH comes before the venv's)
            self.clerk["PYTHONPATH"] = self.manager["PYTHONPATH"] = str(code)
        self.code = code
        self.record = base / "one.yaml"
        self.adds = 0

    def add(self, extra: dict[str, str] | None = None) -> float:
        self.adds += 1
        unit = f"X{os.getpid() % 100000:05d}-{self.adds}"
        self.record.write_text(
            f"building: B01\nfloor: 1\nunit: '{unit}'\ncategory: handed-over\n"
            "customers:\n- {role: owner, name: 单户}\n"
        )
        args = ["add", "--file", str(self.record), "-r", "bench", "-a", "mgr01"]
        return run(self.clerk, self.archive, *args, extra=extra)

    def show(self, extra: dict[str, str] | None = None) -> float:
        no = f"NH-2026-{max(1, self.size // 3 - 1):05d}"  # one from the middle of the import
        return run(self.manager, self.archive, "show", no, extra=extra)


def git_calls(trace: Path) -> list[tuple[str, float]]:
    """(git argv, seconds) of every git process in a GIT_TRACE2_EVENT file, in start order."""
    started: dict[str, str] = {}
    order: list[str] = []
    took: dict[str, float] = {}
    for line in trace.read_text().splitlines():
        event = json.loads(line)
        sid = event.get("sid", "")
        if event.get("event") == "start":
            argv = [a for a in event["argv"][1:]]
            if argv[:1] == ["-C"]:
                argv = argv[2:]
            while argv[:1] == ["-c"]:
                argv = argv[2:]
            started[sid] = " ".join(argv)[:70]
            order.append(sid)
        elif event.get("event") == "exit":
            took[sid] = float(event.get("t_abs", 0.0))
    return [(started[s], took.get(s, float("nan"))) for s in order]


def traced(sized: Sized, what: str) -> list[tuple[str, float]]:
    with tempfile.NamedTemporaryFile(prefix="bench-add-trace-", suffix=".json", delete=False) as fh:
        trace = Path(fh.name)
    try:
        extra = {"GIT_TRACE2_EVENT": str(trace)}
        total = sized.add(extra) if what == "add" else sized.show(extra)
        calls = git_calls(trace)
    finally:
        trace.unlink(missing_ok=True)
    return [*calls, (f"(whole {what})", total)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 100000])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--keep", type=Path, help="build the archives here and reuse them next time")
    parser.add_argument(
        "--history",
        type=int,
        help="also an archive of 2,000 households with this many signed commits (bench/history.py), "
        "where archive.yaml and the schema last changed in the founding commit (#30)",
    )
    parser.add_argument("--trace", action="store_true", help="list each git call of one add and one show per size")
    parser.add_argument(
        "--code", type=Path, nargs="+", help="checkouts of archivectl to compare (each on its own copy of the archives)"
    )
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(f"git: {subprocess.run(['git', 'version'], capture_output=True, text=True).stdout.strip()}")
    scratch = None
    if args.keep is None:
        scratch = tempfile.TemporaryDirectory(prefix="bench-add-")
        keep = Path(scratch.name)
    else:
        keep = args.keep
    codes = args.code or [None]
    sizes = []
    if args.history:
        long_history(keep / f"history-{args.history}", args.history)
    for n, code in enumerate(codes):
        for size in args.sizes:
            base = keep / str(size)
            if n:
                build(base, size)
                copy_of(base, keep / f"{size}-{n}")
                base = keep / f"{size}-{n}"
            sizes.append(Sized(base, size, code))
        if args.history:
            base = keep / f"history-{args.history}"
            if n:
                copy_of(base, keep / f"history-{args.history}-{n}")
                base = keep / f"history-{args.history}-{n}"
            label = f"{HISTORY_HOUSEHOLDS} households, {args.history} commits"
            sizes.append(Sized(base, HISTORY_HOUSEHOLDS, code, label))
    for s in sizes:
        s.add()  # warm the page cache and the keystore listing once
        s.show()
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull}
    helps: dict[Path | None, list[float]] = {code: [] for code in codes}
    adds: dict[int, list[float]] = {id(s): [] for s in sizes}
    shows: dict[int, list[float]] = {id(s): [] for s in sizes}
    cpu: dict[tuple[str, object], list[float]] = {}
    loads = [os.getloadavg()[0]]
    for _ in range(args.rounds):
        for s in sizes:  # alternating, so load on the machine falls on every size and version alike
            adds[id(s)].append(s.add())
            cpu.setdefault(("add", id(s)), []).append(CPU[-1])
            shows[id(s)].append(s.show())
            cpu.setdefault(("show", id(s)), []).append(CPU[-1])
        for code in codes:
            extra = {"PYTHONPATH": str(code)} if code else {}
            helps[code].append(run({**env, **extra}, keep / "none", "--help"))
            cpu.setdefault(("help", code), []).append(CPU[-1])
        loads.append(os.getloadavg()[0])
    if args.rounds:
        print(f"load average (1 min) during the rounds: {min(loads):.1f}-{max(loads):.1f}")
    for code in codes if args.rounds else []:
        mine = [s for s in sizes if s.code == code]
        base = statistics.median(adds[id(mine[0])])
        base_cpu = statistics.median(cpu[("add", id(mine[0]))])
        print(f"\ncode: {code or 'this checkout'}")
        print(
            f"archivectl --help: median {statistics.median(helps[code]):.3f} s, "
            f"CPU {statistics.median(cpu[('help', code)]):.3f} s (target < 0.2 s)"
        )
        for s in mine:
            add, show = statistics.median(adds[id(s)]), statistics.median(shows[id(s)])
            add_cpu, show_cpu = statistics.median(cpu[("add", id(s))]), statistics.median(cpu[("show", id(s))])
            print(
                f"{s.label}: add median {add:.3f} s ({add / base:.2f}x of {mine[0].size}; target 1.2x), "
                f"CPU {add_cpu:.3f} s ({add_cpu / base_cpu:.2f}x); "
                f"show median {show:.3f} s, CPU {show_cpu:.3f} s (target < 0.2 s)  [{args.rounds} rounds]",
                flush=True,
            )
    if args.trace:
        for what in ("add", "show"):
            for code in codes:
                mine = [s for s in sizes if s.code == code]
                rows = [traced(s, what) for s in mine]
                print(f"\ngit calls of one {what}, code {code or 'this checkout'} (seconds, as trace2 reports each):")
                print("  " + "".join(f"{s.size:>10}" for s in mine) + "  call")
                for i in range(max(len(r) for r in rows)):
                    cells = [r[i] if i < len(r) else ("", float("nan")) for r in rows]
                    labels = {c[0] for c in cells if c[0]}
                    label = " | ".join(sorted(labels)) if len(labels) > 1 else labels.pop()
                    print("  " + "".join(f"{c[1]:>10.4f}" for c in cells) + f"  {label}")
    if scratch is not None:
        scratch.cleanup()


if __name__ == "__main__":
    main()
