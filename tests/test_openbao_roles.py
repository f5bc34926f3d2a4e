"""Least privilege at the key server, role by role, with real tokens (P3 P7 P13 P14; issue 25 item 7).

One `bao server -dev` for the module (tests/baoserver.py), policies written from
`archivectl keys policy`, an archive holding a B03 and a B05 household moved onto
it with `keys migrate`. Each staff role gets a real token; what it may create and
read is tried through archivectl's own client, and every way the KV v2 and transit
APIs offer to delete or destroy a key or a number reservation is tried straight
against the server, as someone holding the token would: each must be refused
(403), with the archive and every entry, version and transit key on the server
unchanged. Only the cron's shredder token destroys, and only whole (all versions).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator

import hvac
import pytest
from baoserver import INSTALL_HINT, bao_binary, running_bao
from conftest import LIVE_RECORD, RECORD, SECRETS, World, assert_unchanged, found_world, process_env

from archivectl.errors import ArchiveError
from archivectl.openbao import OpenBaoBackend, transit_key

pytestmark = pytest.mark.skipif(bao_binary() is None, reason=INSTALL_HINT)
needs_faketime = pytest.mark.skipif(
    shutil.which("faketime") is None, reason="faketime missing: apt-get install faketime"
)

# role -> (staff id, may add numbers and keys, opens B03's key, opens B05's key): P7 on the server.
ROLES = {
    "butler": ("but01", True, True, False),
    "butler-of-B05": ("but02", True, False, True),
    "cashier": ("cas01", True, True, False),
    "clerk": ("clk01", True, False, False),
    "manager": ("mgr01", True, True, True),
    "gm": ("gm01", True, True, True),
    "auditor": ("aud01", False, False, False),
}


class Estate:
    """The archive on the key server, the server, and the two households' numbers and key names."""

    def __init__(self, world: World, bao) -> None:
        self.world, self.bao = world, bao
        self.b03 = world.add()
        self.b05 = world.add("clk01", "mgr01", LIVE_RECORD.replace("building: B03", "building: B05"))
        world.approve("mgr01")
        bao.write_policies(world.ok("gm01", "keys", "policy", "--mount", "estate", "--format", "json"))
        moved = world.ok(
            "mgr01", "keys", "migrate", "--to", bao.url, "-r", "one key server", "-a", "gm01", env=self.env("mgr01")
        )
        assert "copied 2 record keys" in moved
        world.approve("gm01")
        self.key = {n: f"keys/{k}" for k in key_names(bao) for n in (self.b03, self.b05) if k.startswith(n)}
        assert sorted(self.key) == sorted([self.b03, self.b05])

    def env(self, who: str, *extra: str) -> dict[str, str]:
        return {"BAO_TOKEN": self.bao.token(who, *extra)}


@pytest.fixture(scope="module")
def estate(tmp_path_factory: pytest.TempPathFactory, people) -> Iterator[Estate]:
    tmp = tmp_path_factory.mktemp("roles")
    world = World(tmp, dict(people))
    found_world(world)
    with running_bao(tmp) as bao:
        yield Estate(world, bao)


def key_names(bao) -> list[str]:
    try:
        return sorted(bao.root.secrets.kv.v2.list_secrets("keys", mount_point="estate")["data"]["keys"])
    except hvac.exceptions.InvalidPath:
        return []


def held(bao) -> dict:
    """Everything the server holds for the keystore, read with the root token: entries, every version, transit keys."""
    kv = bao.root.secrets.kv.v2
    out: dict = {"transit": sorted(bao.root.secrets.transit.list_keys(mount_point="estate-transit")["data"]["keys"])}
    for folder in ("keys", "numbers"):
        for name in kv.list_secrets(folder, mount_point="estate")["data"]["keys"]:
            path = f"{folder}/{name}"
            meta = kv.read_secret_metadata(path, mount_point="estate")["data"]
            try:
                data = kv.read_secret_version(path, mount_point="estate", raise_on_deleted_version=True)["data"]["data"]
            except hvac.exceptions.InvalidPath:
                data = None  # soft-deleted or destroyed: what no refused attempt may leave
            out[path] = {"versions": meta["versions"], "current": meta["current_version"], "data": data}
    return out


