"""`keys fsck` of many keys on OpenBao: the server filled by archivectl's own `import`, then fsck timed.

One `bao server -dev` on 127.0.0.1 (tests/baoserver.py: in-memory storage, a file audit device,
KV v2 and transit as the IT person sets them up; the root token), one archive with
`init --keystore` on it, one `import` of --households (time, CPU of archivectl and of the server,
and what the import asked the server, counted from the audit log by request kind), then `keys fsck`
--runs times (wall, CPU client and server, peak RSS). --before names a checkout of main whose
`keys fsck` is run on the same archive and server, alternating with this checkout's. --hold keeps
the server and archive until the file named by --hold exists (to time other code against them).

Run: python bench/bench_openbao_fsck.py [--households 100000] [--runs 3] [--before /path/to/main-checkout]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the bao server the tests start
from baoserver import INSTALL_HINT, ROOT_TOKEN, bao_binary, running_bao
from bench_keystore_openbao import _children_cpu, _process_cpu
from bench_scale import write_csv
from common import machine, person_env, run_cli, timed_rss

from archivectl.demo import examples_dir, prepare_people


def request_kinds(audit_log: Path, start: int) -> collections.Counter[str]:
    """The requests the audit log holds from byte start on, by operation and path kind (names cut at the last /)."""
    counts: collections.Counter[str] = collections.Counter()
    with audit_log.open("rb") as fh:
        fh.seek(start)
        for line in fh:
            entry = json.loads(line)
            if entry.get("type") != "request":
                continue
            request = entry.get("request") or {}
            path = str(request.get("path", ""))
            counts[f"{request.get('operation')} {path.rsplit('/', 1)[0]}/"] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--households", type=int, default=100000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--before", type=Path, default=None, help="a checkout of main whose fsck runs alongside")
    parser.add_argument("--hold", type=Path, default=None, help="keep the server until this file exists")
    args = parser.parse_args()
    if bao_binary() is None:
        raise SystemExit(INSTALL_HINT)
    with tempfile.TemporaryDirectory(prefix="bench-bao-fsck-") as tmp:
        base = Path(tmp)
        os.chdir(base)  # `-m` puts the working directory first on sys.path: never a checkout's
        people = prepare_people(examples_dir(), base / "keys")
        csv = base / "households.csv"
        write_csv(csv, args.households)
        with running_bao(base / "srv") as bao:
            env = {who: {**person_env(people[who]), "BAO_TOKEN": ROOT_TOKEN} for who in ("gm01", "clk01", "mgr01")}
            for e in env.values():
                e.pop("ARCHIVECTL_KEYSTORE", None)
            root = base / "archive"
            staff = str(examples_dir() / "staff.yaml")
            init = ["init", str(root), "--name", "bench-fsck", "--staff-file", staff, "--keystore", bao.url]
            run_cli(env["gm01"], *init)
            print(f"machine: {machine()}; server: bao -dev (in-memory storage, file audit device)")
            when = time.strftime("%Y-%m-%d %H:%M")
            print(f"date: {when} UTC; {args.households:,} households; load {os.getloadavg()}")
            print(f"archive {root}, keystore {bao.url}", flush=True)
            mark = bao.audit_log.stat().st_size
            cpu = (_children_cpu(), _process_cpu(bao._process.pid))
            cmd = [sys.executable, "-m", "archivectl", "--archive", str(root), "import", str(csv)]
            wall, rss = timed_rss([*cmd, "-r", "bench", "-a", "mgr01"], env["clk01"])
            client, server = _children_cpu() - cpu[0], _process_cpu(bao._process.pid) - cpu[1]
            print(f"import: {wall:.1f} s, peak RSS {rss} MB, CPU client {client:.1f} s server {server:.1f} s")
            for kind, n in sorted(request_kinds(bao.audit_log, mark).items()):
                print(f"  {n:>8} {kind}  ({n / args.households:.2f} a household)")
            codes: dict[str, dict[str, str]] = {"this": env["mgr01"]}
            if args.before:
                codes["before"] = {**env["mgr01"], "PYTHONPATH": str(args.before.resolve())}
            for run in range(args.runs):
                for label, e in codes.items():
                    cpu = (_children_cpu(), _process_cpu(bao._process.pid))
                    fsck = [sys.executable, "-m", "archivectl", "--archive", str(root), "keys", "fsck"]
                    wall, rss = timed_rss(fsck, e)
                    client, server = _children_cpu() - cpu[0], _process_cpu(bao._process.pid) - cpu[1]
                    print(
                        f"keys fsck {label} run {run + 1}: {wall:.1f} s, CPU client {client:.1f} s "
                        f"server {server:.1f} s, peak RSS {rss} MB, load {os.getloadavg()[0]:.1f}",
                        flush=True,
                    )
            status = Path(f"/proc/{bao._process.pid}/status").read_text()
            print(f"server RSS: {status.split('VmRSS:')[1].split()[0]} kB")
            if args.hold:
                print(f"holding until {args.hold} exists; env: BAO_TOKEN={ROOT_TOKEN}", flush=True)
                while not args.hold.exists():
                    time.sleep(2)


if __name__ == "__main__":
    main()
