"""`keys fsck` of an existing archive's keystore over SFTP (a real sshd on 127.0.0.1) and as a directory.

Run: python bench/bench_fsck_sftp.py BASE [--runs 2] [--code /path/to/other/checkout ...]

BASE is a folder bench_backup.py built (BASE/archive, its keystore BASE/archive.keys, the demo
people's keys in BASE/keys/): 20,000 imported households with `--households 20000`. The keystore
is copied to a folder an sshd started here serves, and `keys fsck` runs as mgr01 with
ARCHIVECTL_KEYSTORE=sftp://keys.estate/<that folder>, then against the directory, each code
(this checkout, and every --code through PYTHONPATH) in turn, --runs rounds. Figures: wall, CPU
(user + system of the command and its children: ssh, git), peak RSS. Issue 30's target: 20,000
keys over SFTP under 10 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the sshd the tests start
from common import machine, person_env
from sshd import running_sshd, ssh_command, ssh_home

ALIAS = "keys.estate"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base", type=Path)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--code", type=Path, nargs="*", default=[])
    args = parser.parse_args()
    base = args.base.resolve()
    archive = base / "archive"
    codes = [Path(__file__).resolve().parent.parent, *(c.resolve() for c in args.code)]
    print(f"{machine()}; {time.strftime('%Y-%m-%d %H:%M')} UTC; {archive}")
    with tempfile.TemporaryDirectory(prefix="bench-fsck-sftp-") as tmp, running_sshd(Path(tmp)) as sshd:
        served = Path(tmp) / "srv" / "estate.keys"
        shutil.copytree(base / "archive.keys", served, symlinks=True)
        sshd.authorize((base / "keys" / "mgr01.pub").read_text())
        config = ssh_home(Path(tmp) / "home-mgr01", sshd, base / "keys" / "mgr01", ALIAS)
        gitconfig = base / "keys" / "mgr01.gitconfig"
        env = person_env(gitconfig if gitconfig.exists() else Path(os.devnull))
        keystores = {"SFTP": f"sftp://{ALIAS}{served}", "directory": str(base / "archive.keys")}
        print("| round | code | keystore | wall | CPU | peak RSS | problems | load |")
        print("|---|---|---|---|---|---|---|---|")
        for round_ in range(1, args.runs + 1):
            for code in codes:
                for label, url in keystores.items():
                    run_env = {
                        **env,
                        "PYTHONPATH": str(code),
                        "ARCHIVECTL_KEYSTORE": url,
                        "ARCHIVECTL_SSH": ssh_command(config),
                    }
                    cmd = ["/usr/bin/time", "-f", "%M", sys.executable, "-m", "archivectl", "--archive", str(archive)]
                    before, start = os.times(), time.perf_counter()
                    proc = subprocess.run([*cmd, "keys", "fsck"], env=run_env, capture_output=True, text=True)
                    wall, after = time.perf_counter() - start, os.times()
                    cpu = after.children_user - before.children_user + after.children_system - before.children_system
                    rss = int(proc.stderr.strip().splitlines()[-1]) // 1024
                    if proc.returncode not in (0, 1):
                        raise SystemExit(f"keys fsck failed ({proc.returncode}): {proc.stderr.strip()[-400:]}")
                    problems = proc.stdout.count("\n")
                    load = os.getloadavg()[0]
                    print(
                        f"| {round_} | {code} | {label} | {wall:.2f} s | {cpu:.2f} s | {rss} MB | {problems} lines "
                        f"| {load:.1f} |",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
