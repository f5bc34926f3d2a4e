"""The keystore on OpenBao (a real `bao server -dev` on 127.0.0.1) against the directory keystore.

Two archives built the same way, one with the default keystore directory, one with
`init --keystore openbao+http://127.0.0.1:<port>/estate` on a dev server started here
(tests/baoserver.py: KV v2 and transit as the IT person enables them; the root token, so
that the figures are the keystore's, not the policies'). Measured in one run: `import` of
--households (time, peak RSS) on each, then `keys fsck` on each (median of --runs, the two
alternating). --before names a checkout of main to run the OpenBao side with as well
(PYTHONPATH), against its own server, so before and after are side by side. CPU (the
import's process tree, and the server's) is given beside wall time: on a shared machine it
is the steadier figure.

Run: python bench/bench_keystore_openbao.py [--households 2000] [--runs 3] [--before /path/to/main-checkout]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the bao server the tests start
from baoserver import INSTALL_HINT, ROOT_TOKEN, bao_binary, running_bao
from bench_scale import write_csv
from common import machine, person_env, run_cli, timed_rss

from archivectl.demo import examples_dir, prepare_people


def _children_cpu() -> float:
    """User + system CPU of every child waited for so far (archivectl, its workers and gits)."""
    import resource

    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def _process_cpu(pid: int) -> float:
    """User + system CPU of a running process (the bao server), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--households", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--before", type=Path, default=None, help="a checkout of main to run side by side")
    args = parser.parse_args()
    if bao_binary() is None:
        raise SystemExit(INSTALL_HINT)
    with tempfile.TemporaryDirectory(prefix="bench-bao-") as tmp:
        base = Path(tmp)
        os.chdir(base)  # `-m` puts the working directory first on sys.path: never a checkout's
        people = prepare_people(examples_dir(), base / "keys")
        csv = base / "households.csv"
        write_csv(csv, args.households)
        codes: dict[str, Path | None] = {"dir": None, "bao": None}
        if args.before:
            codes["bao-before"] = args.before.resolve()
            codes["dir-before"] = args.before.resolve()
        with running_bao(base / "srv-this") as bao_this, running_bao(base / "srv-before") as bao_before:
            servers = {"bao": bao_this, "bao-before": bao_before}
            archives = {}
            envs = {}
            for label, code in codes.items():
                extra = {"BAO_TOKEN": ROOT_TOKEN, "ARCHIVECTL_KEYSTORE": ""}
                if code is not None:
                    extra["PYTHONPATH"] = str(code)
                envs[label] = {who: {**person_env(people[who]), **extra} for who in ("gm01", "clk01", "mgr01")}
                for env in envs[label].values():
                    env.pop("ARCHIVECTL_KEYSTORE")
                root = base / label / "archive"
                root.parent.mkdir()
                init = [
                    "init",
                    str(root),
                    "--name",
                    f"bench-{label}",
                    "--staff-file",
                    str(examples_dir() / "staff.yaml"),
                ]
                if label in servers:
                    init += ["--keystore", servers[label].url]
                run_cli(envs[label]["gm01"], *init)
                archives[label] = root
            print(f"machine: {machine()}")
            print(f"date: {time.strftime('%Y-%m-%d %H:%M')} UTC; {args.households} households; load {os.getloadavg()}")
            imported, cpu = {}, {}
            for label in codes:
                cmd = [sys.executable, "-m", "archivectl", "--archive", str(archives[label]), "import", str(csv)]
                server = servers.get(label)
                before = (_children_cpu(), _process_cpu(server._process.pid) if server else 0.0)
                imported[label] = timed_rss([*cmd, "-r", "bench", "-a", "mgr01"], envs[label]["clk01"])
                cpu[label] = (
                    _children_cpu() - before[0],
                    (_process_cpu(server._process.pid) - before[1]) if server else 0.0,
                )
                print(
                    f"import {label}: {imported[label][0]:.2f} s, peak RSS {imported[label][1]} MB, "
                    f"CPU client {cpu[label][0]:.1f} s server {cpu[label][1]:.1f} s",
                    flush=True,
                )
            fscks: dict[str, list[tuple[float, int]]] = {label: [] for label in codes}
            for _ in range(args.runs):
                for label in codes:
                    cmd = [sys.executable, "-m", "archivectl", "--archive", str(archives[label]), "keys", "fsck"]
                    fscks[label].append(timed_rss(cmd, envs[label]["mgr01"]))
            print(f"load average after: {os.getloadavg()}")
            print(f"| measure ({args.households:,} households) | " + " | ".join(codes) + " |")
            print("|---|" + "---|" * len(codes))
            print("| `import` (s) | " + " | ".join(f"{imported[c][0]:.2f}" for c in codes) + " |")
            print(
                "| `import` / directory | "
                + " | ".join(
                    f"{imported[c][0] / imported['dir-before' if c.endswith('before') else 'dir'][0]:.2f}x"
                    for c in codes
                )
                + " |"
            )
            print("| `import` CPU, client + server (s) | " + " | ".join(f"{sum(cpu[c]):.1f}" for c in codes) + " |")
            print(
                "| `import` CPU / directory's | "
                + " | ".join(
                    f"{sum(cpu[c]) / sum(cpu['dir-before' if c.endswith('before') else 'dir']):.2f}x" for c in codes
                )
                + " |"
            )
            print("| `import` peak RSS (MB) | " + " | ".join(f"{imported[c][1]}" for c in codes) + " |")
            med = {c: statistics.median(s for s, _ in fscks[c]) for c in codes}
            print(f"| `keys fsck`, median of {args.runs} (s) | " + " | ".join(f"{med[c]:.2f}" for c in codes) + " |")
            print("| `keys fsck` peak RSS (MB) | " + " | ".join(f"{max(m for _, m in fscks[c])}" for c in codes) + " |")


if __name__ == "__main__":
    main()
