"""A long office history, built fast: the commits real commands make, written straight into git.

Building 100,000 commits with archivectl itself takes ~0.3 s a commit (a signing
ssh-keygen and several git calls each). Here:

1. a real archive is made with real commands: `init` and one `import` of the
   households the history will add (their record keys go into the keystore as
   `import` writes them);
2. the history is planned as an office makes it: adds (clerk, approved by a
   manager), edits (manager, approved by the gm), reveals by a reader with their
   access-register entry, and approvals signed by the approver naming the changes
   (four eyes), with the trailers and register entries those commands write;
3. `git fast-import` writes every blob and tree (on a throw-away ref, deleted after);
4. each commit is then written over those trees and signed in process with the
   person's real ed25519 key in the SSHSIG format `ssh-keygen -Y sign -n git`
   gives; the commit objects go into one pack through `git index-pack`.

`python bench/history.py --commits 300 --check` builds one and requires both
`archivectl verify` and `git log --format=%G?` to accept it (every commit G).
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import os
import random
import re
import secrets
import subprocess
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scale import write_csv
from common import make_archive, person_env, run_cli

from archivectl import registers, yamlio

STEP = 900  # seconds between commits: 100,000 commits span ~2.9 years
BATCH = 10  # changes an approver signs off at once
ACCESS_HEADER = registers.HEADERS["access"].encode()
FLOOR = re.compile(rb"^floor: (\d+)$", re.M)


@dataclass
class Step:
    """One commit of the plan: who, when, what it says, which files it writes."""

    who: str
    when: int
    subject: str
    trailers: list[tuple[str, str]]
    files: dict[str, bytes] = field(default_factory=dict)
    approves: list[int] = field(default_factory=list)  # steps an approval names (filled in when signing)


@dataclass
class Household:
    number: str
    path: str
    building: str
    unit: str
    record: bytes


def plan(root_when: int, commits: int, households: list[Household], seed: int = 14) -> list[Step]:
    """The commits after the founding one: adds, edits, reveals and approvals in office proportions."""
    rng = random.Random(seed)
    steps: list[Step] = []
    live: list[Household] = []
    waiting: dict[str, list[int]] = {"mgr01": [], "gm01": []}  # approver -> steps awaiting them
    spacing = max(2, int(0.8 * commits / max(1, len(households))))
    todo = list(households)
    when = root_when

    def approve(approver: str) -> Step:
        named = waiting[approver]
        actors = sorted({steps[i].who for i in named})
        numbers = sorted({n for i in named for k, v in steps[i].trailers if k == "Archive-No" for n in v.split(", ")})
        subject = f"approve {len(named)} change{'s' if len(named) > 1 else ''} by {', '.join(actors)}"
        trailers = [("Action", "approve"), ("Reason", "weekly sign-off"), ("Archive-No", ", ".join(numbers))]
        step = Step(approver, when, subject, [*trailers, ("Acted-by", approver)], approves=list(named))
        waiting[approver] = []
        return step

    while len(steps) < commits - 1:
        when += STEP
        remaining = commits - 1 - len(steps)
        due = [a for a, named in waiting.items() if named and (len(named) >= BATCH or remaining <= len(waiting))]
        if due:
            steps.append(approve(due[0]))
            continue
        last = remaining <= len(waiting)  # the last steps need no approval, or the history ends pending
        if todo and not last and (len(steps) % spacing == 0 or not live or remaining <= len(todo) + 2):
            h = todo.pop(0)
            live.append(h)
            trailers = [("Action", "add"), ("Reason", "new resident"), ("Approved-by", "mgr01")]
            trailers += [("Archive-No", h.number), ("Acted-by", "clk01")]
            steps.append(Step("clk01", when, f"add {h.number} ({h.building}/{h.unit})", trailers, {h.path: h.record}))
            waiting["mgr01"].append(len(steps) - 1)
        elif not last and rng.random() < 0.5:
            h = rng.choice(live)
            floor = int(FLOOR.search(h.record).group(1)) % 30 + 1  # type: ignore[union-attr]
            h.record = FLOOR.sub(b"floor: %d" % floor, h.record, count=1)
            trailers = [("Action", "edit"), ("Reason", "floor corrected"), ("Approved-by", "gm01")]
            trailers += [("Archive-No", h.number), ("Acted-by", "mgr01")]
            steps.append(Step("mgr01", when, f"edit {h.number}: floor", trailers, {h.path: h.record}))
            waiting["gm01"].append(len(steps) - 1)
        else:
            h = rng.choice(live)
            who = {"B03": "but01", "B05": "but02"}.get(h.building, "mgr01") if rng.random() < 0.5 else "mgr01"
            moment = dt.datetime.fromtimestamp(when, dt.UTC)
            entry = {
                "when": moment.isoformat(timespec="seconds"),
                "who": who,
                "action": "reveal",
                "archive_no": h.number,
                "reason": "resident called",
            }
            path = f"registers/access/{moment:%Y-%m}/{moment:%Y%m%dT%H%M%S}-reveal-{who}-{secrets.token_hex(4)}.yaml"
            trailers = [("Action", "reveal"), ("Reason", "resident called"), ("Archive-No", h.number)]
            trailers.append(("Acted-by", who))
            steps.append(
                Step(
                    who,
                    when,
                    f"register reveal of {h.number}",
                    trailers,
                    {path: ACCESS_HEADER + yamlio.dumps(entry).encode()},
                )
            )
    return steps


# ---------------------------------------------------------------------- signing


class Signer:
    """`ssh-keygen -Y sign -n git` in process, with a person's ed25519 key file."""

    def __init__(self, key_file: Path):
        from cryptography.hazmat.primitives import serialization

        self._key = serialization.load_ssh_private_key(key_file.read_bytes(), None)
        raw = self._key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self._public = _string(b"ssh-ed25519") + _string(raw)

    def sign(self, payload: bytes) -> bytes:
        """The armored SSHSIG signature of payload in namespace git (sha512), as ssh-keygen writes it."""
        digest = hashlib.sha512(payload).digest()
        signed = b"SSHSIG" + _string(b"git") + _string(b"") + _string(b"sha512") + _string(digest)
        signature = _string(b"ssh-ed25519") + _string(self._key.sign(signed))
        blob = b"SSHSIG" + (1).to_bytes(4, "big") + _string(self._public) + _string(b"git") + _string(b"")
        blob += _string(b"sha512") + _string(signature)
        text = base64.b64encode(blob)
        lines = [text[i : i + 70] for i in range(0, len(text), 70)]
        return b"\n".join([b"-----BEGIN SSH SIGNATURE-----", *lines, b"-----END SSH SIGNATURE-----"]) + b"\n"


