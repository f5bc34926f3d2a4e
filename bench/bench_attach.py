"""attach throughput and peak memory for a large scan, against the reference age CLI.

Targets: a 200 MB scan is streamed, peak RSS flat (issue 3); attach at most 2x the
reference `age` CLI encrypting the same file (issue 30). Each round attaches the same
scan once with this checkout, once with --before's (a checkout of main to compare
with, run through PYTHONPATH, each in an archive of its own) and encrypts it once with
`age -r`, alternating, so other work on the machine weighs on all three alike; the
table gives the medians and the ratios. --sizes shows whether peak RSS follows the size.

Run: python bench/bench_attach.py [--mb 200] [--runs 5] [--before /path/to/main-checkout] [--sizes 50 200]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, make_archive, person_env, run_cli, timed_rss


def _household(archive: Path, clerk: dict[str, str]) -> str:
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
    return out.strip()


def _scan(path: Path, mb: int) -> Path:
    with open(path, "wb") as fh:
        for _ in range(mb):
            fh.write(os.urandom(1024 * 1024))
    return path


def _children_cpu() -> float:
    """User + system CPU of every child waited for so far (with theirs: git, the signing ssh-keygen)."""
    import resource

    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--before", type=Path, default=None, help="a checkout of main to run side by side")
    parser.add_argument("--sizes", type=int, nargs="*", default=[], help="also: peak RSS at these sizes (MB)")
    args = parser.parse_args()
    if shutil.which("age") is None:
        raise SystemExit("reference age CLI missing: apt-get install age")
    with tempfile.TemporaryDirectory(prefix="bench-attach-") as tmp:
        base = Path(tmp)
        os.chdir(base)  # `-m` puts the working directory first on sys.path: never a checkout's
        codes: dict[str, Path | None] = {"this": None}
        if args.before:
            codes["before"] = args.before.resolve()
        setups = {}
        for label, code in codes.items():
            archive, people = make_archive(base / label)
            clerk = person_env(people["clk01"])
            if code is not None:
                clerk["PYTHONPATH"] = str(code)
            setups[label] = (archive, clerk, _household(archive, clerk))
        scan = _scan(base / "scan.pdf", args.mb)
        recipient = subprocess.run(["age-keygen"], capture_output=True, text=True).stdout
        key = next(ln for ln in recipient.splitlines() if ln.startswith("# public key:")).split(": ")[1]
        times: dict[str, list[float]] = {label: [] for label in [*codes, "age"]}
        peaks: dict[str, list[int]] = {label: [] for label in times}
        cpus: dict[str, list[float]] = {label: [] for label in times}  # user + system, the command's whole tree

        def attach(label: str, file: Path) -> tuple[float, int]:
            archive, clerk, number = setups[label]
            cmd = [sys.executable, "-m", "archivectl", "--archive", str(archive), "attach", number, str(file)]
            cmd += ["--type", "purchase-contract-copy", "--reason", "bench", "--approver", "mgr01"]
            return timed_rss(cmd, clerk)

        for _ in range(args.runs):
            for label in codes:
                cpu = _children_cpu()
                seconds, rss = attach(label, scan)
                cpus[label].append(_children_cpu() - cpu)
                times[label].append(seconds)
                peaks[label].append(rss)
            out = base / "ref.age"
            cpu = _children_cpu()
            seconds, rss = timed_rss(["age", "-r", key, "-o", str(out), str(scan)])
            cpus["age"].append(_children_cpu() - cpu)
            out.unlink()
            times["age"].append(seconds)
            peaks["age"].append(rss)
        print(f"machine: {machine()}")
        print(f"load average before the last round: {os.getloadavg()}")
        print(f"{args.mb} MB scan, median of {args.runs} (alternating)")
        print("| what | seconds | MB/s | peak RSS MB | / age | CPU s | CPU / age's |")
        print("|---|---|---|---|---|---|---|")
        age = statistics.median(times["age"])
        age_cpu = statistics.median(cpus["age"])
        for label, values in times.items():
            median = statistics.median(values)
            cpu = statistics.median(cpus[label])
            name = {"this": "archivectl attach (this checkout)", "before": f"archivectl attach ({args.before})"}
            print(
                f"| {name.get(label, 'age -r (reference)')} | {median:.2f} | {args.mb / median:.0f} | "
                f"{max(peaks[label])} | {median / age:.2f}x | {cpu:.2f} | {cpu / age_cpu:.2f}x |"
            )
        for mb in args.sizes:
            small = _scan(base / f"scan-{mb}.pdf", mb)
            seconds, rss = attach("this", small)
            print(f"this checkout, {mb} MB: {seconds:.2f} s, peak RSS {rss} MB")
            small.unlink()


if __name__ == "__main__":
    main()
