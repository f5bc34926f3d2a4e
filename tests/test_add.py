"""add: one signed, approved commit per household, personal data sealed to its own record key."""

from __future__ import annotations

import datetime as dt
import json
import re

import pyrage
import pytest
from conftest import OWNER_ID, OWNER_PHONE, RECORD, World, assert_refused, assert_unchanged, no_secrets_in

from archivectl import yamlio


def test_add_prints_the_archive_number_and_commits_signed_with_trailers(world: World):  # P3, P12
    number = world.add()
    assert re.fullmatch(rf"HO-{dt.date.today().year}-00001", number)
    assert world.signature_status() == "G"
    assert world.trailers() == {
        "Action": "add",
        "Reason": "new customer",
        "Approved-by": "mgr01",
        "Archive-No": number,
        "Acted-by": "clk01",
    }
    # the acting person comes from the signing key, not from user.email
    assert "not-clk01" not in world.git("log", "-1", "--format=%ae%n%ce")


def test_record_on_disk_has_clear_part_and_one_sealed_block(world: World):  # P9
    number = world.add()
    record = yamlio.load_file(world.root / f"households/B03/1203/{number}/record.yaml")
    assert record["archive_no"] == number and record["building"] == "B03" and record["unit"] == "1203"
    assert record["status"] == "active"
    assert record["vehicles"] == [{"parking_space": "P2-045"}]
    assert record["renovation"]["permit_no"] == "ZX-2024-031"
    assert "customers" not in record and "handover_date" not in record
    assert {
        "customers",
        "customers.phone",
        "customers.id_number",
        "vehicles.plate",
        "handover_date",
        "special_requests",
        "emergency_contacts",
    } <= set(record["sealed_fields"])
    assert record["sealed"].startswith("-----BEGIN AGE ENCRYPTED FILE-----")


def test_no_personal_value_in_any_git_object_or_work_tree_file(world: World):  # P9
    world.add()
    world.ok(
        "but01",
        "edit",
        "HO-" + str(dt.date.today().year) + "-00001",
        "--set",
        "notes=called 13812345678",
        "--reason",
        "note",
        "--approver",
        "mgr01",
    )
    assert no_secrets_in(world.all_git_objects()) == []
    for path in world.root.rglob("*"):
        if path.is_file():
            assert no_secrets_in(path.read_bytes()) == [], path


def test_each_household_gets_its_own_record_key_readable_by_its_buildings_readers(world: World):  # P7
    number = world.add()
    wrapped = world.key_file(number).read_bytes()
    for reader in ("but01", "cas01", "mgr01", "gm01"):
        identity = pyrage.ssh.Identity.from_buffer(world.people[reader].key.read_bytes())
        assert pyrage.decrypt(wrapped, [identity]).decode().count("AGE-SECRET-KEY-1") == 1
    for outsider in ("but02", "clk01", "aud01"):
        identity = pyrage.ssh.Identity.from_buffer(world.people[outsider].key.read_bytes())
        with pytest.raises(pyrage.DecryptError):
            pyrage.decrypt(wrapped, [identity])
    # the record key opens the sealed block, and nothing else does
    key_text = pyrage.decrypt(wrapped, [pyrage.ssh.Identity.from_buffer(world.people["but01"].key.read_bytes())])
    record_key = pyrage.x25519.Identity.from_str(key_text.decode().splitlines()[-1])
    record = yamlio.load_file(world.root / f"households/B03/1203/{number}/record.yaml")
    sealed = yamlio.loads(pyrage.decrypt(record["sealed"].encode(), [record_key]))
    assert sealed["customers"][0]["phone"] == OWNER_PHONE


def test_archive_numbers_are_unique_per_category_and_serial(world: World):  # P3
    year = dt.date.today().year
    first = world.add()
    second = world.add(text=RECORD.replace('unit: "1203"', 'unit: "1204"'))
    special = world.add(text=RECORD.replace("handed-over", "special").replace('unit: "1203"', 'unit: "1205"'))
    assert (first, second, special) == (f"HO-{year}-00001", f"HO-{year}-00002", f"SP-{year}-00001")


def test_add_with_flags_and_set(world: World):
    out = world.ok(
        "clk01",
        "add",
        "--building",
        "B05",
        "--floor",
        "2",
        "--unit",
        "0201",
        "--category",
        "not-handed-over",
        "--set",
        "customers.0.role=owner",
        "--set",
        "customers.0.name=测试人",
        "--set",
        "customers.0.phone=13700000000",
        "--reason",
        "walk-in",
        "--approver",
        "mgr02",
    )
    number = out.strip()
    assert number.startswith("NH-")
    assert (world.root / f"households/B05/0201/{number}/record.yaml").exists()


