"""Shared set-up for the benchmarks: a real archive with the published demo keys."""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

from archivectl.demo import examples_dir, prepare_people

ROOT = Path(__file__).resolve().parent.parent

# The commands timed here run as on a user's machine, with their modules' bytecode cached.
# A shell that sets PYTHONDONTWRITEBYTECODE (this project's sandbox does) has every run
# compile archivectl's modules again: 39 of them, 0.28 s of a profiled `verify`.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


def machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.node()} ({os.cpu_count()} cores, {cpu}), Python {platform.python_version()}"


def make_archive(base: Path) -> tuple[Path, dict[str, Path]]:
    """An archive founded by the demo gm; returns (archive root, person -> gitconfig)."""
    people = prepare_people(examples_dir(), base / "keys")
    env = person_env(people["gm01"])
    run_cli(env, "init", str(base / "archive"), "--name", "bench", "--staff-file", str(examples_dir() / "staff.yaml"))
    return base / "archive", people


def person_env(config: Path) -> dict[str, str]:
    return {**os.environ, "GIT_CONFIG_GLOBAL": str(config), "GIT_CONFIG_NOSYSTEM": "1"}


def run_cli(env: dict[str, str], *args: str) -> tuple[float, int, str]:
    """Run archivectl in a child process: (seconds, peak RSS of that child in MB, stdout)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "archivectl", *args], env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"archivectl {' '.join(args[:2])} failed: {proc.stderr.strip()}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return elapsed, max(peak, before) // 1024, proc.stdout


def timed_rss(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, int]:
    """(seconds, peak RSS MB) of one command, via GNU time if present."""
    start = time.perf_counter()
    if Path("/usr/bin/time").exists():
        proc = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], env=env, capture_output=True, text=True)
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"{cmd[0]} failed: {proc.stderr.strip()[-300:]}")
        return elapsed, int(proc.stderr.strip().splitlines()[-1]) // 1024
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    return time.perf_counter() - start, -1