def as_token(url: str, token: str) -> OpenBaoBackend:
    """archivectl's own client with this token (BAO_TOKEN is read on first use, per thread: here, now)."""
    os.environ["BAO_TOKEN"] = token
    try:
        backend = OpenBaoBackend(url)
        backend._client()
        return backend
    finally:
        os.environ.pop("BAO_TOKEN")


def destroy_attempts(client: hvac.Client, name: str) -> list[tuple[str, object]]:
    """Every request the KV v2 and transit APIs offer to delete, destroy or blank out one entry."""
    a = client.adapter
    out: list[tuple[str, object]] = [
        ("soft delete", lambda: a.delete(f"/v1/estate/data/{name}")),
        ("delete versions", lambda: a.post(f"/v1/estate/delete/{name}", json={"versions": [1, 2, 3]})),
        ("destroy versions", lambda: a.post(f"/v1/estate/destroy/{name}", json={"versions": [1, 2, 3]})),
        ("delete metadata and all versions", lambda: a.delete(f"/v1/estate/metadata/{name}")),
        ("shrink to no versions", lambda: a.post(f"/v1/estate/metadata/{name}", json={"max_versions": 1})),
    ]
    if name.startswith("numbers/"):
        out.append(("overwrite", lambda: a.post(f"/v1/estate/data/{name}", json={"data": {"b64": ""}})))
    else:
        key = transit_key(name)
        out += [
            (
                "allow deleting the transit key",
                lambda: a.post(f"/v1/estate-transit/keys/{key}/config", json={"deletion_allowed": True}),
            ),
            ("delete the transit key", lambda: a.delete(f"/v1/estate-transit/keys/{key}")),
            ("rotate the transit key", lambda: a.post(f"/v1/estate-transit/keys/{key}/rotate")),
            (
                "trim the transit key",
                lambda: a.post(f"/v1/estate-transit/keys/{key}/trim", json={"min_available_version": 2}),
            ),
        ]
    return out


@pytest.mark.parametrize("role", sorted(ROLES))
def test_each_role_creates_and_reads_what_it_may_and_can_destroy_nothing(estate, role):  # P3 P7 P13 P14
    who, adds, opens_b03, opens_b05 = ROLES[role]
    world, bao = estate.world, estate.bao
    token = bao.token(who)
    mine = as_token(bao.url, token)

    # Read: every member sees numbers and the sealed entries; opening a key is the server's P7 decision.
    assert mine.read(f"numbers/{estate.b03}") is not None
    for number, opens in ((estate.b03, opens_b03), (estate.b05, opens_b05)):
        if opens:
            assert mine.read(estate.key[number]).startswith(b"age-encryption.org")
        else:
            with pytest.raises(ArchiveError, match="permission denied"):
                mine.read(estate.key[number])

    # Create: a number reservation and a record key of a household of its own (a clerk's add), but never twice.
    serial = sorted(ROLES).index(role) + 1
    number, recipient = f"HO-2099-{serial:05d}", "age1" + f"{role.replace('-', '').lower()}{serial}".ljust(58, "q")[:58]
    own = f"keys/{number}.{recipient}.age"
    if adds:
        assert mine.create(f"numbers/{number}", b"reserved by a test") is True
        assert mine.create(own, b"age-encryption.org/v1 a test key") is True
        assert mine.create(f"numbers/{number}", b"again") is False  # P3: taken is taken
        assert mine.create(own, b"age-encryption.org/v1 another") is False
    else:
        for name, data in ((f"numbers/{number}", b"x"), (own, b"age-encryption.org/v1 x")):
            with pytest.raises(ArchiveError, match="permission denied"):
                mine.create(name, data)

    # Destroy: another building's key, its own building's key, its own new key, and the reservations.
    before, archive_before = held(bao), world.snapshot()
    direct = hvac.Client(bao.address, token=token)
    targets = [estate.key[estate.b03], estate.key[estate.b05], f"numbers/{estate.b03}", f"numbers/{estate.b05}"]
    targets += [own, f"numbers/{number}"] if adds else []
    allowed = []
    for name in targets:
        for what, attempt in destroy_attempts(direct, name):
            try:
                attempt()
            except hvac.exceptions.Forbidden:
                continue
            allowed.append((what, name))
        with pytest.raises(ArchiveError, match="refused by the server: permission denied"):
            mine.remove(name)  # archivectl's own destroy (keys shred), with this token
    assert allowed == []
    if adds:  # creating a transit key that exists already is accepted and changes nothing: no export, no deletion
        key = transit_key(estate.key[estate.b03])
        direct.adapter.post(
            f"/v1/estate-transit/keys/{key}",
            json={"exportable": True, "allow_plaintext_backup": True, "deletion_allowed": True},
        )
        config = bao.root.read(f"estate-transit/keys/{key}")["data"]
        assert not config["exportable"] and not config["allow_plaintext_backup"] and not config["deletion_allowed"]
    assert held(bao) == before
    assert_unchanged(world, archive_before)
    if opens_b03:
        assert mine.read(estate.key[estate.b03]).startswith(b"age-encryption.org")  # the key still opens


