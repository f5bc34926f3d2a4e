"""The keystore on a real OpenBao server (P3, P7, P8, P10, P13, P14).

One dev server per test (tests/baoserver.py), set up as the README tells the IT person:
KV v2 at estate/, transit at estate-transit/, a file audit device, policies written from
`archivectl keys policy`, a token per staff member carrying their id as metadata. Every
record key is sealed twice: age to its readers' SSH keys, then transit with a key of its
own address on the server, so opening one takes both, and the server logs each opening.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import hvac
import pyrage
import pytest
from baoserver import INSTALL_HINT, bao_binary, running_bao
from conftest import LIVE_RECORD, LIVE_SECRETS, RECORD, SECRETS, process_env, staff_yaml
from officekit import Machine, approve_and_merge, change_on_branch, everything, probe, propose

from archivectl.errors import ArchiveError
from archivectl.openbao import OpenBaoBackend, parse_url

pytestmark = pytest.mark.skipif(bao_binary() is None, reason=INSTALL_HINT)
needs_faketime = pytest.mark.skipif(
    shutil.which("faketime") is None, reason="faketime missing: apt-get install faketime"
)

FOUNDER_POLICY = {  # README, step 4: the gm's one-off token for `init` may only look
    "path": {
        "estate/detailed-metadata/*": {"capabilities": ["list"]},
        "estate-transit/keys": {"capabilities": ["list"]},
    }
}


class Desk(Machine):
    """A workstation that reaches the keystore with its person's OpenBao token (set once the policies exist)."""

    def __init__(self, base: Path, person, token: str, server: Path):
        super().__init__(base, person, server)
        self.token = token

    def backend_env(self) -> dict[str, str]:
        return {"BAO_TOKEN": self.token, "VAULT_TOKEN": ""}


