"""The keystore follows main: addressed keys, branch-safe rotations and purges, fsck, recovery, migration
(P3, P7, P13, P14, P16).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pyrage
import pytest
from conftest import OWNER_PHONE, World, assert_refused, assert_unchanged, make_person
from sshd import INSTALL_HINT, SSHD, running_sshd, ssh_command, ssh_home


def key_opens(world: World, path: Path, who: str) -> bool:
    identity = pyrage.ssh.Identity.from_buffer(world.people[who].key.read_bytes())
    try:
        pyrage.decrypt(path.read_bytes(), [identity])
        return True
    except pyrage.DecryptError:
        return False


def test_a_rotation_on_a_branch_never_merged_leaves_main_readable(world: World):  # P14
    number = world.add()
    world.approve("mgr01")
    main_key = world.key_file(number)
    main_bytes = main_key.read_bytes()
    world.git("switch", "-q", "-c", "rotation")
    world.ok("mgr01", "recipients", "sync", "--rotate", "-r", "laptop lost", "-a", "gm01")
    assert world.key_file(number) != main_key and main_key.read_bytes() == main_bytes  # a new address
    world.git("switch", "-q", "main")  # the proposal is abandoned
    shown = json.loads(world.ok("but01", "show", number, "--reveal", "-r", "check", "--format", "json"))
    assert shown["customers"][0]["phone"] == OWNER_PHONE
    assert json.loads(world.ok("aud01", "keys", "shred", "--format", "json")) == []  # main uses no other key
    rows = json.loads(world.ok("aud01", "keys", "fsck", "--format", "json"))
    assert [r["note"] for r in rows if r["archive_no"] == number] == [
        "named only on rotation, not on main"
    ]  # listed, not a problem: the branch still exists
    world.git("branch", "-q", "-D", "rotation")
    rows = json.loads(world.ok("aud01", "keys", "fsck", "--format", "json"))
    assert "removable after 7" in rows[0]["note"]  # an orphan, kept a week in case a clone has not pushed


def test_a_purge_on_a_branch_never_merged_destroys_nothing(old_world: World):  # P13, P14
    w = old_world
    key = w.key_file(w.doomed)
    w.git("switch", "-q", "-c", "purge")
    w.ok("mgr01", "purge", w.doomed, "-r", "retention passed", "-a", "gm01")
    w.approve("gm01")
    w.git("switch", "-q", "main")
    assert json.loads(w.ok("aud01", "keys", "shred", "--format", "json")) == []
    assert key.exists()


def test_keys_shred_refuses_off_main_and_changes_nothing(world: World):
    world.add()
    world.git("switch", "-q", "-c", "elsewhere")
    before = world.snapshot()
    assert_refused(world.cli("aud01", "keys", "shred"), 1, "keys shred runs on an up-to-date main")
    assert_unchanged(world, before)


def test_fsck_finds_a_key_wrapped_for_a_departed_reader_and_sync_mends_it(world: World):  # P7
    number = world.add()
    world.approve("mgr01")
    assert world.cli("aud01", "keys", "fsck").exit_code == 0
    world.ok("mgr01", "staff", "deactivate", "but01", "-r", "left", "-a", "gm01")
    world.approve("gm01")
    before = world.snapshot()
    result = world.cli("aud01", "keys", "fsck")
    assert_refused(result, 1, f"{number}: wrapped to other readers than main says (1 reader(s) too many, 0 missing)")
    assert_unchanged(world, before)
    assert key_opens(world, world.key_file(number), "but01")
    world.ok("gm01", "recipients", "sync")
    assert not key_opens(world, world.key_file(number), "but01")
    assert world.cli("aud01", "keys", "fsck").exit_code == 0
    assert world.cli("aud01", "verify").exit_code == 0


def test_fsck_and_verify_flag_a_missing_key(world: World):
    number = world.add()
    world.approve("mgr01")
    world.key_file(number).unlink()
    assert_refused(world.cli("aud01", "keys", "fsck"), 1, f"{number}: record key is missing")
    verified = world.cli("aud01", "verify", "--format", "json")
    assert verified.exit_code == 1
    assert any("record key is missing" in f["message"] for f in json.loads(verified.stdout)["findings"])


def test_a_staff_change_on_a_branch_gives_nobody_a_key(world: World):  # P7, P12
    number = world.add()
    world.approve("mgr01")
    newbie = world.people.setdefault("but09", make_person(world.tmp / "p9", "but09"))
    world.git("switch", "-q", "-c", "hire")
    world.ok(
        "mgr01", "staff", "add", "but09", "--name", "新管家", "--role", "butler", "--buildings", "B03",
        "--key", newbie.pub, "-r", "hired", "-a", "gm01",
    )  # fmt: skip
    world.approve("gm01")
    world.ok("gm01", "recipients", "sync")  # run on the branch: keys still follow main
    assert not key_opens(world, world.key_file(number), "but09")
    world.git("switch", "-q", "main")
    world.git("merge", "-q", "--no-ff", "-m", "Merge hire", "hire")
    world.ok("gm01", "recipients", "sync")
    assert key_opens(world, world.key_file(number), "but09")


@pytest.mark.skipif(shutil.which("age-keygen") is None, reason="reference age CLI missing: apt-get install age")
def test_the_recovery_recipient_opens_every_key_with_the_reference_age_cli(tmp_path: Path, people):
    recovery = tmp_path / "recovery.txt"  # in the office safe, never on a workstation
    subprocess.run(["age-keygen", "-o", str(recovery)], check=True, capture_output=True)
    public = next(line.split(": ")[1] for line in recovery.read_text().splitlines() if "public key" in line)
    world = World(tmp_path, people)
    from conftest import staff_yaml

    (tmp_path / "staff.yaml").write_text(staff_yaml(people))
    world.ok_init = world.cli(
        "gm01", "init", str(world.root), "--name", "E", "--staff-file", str(tmp_path / "staff.yaml"),
        "--recovery-key", public,
    )  # fmt: skip
    assert world.ok_init.exit_code == 0, world.ok_init
    number = world.add()
    record_key = subprocess.run(
        ["age", "-d", "-i", str(recovery), str(world.key_file(number))], check=True, capture_output=True
    ).stdout
    (tmp_path / "record.key").write_bytes(record_key)
    sealed = (world.root / f"households/B03/1203/{number}/record.yaml").read_text().split("sealed: |")[1]
    armored = "\n".join(line.strip() for line in sealed.strip().splitlines() if line.strip()) + "\n"
    (tmp_path / "sealed.age").write_text(armored)
    plain = subprocess.run(
        ["age", "-d", "-i", str(tmp_path / "record.key"), str(tmp_path / "sealed.age")], check=True, capture_output=True
    )
    assert OWNER_PHONE.encode() in plain.stdout
    assert world.cli("aud01", "keys", "fsck").exit_code == 0  # wrapped to the readers and the recovery recipient


@pytest.mark.skipif(not SSHD.exists(), reason=INSTALL_HINT)
def test_keys_migrate_moves_a_directory_keystore_onto_the_ssh_server(world: World, tmp_path: Path):
    number = world.add()
    world.approve("mgr01")
    with running_sshd(tmp_path) as sshd:
        for who in ("gm01", "but01", "aud01", "mgr01"):
            sshd.authorize(world.people[who].pub)
        server_keys = tmp_path / "srv" / "estate.keys"
        server_keys.parent.mkdir()
        url = f"sftp://keys.estate{server_keys}"
        env = {"ARCHIVECTL_SSH": ssh_command(ssh_home(tmp_path / "home", sshd, world.people["gm01"].key))}
        before = world.snapshot()
        refused = world.cli("mgr01", "keys", "migrate", "--to", url, "-r", "one keystore", "-a", "mgr02", env=env)
        assert_refused(refused, 1, "approvals need a gm")
        assert_unchanged(world, before)
        assert not server_keys.exists()
        world.ok("mgr01", "keys", "migrate", "--to", url, "-r", "one keystore for the office", "-a", "gm01", env=env)
        assert world.trailers()["Action"] == "configure"
        world.approve("gm01")
        shutil.rmtree(world.keys)  # the old keystore is gone: everything now comes from the server
        for who in ("but01", "aud01"):
            env[who] = ssh_command(ssh_home(tmp_path / f"home-{who}", sshd, world.people[who].key))
        shown = world.cli(
            "but01", "show", number, "--reveal", "-r", "check", "--format", "json", env={"ARCHIVECTL_SSH": env["but01"]}
        )
        assert shown.exit_code == 0, shown
        assert json.loads(shown.stdout)["customers"][0]["phone"] == OWNER_PHONE
        fsck = world.cli("aud01", "keys", "fsck", env={"ARCHIVECTL_SSH": env["aud01"]})
        assert fsck.exit_code == 0, fsck


@pytest.mark.skipif(not SSHD.exists(), reason=INSTALL_HINT)
def test_an_unknown_host_key_is_refused_and_nothing_is_registered(world: World, tmp_path: Path):
    number = world.add()
    world.approve("mgr01")
    with running_sshd(tmp_path) as sshd:
        sshd.authorize(world.people["but01"].pub)
        config = ssh_home(tmp_path / "home", sshd, world.people["but01"].key)
        (tmp_path / "home/.ssh/known_hosts").write_text("")  # never told the server's host key
        server_keys = tmp_path / "srv"
        server_keys.mkdir()
        settings = world.root / "archive.yaml"
        settings.write_text(settings.read_text() + f"keystore: sftp://keys.estate{server_keys}\n")
        world.ok("mgr01", "configure", "archive.yaml", "-r", "server keystore", "-a", "gm01")
        world.approve("gm01")
        before = world.snapshot()
        result = world.cli(
            "but01", "show", number, "--reveal", "-r", "check", env={"ARCHIVECTL_SSH": ssh_command(config)}
        )
        assert_refused(result, 1, "host key of keys.estate is unknown or has changed")
        assert_unchanged(world, before)  # no look-up registered for data that was never shown


def test_fsck_finds_a_staged_copy_of_a_key_a_killed_writer_left_and_removes_it(world: World):  # P14
    number = world.add()
    world.approve("mgr01")
    staged = world.keys / "keys" / f".{number}.tmp"  # as a killed SFTP replace leaves it: a wrapped copy
    staged.write_bytes(world.key_file(number).read_bytes())
    os.utime(staged, (staged.stat().st_atime - 7200, staged.stat().st_mtime - 7200))
    dead = world.keys / "keys" / ".new-999999-abcd"  # a killed writer on this machine (no such pid)
    dead.write_bytes(world.key_file(number).read_bytes())
    assert_refused(world.cli("aud01", "keys", "fsck"), 1, "a staged copy of a key left by a killed writer")
    assert not dead.exists()  # this machine's own leftovers go at once: their writer is dead
    world.ok("aud01", "keys", "fsck", "--remove-orphans")
    assert not staged.exists()
    assert world.cli("aud01", "keys", "fsck").exit_code == 0


@pytest.mark.skipif(not SSHD.exists(), reason=INSTALL_HINT)
def test_a_large_import_onto_the_ssh_keystore_stores_every_key_and_number(tmp_path: Path, people):  # P3
    from conftest import staff_yaml

    with running_sshd(tmp_path) as sshd:
        for who in ("gm01", "clk01", "aud01"):
            sshd.authorize(people[who].pub)
        server_keys = tmp_path / "srv" / "estate.keys"
        server_keys.parent.mkdir()
        world = World(tmp_path, people)
        (tmp_path / "staff.yaml").write_text(staff_yaml(people))
        ssh = {
            w: ssh_command(ssh_home(tmp_path / f"home-{w}", sshd, people[w].key)) for w in ("gm01", "clk01", "aud01")
        }
        founded = world.cli(
            "gm01", "init", str(world.root), "--name", "E", "--staff-file", str(tmp_path / "staff.yaml"),
            "--keystore", f"sftp://keys.estate{server_keys}", env={"ARCHIVECTL_SSH": ssh["gm01"]},
        )  # fmt: skip
        assert founded.exit_code == 0, founded
        rows = "\n".join(f"B0{i % 3 + 3},1,{i:04d},special" for i in range(1, 1001))  # sealed by workers
        (tmp_path / "many.csv").write_text("building,floor,unit,category\n" + rows + "\n")
        world.ok(
            "clk01",
            "import",
            str(tmp_path / "many.csv"),
            "-r",
            "batch",
            "-a",
            "mgr01",
            env={"ARCHIVECTL_SSH": ssh["clk01"]},
        )
        assert len(list((server_keys / "keys").iterdir())) == 1000
        assert len(list((server_keys / "numbers").iterdir())) == 1000
        assert not (world.keys).exists()  # nothing on this machine
        fsck = world.cli("aud01", "keys", "fsck", env={"ARCHIVECTL_SSH": ssh["aud01"]})
        assert fsck.exit_code == 0, fsck


@pytest.mark.parametrize("unnamed", [True, False], ids=["unnamed-file", "staged-name"])
def test_a_directory_keystore_creates_keys_whole_private_and_never_over_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unnamed: bool
):  # P14
    """create and create_many (an import) each leave exactly the keys asked for, 0600, and refuse a taken name.

    Written into an unnamed file and linked in where the system allows it, else
    under a private name and linked: either way nothing else is left beside them.
    """
    from archivectl import keystore

    if not unnamed:
        monkeypatch.setattr(keystore, "_unnamed_files", False)
    backend = keystore.DirectoryBackend(tmp_path / "keys")
    backend.makedirs()
    assert backend.create("keys/one.age", b"first")
    assert not backend.create("keys/one.age", b"second")
    many = [(f"keys/k{i}.age", f"key {i}".encode()) for i in range(20)]
    assert backend.create_many([*many, ("keys/one.age", b"third")]) == [True] * 20 + [False]
    assert backend.read("keys/one.age") == b"first"
    assert sorted(os.listdir(tmp_path / "keys" / "keys")) == sorted(["one.age", *(f"k{i}.age" for i in range(20))])
    for name, data in many:
        assert backend.read(name) == data
        assert (tmp_path / "keys" / name).stat().st_mode & 0o777 == 0o600