def _string(value: bytes) -> bytes:
    return len(value).to_bytes(4, "big") + value


def signed_commit(tree: str, parent: str | None, ident: bytes, when: int, message: bytes, signer: Signer) -> bytes:
    """A commit object as `git commit-tree -S` writes it: headers, gpgsig, blank line, message."""
    who = ident + b" %d +0000" % when
    headers = b"tree " + tree.encode() + b"\n"
    if parent:
        headers += b"parent " + parent.encode() + b"\n"
    headers += b"author " + who + b"\ncommitter " + who + b"\n"
    signature = signer.sign(headers + b"\n" + message)
    return headers + b"gpgsig " + signature.rstrip(b"\n").replace(b"\n", b"\n ") + b"\n\n" + message


def message(subject: str, trailers: list[tuple[str, str]]) -> bytes:
    """archive.commit_message: subject, blank line, one `Key: value` line each."""
    return ("\n".join([subject, "", *(f"{k}: {v}" for k, v in trailers)]) + "\n").encode()


# ---------------------------------------------------------------------- git


def git(root: Path, *args: str, input: bytes | None = None) -> bytes:
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "LC_ALL": "C"}
    return subprocess.run(["git", "-C", str(root), *args], input=input, capture_output=True, check=True, env=env).stdout


def _fast_import_trees(root: Path, founding: dict[str, bytes], steps: list[Step]) -> list[str]:
    """The tree of every commit (founding first), written by git fast-import on a throw-away ref."""
    ref = "refs/archivectl-bench/trees"
    proc = subprocess.Popen(
        ["git", "-C", str(root), "fast-import", "--quiet", "--done"],
        stdin=subprocess.PIPE,
        env={**os.environ, "GIT_CONFIG_NOSYSTEM": "1"},
    )
    assert proc.stdin is not None
    out = proc.stdin
    for i, files in enumerate([founding, *(s.files for s in steps)]):
        chunk = [b"commit %s\ncommitter bench <bench@invalid> %d +0000\ndata 0\n" % (ref.encode(), i)]
        if i == 0:
            chunk.append(b"deleteall\n")
        for path, data in files.items():
            chunk.append(b"M 100644 inline %s\ndata %d\n%s\n" % (path.encode(), len(data), data))
        out.write(b"".join(chunk) + b"\n")
    out.write(b"done\n")
    out.close()
    if proc.wait() != 0:
        raise SystemExit("git fast-import failed")
    trees = git(root, "log", "--reverse", "--format=%T", ref).decode().split()
    git(root, "update-ref", "-d", ref)
    return trees