def test_the_shredders_token_destroys_a_key_whole_and_nothing_else(estate):  # P13 P14
    bao = estate.bao
    cron = bao.token("gm01", "archivectl-shredder", purpose="maintenance")
    shredder = as_token(bao.url, cron)
    doomed = f"keys/HO-2098-00001.age1{'s' * 58}.age"
    assert shredder.create(doomed, b"age-encryption.org/v1 an abandoned proposal's key") is True
    assert shredder.create("numbers/HO-2098-00001", b"reserved") is True

    # No soft delete, no partial destruction, no number given back: only the whole entry at once.
    before = held(bao)
    direct = hvac.Client(bao.address, token=cron)
    a = direct.adapter
    for name in (doomed, estate.key[estate.b03], "numbers/HO-2098-00001"):
        for attempt in (
            lambda: a.delete(f"/v1/estate/data/{name}"),
            lambda: a.post(f"/v1/estate/delete/{name}", json={"versions": [1]}),
            lambda: a.post(f"/v1/estate/destroy/{name}", json={"versions": [1]}),
            lambda: a.post(f"/v1/estate/undelete/{name}", json={"versions": [1]}),
        ):
            with pytest.raises(hvac.exceptions.Forbidden):
                attempt()
    with pytest.raises(hvac.exceptions.Forbidden):
        a.delete("/v1/estate/metadata/numbers/HO-2098-00001")  # P3: a number is never given back
    assert held(bao) == before

    assert shredder.remove(doomed) is True
    with pytest.raises(hvac.exceptions.InvalidPath):  # no version left to undelete: metadata and all are gone
        bao.root.secrets.kv.v2.read_secret_metadata(doomed, mount_point="estate")
    assert transit_key(doomed) not in held(bao)["transit"]
    assert shredder.remove(doomed) is False  # idempotent
    after = held(bao)
    assert after == {
        **{k: v for k, v in before.items() if k != doomed},
        "transit": [k for k in before["transit"] if k != transit_key(doomed)],
    }


