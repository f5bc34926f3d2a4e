"""Backups that purge can reach (P13, P14, P16): keys left out, expiry kept, destruction registers honoured.

One archive per module tells the story of a purge, its history made 35 days ago
under libfaketime: two households and a backup, then a tombstone; today the
purge, its approval and `keys shred`. Tests read it and restore elsewhere; none
changes it. A rotation has a world of its own. Real git, real keys, real age.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from conftest import (
    LIVE_NAME,
    LIVE_RECORD,
    OWNER_NAME,
    RECORD,
    Person,
    World,
    as_built,
    assert_refused,
    at,
    counting_forks,
    new_world,
    ok_at,
    person_env,
    process_env,
    staff_yaml,
)
from typer.testing import CliRunner

from archivectl import facts, registers
from archivectl.cli import app

pytestmark = pytest.mark.skipif(
    shutil.which("faketime") is None or shutil.which("age") is None,
    reason="faketime or age missing: apt-get install faketime age",
)

BACKUP_NAME = re.compile(r"test-estate-[0-9]{8}T[0-9]{6}Z(-[0-9]+)?\.tar")


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory, people: dict[str, Person], built_once: Path) -> World:
    """35 days ago: two households, a backup, a tombstone. Today: a backup, the purge approved, the shred, a backup.

    Told once per run, copied for each module that asks (the tests of this module share their copy).
    """
    w = new_world(tmp_path_factory.mktemp("story"), people, built_once)
    as_built(w, "story", lambda: tell_story(w))
    return w


def tell_story(w: World) -> None:
    """story's history, in w."""
    tmp, people = w.tmp, w.people
    (tmp / "staff.yaml").write_text(staff_yaml(people))
    made = at(w, "-35d", "gm01", "init", str(w.root), "--name", "Test Estate", "--staff-file", str(tmp / "staff.yaml"))
    assert made.returncode == 0, made.stderr
    (tmp / "doomed.yaml").write_text(RECORD)
    (tmp / "live.yaml").write_text(LIVE_RECORD)
    w.doomed = ok_at(w, "-35d", "clk01", "add", "--file", str(tmp / "doomed.yaml"), "-r", "new", "-a", "mgr01").strip()
    w.live = ok_at(w, "-35d", "clk01", "add", "--file", str(tmp / "live.yaml"), "-r", "new", "-a", "mgr01").strip()
    w.doomed_key = w.key_file(w.doomed).name
    w.live_key = w.key_file(w.live).name
    w.before = tmp / "before-tombstone.tar"
    ok_at(w, "-35d", "aud01", "backup", "--output", str(w.before))
    ok_at(w, "-35d", "but01", "tombstone", w.doomed, "--reason", "customer asked for deletion", "--approver", "mgr01")
    ok_at(w, "-35d", "mgr01", "approve", "--yes", "--reason", "checked then")
    w.after = tmp / "after-tombstone.tar"
    w.after_said = w.ok("aud01", "backup", "--output", str(w.after))
    w.ok("mgr01", "purge", w.doomed, "--reason", "retention passed, confirmed again", "--approver", "gm01")
    w.approve("gm01")
    assert w.doomed in w.ok("aud01", "keys", "shred")
    assert not (w.keys / "keys" / w.doomed_key).exists()
    w.final = tmp / "after-shred.tar"
    w.ok("aud01", "backup", "--output", str(w.final))


def tar_names(path: Path) -> list[str]:
    """What `tar tf` lists: the backup taken apart by hand, not by archivectl."""
    return subprocess.run(["tar", "tf", str(path)], check=True, capture_output=True, text=True).stdout.split()


def manifest_of(path: Path) -> dict:
    with tarfile.open(path) as tar:
        member = tar.extractfile("manifest.json")
        assert member is not None
        return json.loads(member.read())


