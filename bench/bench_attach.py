"""attach throughput and peak memory for a large scan, against the reference age CLI.

Target (issue 3): a 200 MB scan is streamed, peak RSS well under 150 MB.
Run: python bench/bench_attach.py [--mb 200]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, make_archive, person_env, run_cli, timed_rss


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-attach-") as tmp:
        base = Path(tmp)
        archive, people = make_archive(base)
        clerk = person_env(people["clk01"])
        _, _, out = run_cli(
            clerk,
            "--archive",
            str(archive),
            "add",
            "--building",
            "B03",
            "--floor",
            "1",
            "--unit",
            "0101",
            "--category",
            "handed-over",
            "--reason",
            "bench",
            "--approver",
            "mgr01",
        )
        number = out.strip()
        scan = base / "scan.pdf"
        with open(scan, "wb") as fh:
            for _ in range(args.mb):
                fh.write(os_random(1024 * 1024))
        cmd = [
            sys.executable,
            "-m",
            "archivectl",
            "--archive",
            str(archive),
            "attach",
            number,
            str(scan),
            "--type",
            "purchase-contract-copy",
            "--reason",
            "bench",
            "--approver",
            "mgr01",
        ]
        seconds, rss = timed_rss(cmd, clerk)
        print(f"machine: {machine()}")
        print(f"archivectl attach {args.mb} MB: {seconds:.2f} s, {args.mb / seconds:.0f} MB/s, peak RSS {rss} MB")
        if shutil.which("age"):
            recipient = subprocess.run(["age-keygen"], capture_output=True, text=True).stdout
            key = next(ln for ln in recipient.splitlines() if ln.startswith("# public key:")).split(": ")[1]
            seconds, rss = timed_rss(["age", "-r", key, "-o", str(base / "ref.age"), str(scan)])
            print(f"reference age -r {args.mb} MB: {seconds:.2f} s, {args.mb / seconds:.0f} MB/s, peak RSS {rss} MB")
        else:
            print("reference age CLI missing: apt-get install age")


def os_random(n: int) -> bytes:
    import os

    return os.urandom(n)


if __name__ == "__main__":
    main()
