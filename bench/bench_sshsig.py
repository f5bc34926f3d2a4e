"""Signature checks: `git log --format=%G?` against the in-process checker (archivectl.sshsig).

Target: more than 10x faster, with the same verdict for every commit.
Run: python bench/bench_sshsig.py [--commits 1000] [--runs 3]
The history is really signed by git (`commit-tree -S`, ~10 ms a commit) with
three staff keys, one of them departed halfway (valid-before), and one key
that is not on staff; every eighth commit is unsigned.
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine

from archivectl import gitio, sshsig

T0 = 1700000000
ENV = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


def git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=True, env={**ENV, **(env or {})})
    return proc.stdout.decode().strip()


def build(base: Path, commits: int) -> tuple[Path, Path]:
    """A repository with a chain of commits and its allowed-signers file."""
    keys = {}
    for name in ("mgr01", "but01", "clk01", "outsider"):
        path = base / name
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(path)], check=True)
        keys[name] = path
    public = {name: " ".join(Path(f"{path}.pub").read_text().split()[:2]) for name, path in keys.items()}
    departed = time.strftime("%Y%m%d%H%M%SZ", time.gmtime(T0 + 60 * (commits // 2)))
    signers = base / "allowed_signers"
    signers.write_text(
        f'mgr01 namespaces="git" {public["mgr01"]}\n'
        f'but01 namespaces="git",valid-before="{departed}" {public["but01"]}\n'
        f'clk01 namespaces="git" {public["clk01"]}\n'
    )
    repo = base / "repo"
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True, env=ENV)
    tree = subprocess.run(
        ["git", "-C", str(repo), "mktree"], input=b"", capture_output=True, check=True, env=ENV
    ).stdout.decode()
    rotation = ["mgr01", "but01", "clk01", "mgr01", "outsider", "but01", "clk01", None]
    parent = None
    for i in range(commits):
        who = rotation[i % len(rotation)]
        date = f"{T0 + 60 * i} +0000"
        env = {
            "GIT_AUTHOR_NAME": who or "nobody",
            "GIT_AUTHOR_EMAIL": "staff@example.invalid",
            "GIT_AUTHOR_DATE": date,
            "GIT_COMMITTER_NAME": who or "nobody",
            "GIT_COMMITTER_EMAIL": "staff@example.invalid",
            "GIT_COMMITTER_DATE": date,
        }
        signing = ["-c", "gpg.format=ssh", "-c", f"user.signingkey={keys[who]}"] if who else []
        args = [*signing, "commit-tree", *(["-S"] if who else []), tree.strip(), "-m", f"Change {i}\n\nReason: bench"]
        parent = git(repo, *args, *(["-p", parent] if parent else []), env=env)
    git(repo, "update-ref", "HEAD", parent or "")
    return repo, signers


def with_git(repo: Path, signers: Path) -> dict[str, str]:
    out = git(repo, "-c", f"gpg.ssh.allowedSignersFile={signers}", "log", "--format=%H %G?")
    return dict(line.split() for line in out.splitlines())


def in_process(repo: Path, signers: Path) -> dict[str, str]:
    commits = gitio.out(repo, "rev-list", "HEAD").split()
    allowed = sshsig.parse_allowed_signers(signers.read_text())
    return {commit: verdict.status for commit, verdict in sshsig.check_commits(repo, commits, allowed).items()}


def cold(repo: Path, signers: Path) -> dict[str, str]:
    """The same check in a fresh Python process: start-up and imports included, as for a CLI command."""
    script = (
        "import sys; from pathlib import Path; from archivectl import gitio, sshsig; repo = Path(sys.argv[1]); "
        "allowed = sshsig.parse_allowed_signers(Path(sys.argv[2]).read_text()); "
        "print(len(sshsig.check_commits(repo, gitio.out(repo, 'rev-list', 'HEAD').split(), allowed)))"
    )
    subprocess.run([sys.executable, "-c", script, str(repo), str(signers)], check=True, capture_output=True)
    return {}


def best_of(runs: int, work: Callable[[Path, Path], dict[str, str]], *args: Path) -> tuple[float, dict[str, str]]:
    """(shortest time, result) of runs calls of work(*args)."""
    times, result = [], {}
    for _ in range(runs):
        start = time.perf_counter()
        result = work(*args)
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--commits", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3, help="best of this many runs of each")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-sshsig-") as tmp:
        start = time.perf_counter()
        repo, signers = build(Path(tmp), args.commits)
        print(f"machine: {machine()}")
        print(f"built {args.commits} commits (signed by git) in {time.perf_counter() - start:.1f} s")
        git_time, git_verdicts = best_of(args.runs, with_git, repo, signers)
        our_time, our_verdicts = best_of(args.runs, in_process, repo, signers)
        cold_time, _ = best_of(args.runs, cold, repo, signers)
        if our_verdicts != git_verdicts:
            differ = [c for c in git_verdicts if our_verdicts.get(c) != git_verdicts[c]]
            raise SystemExit(f"verdicts differ on {len(differ)} commits, e.g. {differ[0]}")
        counts = ", ".join(f"{status}: {n}" for status, n in sorted(collections.Counter(git_verdicts.values()).items()))
        print(f"verdicts identical for all {len(git_verdicts)} commits ({counts})")
        print(f"git log --format=%G?:  {git_time:.3f} s  ({1000 * git_time / args.commits:.2f} ms a commit)")
        print(f"archivectl.sshsig:     {our_time:.3f} s  ({1000 * our_time / args.commits:.2f} ms a commit)")
        print(f"  in a fresh process:  {cold_time:.3f} s  (Python start-up and imports included)")
        print(f"speed-up: {git_time / our_time:.1f}x in process, {git_time / cold_time:.1f}x as a fresh process")
        print(f"(best of {args.runs} runs each)")


if __name__ == "__main__":
    main()