def opened_recipients(key_files: list[Path], people: dict[str, Person]) -> set[str]:
    """The public half of every record key that `age -d` opens with any staff member's (or outsider's) key."""
    found = set()
    for key_file in key_files:
        for person in people.values():
            opened = subprocess.run(["age", "-d", "-i", str(person.key), str(key_file)], capture_output=True)
            if opened.returncode != 0:
                continue
            public = subprocess.run(["age-keygen", "-y"], input=opened.stdout, capture_output=True, check=True)
            found.add(public.stdout.decode().strip())
    return found


def recipient_of(key_name: str) -> str:
    return key_name.split(".")[1]


def reveal(target: Path, number: str, person: Person) -> object:
    return CliRunner().invoke(
        app,
        ["--archive", str(target), "show", number, "--reveal", "-r", "restore test", "--format", "json"],
        env=person_env(person),  # the keystore is found where restore put it: <target>.keys
    )


def rewrite(source: Path, dest: Path, manifest: dict | None = None, extra: dict[str, bytes] | None = None) -> None:
    """A copy of a backup with another manifest or more entries: what an older archivectl or a hand would make."""
    with tarfile.open(source) as tar, tarfile.open(dest, "w") as out:
        for member in tar.getmembers():
            data = tar.extractfile(member).read()
            if member.name == "manifest.json" and manifest is not None:
                data = json.dumps(manifest).encode()
            info = tarfile.TarInfo(member.name)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
        for name, data in (extra or {}).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))


# ---------------------------------------------------------------------- what a backup holds


def test_a_backup_after_the_tombstone_holds_no_key_of_it_and_says_so(story: World):  # P14, P16
    w = story
    # A backup made before the tombstone does hold the key (nothing told it otherwise)...
    assert f"keystore/keys/{w.doomed_key}" in tar_names(w.before)
    # ...one made after it does not: the key waits for the purge in the keystore only.
    listed = tar_names(w.after)
    assert not [n for n in listed if w.doomed in n and n.startswith("keystore/keys/")]
    assert f"keystore/keys/{w.live_key}" in listed
    assert "left out 1 record keys: 1 of tombstoned households, 0 of households not in HEAD" in w.after_said
    manifest = manifest_of(w.after)
    assert manifest["format"] == "archivectl-backup-2"
    assert manifest["left_out"] == {"tombstoned": 1, "not_in_head": 0, "superseded": 0}
    assert manifest["retention_days"] == 30
    expires = manifest["expires"]
    assert f"expires {expires} (retention_days 30)" in w.after_said
    # after the purge the household is in HEAD no more: still left out, counted so
    final = manifest_of(w.final)
    assert final["left_out"] == {"tombstoned": 0, "not_in_head": 0, "superseded": 0}  # its key is shredded
    assert final["destroyed"]["purged"] == [w.doomed]
    assert [n for n in tar_names(w.final) if n.startswith("keystore/keys/")] == [f"keystore/keys/{w.live_key}"]
    # P3: every number ever reserved travels along, the purged one too
    assert {f"keystore/numbers/{w.doomed}", f"keystore/numbers/{w.live}"} <= set(tar_names(w.final))


def test_a_backup_is_a_plain_tar_that_gnu_tar_and_tarfile_read_alike(story: World, tmp_path):  # P16
    # backup writes its members itself (issue 30: tarfile's cost per member was a tenth of a large
    # backup): GNU tar lists them as tarfile does, each a private regular file holding what the keystore holds.
    w = story
    listed = subprocess.run(["tar", "-tvf", str(w.after)], capture_output=True, text=True, check=True).stdout
    rows = [line.split() for line in listed.splitlines()]
    assert [r[-1] for r in rows] == tar_names(w.after)
    assert {r[0] for r in rows} == {"-rw-------"}
    assert tar_names(w.after)[:2] == ["manifest.json", "archive.bundle"]
    out = tmp_path / "unpacked"
    out.mkdir()
    subprocess.run(["tar", "-xf", str(w.after), "-C", str(out)], check=True)
    with tarfile.open(w.after) as tar:
        for member in tar.getmembers():
            assert (out / member.name).read_bytes() == tar.extractfile(member).read()
    live = out / "keystore" / "keys" / w.live_key
    assert live.read_bytes() == (w.keys / "keys" / w.live_key).read_bytes()
    assert os.path.getsize(w.after) % 10240 == 0  # whole records, as tar ends an archive


