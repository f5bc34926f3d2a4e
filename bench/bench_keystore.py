"""The keystore as a directory vs on SFTP (a real sshd on 127.0.0.1): what a remote keystore costs.

Two archives built the same way, one with the default keystore directory, one with
`init --keystore sftp://keys.estate/<abs path>` on an sshd started here (tests/sshd.py),
each person reaching it with their own demo key. Measured side by side in one run, the
runs of the two alternating so other work on the machine weighs on both alike:
`show --reveal` and `add` at a small size (whole process, median), then `import`,
`keys fsck` (time and peak RSS), `show --reveal` and `add` at a large size, and one bare
ssh SFTP session (no archivectl) as the floor a remote keystore adds to each command.

Run: python bench/bench_keystore.py [--households 20000] [--small 100] [--runs 9]
(the default --households 1000 is a quick try; needs openssh-server).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the sshd the tests start
from bench_scale import write_csv
from common import machine, person_env, timed_rss
from sshd import INSTALL_HINT, SSHD, running_sshd, ssh_command, ssh_home

from archivectl.demo import examples_dir, prepare_people

ALIAS = "keys.estate"
PEOPLE = ("gm01", "clk01", "mgr01", "aud01")
RECORD = "building: B99\nfloor: 1\nunit: '{unit}'\ncategory: handed-over\ncustomers:\n- {{role: owner, name: 单户}}\n"


class Setup:
    """The demo people, each with a git config and an SSH setup that reaches the bench's sshd."""

    def __init__(self, base: Path, sshd) -> None:
        self.base = base
        configs = prepare_people(examples_dir(), base / "keys")
        self.envs: dict[str, dict[str, str]] = {}
        for who in PEOPLE:
            private = base / "keys" / who
            sshd.authorize((base / "keys" / f"{who}.pub").read_text())
            ssh_config = ssh_home(base / f"home-{who}", sshd, private, ALIAS)
            env = person_env(configs[who])
            env.pop("ARCHIVECTL_KEYSTORE", None)
            self.envs[who] = {**env, "ARCHIVECTL_SSH": ssh_command(ssh_config)}
        self.ssh_config = base / "home-clk01" / ".ssh" / "config"
        self.units = 0

    def cli(self, who: str, *args: str) -> tuple[float, str]:
        """Run archivectl as who: (seconds, stdout)."""
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "archivectl", *args], env=self.envs[who], capture_output=True, text=True
        )
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"archivectl {' '.join(args[2:4])} as {who} failed ({elapsed:.2f} s): {proc.stderr}")
        return elapsed, proc.stdout

    def archive(self, name: str, remote: bool) -> Path:
        """A new archive founded by gm01; its keystore on the sshd if remote, else the default directory."""
        root = self.base / name / "archive"
        root.parent.mkdir()
        args = ["init", str(root), "--name", f"bench-{name}", "--staff-file", str(examples_dir() / "staff.yaml")]
        if remote:
            server_dir = self.base / "srv" / name
            server_dir.mkdir(parents=True)  # the IT person's folder on the server
            args += ["--keystore", f"sftp://{ALIAS}{server_dir}/estate.keys"]
        self.cli("gm01", *args)
        return root

    def import_csv(self, archive: Path, csv: Path) -> tuple[float, int]:
        """(seconds, peak RSS MB) of `import` by the clerk."""
        cmd = [sys.executable, "-m", "archivectl", "--archive", str(archive), "import", str(csv)]
        return timed_rss([*cmd, "-r", "bench", "-a", "mgr01"], self.envs["clk01"])

    def first_household(self, archive: Path) -> str:
        _, out = self.cli("aud01", "--archive", str(archive), "list", "--format", "json")
        return json.loads(out)[0]["archive_no"]

    def reveal(self, archive: Path, number: str) -> float:
        return self.cli("mgr01", "--archive", str(archive), "show", number, "--reveal", "-r", "bench")[0]

    def add(self, archive: Path) -> float:
        self.units += 1
        form = self.base / "form.yaml"
        form.write_text(RECORD.format(unit=f"{self.units:04d}"))
        return self.cli("clk01", "--archive", str(archive), "add", "--file", str(form), "-r", "bench", "-a", "mgr01")[0]

    def fsck(self, archive: Path) -> tuple[float, int]:
        cmd = [sys.executable, "-m", "archivectl", "--archive", str(archive), "keys", "fsck"]
        return timed_rss(cmd, self.envs["mgr01"])

    def ssh_session(self) -> float:
        """One bare SFTP session: ssh connects, authenticates, starts sftp-server, which exits on end of input."""
        cmd = [*self.envs["clk01"]["ARCHIVECTL_SSH"].split(), ALIAS, "-s", "sftp"]
        start = time.perf_counter()
        subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, check=True)
        return time.perf_counter() - start