REFUSALS = [
    # (who, approver, record change, exit code, words in the one-line error)
    ("clk01", "clk01", None, 1, ["approver clk01 is a clerk"]),
    ("mgr01", "mgr01", None, 1, ["cannot approve their own change"]),
    ("clk01", "but01", None, 1, ["but01 is a butler", "manager or gm"]),
    ("clk01", "nobody", None, 1, ["nobody is not on staff.yaml"]),
    (
        "clk01",
        "mgr01",
        ('id_number: "110101198005170011"', 'id_number: "110101198005170012"'),
        2,
        ["customers[0].id_number", "check digit"],
    ),
    (
        "clk01",
        "mgr01",
        ("special_requests:", "favourite_colour: blue\nspecial_requests:"),
        2,
        ["favourite_colour", "unknown field"],
    ),
    ("clk01", "mgr01", ('phone: "13812345678"', 'phone: "12345"'), 2, ["customers[0].phone"]),
    ("clk01", "mgr01", ("handover_date: 2024-03-01", "handover_date: 2024-02-30"), 2, ["handover_date"]),
    ("clk01", "mgr01", ('unit: "1203"', 'unit: "../../etc"'), 2, ["unit: use letters, digits"]),
    ("outsider", "mgr01", None, 1, ["not on staff.yaml"]),
]


@pytest.mark.parametrize(("who", "approver", "change", "code", "words"), REFUSALS)
def test_refused_add_leaves_archive_byte_identical(world: World, who, approver, change, code, words):  # P12
    world.add()  # so the archive has a household and a keystore entry to protect
    before = world.snapshot()
    text = RECORD.replace(*change) if change else RECORD
    (world.tmp / "bad.yaml").write_text(text)
    result = world.cli(who, "add", "--file", str(world.tmp / "bad.yaml"), "--reason", "r", "--approver", approver)
    assert_refused(result, code, *words)
    assert no_secrets_in(result.stderr) == []
    assert OWNER_ID[:10] not in result.stderr
    assert_unchanged(world, before)


def test_missing_reason_is_a_usage_error(world: World):
    before = world.snapshot()
    (world.tmp / "r.yaml").write_text(RECORD)
    result = world.cli("clk01", "add", "--file", str(world.tmp / "r.yaml"), "--approver", "mgr01")
    assert_refused(result, 2, "--reason")
    assert_unchanged(world, before)


def test_no_signing_key_configured_writes_nothing(world: World):
    before = world.snapshot()
    result = world.try_add(None)
    assert_refused(result, 1, "user.signingkey")
    assert_unchanged(world, before)


def test_inactive_approver_is_refused(world: World):  # P12
    world.ok("mgr01", "staff", "deactivate", "mgr02", "--reason", "left the company", "--approver", "gm01")
    before = world.snapshot()
    result = world.try_add(approver="mgr02")
    assert_refused(result, 1, "mgr02 is no longer active")
    assert_unchanged(world, before)


def test_failed_signing_rolls_back_files_index_and_keystore(world: World, tmp_path):
    """The signing key's private half is unreadable: git refuses to sign, nothing remains."""
    before = world.snapshot()
    result = world.try_add(env=world.broken_signing_env("clk01"))
    assert_refused(result, 1, "signing the commit failed")
    assert_unchanged(world, before)
    assert world.key_files() == [] and list((world.keys / "numbers").iterdir()) == []


def test_staged_hand_edits_are_not_swept_into_a_commit(world: World):
    (world.root / "stray.txt").write_text("hand edit")
    world.git("add", "stray.txt")
    before = world.snapshot()
    result = world.try_add()
    assert_refused(result, 1, "staged changes")
    assert_unchanged(world, before)


def test_an_add_keeps_the_households_listing_and_notes_beside_it_only_what_it_added(world: World):
    # The listing is 16 MB at 297,000 households: one household's write must not copy and write it again.
    first = world.add()
    cache = world.root / ".git/archivectl/cache"
    world.ok("but01", "show", first)  # a reader brings the listing up to date and keeps it
    listing = (cache / "households").read_bytes()
    units = [f"130{n}" for n in range(1, 4)]
    added = [world.add("clk01", "mgr01", RECORD.replace('unit: "1203"', f'unit: "{u}"')) for u in units]
    assert (cache / "households").read_bytes() == listing
    recent = json.loads((cache / "households-recent").read_text())
    assert recent["commit"] == world.git("rev-parse", "HEAD").strip()
    assert [p.split("/")[3] for p in recent["added"]][-3:] == added and recent["gone"] == []
    assert world.git("status", "--porcelain") == ""
    for number in [first, *added]:
        assert number in world.ok("but01", "show", number)
    # P1 still sees the households kept only beside the listing, and with that note damaged or of another listing
    for note in (None, b"\x00not json", json.dumps({**recent, "base": "1" * 40}).encode()):
        if note is not None:
            (cache / "households-recent").write_bytes(note)
        before = world.snapshot()
        path = world.tmp / "again.yaml"
        path.write_text(RECORD.replace('unit: "1203"', 'unit: "1303"'))
        refused = world.cli("clk01", "add", "--file", str(path), "--reason", "r", "--approver", "mgr01")
        assert refused.exit_code == 1 and f"{added[-1]} is already the active household of B03/1303" in refused.stderr
        assert_unchanged(world, before)
        assert added[1] in world.ok("but01", "show", added[1])
    number = world.add("clk01", "mgr01", RECORD.replace('unit: "1203"', 'unit: "1304"'))
    assert number.endswith(f"{int(added[-1][-5:]) + 1:05d}")  # the series goes on after the last one kept aside