class PackWriter:
    """Commit objects streamed into `git index-pack --stdin` as one pack (no loose objects)."""

    def __init__(self, root: Path, count: int):
        self._proc = subprocess.Popen(
            ["git", "-C", str(root), "index-pack", "--stdin"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            env={**os.environ, "GIT_CONFIG_NOSYSTEM": "1"},
        )
        self._sha = hashlib.sha1()
        self._write(b"PACK" + (2).to_bytes(4, "big") + count.to_bytes(4, "big"))

    def _write(self, data: bytes) -> None:
        self._sha.update(data)
        assert self._proc.stdin is not None
        self._proc.stdin.write(data)

    def add_commit(self, body: bytes) -> str:
        size = len(body)
        header = bytearray([(1 << 4) | (size & 0x0F)])  # type 1: commit
        size >>= 4
        while size:
            header[-1] |= 0x80
            header.append(size & 0x7F)
            size >>= 7
        self._write(bytes(header) + zlib.compress(body, 1))
        return hashlib.sha1(b"commit %d\0" % len(body) + body).hexdigest()

    def close(self) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write(self._sha.digest())
        self._proc.stdin.close()
        if self._proc.wait() != 0:
            raise SystemExit("git index-pack failed")


# ---------------------------------------------------------------------- the whole build


def build(base: Path, commits: int, households: int | None = None, say=print) -> tuple[Path, dict[str, Path]]:
    """An archive at base/archive with a signed history of `commits` commits; returns (root, person -> gitconfig)."""
    count = households or max(12, commits // 50)
    root, people = make_archive(base)
    write_csv(base / "households.csv", count)
    run_cli(person_env(people["clk01"]), "--archive", str(root), "import", str(base / "households.csv"),
            "-r", "bench", "-a", "mgr01")  # fmt: skip
    say(f"  real archive: init and an import of {count} households (their record keys in the keystore)")
    founding_commit = git(root, "rev-list", "--max-parents=0", "HEAD").decode().split()[0]
    founding_msg = git(root, "cat-file", "commit", founding_commit).split(b"\n\n", 1)[1]
    founding = {
        path: git(root, "cat-file", "blob", f"{founding_commit}:{path}")
        for path in git(root, "ls-tree", "-r", "--name-only", founding_commit).decode().split()
    }
    homes = []
    for path in git(root, "ls-tree", "-r", "--name-only", "HEAD", "households").decode().split():
        _, building, unit, number, _ = path.split("/")
        homes.append(Household(number, path, building, unit, git(root, "cat-file", "blob", f"HEAD:{path}")))
    homes.sort(key=lambda h: h.number)
    now = int(dt.datetime.now(dt.UTC).timestamp())
    start = now - STEP * (commits + 10)
    steps = plan(start, commits, homes)
    say(f"  planned {len(steps) + 1} commits")
    trees = _fast_import_trees(root, founding, steps)
    say("  blobs and trees written by git fast-import")
    names = _identities(root)
    keys = {p: Signer(people[p].parent / p) for p in people}
    pack = PackWriter(root, len(trees))
    ids: list[str] = []
    parent = pack.add_commit(signed_commit(trees[0], None, names["gm01"], start, founding_msg, keys["gm01"]))
    for i, (step, tree) in enumerate(zip(steps, trees[1:], strict=True)):
        trailers = step.trailers + [("Approves", ids[n]) for n in step.approves]
        body = signed_commit(tree, parent, names[step.who], step.when, message(step.subject, trailers), keys[step.who])
        parent = pack.add_commit(body)
        ids.append(parent)
        if (i + 1) % 20000 == 0:
            say(f"  signed {i + 1} commits")
    pack.close()
    git(root, "update-ref", "refs/heads/main", parent)
    git(root, "reset", "-q", "--hard", "HEAD")
    git(root, "reflog", "expire", "--expire=now", "--all")  # the real init and import: gone from every ref
    return root, people


def _identities(root: Path) -> dict[str, bytes]:
    """person -> `Name <id@staff.archivectl>` as archive.Transaction.commit writes them."""
    staff = yamlio.loads((root / "staff.yaml").read_bytes(), "staff.yaml")
    return {m["id"]: f"{m['name']} <{m['id']}@staff.archivectl>".encode() for m in staff["staff"]}


def check(root: Path) -> None:
    """Both checkers accept the built history: `archivectl verify` is clean and git says G for every commit."""
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1"}
    verify = subprocess.run(
        [sys.executable, "-m", "archivectl", "--archive", str(root), "verify"], capture_output=True, text=True, env=env
    )
    if verify.returncode != 0:
        raise SystemExit(f"archivectl verify refuses the built history:\n{verify.stdout}{verify.stderr}")
    signers = root.parent / "allowed_signers"
    from archivectl.staff import Staff, allowed_signers

    signers.write_text(allowed_signers(Staff.from_yaml(yamlio.loads((root / "staff.yaml").read_bytes()))))
    verdicts = git(root, "-c", f"gpg.ssh.allowedSignersFile={signers}", "log", "--format=%G?").decode().split()
    if set(verdicts) != {"G"}:
        raise SystemExit(f"git log --format=%G? says {sorted(set(verdicts))} for the built history")
    print(f"  {verify.stdout.strip()}; git: G for all {len(verdicts)}")


def main() -> None:
    import tempfile
    import time

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commits", type=int, default=300)
    parser.add_argument("--check", action="store_true", help="require archivectl verify and git %%G? to accept it")
    parser.add_argument("--keep", type=Path, help="build here and keep it (default: a temporary directory)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-history-") as tmp:
        base = args.keep or Path(tmp)
        start = time.perf_counter()
        root, _ = build(base, args.commits)
        print(f"built {args.commits} commits in {time.perf_counter() - start:.1f} s at {root}")
        if args.check:
            check(root)


if __name__ == "__main__":
    main()
