"""P1 on every path that adds households: one active household per unit, and tombstoned ones stay as they are."""

from __future__ import annotations

import json

from conftest import LIVE_RECORD, RECORD, World, assert_refused, assert_unchanged

from archivectl.occupancy import shared_units

CSV_HEAD = "building,floor,unit,category,occupancy\n"


def facts(no: str, unit: str, status: str = "active") -> dict:
    return {"archive_no": no, "building": "B03", "unit": unit, "status": status}


def test_shared_units_names_units_with_more_than_one_active_household():  # P1
    found = shared_units(
        [
            facts("HO-2026-00002", "1203"),
            facts("HO-2026-00001", "1203"),
            facts("HO-2026-00003", "1203", "moved-out"),  # a unit has several households over time
            facts("HO-2026-00004", "1204"),
            {"invalid": True},
        ]
    )
    assert found == [("B03", "1203", ["HO-2026-00001", "HO-2026-00002"])]
    assert shared_units([facts("HO-2026-00001", "1203"), facts("HO-2026-00002", "1203", "tombstoned")]) == []


def test_import_refuses_two_active_households_on_one_unit_naming_both_rows(world: World):  # P1
    before = world.snapshot()
    path = world.tmp / "twice.csv"
    path.write_text(
        CSV_HEAD + "B03,12,1203,handed-over,vacant\nB03,12,1204,handed-over,vacant\nB03,12,1203,special,vacant\n"
    )
    result = world.cli("clk01", "import", str(path), "--reason", "batch", "--approver", "mgr01")
    assert_refused(result, 1, "twice.csv line 4: B03/1203 has an active household at line 2 already (P1)")
    assert "nothing was imported" in result.stderr and "also_active" in result.stderr
    assert_unchanged(world, before)


def test_import_refuses_a_unit_whose_active_household_is_in_the_archive(world: World, household: str):  # P1
    before = world.snapshot()
    path = world.tmp / "again.yaml"
    path.write_text(LIVE_RECORD + "---\n" + RECORD)
    result = world.cli("clk01", "import", str(path), "--reason", "batch", "--approver", "mgr01")
    assert_refused(
        result,
        1,
        f"again.yaml line {LIVE_RECORD.count(chr(10)) + 2}: ",
        f"{household} is the active household of B03/1203 already (P1)",
    )
    assert_unchanged(world, before)


def test_a_row_saying_also_active_is_imported_and_the_flag_is_not_stored(world: World, household: str):  # P1
    path = world.tmp / "shared.csv"
    path.write_text(
        "building,floor,unit,category,occupancy, also_active\n"
        "B03,12,1203,handed-over,rented,yes\nB03,12,1204,handed-over,vacant,\nB03,12,1204,special,rented,true\n"
    )
    out = world.ok("clk01", "import", str(path), "--reason", "batch", "--approver", "mgr01")
    assert "imported 3 households" in out
    for row in json.loads(world.ok("aud01", "list", "--format", "json")):
        assert "also_active" not in json.dumps(row)
    records = "".join(p.read_text() for p in (world.root / "households").rglob("record.yaml"))
    assert "also_active" not in records
    yaml_path = world.tmp / "shared.yaml"
    yaml_path.write_text(RECORD.replace("building: B03", "building: B03\nalso_active: true"))
    world.ok("clk01", "import", str(yaml_path), "--reason", "batch", "--approver", "mgr01")
    bad = world.tmp / "bad.yaml"
    bad.write_text(RECORD.replace("building: B03", "building: B03\nalso_active: maybe"))
    assert_refused(
        world.cli("clk01", "import", str(bad), "--reason", "batch", "--approver", "mgr01"),
        2,
        "bad.yaml line 1: also_active: must be true or false",
    )


def test_validate_flags_a_unit_with_two_active_households(world: World, household: str):  # P1
    assert world.cli("aud01", "validate").exit_code == 0
    second = world.add("clk01", "mgr01", RECORD, "--also-active")
    result = world.cli("aud01", "validate")
    assert result.exit_code == 1
    assert f"households/B03/1203: 2 active households on one unit ({household}, {second})" in result.stdout
    world.ok("but01", "move-out", household, "--date", "2026-01-01", "--reason", "sold", "--approver", "mgr01")
    assert world.cli("aud01", "validate").exit_code == 0


def test_a_tombstoned_household_refuses_edit_and_attach(world: World, household: str):  # P13
    world.ok("but01", "tombstone", household, "--reason", "duplicate dossier", "--approver", "mgr01")
    before = world.snapshot()
    result = world.cli("but01", "edit", household, "--set", "occupancy=rented", "--reason", "r", "--approver", "mgr01")
    assert_refused(result, 1, f"{household} is tombstoned; restore it first")
    scan = world.tmp / "scan.pdf"
    scan.write_bytes(b"%PDF-1.4 scan\n")
    result = world.cli(
        "clk01", "attach", household, str(scan), "--type", "fire-safety-pledge", "--reason", "r", "--approver", "mgr01"
    )
    assert_refused(result, 1, f"{household} is tombstoned; restore it first")
    assert_unchanged(world, before)
    world.ok("but01", "restore", household, "--reason", "not a duplicate", "--approver", "mgr01")
    world.ok("but01", "edit", household, "--set", "occupancy=rented", "--reason", "r", "--approver", "mgr01")