def side_by_side(runs: int, measure) -> tuple[float, float]:
    """Medians of measure(remote) over runs, the directory and SFTP runs alternating, after one warm-up each."""
    measure(False), measure(True)
    times: dict[bool, list[float]] = {False: [], True: []}
    for i in range(runs):
        for remote in (False, True) if i % 2 == 0 else (True, False):
            times[remote].append(measure(remote))
    return statistics.median(times[False]), statistics.median(times[True])


def row(label: str, local: float, remote: float, unit: str = "s") -> str:
    digits = 3 if unit == "s" else 0
    return f"| {label} | {local:.{digits}f} {unit} | {remote:.{digits}f} {unit} | {remote / local:.2f}x |"


def measure_size(setup: Setup, size: int, small: bool, runs: int, report) -> None:
    """Two archives of size households (directory, SFTP), then each figure side by side."""
    csv = setup.base / f"households-{size}.csv"
    write_csv(csv, size)
    archives = {remote: setup.archive(f"{'sftp' if remote else 'dir'}-{size}", remote) for remote in (False, True)}
    imported = {remote: setup.import_csv(archives[remote], csv) for remote in (False, True)}
    if not small:
        report(row(f"`import` of {size:,} (time)", imported[False][0], imported[True][0]))
        report(row(f"`import` of {size:,} (peak RSS)", imported[False][1], imported[True][1], "MB"))
        fscks: dict[bool, list[tuple[float, int]]] = {False: [], True: []}
        for _ in range(3):
            for remote in (False, True):
                fscks[remote].append(setup.fsck(archives[remote]))
        t = {r: statistics.median(s for s, _ in fscks[r]) for r in (False, True)}
        m = {r: max(mb for _, mb in fscks[r]) for r in (False, True)}
        report(row(f"`keys fsck` at {size:,}, median of 3 (time)", t[False], t[True]))
        report(row(f"`keys fsck` at {size:,} (peak RSS)", m[False], m[True], "MB"))
    numbers = {remote: setup.first_household(archives[remote]) for remote in (False, True)}
    local, remote = side_by_side(runs, lambda r: setup.reveal(archives[r], numbers[r]))
    report(row(f"`show --reveal` at {size:,}, median of {runs}", local, remote))
    local, remote = side_by_side(runs, lambda r: setup.add(archives[r]))
    report(row(f"`add` at {size:,}, median of {runs}", local, remote))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--households", type=int, default=1000, help="the large archives (import, keys fsck)")
    parser.add_argument("--small", type=int, default=100, help="the small archives (show --reveal, add)")
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    if not SSHD.exists():
        raise SystemExit(INSTALL_HINT)
    print(f"machine: {machine()}")
    print(f"date: {time.strftime('%Y-%m-%d')}; {args.small} and {args.households} households, {args.runs} runs")
    lines = ["| measure | directory | SFTP (127.0.0.1) | SFTP / dir |", "|---|---|---|---|"]

    def report(line: str) -> None:
        lines.append(line)
        print(line, flush=True)

    with tempfile.TemporaryDirectory(prefix="bench-keystore-") as tmp, running_sshd(Path(tmp)) as sshd:
        setup = Setup(Path(tmp), sshd)
        sessions = [setup.ssh_session() for _ in range(args.runs + 1)][1:]
        print(f"bare ssh SFTP session (connect, auth, sftp-server, exit): median {statistics.median(sessions):.3f} s")

        for size, small in ((args.small, True), (args.households, False)):
            measure_size(setup, size, small, args.runs, report)

    print()
    print("\n".join(lines))


if __name__ == "__main__":
    main()
