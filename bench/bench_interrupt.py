"""Ctrl-C on a long import, and `keys fsck` after an interrupted one (issue 29 item 4).

Targets: an import stops within 2 s of SIGINT (sent to its process group, as a
terminal does), without a traceback, and leaves no key or number in the
keystore; `keys fsck` over a keystore holding the keys an interrupted import
left (a second Ctrl-C during the clean-up, or a kill) takes seconds.
Run: python bench/bench_interrupt.py [--size 20000] [--code /path/to/other-checkout]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scale import write_csv
from common import machine, make_archive, person_env


def _count(folder: Path) -> int:
    try:
        return sum(1 for name in os.listdir(folder) if not name.startswith("."))
    except FileNotFoundError:
        return 0


def interrupted_import(base: Path, size: int, env: dict[str, str], crash_at: str | None = None) -> dict:
    """Start an import of size households; SIGINT its process group once it stores keys (or let it kill itself
    at crash_at). Returns what was seen: seconds from the signal to the end, exit code, stderr, keys left."""
    archive = base / "archive"
    keys = base / "archive.keys"
    csv_path = base / f"households-{size}.csv"
    if not csv_path.exists():
        write_csv(csv_path, size)
        # the same units as any households imported before: each row says its unit has another (P1)
        lines = csv_path.read_text().splitlines()
        csv_path.write_text("\n".join([lines[0] + ",also_active"] + [line + ",true" for line in lines[1:]]) + "\n")
    before = _count(keys / "keys"), _count(keys / "numbers")
    run_env = dict(env)
    if crash_at:
        run_env["ARCHIVECTL_TEST_CRASH_AT"] = crash_at
    cmd = [sys.executable, "-m", "archivectl", "--archive", str(archive), "import", str(csv_path), "-r", "bench"]
    proc = subprocess.Popen(
        [*cmd, "-a", "mgr01"],
        env=run_env,
        cwd=base,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    sent = None
    if not crash_at:
        while proc.poll() is None and _count(keys / "keys") <= before[0]:
            time.sleep(0.02)
        if proc.poll() is not None:
            raise SystemExit(f"the import ended before storing a key: {proc.communicate()[1].strip()[-300:]}")
        sent = time.perf_counter()
        os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole group
    try:
        _out, err = proc.communicate(timeout=600)
    except subprocess.TimeoutExpired:  # the import before the fix hung: a re-forked worker held a git pipe
        os.killpg(proc.pid, signal.SIGKILL)
        _out, err = proc.communicate()
        err = "did not end within 600 s of SIGINT (killed): " + err[-200:]
    ended = time.perf_counter()
    return {
        "seconds": ended - sent if sent else None,
        "code": proc.returncode,
        "stderr": err.strip(),
        "keys_left": _count(keys / "keys") - before[0],
        "numbers_left": _count(keys / "numbers") - before[1],
    }


def timed(env: dict[str, str], *args: str) -> tuple[float, int, str]:
    start = time.perf_counter()
    # cwd: `-m` puts the working directory first on sys.path, ahead of PYTHONPATH (see bench_import)
    proc = subprocess.run(
        [sys.executable, "-m", "archivectl", *args], env=env, cwd=tempfile.gettempdir(), capture_output=True, text=True
    )
    return time.perf_counter() - start, proc.returncode, (proc.stderr.strip().splitlines() or [""])[-1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=20000)
    parser.add_argument("--code", help="another checkout to run instead of this one (PYTHONPATH), for a before")
    parser.add_argument("--skip-sigint", action="store_true")
    parser.add_argument("--sigint-only", action="store_true", help="time Ctrl-C on an import; no kill, no fsck")
    parser.add_argument("--committed", type=int, default=0, help="households imported (committed) first: history")
    parser.add_argument("--batches", type=int, default=3, help="key batches (1,000 keys each) the killed import stores")
    parser.add_argument("--before", help="a checkout whose `keys fsck` to time beside this one's, on the same keystore")
    args = parser.parse_args()
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.2f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-interrupt-") as tmp:
        base = Path(tmp)
        archive, people = make_archive(base)
        env = person_env(people["clk01"])
        if args.code:
            env["PYTHONPATH"] = args.code
        if args.committed:
            write_csv(base / "committed.csv", args.committed)
            seconds, code, last = timed(
                env, "--archive", str(archive), "import", str(base / "committed.csv"), "-r", "b", "-a", "mgr01"
            )
            print(f"import of {args.committed} (committed): {seconds:.1f} s, exit {code} {last}", flush=True)
        if not args.skip_sigint:
            seen = interrupted_import(base, args.size, env)
            print(f"SIGINT during an import of {args.size}: {seen}", flush=True)
        if args.sigint_only:
            return
        # What an import killed (or interrupted twice) leaves: its journal, keys and numbers; fsck reads them
        # before any write settles them. Killed once its keys are stored: one batch per FLUSH households.
        seen = interrupted_import(base, args.size, env, crash_at=f"key-written@{args.batches}")
        print(f"import of {args.size} killed at key batch {args.batches}: {seen}", flush=True)
        for label, code in (("this", args.code), ("before", args.before)) if args.before else (("this", args.code),):
            gm = person_env(people["gm01"])
            if code:
                gm["PYTHONPATH"] = code
            seconds, exit_code, _last = timed(gm, "--archive", str(archive), "keys", "fsck", "--format", "json")
            print(f"keys fsck ({label}) with those keys left: {seconds:.2f} s, exit {exit_code}", flush=True)
        print(f"load average {os.getloadavg()[0]:.2f}", flush=True)


if __name__ == "__main__":
    main()
