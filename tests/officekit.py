"""An office of people on their own machines, for the keystore office tests.

Shared by tests/test_keystore_office.py (record keys on an SSH server) and
tests/test_openbao.py (record keys on an OpenBao server): both walk the same
flow (propose on a branch, review, approve, merge, tombstone, purge, shred)
and end with the same probe, so the machinery lives here once and only the
way a machine reaches the keystore differs (Machine.backend_env).
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pyrage
from conftest import process_env

AGE = b"age-encryption.org/v1"
ARMORED = rb"-----BEGIN AGE ENCRYPTED FILE-----.*?-----END AGE ENCRYPTED FILE-----"


class Machine:
    """One person's workstation: a HOME of its own, their git config, their clone of the server repository.

    Everything runs as a child process (optionally under faketime) with this machine's environment, so
    nothing leaks between people through os.environ, and the probe can search each HOME afterwards.
    Subclasses say how the machine reaches the keystore by overriding backend_env.
    """

    def __init__(self, base: Path, person, server: Path):
        self.person, self.server = person, server
        self.home = base / f"home-{person.id}"
        (self.home / "tmp").mkdir(parents=True)
        self.clone = self.home / "estate"

    def backend_env(self) -> dict[str, str]:
        """The keystore-specific variables (an SSH command, a token); read on every run, so they may change."""
        return {}

    def env(self) -> dict[str, str]:
        return {
            **process_env(self.person),
            "HOME": str(self.home),
            "TMPDIR": str(self.home / "tmp"),
            **self.backend_env(),
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        }

    def run(self, *args: str, when: str | None = None, cwd: Path | None = None, env: dict | None = None):
        cmd = [*(["faketime", "-f", when] if when else []), *args]
        return subprocess.run(
            cmd, capture_output=True, text=True, env={**self.env(), **(env or {})}, cwd=cwd or self.clone, timeout=120
        )

    def cli(self, *args: str, when: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
        return self.run(sys.executable, "-m", "archivectl", *args, when=when, env=env)

    def ok(self, *args: str, when: str | None = None, env: dict | None = None) -> str:
        result = self.cli(*args, when=when, env=env)
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result.stdout

    def git(self, *args: str, when: str | None = None) -> str:
        result = self.run("git", *args, when=when)
        assert result.returncode == 0, (args, result.stderr)
        return result.stdout

    def join(self) -> None:
        """Clone the server repository and install the hooks, as a new member of staff does."""
        subprocess.run(["git", "clone", "-q", str(self.server), str(self.clone)], check=True, env=self.env())
        self.ok("install-hooks")

    def merge(self, branch: str, when: str | None = None) -> None:
        """Fetch, merge an approved branch into main with an ordinary merge commit, push it."""
        self.git("fetch", "-q", when=when)
        self.git("switch", "-q", "main", when=when)
        self.git("pull", "-q", "--ff-only", when=when)
        self.git("merge", "-q", "--no-ff", "-m", f"Merge {branch}", f"origin/{branch}", when=when)
        self.git("push", "-q", "origin", "main", when=when)


def propose(machine: Machine, branch: str, text: str, when: str) -> str:
    """Add a household on a new branch and push it; returns its archive number.

    The form is written beside the HOMEs, not in one: it stands for the paper form typed in,
    so the probe's "nothing on any disk" checks are not fooled by it.
    """
    machine.git("switch", "-q", "-c", branch, when=when)
    form = machine.home.parent / "forms" / f"{branch}.yaml"
    form.parent.mkdir(exist_ok=True)
    form.write_text(text)
    number = machine.ok("add", "--file", str(form), "-r", "new owner", "-a", "mgr01", when=when)
    machine.git("push", "-q", "-u", "origin", branch, when=when)
    return number.strip()


def change_on_branch(machine: Machine, branch: str, *args: str, when: str | None = None) -> str:
    """A change proposed as people do it: a branch off the server's main, the archivectl command, a push."""
    machine.git("fetch", "-q", when=when)
    machine.git("switch", "-q", "-c", branch, "origin/main", when=when)
    said = machine.ok(*args, when=when)
    machine.git("push", "-q", "-u", "origin", branch, when=when)
    return said


def approve_and_merge(machine: Machine, branch: str, reason: str, when: str | None = None) -> None:
    """The approver, on their own machine: fetch the proposal, sign the approval, push it, merge it into main."""
    machine.git("fetch", "-q", when=when)
    machine.git("switch", "-q", branch, when=when)
    machine.ok("approve", "--yes", "-r", reason, when=when)
    machine.git("push", "-q", "origin", branch, when=when)
    machine.merge(branch, when=when)


def everything(machines: Sequence[Machine], *roots: Path) -> list[bytes]:
    """Every file under every HOME, the server repository and roots, and every git object (unpacked).

    Git objects are read with cat-file so that packed, deltified history is searched as well as loose files.
    """
    server = machines[0].server
    found = []
    for root in [*(m.home for m in machines), server, *roots]:
        found += [p.read_bytes() for p in root.rglob("*") if p.is_file()]
    for repo in [*(m.clone for m in machines), server]:
        listing = subprocess.run(
            ["git", "-C", str(repo), "cat-file", "--batch-all-objects", "--batch"], capture_output=True, check=True
        )
        found.append(listing.stdout)
    return found


def probe(blobs: list[bytes], staff) -> str:
    """The blobs as text, plus whatever any staff key, or any record key a staff key opens, decrypts in them.

    What a leak check must not find in the result, no one on staff could read from these bytes.
    """
    identities = [pyrage.ssh.Identity.from_buffer(p.key.read_bytes()) for p in staff]
    record_keys = []
    for blob in blobs:
        for part in blob.split(AGE)[1:]:
            for identity in identities:
                try:
                    text = pyrage.decrypt(AGE + part, [identity]).decode("utf-8", "replace")
                except Exception:
                    continue
                if "AGE-SECRET-KEY-" in text:
                    record_keys.append(pyrage.x25519.Identity.from_str(re.search(r"AGE-SECRET-KEY-\S+", text)[0]))
    found = []
    for blob in blobs:
        armored = re.findall(ARMORED, blob, re.S)
        payloads = [b"\n".join(line.strip() for line in block.splitlines()) + b"\n" for block in armored]
        payloads += [AGE + p for p in blob.split(AGE)[1:]]
        for payload in payloads if record_keys else []:
            for candidate in (payload, payload.split(b"\n\n")[0]):
                try:
                    found.append(pyrage.decrypt(candidate, record_keys).decode("utf-8", "replace"))
                    break
                except Exception:
                    continue
        found.append(blob.decode("utf-8", "replace"))
    return "\n".join(found)
