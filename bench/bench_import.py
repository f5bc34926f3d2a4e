"""Import speed (issue 14): households/second of `archivectl import`, beside the floor (pyrage alone).

Target: 20,000 households at >= 2,000 households/second, memory flat.
The floor is what the unavoidable cryptography costs: per household one fresh
record key, one sealed block (512 bytes) and one key wrapped to the building's
readers (4 ssh-ed25519 recipients in the bench archive), serially and on every core.
Run: python bench/bench_import.py [--sizes 1000 20000] [--runs 3] [--before /path/to/main-checkout]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scale import write_csv
from common import make_archive, person_env

from archivectl import crypto

TARGET = 2000.0
READERS = 4


def _reader_keys() -> list[str]:
    from archivectl.demo import examples_dir

    text = (examples_dir() / "staff.yaml").read_text()
    keys = [line.split("key:", 1)[1].strip() for line in text.splitlines() if "ssh-ed25519" in line]
    return keys[:READERS]


def _crypto_only(count: int) -> float:
    """Seconds for count households' crypto: new key, seal 512 bytes, wrap to READERS ssh keys."""
    keys = _reader_keys()
    plain = b"x" * 512
    start = time.perf_counter()
    for _ in range(count):
        key = crypto.new_record_key()
        crypto.seal(plain, key.to_public())
        crypto.wrap_record_key(key, keys)
    return time.perf_counter() - start


def floor(count: int = 4000) -> tuple[float, float]:
    """(households/s on one core, on every core) for the crypto alone."""
    serial = count / _crypto_only(count)
    procs = os.cpu_count() or 1
    with multiprocessing.get_context("fork").Pool(procs) as pool:
        start = time.perf_counter()
        pool.map(_crypto_only, [count // procs] * procs)
        parallel = (count // procs * procs) / (time.perf_counter() - start)
    return serial, parallel


def import_once(
    size: int, code: str | None = None, where: Path | None = None, importer: str = "clk01", index: bool = False
) -> tuple[float, int, float]:
    """(seconds, peak RSS MB, CPU seconds) of one `archivectl import` of size households (its whole process tree).

    CPU (user + system, the workers and git included) moves far less than wall time when another
    benchmark shares the cores: a side-by-side comparison on a busy machine should read it too.

    code: a checkout whose archivectl to run instead of this one (PYTHONPATH), for a before/after.
    where: the folder to make the archive in, left for the caller to remove once every run is done (see main).
    importer: who imports (clk01 cannot open the index key; mgr01 can, and fingerprints every row).
    index: give the archive an index key first (issue 27), as `migrate blind-index` makes it.
    """
    if where is None:
        with tempfile.TemporaryDirectory(prefix=f"bench-import-{size}-") as tmp:
            return import_once(size, code, Path(tmp), importer, index)
    base = Path(tempfile.mkdtemp(prefix=f"bench-import-{size}-", dir=where))
    archive, people = make_archive(base)
    if index:
        from archivectl.archive import Archive
        from archivectl.ops.finding import _create_key

        _create_key(Archive.find(str(archive)))
    write_csv(base / "households.csv", size)
    env = person_env(people[importer])
    approver = "gm01" if importer == "mgr01" else "mgr01"  # four eyes
    if code:
        env["PYTHONPATH"] = code
    args = ["--archive", str(archive), "import", str(base / "households.csv"), "-r", "bench", "-a", approver]
    cmd = ["/usr/bin/time", "-f", "%M %U %S", sys.executable, "-m", "archivectl", *args]  # per run, not the max
    # Each run starts with nothing waiting to be written: the import flushes the keystore's file system
    # (syncfs) as it stores keys, and that would also write out the previous run's 400 MB archive.
    os.sync()
    start = time.perf_counter()
    # cwd: `-m` puts the working directory first on sys.path, ahead of PYTHONPATH (a run from the
    # checkout would import it whatever code says)
    proc = subprocess.run(cmd, env=env, cwd=base, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"archivectl import failed: {proc.stderr.strip()[-300:]}")
    peak, user, system = proc.stderr.strip().splitlines()[-1].split()
    return seconds, int(peak) // 1024, float(user) + float(system)


def _line(label: str, size: int, runs: list[tuple[float, int, float]], serial: float) -> float:
    seconds = statistics.median(r[0] for r in runs)
    cpu = statistics.median(r[2] for r in runs)
    rate = size / seconds
    print(
        f"{label}{size:>7} households: import median {seconds:.2f} s of {len(runs)} ({rate:.0f}/s, "
        f"{rate / TARGET:.2f}x target, {rate / serial:.2f}x one-core floor), "
        f"peak RSS median {statistics.median(r[1] for r in runs):.0f} MB (max {max(r[1] for r in runs)}), "
        f"CPU median {cpu:.1f} s ({cpu / size * 1e6:.0f} us a household); "
        f"runs {', '.join(f'{r[0]:.2f}' for r in runs)}",
        flush=True,
    )
    return seconds


def main() -> None:
    from common import machine

    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 20000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--before", help="a checkout (e.g. a worktree of main) to run alternately with this one")
    parser.add_argument("--importer", default="clk01", help="who imports: clk01, or a reader such as mgr01")
    parser.add_argument("--index", action="store_true", help="give the archive an index key first (issue 27)")
    args = parser.parse_args()
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.2f}")
    serial, parallel = floor()
    print(
        f"floor (archivectl.crypto alone: key + seal + wrap to {READERS} readers): "
        f"{serial:.0f}/s one core, {parallel:.0f}/s all cores"
    )
    # Every run's archive is removed at the end, not after its run: on an ext4 without a journal (this
    # project's bench machine) the kernel skips inodes freed in the last 60-360 s when it allocates
    # (ialloc.c, recently_deleted), and removing 60,000 files made the next run's 40,000 folders cost
    # 5-10 s of system time instead of 1 s (perf: find_get_block_common under __ext4_new_inode).
    # Run the bench some minutes after removing anything large (a test run, an earlier bench).
    runs_dir = Path(tempfile.mkdtemp(prefix="bench-import-runs-"))
    try:
        _compare(args, serial, runs_dir)
    finally:
        shutil.rmtree(runs_dir, ignore_errors=True)


def _compare(args: argparse.Namespace, serial: float, runs_dir: Path) -> None:
    for size in args.sizes:
        after: list[tuple[float, int, float]] = []
        before: list[tuple[float, int, float]] = []
        for _ in range(args.runs):  # alternated, so both see the same load
            if args.before:
                before.append(import_once(size, args.before, runs_dir, args.importer, args.index))
            after.append(import_once(size, where=runs_dir, importer=args.importer, index=args.index))
        if args.before:
            was = _line("before ", size, before, serial)
            now = _line("after  ", size, after, serial)
            print(
                f"        {size:>7}: after/before time {now / was:.2f}x ({was / now:.2f}x the speed), "
                f"peak RSS {statistics.median(r[1] for r in after) / statistics.median(r[1] for r in before):.2f}x, "
                f"CPU {statistics.median(r[2] for r in after) / statistics.median(r[2] for r in before):.2f}x",
                flush=True,
            )
        else:
            _line("", size, after, serial)
        print(f"        load average now {os.getloadavg()[0]:.2f}", flush=True)  # another benchmark may share the cores


if __name__ == "__main__":
    main()