def test_a_backup_made_before_the_tombstone_never_brings_back_the_purged_key(story: World, tmp_path):  # P14, P16
    w = story
    # Restored in real time it has expired (next test). Here the restoring machine's clock says it has not:
    # the current archive's destruction register still withholds the key.
    target = tmp_path / "restored"
    result = at(w, "-6d", "but01", "--archive", str(w.root), "restore", str(w.before), str(target))
    assert result.returncode == 0, result.stderr
    assert f"withheld 1 record keys a destruction register names: {w.doomed} (purged)" in result.stdout
    keys = sorted((tmp_path / "restored.keys" / "keys").iterdir())
    assert [k.name for k in keys] == [w.live_key]
    assert not list(tmp_path.glob(f"restored.keys/**/*{recipient_of(w.doomed_key)}*"))
    # every key there, tried with every key of every person, never opens the purged household's record key
    opened = opened_recipients(list((tmp_path / "restored.keys").rglob("*.age")), w.people)
    assert opened == {recipient_of(w.live_key)}  # the probe does open what is there
    assert recipient_of(w.doomed_key) not in opened
    # the restored archive still holds the household (made before its tombstone), now unreadable
    assert (target / "households/B03/1203" / w.doomed).is_dir()
    shown = reveal(target, w.live, w.people["but01"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["customers"][0]["name"] == LIVE_NAME
    doomed = reveal(target, w.doomed, w.people["but01"])
    assert doomed.exit_code == 1 and OWNER_NAME not in doomed.output


def test_an_expired_backup_is_refused_and_nothing_is_created(story: World, tmp_path):  # P13, P16
    w = story
    target = tmp_path / "r"
    expires = manifest_of(w.before)["expires"][:10]
    result = w.cli("but01", "restore", str(w.before), str(target))  # made 35 days ago, kept for 30
    assert_refused(result, 1)
    assert result.stderr.strip() == (
        f"archivectl: error: {w.before}: this backup expired on {expires} (retention_days 30); it may not be restored"
    )
    assert not target.exists() and not (tmp_path / "r.keys").exists()
    # a backup of today, 31 days on
    later = at(w, "+31d", "but01", "restore", str(w.final), str(target))
    assert later.returncode == 1, later
    lines = later.stderr.strip().splitlines()
    assert len(lines) == 1 and "this backup expired on" in lines[0] and "it may not be restored" in lines[0]
    assert not target.exists() and not (tmp_path / "r.keys").exists()


def test_backup_into_a_folder_prunes_what_has_expired(story: World, tmp_path):  # P14, P16
    w = story
    shelf = tmp_path / "shelf"
    shelf.mkdir()
    # things in the folder that are not expired archivectl backups, and must be left alone
    with tarfile.open(shelf / "photos.tar", "w") as tar:
        tar.add(w.root / "archive.yaml", arcname="manifest.json")  # a tar whose first entry has the name only
    (shelf / "random.tar").write_bytes(os.urandom(2048))
    os.symlink(w.before, shelf / "linked.tar")  # an expired backup behind a link: never followed
    shutil.copy(w.final, shelf / "fresh.tar")
    first = w.ok("aud01", "backup", "--into", str(shelf))
    second = w.ok("aud01", "backup", "--into", str(shelf))
    made = sorted(p.name for p in shelf.iterdir() if BACKUP_NAME.fullmatch(p.name))
    assert len(made) == 2, made
    named = {m for m in made for said in (first, second) if f"to {shelf / m}\n" in said}
    assert named == set(made)  # one each (within one second the second is <name>-2.tar)
    assert "pruned" not in first + second
    for name in made:
        assert stat.S_IMODE((shelf / name).stat().st_mode) == 0o600
    third = ok_at(w, "+31d", "aud01", "backup", "--into", str(shelf))
    for name in made:
        assert f"pruned {shelf / name} (expired " in third
        assert not (shelf / name).exists()
    now = sorted(p.name for p in shelf.iterdir() if BACKUP_NAME.fullmatch(p.name))
    assert len(now) == 1 and now[0] not in made
    assert f"to {shelf / now[0]}" in third
    # fresh.tar expired too (made today, 30 days): a backup by its manifest, whatever its name
    assert f"pruned {shelf / 'fresh.tar'}" in third and not (shelf / "fresh.tar").exists()
    assert sorted(p.name for p in shelf.iterdir() if not BACKUP_NAME.fullmatch(p.name)) == [
        "linked.tar",
        "photos.tar",
        "random.tar",
    ]
    assert w.before.exists()
    # cron runs it again: nothing more to prune, exit 0
    again = ok_at(w, "+31d", "aud01", "backup", "--into", str(shelf))
    assert "pruned" not in again
    assert len([p for p in shelf.iterdir() if BACKUP_NAME.fullmatch(p.name)]) == 2
    # one of the two, never both, never neither
    assert_refused(w.cli("aud01", "backup"), 2, "--output FILE or --into DIR")
    assert_refused(w.cli("aud01", "backup", "-o", str(tmp_path / "x.tar"), "--into", str(shelf)), 2, "one of the two")


def test_restore_outside_any_git_repository(story: World, tmp_path):  # P16
    w = story
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = process_env(w.people["but01"])
    probe = subprocess.run(["git", "rev-parse", "--git-dir"], cwd=elsewhere, capture_output=True, env=env)
    assert probe.returncode != 0  # not inside any repository
    result = subprocess.run(
        [sys.executable, "-m", "archivectl", "restore", str(w.final), "restored"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    target = elsewhere / "restored"
    assert f"restored archive restored with 1 record keys (keystore {elsewhere / 'restored.keys'})" in result.stdout
    assert sorted(p.name for p in (elsewhere / "restored.keys" / "keys").iterdir()) == [w.live_key]
    assert {w.doomed, w.live} <= {p.name for p in (elsewhere / "restored.keys" / "numbers").iterdir()}  # P3
    assert not (target / "households/B03/1203" / w.doomed).exists()
    assert registers.entries(target, "destruction")[-1]["action"] == "shred"
    shown = reveal(target, w.live, w.people["but01"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["customers"][0]["name"] == LIVE_NAME


def test_a_backup_of_the_old_format_is_restored_with_a_warning(story: World, tmp_path):  # P14, P16
    w = story
    old = tmp_path / "old-format.tar"
    manifest = manifest_of(w.before)
    for later in ("expires", "retention_days", "left_out", "main"):
        manifest.pop(later)
    rewrite(w.before, old, {**manifest, "format": "archivectl-backup-1", "destroyed": []})
    result = w.cli("but01", "restore", str(old), str(tmp_path / "r"))  # inside the archive: its register counts
    assert result.exit_code == 0, result
    warnings = result.stderr.strip().splitlines()
    assert len(warnings) == 1 and warnings[0].startswith("archivectl: warning:") and "no expiry recorded" in warnings[0]
    assert f"{w.doomed} (purged)" in result.stdout
    assert sorted(p.name for p in (tmp_path / "r.keys" / "keys").iterdir()) == [w.live_key]


# ---------------------------------------------------------------------- rotation


def test_a_shredded_rotation_keeps_the_new_key_and_withholds_the_old(world: World, tmp_path):  # P14, P16
    number = world.add()
    old_key = world.key_file(number).name
    before = tmp_path / "before-rotation.tar"
    world.ok("aud01", "backup", "-o", str(before))
    world.ok("mgr01", "recipients", "sync", "--rotate", "--reason", "laptop lost", "--approver", "gm01")
    world.approve("mgr01", "gm01")
    new_key = world.key_file(number).name
    assert new_key != old_key and (world.keys / "keys" / old_key).exists()
    # before the shred: the old key waits in the keystore, but no backup takes it along
    rotated = tmp_path / "rotated.tar"
    said = world.ok("aud01", "backup", "-o", str(rotated))
    assert "left out 1 record keys: 0 of tombstoned households, 0 of households not in HEAD, 1 superseded" in said
    assert [n for n in tar_names(rotated) if n.startswith("keystore/keys/")] == [f"keystore/keys/{new_key}"]
    assert number in world.ok("aud01", "keys", "shred")
    assert not (world.keys / "keys" / old_key).exists()
    entry = registers.entries(world.root, "destruction")[-1]
    assert entry["action"] == "shred" and entry["archive_no"] == number  # names the live household
    shredded = tmp_path / "after-shred.tar"
    world.ok("aud01", "backup", "-o", str(shredded))
    assert manifest_of(shredded)["destroyed"] == {"purged": [], "shredded": [f"{number} {recipient_of(old_key)}"]}

    # restored from anywhere: the shred entry in its own bundle names the old key only; the new one comes back
    target = tmp_path / "a"
    restored = CliRunner().invoke(app, ["restore", str(shredded), str(target)], env=person_env(world.people["but01"]))
    assert restored.exit_code == 0, restored.output
    assert "withheld" not in restored.stdout
    assert sorted(p.name for p in (tmp_path / "a.keys" / "keys").iterdir()) == [new_key]
    shown = reveal(target, number, world.people["but01"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["customers"][0]["name"] == OWNER_NAME

    # the old key put in by hand (as a backup of the first format held every key): withheld, the new one kept
    with tarfile.open(before) as tar:
        old_blob = tar.extractfile(f"keystore/keys/{old_key}").read()
    both = tmp_path / "both.tar"
    rewrite(shredded, both, extra={f"keystore/keys/{old_key}": old_blob})
    mgr01 = person_env(world.people["mgr01"])
    restored = CliRunner().invoke(app, ["restore", str(both), str(tmp_path / "b")], env=mgr01)
    assert restored.exit_code == 0, restored.output
    assert f"withheld 1 record keys a destruction register names: {number} (shredded)" in restored.stdout
    assert sorted(p.name for p in (tmp_path / "b.keys" / "keys").iterdir()) == [new_key]
    assert opened_recipients(list((tmp_path / "b.keys").rglob("*.age")), world.people) == {recipient_of(new_key)}

    # the backup made before the rotation, restored in the archive: its record's key was shredded; withheld
    result = world.cli("but01", "restore", str(before), str(tmp_path / "c"))
    assert result.exit_code == 0, result
    assert f"{number} (shredded)" in result.stdout
    assert list((tmp_path / "c.keys" / "keys").iterdir()) == []


def test_a_backup_reads_records_on_both_cores_cold_not_at_all_warm_and_keeps_the_same_keys(
    world: World, tmp_path, monkeypatch: pytest.MonkeyPatch
):  # P14, P16
    live = world.add()  # unit 1203: first in the tree, read by this process
    doomed = world.add("clk01", "mgr01", LIVE_RECORD)  # unit 1204: second, read by the child
    world.approve("mgr01")
    world.ok("but01", "tombstone", doomed, "--reason", "customer asked for deletion", "--approver", "mgr01")
    world.approve("mgr01")
    cache = world.root / ".git" / "archivectl" / "cache"

    def backup(name: str) -> tuple[dict, list[str]]:
        made = tmp_path / name
        world.ok("aud01", "backup", "-o", str(made))
        return manifest_of(made)["left_out"], [n for n in tar_names(made) if n.startswith("keystore/keys/")]

    expected = ({"tombstoned": 1, "not_in_head": 0, "superseded": 0}, [f"keystore/keys/{world.key_file(live).name}"])
    shutil.rmtree(cache, ignore_errors=True)
    assert backup("alone.tar") == expected  # cold, one process (two records are few)
    shutil.rmtree(cache)
    forks = counting_forks(monkeypatch)
    monkeypatch.setattr(facts, "PARALLEL_FROM", 2)  # two records are "many": the second is read by the child
    assert backup("shared.tar") == expected
    assert forks
    forks.clear()
    assert backup("warm.tar") == expected  # the clear facts kept per building: no record read again
    assert forks == []