class Office:
    """The IT person's server and everyone's desks."""

    def __init__(self, tmp: Path, people, bao, who: tuple[str, ...], when: str | None, shared: bool = False):
        """shared: everyone works in the gm's clone (one repository, several people), as tests/conftest does."""
        self.tmp, self.people, self.bao = tmp, people, bao
        self.server = tmp / "server.git"
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(self.server)], check=True)
        # The gm founds the archive with a one-off token that may only look (README, step 4).
        bao.root.sys.create_or_update_policy("archivectl-founder", json.dumps(FOUNDER_POLICY))
        founder = bao.root.auth.token.create(policies=["archivectl-founder"], ttl="1h")["auth"]["client_token"]
        self.desks = {w: Desk(tmp, people[w], founder if w == "gm01" else "", self.server) for w in who}
        gm = self.desks["gm01"]
        (gm.home / "staff.yaml").write_text(staff_yaml(people))
        founded = gm.run(
            sys.executable, "-m", "archivectl", "init", "estate", "--name", "Estate",
            "--staff-file", str(gm.home / "staff.yaml"), "--keystore", bao.url, when=when, cwd=gm.home,
        )  # fmt: skip
        assert founded.returncode == 0, founded.stderr
        gm.ok("--archive", str(self.server), "install-hooks", "--server")
        gm.git("remote", "add", "origin", str(self.server))
        gm.git("push", "-q", "-u", "origin", "main", when=when)
        for desk in self.desks.values():
            if shared:
                desk.clone = gm.clone
            elif desk is not gm:
                desk.join()
        self.it = tmp / "it-clone"  # the IT person's clone, where cron writes the policies
        subprocess.run(["git", "clone", "-q", str(self.server), str(self.it)], check=True)
        self.sync_policies()
        for who_, desk in self.desks.items():
            desk.token = bao.token(who_)

    def sync_policies(self) -> list[str]:
        """The IT person's cron: pull, `archivectl keys policy --format json`, write each policy."""
        subprocess.run(["git", "-C", str(self.it), "fetch", "-q"], check=True)
        subprocess.run(["git", "-C", str(self.it), "merge", "-q", "--ff-only", "origin/main"], check=True)
        env = {**process_env(None), "BAO_TOKEN": ""}
        result = subprocess.run(
            [sys.executable, "-m", "archivectl", "--archive", str(self.it), "keys", "policy", "--format", "json"],
            capture_output=True, text=True, env=env, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        return self.bao.write_policies(result.stdout)


def key_names(bao) -> list[str]:
    try:
        return sorted(bao.root.secrets.kv.v2.list_secrets("keys", mount_point="estate")["data"]["keys"])
    except hvac.exceptions.InvalidPath:
        return []


def transit_keys(bao) -> list[str]:
    try:
        return sorted(bao.root.secrets.transit.list_keys(mount_point="estate-transit")["data"]["keys"])
    except hvac.exceptions.InvalidPath:
        return []


# ------------------------------------------------------------------ the URL


def test_openbao_urls_parse_and_refuse_what_they_must():
    assert parse_url("openbao://keys.office/estate") == ("https://keys.office:8200", "estate")
    assert parse_url("vault+http://127.0.0.1:8300/teams/estate") == ("http://127.0.0.1:8300", "teams/estate")
    for bad, words in [
        ("openbao://keys.office", "name the KV mount"),
        ("openbao://s.xxxxx@keys.office/estate", "no user or token"),
        ("openbao://keys.office:99999/estate", "port"),
        ("openbao://keys.office/estate?x=1", "no .query"),
    ]:
        with pytest.raises(ArchiveError, match=words):
            parse_url(bad)


def test_no_token_is_one_line_naming_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("BAO_TOKEN", raising=False)
    monkeypatch.delenv("VAULT_TOKEN", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(ArchiveError, match="no token: set BAO_TOKEN"):
        OpenBaoBackend("openbao+http://127.0.0.1:1/estate").check()


# ------------------------------------------------------------------ (1) the office


@needs_faketime
def test_the_office_shares_one_openbao_keystore_and_a_purge_leaves_nothing_anywhere(tmp_path, people):  # P3 P7 P13 P14
    with running_bao(tmp_path) as bao:
        office = Office(tmp_path, people, bao, ("gm01", "clk01", "but01", "mgr01", "mgr02"), when="-40d")
        gm, clerk, butler, manager, other = (office.desks[w] for w in ("gm01", "clk01", "but01", "mgr01", "mgr02"))

        # Two parallel adds on two machines: two numbers (P3), reserved on the server with cas=0.
        doomed = propose(clerk, "b03-owner", RECORD, "-40d")
        live = propose(other, "b03-second", LIVE_RECORD.replace("B05", "B03"), "-40d")
        assert doomed != live
        numbers = bao.root.secrets.kv.v2.list_secrets("numbers", mount_point="estate")["data"]["keys"]
        assert sorted(numbers) == sorted([doomed, live])
        assert len(key_names(bao)) == 2 and len(transit_keys(bao)) == 2
        stored = bao.root.secrets.kv.v2.read_secret_version(
            f"keys/{key_names(bao)[0]}", mount_point="estate", raise_on_deleted_version=True
        )
        assert stored["data"]["data"]["transit"].startswith("vault:v1:")  # no age bytes at rest on the server

        # The IT person's cron writes policies after the push: a proposal's household is readable by its
        # building's readers, so the butler reviews it in git diff and show --reveal before approval.
        office.sync_policies()
        butler.git("fetch", "-q", when="-40d")
        butler.git("switch", "-q", "b03-owner", when="-40d")
        sealed = butler.git("diff", "origin/main", "HEAD", "--", "households", when="-40d")
        assert SECRETS[1] not in sealed and "register a review" in sealed  # reading a diff is a look-up (P8)
        butler.ok("review-start", "origin/main..HEAD", "-r", "review before approval", when="-40d")
        diff = butler.git("diff", "origin/main", "HEAD~1", "--", "households", when="-40d")
        assert SECRETS[1] in diff
        shown = json.loads(
            butler.ok("show", doomed, "--reveal", "-r", "review before approval", "--format", "json", when="-40d")
        )
        assert shown["customers"][0]["phone"] == SECRETS[1]
        butler.git("push", "-q", "origin", "b03-owner", when="-40d")

        for branch in ("b03-owner", "b03-second"):
            approve_and_merge(manager, branch, "matches the hand-over form", when="-40d")

        change_on_branch(
            butler, "tomb", "tombstone", doomed, "-r", "customer asked for deletion", "-a", "mgr01", when="-35d"
        )
        approve_and_merge(manager, "tomb", "confirmed with the customer", when="-35d")

        manager.git("switch", "-q", "-c", "purge", "origin/main")
        manager.ok("purge", doomed, "-r", "retention passed", "-a", "gm01")
        manager.git("push", "-q", "-u", "origin", "purge")
        gm.git("pull", "-q", "--ff-only")
        shred_early = json.loads(gm.ok("keys", "shred", "--dry-run", "--format", "json"))
        assert shred_early == [] or all(not r["shredded"] for r in shred_early)
        gm.git("fetch", "-q")
        gm.git("switch", "-q", "purge")
        gm.ok("approve", "--yes", "-r", "retention checked")
        gm.git("push", "-q", "origin", "purge")
        gm.merge("purge")

        # The gm's own token may not destroy: only a token with the shredder policy (the cron's) may.
        refused = gm.cli("keys", "shred", "--format", "json")
        assert refused.returncode == 1 and "permission denied" in refused.stderr, refused
        assert len(refused.stderr.strip().splitlines()) == 1 and gm.token not in refused.stderr
        assert len(transit_keys(bao)) == 2
        cron = {"BAO_TOKEN": bao.token("gm01", "archivectl-shredder", purpose="maintenance")}
        rows = json.loads(gm.ok("keys", "shred", "--format", "json", env=cron))
        assert [(r["archive_no"], r["shredded"]) for r in rows] == [(doomed, True)]
        gm.git("push", "-q", "origin", "main")
        assert [k.split(".")[0] for k in key_names(bao)] == [live]
        assert [k.split(".")[0] for k in transit_keys(bao)] == [live]
        assert json.loads(gm.ok("keys", "shred", "--format", "json", env=cron)) == []  # idempotent

        for desk in office.desks.values():
            desk.git("switch", "-q", "main")
            desk.git("pull", "-q", "--ff-only")
            desk.git("gc", "-q", "--prune=now")
        assert gm.cli("verify").returncode == 0
        fsck = gm.cli("keys", "fsck", "--deep")
        assert fsck.returncode == 0, fsck.stdout + fsck.stderr

        # The probe: every file under every HOME, every git object, and everything the server holds
        # (read with the root token, transit-decrypted where it still can be), with every staff key.
        blobs = everything(list(office.desks.values())) + _held_by_bao(bao)
        revealed = probe(blobs, [people[w] for w in people])
        assert [s for s in SECRETS if s in revealed] == []
        assert all(value in revealed for value in LIVE_SECRETS)
        for desk in office.desks.values():  # nothing of any key on a workstation's disk
            stray = [p for p in desk.home.rglob("*") if p.is_file() and b"age-encryption.org" in p.read_bytes()[:64]]
            assert stray == [], stray
            for path in desk.home.rglob("*"):
                if path.is_file():
                    assert desk.token.encode() not in path.read_bytes(), path


def _held_by_bao(bao) -> list[bytes]:
    """Every record key entry on the server, read with the root token, and transit-decrypted where it still can be."""
    found = []
    kv = bao.root.secrets.kv.v2
    for name in key_names(bao):
        data = kv.read_secret_version(f"keys/{name}", mount_point="estate", raise_on_deleted_version=True)["data"][
            "data"
        ]
        found.append(json.dumps(data).encode())
        try:
            plain = bao.root.secrets.transit.decrypt_data(
                data["transit_key"], data["transit"], mount_point="estate-transit"
            )["data"]["plaintext"]
        except hvac.exceptions.VaultError:
            continue
        found.append(base64.b64decode(plain))
    return found


# ------------------------------------------------------------------ (2) and (4): the server decides, and logs


def _snapshot(desk: Desk, bao) -> dict:
    """What a refused command must leave alone: HEAD, status, every entry and transit key on the server."""
    kv = bao.root.secrets.kv.v2
    entries = {
        f"{folder}/{n}": kv.read_secret_version(f"{folder}/{n}", mount_point="estate", raise_on_deleted_version=True)
        for folder in ("keys", "numbers")
        for n in kv.list_secrets(folder, mount_point="estate")["data"]["keys"]
    }
    return {
        "head": desk.git("rev-parse", "HEAD"),
        "status": desk.git("status", "--porcelain", "--untracked-files=all"),
        "kv": {k: v["data"] for k, v in entries.items()},
        "transit": transit_keys(bao),
    }


def test_the_server_refuses_a_b05_butler_a_b03_key_and_the_audit_report_finds_a_lookup_behind_archivectl(
    tmp_path, people, monkeypatch
):  # P7 P8 P10
    with running_bao(tmp_path) as bao:
        office = Office(tmp_path, people, bao, ("gm01", "clk01", "but01", "but02", "mgr01"), when=None, shared=True)
        gm, clerk, butler, b05, manager = (office.desks[w] for w in ("gm01", "clk01", "but01", "but02", "mgr01"))
        form = tmp_path / "form.yaml"
        form.write_text(RECORD)
        number = clerk.ok("add", "--file", str(form), "-r", "new owner", "-a", "mgr01").strip()
        scan = tmp_path / "scan.pdf"
        scan.write_bytes(b"%PDF scan of the owner's ID")
        clerk.ok("attach", number, str(scan), "--type", "owner-id-copy", "-r", "scan", "-a", "mgr01")
        manager.ok("approve", "--yes", "-r", "matches the form")
        gm.git("push", "-q", "origin", "main")
        office.sync_policies()

        # (2) but02 reads B05 only. Their token is valid, and the server itself refuses B03's transit key,
        # whatever the client does: here `keys fsck --deep`, which reads every key without archivectl's P7 check.
        before = _snapshot(gm, bao)
        refused = b05.cli("keys", "fsck", "--deep")
        assert refused.returncode == 1, refused
        lines = refused.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("archivectl: error:"), refused.stderr
        assert "refused by the server: permission denied" in lines[0] and number in lines[0]
        assert b05.token not in refused.stderr + refused.stdout
        assert _snapshot(gm, bao) == before
        monkeypatch.setenv("BAO_TOKEN", b05.token)
        backend = OpenBaoBackend(bao.url)
        name = f"keys/{key_names(bao)[0]}"
        with pytest.raises(ArchiveError, match="permission denied"):
            backend.read(name)
        assert backend.read_many([f"numbers/{number}"])[0] is not None  # the token works: numbers are for all
        with pytest.raises(ArchiveError, match="permission denied"):
            backend.remove(name)  # nor may anyone but the shredder destroy
        assert _snapshot(gm, bao) == before

        # (4) Look-ups through archivectl are registered; one made straight against the server is not.
        butler.ok("show", number, "--reveal", "-r", "owner called about parking")
        doc = json.loads(butler.ok("show", number, "--format", "json"))["documents"][0]["file"]
        butler.ok("open", number, doc, "-o", str(butler.home / "tmp" / "id.pdf"), "-r", "check the ID copy")
        manager.ok("show", number, "--reveal", "-r", "monthly review")
        stored = bao.root.secrets.kv.v2.read_secret_version(name, mount_point="estate", raise_on_deleted_version=True)
        direct = hvac.Client(bao.address, token=butler.token)  # the butler's token, without archivectl
        direct.secrets.transit.decrypt_data(
            stored["data"]["data"]["transit_key"], stored["data"]["data"]["transit"], mount_point="estate-transit"
        )
        report = json.loads(gm.ok("report", "access", "--from-audit", str(bao.audit_log), "--format", "json"))
        registered = sorted((r["who"], r["action"], r["archive_no"]) for r in report["registered"])
        assert registered == [("but01", "open", number), ("but01", "reveal", number), ("mgr01", "reveal", number)]
        assert [(r["who"], r["archive_no"]) for r in report["not_in_register"]] == [("but01", number)]
        assert report["not_seen_by_server"] == []
        assert {(r["who"], r["archive_no"]) for r in report["refused"]} == {("but02", number)}
        failing = gm.cli("report", "access", "--from-audit", str(bao.audit_log), "--fail-on-missing")
        assert failing.returncode == 1 and "Opened on the server, not in the access register" in failing.stdout
        assert butler.token not in failing.stdout


# ------------------------------------------------------------------ (3) shredding kills every copy


@needs_faketime
def test_after_shred_a_copy_taken_before_the_tombstone_opens_no_more_even_with_a_root_token(tmp_path, people):  # P14
    with running_bao(tmp_path) as bao:
        office = Office(tmp_path, people, bao, ("gm01", "clk01", "but01", "mgr01"), when="-35d", shared=True)
        gm, clerk, butler, manager = (office.desks[w] for w in ("gm01", "clk01", "but01", "mgr01"))
        form = tmp_path / "form.yaml"
        form.write_text(RECORD)
        doomed = clerk.ok("add", "--file", str(form), "-r", "new", "-a", "mgr01", when="-35d").strip()
        manager.ok("approve", "--yes", "-r", "checked", when="-35d")
        backup = tmp_path / "before-tombstone.tar"
        gm.ok("backup", "--output", str(backup), when="-35d")
        name = f"keys/{key_names(bao)[0]}"
        with_token = {"BAO_TOKEN": office.desks["gm01"].token}
        sealed = _sealed_copy(bao.url, name, with_token["BAO_TOKEN"])  # the entry as the server keeps it
        butler.ok("tombstone", doomed, "-r", "customer asked for deletion", "-a", "mgr01", when="-35d")
        manager.ok("approve", "--yes", "-r", "confirmed", when="-35d")
        manager.ok("purge", doomed, "-r", "retention passed", "-a", "gm01")
        gm.ok("approve", "--yes", "-r", "retention checked")
        gm.git("push", "-q", "origin", "main")
        cron = {"BAO_TOKEN": bao.token("gm01", "archivectl-shredder", purpose="maintenance")}
        rows = json.loads(gm.ok("keys", "shred", "--format", "json", env=cron))
        assert [(r["archive_no"], r["shredded"]) for r in rows] == [(doomed, True)]
        assert transit_keys(bao) == [] and key_names(bao) == []

        # The copy of the sealed entry: the root token cannot open it (its transit key is gone),
        # so no reader's SSH key ever sees the age-wrapped record key in it.
        with pytest.raises(hvac.exceptions.InvalidRequest, match="encryption key not found"):
            bao.root.secrets.transit.decrypt_data(
                sealed["transit_key"], sealed["transit"], mount_point="estate-transit"
            )
        identities = [pyrage.ssh.Identity.from_buffer(people[w].key.read_bytes()) for w in ("gm01", "but01", "mgr01")]
        assert b"age-encryption.org" not in json.dumps(sealed).encode()

        # The backup file taken before the tombstone (`archivectl backup`).
        with tarfile.open(backup) as tar:
            members = [m for m in tar.getmembers() if m.name.startswith(f"keystore/keys/{doomed}.")]
            assert len(members) == 1
            held = tar.extractfile(members[0]).read()
        assert not held.startswith(b"age-encryption.org")  # the server's sealed form, never the bare age file
        for identity in identities:
            with pytest.raises(Exception):
                pyrage.decrypt(held, [identity])
        with pytest.raises(hvac.exceptions.InvalidRequest, match="encryption key not found"):
            held_entry = json.loads(held)
            bao.root.secrets.transit.decrypt_data(
                held_entry["transit_key"], held_entry["transit"], mount_point="estate-transit"
            )


def _sealed_copy(url: str, name: str, token: str) -> dict:
    import os

    saved = os.environ.get("BAO_TOKEN")
    os.environ["BAO_TOKEN"] = token
    try:
        return json.loads(OpenBaoBackend(url).sealed_many([name])[0])
    finally:
        if saved is None:
            os.environ.pop("BAO_TOKEN")
        else:
            os.environ["BAO_TOKEN"] = saved


# ------------------------------------------------------------------ moving onto the server


def test_keys_migrate_moves_a_directory_keystore_onto_openbao_and_fsck_checks_it_there(world, tmp_path):  # P3 P7
    number = world.add()
    world.approve("mgr01")
    with running_bao(tmp_path) as bao:
        # The IT person writes the policies before the move, naming the mount the keystore will have.
        names = bao.write_policies(world.ok("gm01", "keys", "policy", "--mount", "estate", "--format", "json"))
        assert "archivectl-but01" in names and "archivectl-shredder" in names
        hcl = world.ok("gm01", "keys", "policy", "--mount", "estate")
        assert f'path "estate-transit/decrypt/{number}.*"' in hcl and 'path "estate-transit/decrypt/*"' in hcl
        token = {who: {"BAO_TOKEN": bao.token(who)} for who in ("mgr01", "gm01", "but01", "but02")}
        moved = world.ok("mgr01", "keys", "migrate", "--to", bao.url, "-r", "one key server", "-a", "gm01",
                         env=token["mgr01"])  # fmt: skip
        assert "copied 1 record keys and 1 numbers" in moved
        world.approve("gm01")
        assert len(key_names(bao)) == 1 and len(transit_keys(bao)) == 1
        assert world.cli("gm01", "keys", "fsck", "--deep", env=token["gm01"]).exit_code == 0
        shown = json.loads(
            world.ok("but01", "show", number, "--reveal", "-r", "call", "-f", "json", env=token["but01"])
        )
        assert shown["customers"][0]["phone"] == SECRETS[1]
        path = tmp_path / "live.yaml"
        path.write_text(LIVE_RECORD)
        clerk = {"BAO_TOKEN": bao.token("clk01")}
        added = world.ok("clk01", "add", "--file", str(path), "-r", "new", "-a", "mgr01", env=clerk)
        assert added.strip() != number and len(key_names(bao)) == 2


def test_keys_fsck_checks_every_keys_readers_on_the_server_without_opening_one(world, tmp_path):  # P7 P8
    # Each record key's entry names whom its age file is wrapped to (issue 30): fsck reads that, one KV
    # read a key and no transit decrypt, so the server logs no opening; a wrapping to other readers is
    # still found, and an entry written before entries named their readers is opened as before.
    from archivectl import agewrite, crypto

    first, second = world.add(), world.add("clk01", "mgr01", LIVE_RECORD)
    world.approve("mgr01")
    with running_bao(tmp_path) as bao:
        bao.write_policies(world.ok("gm01", "keys", "policy", "--mount", "estate", "--format", "json"))
        token = {who: {"BAO_TOKEN": bao.token(who)} for who in ("mgr01", "gm01")}
        world.ok("mgr01", "keys", "migrate", "--to", bao.url, "-r", "one key server", "-a", "gm01", env=token["mgr01"])
        world.approve("gm01")
        names = {n: f"keys/{k}" for k in key_names(bao) for n in (first, second) if k.startswith(n)}
        root = OpenBaoBackend(bao.url)
        root._local.client = hvac.Client(bao.address, token=bao.root.token)
        entry = bao.root.secrets.kv.v2.read_secret_version(
            names[first], mount_point="estate", raise_on_deleted_version=True
        )["data"]["data"]
        tags, x25519 = crypto.wrapped_for(root.read(names[first]))
        assert entry["readers"].split() == sorted(tags) and entry["x25519"] == str(x25519) and len(tags) >= 2

        def decrypts_during(*args: str) -> tuple[list[dict], list[str]]:
            mark = len(bao.audit_entries())
            result = world.cli("gm01", "keys", "fsck", "--format", "json", *args, env=token["gm01"])
            requests = [e["request"]["path"] for e in bao.audit_entries()[mark:] if e.get("type") == "request"]
            return json.loads(result.stdout or "[]"), [p for p in requests if "/decrypt/" in p]

        rows, decrypts = decrypts_during()
        assert [r for r in rows if "problem" in r] == [] and decrypts == []

        # One key wrapped again to a single reader (as a hand edit on the server would): fsck names it.
        body = root.read(names[first])
        one_reader = agewrite.encrypt(b"# archivectl record key\nAGE-SECRET-KEY-1X\n", [world.people["gm01"].pub])
        root.replace(names[first], one_reader)
        rows, decrypts = decrypts_during()
        problems = [(r["archive_no"], r["problem"]) for r in rows if "problem" in r]
        assert len(problems) == 1 and problems[0][0] == first and "wrapped to other readers" in problems[0][1]
        assert decrypts == []
        root.replace(names[first], body)

        # An entry as stored before entries named their readers: opened (one decrypt), found right.
        kv = bao.root.secrets.kv.v2
        stored = kv.read_secret_version(names[second], mount_point="estate", raise_on_deleted_version=True)["data"][
            "data"
        ]
        older = {k: v for k, v in stored.items() if k not in ("readers", "x25519")}
        kv.create_or_update_secret(names[second], secret=older, mount_point="estate")
        rows, decrypts = decrypts_during()
        assert [r for r in rows if "problem" in r] == []
        assert len(decrypts) == 1 and decrypts[0].endswith("/decrypt/" + stored["transit_key"])


def test_the_lean_connection_reads_what_a_server_answers_and_keeps_one_socket(tmp_path):
    """_Connection (the keystore's fast path) reads a Content-Length answer, a chunked one and a 204 on one
    socket, closes where the server says so, and refuses an answer without a length (hvac's way is taken then)."""
    import http.server
    import threading

    from archivectl.openbao import _Connection

    connections: list[int] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            connections.append(1)

        def log_message(self, *args) -> None:
            pass

        def _answer(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path == "/length":
                data = json.dumps({"seen": body.decode(), "token": self.headers["X-Vault-Token"]}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            elif self.path == "/chunked":
                self.send_response(200)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for part in (b'{"a": ', b'"b"}'):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.write(b"0\r\n\r\n")
            elif self.path == "/empty":
                self.send_response(204)
                self.end_headers()
            elif self.path == "/close":
                self.send_response(404)
                self.send_header("Content-Length", "2")
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(b"{}")
                self.close_connection = True
            else:  # no length: the body runs to the end of the connection
                self.send_response(200)
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(b"{}")
                self.close_connection = True

        do_GET = do_POST = _answer

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        connection = _Connection("127.0.0.1", server.server_address[1], {"X-Vault-Token": "t0ken"})
        status, data = connection.exchange("POST", "/length", b'{"x": 1}')
        assert (status, json.loads(data)) == (200, {"seen": '{"x": 1}', "token": "t0ken"})
        assert connection.exchange("GET", "/chunked", None) == (200, b'{"a": "b"}')
        assert connection.exchange("GET", "/empty", None) == (204, b"")
        assert connection.exchange("GET", "/close", None) == (404, b"{}")
        assert connections == [1]  # one socket for all four
        assert connection.sock is None  # closed as the server said
        with pytest.raises(ValueError):
            connection.exchange("GET", "/nolength", None)
        connection.close()
        assert len(connections) == 2
    finally:
        server.shutdown()
        server.server_close()
