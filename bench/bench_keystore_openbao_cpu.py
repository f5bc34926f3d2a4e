"""CPU per key of the OpenBao keystore's bulk calls, client and server apart (a real `bao server -dev`).

What an import (create_many), `keys fsck` (read_many(opened=False) -> wrappings_many, where the
backend has it) and `show --reveal`/`fsck --deep` (read_many) cost per key: wall time, this
process's CPU and the server's (from /proc), for --keys keys. On a loaded machine wall time says
little; CPU per key is what a quiet machine's wall time is made of (two cores: client and server
overlap). --before runs the same in a checkout of main (PYTHONPATH), against its own server.

Run: python bench/bench_keystore_openbao_cpu.py [--keys 2000] [--before /path/to/main-checkout]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the bao server the tests start


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(keys: int, label: str) -> None:
    from baoserver import ROOT_TOKEN, running_bao

    with tempfile.TemporaryDirectory(prefix="bench-bao-cpu-") as tmp, running_bao(Path(tmp)) as bao:
        os.environ["BAO_TOKEN"] = ROOT_TOKEN
        from archivectl.openbao import OpenBaoBackend

        backend = OpenBaoBackend(bao.url)
        header = b"age-encryption.org/v1\n-> X25519 c2hhcmU\nYm9keQ\n--- bWFj\n"
        items = [(f"keys/HO-2026-{i:05d}.age1{'q' * 58}.age", header + os.urandom(300)) for i in range(keys)]
        names = [n for n, _ in items]
        wrappings = getattr(backend, "wrappings_many", backend.read_many)
        for what, call in (
            ("create_many (import)", lambda: backend.create_many(items)),
            ("keys fsck's reads", lambda: wrappings(names)),
            ("read_many (opened)", lambda: backend.read_many(names)),
        ):
            server, client, wall = _cpu(bao._process.pid), time.process_time(), time.perf_counter()
            call()
            wall, client = time.perf_counter() - wall, time.process_time() - client
            server = _cpu(bao._process.pid) - server
            print(
                f"| {label} | {what} | {wall:.2f} s | {1000 * client / keys:.2f} ms | {1000 * server / keys:.2f} ms "
                f"| {os.getloadavg()[0]:.1f} |",
                flush=True,
            )
        backend.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", type=int, default=2000)
    parser.add_argument("--before", type=Path, default=None)
    parser.add_argument("--label", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.label:
        measure(args.keys, args.label)
        return
    print(f"| code | calls, {args.keys:,} keys | wall | client CPU / key | server CPU / key | load |")
    print("|---|---|---|---|---|---|")
    measure(args.keys, "this checkout")
    if args.before:
        env = {**os.environ, "PYTHONPATH": str(args.before.resolve())}
        script = [sys.executable, str(Path(__file__).resolve()), "--keys", str(args.keys), "--label", "before"]
        subprocess.run(script, env=env, check=True, cwd=tempfile.gettempdir())


if __name__ == "__main__":
    main()
