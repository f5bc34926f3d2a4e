"""One keystore for the whole office, on a real OpenSSH server (P3, P7, P12, P13, P14).

Four people on four machines: each a HOME, a key, a git config, an SSH setup
and a clone of the bare server repository. The record keys live on the
office's SSH server (sftp://keys.estate/...), reached with each person's own
key; nothing is copied by hand between them, and no key is written on a
workstation. The clerk adds on a branch, the butler reads it in `git diff`
and `show --reveal`, the manager approves, it is merged; the household is
tombstoned, purged 35 days later, approved and `keys shred` destroys its key.
Then a probe decrypts everything on every disk with every staff key.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import LIVE_RECORD, LIVE_SECRETS, RECORD, SECRETS, staff_yaml
from officekit import Machine, approve_and_merge, change_on_branch, everything, probe, propose
from sshd import INSTALL_HINT, SSHD, running_sshd, ssh_command, ssh_home

pytestmark = [
    pytest.mark.skipif(not SSHD.exists(), reason=INSTALL_HINT),
    pytest.mark.skipif(shutil.which("faketime") is None, reason="faketime missing: apt-get install faketime"),
]


class SshMachine(Machine):
    """A workstation that reaches the keystore over SSH, with its own ~/.ssh and its person's key."""

    def __init__(self, base: Path, person, sshd, server: Path):
        super().__init__(base, person, server)
        self.ssh = ssh_command(ssh_home(self.home, sshd, person.key))

    def backend_env(self) -> dict[str, str]:
        return {"ARCHIVECTL_SSH": self.ssh}


@pytest.fixture
def office(tmp_path: Path, people):
    """gm, clerk, butler and managers on their own machines; the keystore on the office's SSH server."""
    with running_sshd(tmp_path) as sshd:
        for who in ("gm01", "clk01", "but01", "mgr01", "mgr02"):
            sshd.authorize(people[who].pub)
        server = tmp_path / "server.git"
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(server)], check=True)
        machines = {
            who: SshMachine(tmp_path, people[who], sshd, server) for who in ("gm01", "clk01", "but01", "mgr01", "mgr02")
        }
        keystore = tmp_path / "srv" / "estate.keys"
        keystore.parent.mkdir()  # the IT person's folder on the server
        gm = machines["gm01"]
        (gm.home / "staff.yaml").write_text(staff_yaml(people))
        url = f"sftp://keys.estate{keystore}"
        founded = gm.run(
            sys.executable, "-m", "archivectl", "init", "estate", "--name", "Estate",
            "--staff-file", str(gm.home / "staff.yaml"), "--keystore", url,
            when="-40d", cwd=gm.home,
        )  # fmt: skip
        assert founded.returncode == 0, founded.stderr
        assert url in founded.stdout and (keystore / "keys").is_dir()
        gm.ok("--archive", str(server), "install-hooks", "--server")
        gm.git("remote", "add", "origin", str(server))
        gm.git("push", "-q", "-u", "origin", "main", when="-40d")
        for who, machine in machines.items():
            if who != "gm01":
                machine.join()
        yield machines, keystore


def test_the_office_shares_one_keystore_over_ssh_and_a_purge_leaves_nothing_anywhere(office, people):
    machines, keystore = office
    gm, clerk, butler, manager, other = (machines[w] for w in ("gm01", "clk01", "but01", "mgr01", "mgr02"))

    # Two parallel adds on two branches, on two machines: two numbers (P3), reserved in the keystore.
    doomed = propose(clerk, "b03-owner", RECORD, "-40d")
    live = propose(other, "b03-second", LIVE_RECORD.replace("B05", "B03"), "-40d")
    assert doomed != live
    assert sorted(p.name for p in (keystore / "numbers").iterdir()) == sorted([doomed, live])

    # The butler, on their own machine, reads the proposal in git diff and show --reveal: the key comes
    # from the server, with their own SSH key, into memory only.
    butler.git("fetch", "-q", when="-40d")
    butler.git("switch", "-q", "b03-owner", when="-40d")
    sealed = butler.git("diff", "origin/main", "HEAD", "--", "households", when="-40d")
    assert SECRETS[1] not in sealed and "register a review" in sealed  # reading a diff is a look-up (P8)
    butler.ok("review-start", "origin/main..HEAD", "-r", "review before approval", when="-40d")
    diff = butler.git("diff", "origin/main", "HEAD~1", "--", "households", when="-40d")
    assert SECRETS[1] in diff  # the owner's phone, decrypted for a reader of B03
    shown = json.loads(
        butler.ok("show", doomed, "--reveal", "-r", "review before approval", "--format", "json", when="-40d")
    )
    assert shown["customers"][0]["phone"] == SECRETS[1]
    butler.git("push", "-q", "origin", "b03-owner", when="-40d")  # the look-up is registered on the branch

    # The manager approves both on their own machine; each is merged and accepted by the server.
    for branch in ("b03-owner", "b03-second"):
        approve_and_merge(manager, branch, "matches the hand-over form", when="-40d")

    # Tombstone 35 days ago, approved, merged.
    change_on_branch(
        butler, "tomb", "tombstone", doomed, "-r", "customer asked for deletion", "-a", "mgr01", when="-35d"
    )
    approve_and_merge(manager, "tomb", "confirmed with the customer", when="-35d")

    # Today: the purge is proposed; until the gm approves it on main, keys shred destroys nothing.
    manager.git("switch", "-q", "-c", "purge", "origin/main")
    manager.ok("purge", doomed, "-r", "retention passed", "-a", "gm01")
    manager.git("push", "-q", "-u", "origin", "purge")
    key_files = sorted((keystore / "keys").iterdir())
    assert len(key_files) == 2
    gm.git("pull", "-q", "--ff-only")
    shred_early = json.loads(gm.ok("keys", "shred", "--dry-run", "--format", "json"))
    assert shred_early == [] or all(not r["shredded"] for r in shred_early)
    gm.git("fetch", "-q")
    gm.git("switch", "-q", "purge")
    gm.ok("approve", "--yes", "-r", "retention checked")
    gm.git("push", "-q", "origin", "purge")
    gm.merge("purge")
    rows = json.loads(gm.ok("keys", "shred", "--format", "json"))
    assert [(r["archive_no"], r["shredded"]) for r in rows] == [(doomed, True)]
    gm.git("push", "-q", "origin", "main")  # the shred's register entry, accepted by the server
    assert [p.name for p in (keystore / "keys").iterdir()] == [f.name for f in key_files if live in f.name]
    assert json.loads(gm.ok("keys", "shred", "--format", "json")) == []  # idempotent

    # Everyone pulls; verify and fsck pass on every machine.
    for machine in machines.values():
        machine.git("switch", "-q", "main")
        machine.git("pull", "-q", "--ff-only")
        machine.git("gc", "-q", "--prune=now")
    assert gm.cli("verify").returncode == 0
    fsck = gm.cli("keys", "fsck")
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr

    # The probe: every git object, every file under every HOME and clone, the server's repository
    # and keystore, decrypted with every staff key and every record key they open.
    blobs = everything(list(machines.values()), keystore)
    revealed = probe(blobs, [people[w] for w in people])
    assert [s for s in SECRETS if s in revealed] == []
    assert all(value in revealed for value in LIVE_SECRETS)
    # nothing of any key was written on a workstation: no age file under any HOME outside the clone's git objects
    for machine in machines.values():
        stray = [p for p in machine.home.rglob("*") if p.is_file() and p.read_bytes().startswith(b"age-encryption.org")]
        assert stray == [], stray
