"""kill -9 every kind of write, many rounds: does any household become unreadable?

Each round kills one or two real archivectl processes (add, edit, attach,
tombstone, purge, recipients sync and --rotate, import, approve) at a random
named step of the write (ARCHIVECTL_TEST_CRASH_AT) or after a random delay, the
second kill often landing in the recovery of the first; then one more command
runs to its end and the archive is checked: git fsck, no journal, work tree and
index equal to HEAD; the keystore holds keys/ and numbers/ and nothing else, each
household on HEAD has the key its record names (keys/<no>.<recipient>.age), every
other key is one a commit on HEAD named (a rotation's or purge's old key awaiting
`keys shred`), the reserved numbers are exactly those HEAD's history uses; every
key opens for a reader and is the key its address names, every household on HEAD
opens with its key (sealed block and scans); no personal data or key material in
.git/archivectl, TMPDIR or HOME. At the end every change is approved, `keys shred`
must leave exactly the keys HEAD's records name, and `verify` must pass.

Run: python bench/bench_crash.py --rounds 200 [--seed 1] [--check-every 1]
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine
from conftest import STAFF, make_person
from crashkit import Tally, crash_round, head_records, old_archive, problems, run, stored_keys


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--check-every", type=int, default=1, help="check the archive every N rounds")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    tally = Tally()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-crash-") as tmp:
        base = Path(tmp)
        people = {sid: make_person(base / "people", sid) for sid, *_ in STAFF}
        world = old_archive(base / "estate", people)
        for round_no in range(args.rounds):
            crash_round(world, rng, round_no, tally, check=(round_no + 1) % args.check_every == 0)
            if tally.losses:
                print("\n".join(tally.log[-8:] + tally.losses))
                raise SystemExit(f"round {round_no}: the archive is damaged (seed {args.seed})")
            if (round_no + 1) % 10 == 0:
                print(
                    f"{round_no + 1} rounds, {tally.commands} commands, {time.perf_counter() - start:.0f} s", flush=True
                )
        final = problems(world)
        approve = run(world, "mgr01", "approve", "--yes", "--reason", "end of crash run")
        shred = run(world, "gm01", "keys", "shred")  # purged and rotated-away keys, now that main approved it
        verify = run(world, "aud01", "verify")
        wanted = {(n, str(r.get("recipient"))) for n, r in head_records(world).items()}
        left = sorted(stored_keys(world) - wanted)
        if left:
            final.append(f"keys shred left {len(left)} keys HEAD no longer uses: {left[:5]}")
        final += [f"after keys shred: {p}" for p in problems(world)]
        households = int(
            subprocess.run(
                ["git", "-C", str(world.root), "ls-files", "households/*/record.yaml"], capture_output=True, text=True
            ).stdout.count("\n")
        )
        commits = subprocess.run(
            ["git", "-C", str(world.root), "rev-list", "--count", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
    kills = tally.killed_at_step + tally.killed_at_random
    print(f"machine: {machine()}")
    print(f"seed {args.seed}: {tally.rounds} rounds, {tally.commands} commands in {time.perf_counter() - start:.0f} s")
    print(f"commands started: {dict(sorted(tally.by_command.items()))} (+ one to completion each round)")
    print(
        f"killed: {kills} ({tally.killed_at_step} at a named step, {tally.killed_at_random} after a random delay; "
        f"{tally.killed_while_a_journal_waited} while an earlier kill's journal was still waiting); "
        f"finished before the kill: {tally.completed}"
    )
    print(
        f"end: {households} households, {commits} commits; approve exit {approve.returncode}, keys shred exit "
        f"{shred.returncode}, verify exit {verify.returncode}; problems: {final or 'none'}"
    )
    print(f"losses: {len(tally.losses) + len(final)}")
    if final or verify.returncode != 0:
        print(verify.stdout[-2000:], verify.stderr[-2000:])
        raise SystemExit(1)


if __name__ == "__main__":
    main()
