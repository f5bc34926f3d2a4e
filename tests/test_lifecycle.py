"""Tombstone, restore, purge by crypto-shredding, move-out, review, backup and restore (P1, P11, P13, P14, P16).

Time is moved with libfaketime for git and archivectl alike: no sleeping, no patched datetime.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import subprocess

import conftest
import pyrage
import pytest
from conftest import (
    LIVE_SECRETS,
    SECRETS,
    World,
    assert_refused,
    assert_unchanged,
    no_secrets_in,
    ok_at,
    person_env,
)
from typer.testing import CliRunner

from archivectl import registers, yamlio
from archivectl.cli import app

needs_faketime = pytest.mark.skipif(
    shutil.which("faketime") is None, reason="faketime missing: apt-get install faketime"
)


def tombstone(world: World, number: str, who: str = "but01") -> None:
    world.ok(who, "tombstone", number, "--reason", "duplicate dossier", "--approver", "mgr01")


def record(world: World, number: str, unit: str = "1203") -> dict:
    return yamlio.load_file(world.root / f"households/B03/{unit}/{number}/record.yaml")


def test_tombstone_keeps_data_readable_and_restore_undoes_it(world: World, household: str):  # P13
    tombstone(world, household)
    rec = record(world, household)
    assert rec["status"] == "tombstoned"
    assert rec["tombstone"] == {
        "date": dt.date.today().isoformat(),
        "reason": "duplicate dossier",
        "approver": "mgr01",
        "previous_status": "active",
    }
    assert world.trailers()["Approved-by"] == "mgr01"
    assert world.ok("but01", "show", household, "--reveal", "--reason", "before purge")
    before = world.snapshot()
    assert_refused(world.cli("but01", "tombstone", household, "-r", "again", "-a", "mgr01"), 1, "is tombstoned")
    assert_unchanged(world, before)
    world.ok("but01", "restore", household, "--reason", "not a duplicate after all", "--approver", "mgr02")
    rec = record(world, household)
    assert rec["status"] == "active" and "tombstone" not in rec


def test_fresh_tombstone_shows_days_left_and_purge_is_refused(world: World, household: str):  # P13
    tombstone(world, household)
    rows = json.loads(world.ok("mgr01", "purge", "--eligible", "--dry-run", "--format", "json"))
    assert [(r["archive_no"], r["days_left"], r["eligible"]) for r in rows] == [(household, 30, False)]
    before = world.snapshot()
    result = world.cli("mgr01", "purge", household, "--reason", "confirmed", "--approver", "gm01")
    assert_refused(result, 1, "30 days of the 30-day retention are left")
    assert_unchanged(world, before)
    assert_refused(world.cli("mgr01", "purge", "--eligible", "-r", "r", "-a", "gm01"), 1, "no household is eligible")
    assert_unchanged(world, before)


def test_purge_of_an_active_household_is_refused(world: World, household: str):
    before = world.snapshot()
    assert_refused(world.cli("mgr01", "purge", household, "-r", "r", "-a", "gm01"), 1, "not tombstoned")
    assert_refused(world.cli("mgr01", "purge", "-r", "r", "-a", "gm01"), 2, "--eligible")
    assert_unchanged(world, before)


@needs_faketime
def test_backdated_tombstone_on_todays_history_is_refused(world: World, household: str):  # P13
    ok_at(world, "-40d", "but01", "tombstone", household, "--reason", "backdated", "--approver", "mgr01")
    assert record(world, household)["tombstone"]["date"] == (dt.date.today() - dt.timedelta(days=40)).isoformat()
    before = world.snapshot()
    result = world.cli("mgr01", "purge", household, "--reason", "confirmed", "--approver", "gm01")
    assert_refused(result, 1, "dated before its parent", "purge refused")
    assert_unchanged(world, before)
    row = json.loads(world.ok("mgr01", "purge", "--eligible", "--dry-run", "--format", "json"))[0]
    assert row["eligible"] is False and row["days_left"] == 30  # the clock starts at the latest date


@needs_faketime
def test_tombstone_dated_in_the_future_is_refused(world: World, household: str):
    ok_at(world, "+40d", "but01", "tombstone", household, "--reason", "from the future", "--approver", "mgr01")
    before = world.snapshot()
    assert_refused(world.cli("mgr01", "purge", household, "-r", "r", "-a", "gm01"), 1, "in the future")
    assert_unchanged(world, before)


def probe(world: World) -> str:
    """Decrypt every age payload in every git object and keystore file with every key within reach."""
    staff_ids = [pyrage.ssh.Identity.from_buffer(p.key.read_bytes()) for p in world.people.values()]
    record_keys = []
    for key_file in (f for f in world.keys.rglob("*") if f.is_file()):
        for ident in staff_ids:
            try:
                text = pyrage.decrypt(key_file.read_bytes(), [ident]).decode()
                record_keys.append(pyrage.x25519.Identity.from_str(text.splitlines()[-1]))
                break
            except pyrage.DecryptError:
                continue
    found = []
    objects = world.all_git_objects()
    armored = re.findall(rb"-----BEGIN AGE ENCRYPTED FILE-----.*?-----END AGE ENCRYPTED FILE-----", objects, re.S)
    payloads = [b"\n".join(line.strip() for line in block.splitlines()) + b"\n" for block in armored]
    payloads += [b"age-encryption.org/v1" + p for p in objects.split(b"age-encryption.org/v1")[1:]]
    for payload in payloads:
        for ident in record_keys + staff_ids:
            for candidate in (payload, payload.split(b"\n\n")[0]):
                try:
                    found.append(pyrage.decrypt(candidate, [ident]).decode("utf-8", "replace"))
                except (pyrage.DecryptError, Exception):
                    continue
    return "\n".join(found)


def test_purge_after_35_days_destroys_the_household_for_everyone(old_world: World):  # P13, P14
    w = old_world
    keys_before = w.key_file(w.doomed)
    assert keys_before.exists()
    revealed_before = probe(w)
    assert owner_values_present(revealed_before)  # the probe does find data while the key exists
    out = w.ok(
        "mgr01",
        "purge",
        "--eligible",
        "--reason",
        "retention passed, confirmed again",
        "--approver",
        "gm01",
        "--format",
        "json",
    )
    rows = json.loads(out)
    assert [r["archive_no"] for r in rows] == [w.doomed]
    assert w.signature_status() == "G"
    trailers = w.trailers()
    assert trailers["Archive-No"] == w.doomed and trailers["Approved-by"] == "gm01" and trailers["Acted-by"] == "mgr01"
    assert trailers["Action"] == "purge"
    assert not (w.root / f"households/B03/1203/{w.doomed}").exists()
    # irreversible only after approval on main: the key waits for the gm's signed approval
    assert keys_before.exists()
    assert "awaits approval by gm01" in w.ok("mgr01", "keys", "shred")
    assert keys_before.exists()
    w.approve("gm01")
    assert w.doomed in w.ok("aud01", "keys", "shred")
    assert not keys_before.exists()
    subprocess.run(["git", "-C", str(w.root), "gc", "-q", "--prune=now"], check=True)
    revealed = probe(w)
    assert no_secrets_in(revealed) == []
    for value in LIVE_SECRETS:
        assert value in revealed  # the live household still opens: the probe works
    assert not list((w.root / ".git").rglob(f"*{w.doomed}*"))
    # the destruction register says who, when, how, approved by whom, without personal data
    register = "".join(p.read_text() for p in (w.root / "registers/destruction").rglob("*.yaml"))
    purged, shredded = registers.entries(w.root, "destruction")[-2:]
    assert purged["action"] == "purge" and purged["archive_no"] == w.doomed
    assert purged["who"] == "mgr01" and purged["approved_by"] == "gm01"
    assert "crypto-shredding" in purged["method"]
    # keys shred registered what it destroyed, and who ran it (P14)
    assert shredded["action"] == "shred" and shredded["who"] == "aud01" and shredded["archive_no"] == w.doomed
    assert "overwritten and deleted" in shredded["method"] and w.trailers()["Action"] == "shred"
    assert no_secrets_in(register) == []
    # history still tells the story
    history = json.loads(w.ok("aud01", "history", w.doomed, "--format", "json"))
    assert [h["reason"] for h in history][-5:] == [
        "customer asked for deletion",
        "checked then",  # mgr01's signed approval of the tombstone
        "retention passed, confirmed again",
        "checked the change",  # gm01's signed approval of the purge
        "shred 1 record keys main no longer uses",  # keys shred's own record
    ]
    assert [h["acted_by"] for h in history][-3:] == ["mgr01", "gm01", "aud01"]
    # every other record's signed history still verifies
    assert set(w.git("log", "--format=%G?").split()) == {"G"}
    verified = w.cli("aud01", "verify")
    assert verified.exit_code == 0, verified
    assert w.ok("but01", "show", w.live, "--reveal", "--reason", "still here")


def owner_values_present(text: str) -> bool:
    return all(s in text for s in SECRETS[:3])


def test_failed_purge_destroys_nothing(old_world: World, tmp_path):  # P14
    w = old_world
    before = w.snapshot()
    result = w.cli("mgr01", "purge", w.doomed, "--reason", "r", "--approver", "gm01", env=w.broken_signing_env("mgr01"))
    assert_refused(result, 1, "signing the commit failed")
    assert_unchanged(w, before)
    assert (w.key_file(w.doomed)).exists()


def test_backup_before_purge_restores_without_the_purged_key(old_world: World, tmp_path):  # P14, P16
    w = old_world
    backup = tmp_path / "backup.tar"
    said = w.ok("aud01", "backup", "--output", str(backup))
    assert "left out 1 record keys: 1 of tombstoned households" in said  # the tombstoned household's key stays out
    assert no_secrets_in(backup.read_bytes()) == []
    w.ok("mgr01", "purge", w.doomed, "--reason", "confirmed", "--approver", "gm01")
    target = tmp_path / "restored"
    result = CliRunner().invoke(
        app, ["restore", str(backup), str(target), "--replay-from", str(w.root)], env=person_env(w.people["but01"])
    )
    assert result.exit_code == 0, result.output
    restored_keys = sorted(p.name for p in (tmp_path / "restored.keys" / "keys").iterdir())
    assert restored_keys == [w.key_file(w.live).name]
    # P3: both numbers stay reserved in the restored keystore, the purged one too
    assert {p.name for p in (tmp_path / "restored.keys" / "numbers").iterdir()} >= {w.doomed, w.live}
    # the restored archive works for a reader
    shown = CliRunner().invoke(
        app,
        ["--archive", str(target), "show", w.live, "--reveal", "-r", "restore test", "--format", "json"],
        env=person_env(w.people["but01"]),
    )
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["customers"][0]["name"] == conftest.LIVE_NAME


def test_restore_refuses_a_damaged_backup(world: World, tmp_path):
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"not a tar at all")
    result = world.cli("aud01", "restore", str(bad), str(tmp_path / "r"))
    assert_refused(result, 2, "not a readable backup")
    assert not (tmp_path / "r").exists()


def test_move_out_and_review(world: World, household: str):  # P1, P11, P18
    today = dt.date.today().isoformat()
    world.ok("but01", "move-out", household, "--date", today, "--reason", "sold the flat", "--approver", "mgr01")
    rec = record(world, household)
    assert rec["status"] == "moved-out" and rec["moved_out"] == {"date": today}
    assert (
        json.loads(world.ok("aud01", "list", "--status", "moved-out", "--format", "json"))[0]["archive_no"] == household
    )
    world.ok("but01", "review", household, "--reason", "annual review", "--approver", "mgr01")
    assert record(world, household)["last_reviewed"] == today
    before = world.snapshot()
    assert_refused(
        world.cli("but01", "move-out", household, "--date", today, "-r", "r", "-a", "mgr01"), 1, "is moved-out"
    )
    tomorrow = (dt.date.today() + dt.timedelta(days=1)).isoformat()
    assert_refused(world.cli("but01", "move-out", household, "--date", tomorrow, "-r", "r", "-a", "mgr01"), 2, "future")
    assert_unchanged(world, before)