@needs_faketime
def test_a_write_that_fails_after_its_key_was_stored_leaves_an_orphan_the_shredder_removes(estate):  # P3 P13 P14
    world, bao = estate.world, estate.bao
    clerk = estate.env("clk01")
    before, archive_before = held(bao), world.snapshot()
    broken = {**world.broken_signing_env("clk01"), **clerk}
    form = world.tmp / "failing.yaml"
    form.write_text(RECORD)
    adding = ["add", "--file", str(form), "--also-active", "-r", "new owner", "-a", "mgr01"]
    audited = len(bao.audit_entries())
    failed = world.cli("clk01", *adding, env=broken)
    assert failed.exit_code == 1 and len(failed.stderr.strip().splitlines()) == 1, failed
    assert_unchanged(world, archive_before)

    # The clerk may not delete what the failed write stored: it stays, named by no commit (decided: an orphan
    # encrypts nothing in git), and the clerk's client never even asked the server to delete it.
    after = held(bao)
    new = sorted(set(after) - set(before))
    assert len(new) == 2 and {n.split("/")[0] for n in new} == {"keys", "numbers"}, new
    assert len(after["transit"]) == len(before["transit"]) + 1
    orphan = next(n for n in new if n.startswith("keys/"))
    number = orphan.split("/")[1].split(".")[0]
    assert {k: v for k, v in after.items() if k not in new and k != "transit"} == {
        k: v for k, v in before.items() if k != "transit"
    }
    requests = [e["request"] for e in bao.audit_entries()[audited:] if e.get("type") == "request"]
    deletes = [r for r in requests if r["operation"] == "delete" or "/delete/" in r["path"] or "/destroy/" in r["path"]]
    assert deletes == []
    fsck = world.cli("gm01", "keys", "fsck", "--format", "json", env=estate.env("gm01"))
    assert fsck.exit_code == 0, fsck
    notes = [r for r in json.loads(fsck.stdout) if r["archive_no"] == number]
    assert len(notes) == 1 and "note" in notes[0] and "problem" not in notes[0], notes

    # The next add goes on past the reservation (P3), and the household opens.
    again = world.ok("clk01", *adding, env=clerk).strip()
    assert again != number and again.split("-")[:2] == number.split("-")[:2]
    world.approve("mgr01")
    shown = world.ok("mgr01", "show", again, "--reveal", "-r", "call", "-f", "json", env=estate.env("mgr01"))
    assert json.loads(shown)["customers"][0]["phone"] == SECRETS[1]

    # A week on, the cron's shredder token removes the orphan, whole; the number stays reserved.
    cron = {"BAO_TOKEN": bao.token("gm01", "archivectl-shredder", purpose="maintenance")}
    env = {**process_env(world.people["gm01"]), **cron, "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
    removed = subprocess.run(
        ["faketime", "-f", "+8d", sys.executable, "-m", "archivectl", "--archive", str(world.root),
         "keys", "fsck", "--remove-orphans", "--format", "json"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert removed.returncode == 0, removed.stderr
    rows = [r for r in json.loads(removed.stdout) if r["archive_no"] == number]
    assert rows == [{"archive_no": number, "key": orphan.split(".")[1][:20], "note": "orphan removed"}], rows
    with pytest.raises(hvac.exceptions.InvalidPath):
        bao.root.secrets.kv.v2.read_secret_metadata(orphan, mount_point="estate")
    assert f"numbers/{number}" in held(bao)


@needs_faketime
def test_a_manager_running_keys_fsck_remove_orphans_is_refused_by_the_server_and_nothing_changes(estate):  # P14
    world, bao = estate.world, estate.bao
    orphan = f"keys/HO-2097-00001.age1{'o' * 58}.age"
    as_token(bao.url, bao.token("clk01")).create(orphan, b"age-encryption.org/v1 an abandoned proposal's key")
    before, archive_before = held(bao), world.snapshot()
    env = {**process_env(world.people["mgr01"]), "BAO_TOKEN": bao.token("mgr01"), "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
    refused = subprocess.run(
        ["faketime", "-f", "+8d", sys.executable, "-m", "archivectl", "--archive", str(world.root),
         "keys", "fsck", "--remove-orphans"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    lines = refused.stderr.strip().splitlines()
    assert refused.returncode == 1 and len(lines) == 1, refused
    assert "refused by the server: permission denied" in lines[0] and env["BAO_TOKEN"] not in refused.stderr
    assert held(bao) == before
    assert_unchanged(world, archive_before)


def test_keys_policy_grants_no_member_any_delete(estate):  # P14
    found = json.loads(estate.world.ok("gm01", "keys", "policy", "--format", "json", env=estate.env("gm01")))
    for name, document in found.items():
        for path, rule in document["path"].items():
            caps = set(rule["capabilities"])
            if name == "archivectl-shredder":
                assert caps <= {"read", "delete", "update"}, (path, caps)
                # record keys, and the index keys a rotation replaced (issue 27): never a number
                assert "delete" not in caps or any(
                    p in path for p in ("/metadata/keys/", "-transit/keys/", "/metadata/index/")
                ), path
            else:
                assert not caps & {"delete", "sudo"}, (name, path, caps)
                assert "/delete/" not in path and "/destroy/" not in path and "/undelete/" not in path
