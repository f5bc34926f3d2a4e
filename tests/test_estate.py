"""The estate's buildings are declared in archive.yaml; add, import and edit keep to them (P1: building/floor/unit)."""

from __future__ import annotations

import json

from conftest import RECORD, World, assert_refused, assert_unchanged

from archivectl.estate import building_problem, floor_of_unit, floor_problem

CSV_HEAD = "building,floor,unit,category,occupancy\n"


def declare(world: World, text: str = "buildings: [B03, B05]\nunit_floor: true\n") -> None:
    """The gm's settings change, as the office makes it: edited, configured, approved."""
    settings = world.root / "archive.yaml"
    settings.write_text(settings.read_text() + text)
    world.ok("mgr01", "configure", "--reason", "declare the estate's buildings", "--approver", "gm01")
    world.approve("gm01")


def test_rules_as_pure_functions():  # P1
    assert building_problem(None, "B99") is None  # nothing declared: any building, as before
    assert building_problem(("B03", "B05"), "B05") is None
    assert "did you mean B03?" in building_problem(("B03", "B05"), "B3")
    assert "did you mean" not in building_problem(("B03", "B05"), "TOWER-EAST")
    assert floor_of_unit("1203") == 12 and floor_of_unit("0201") == 2 and floor_of_unit("S01") is None
    assert floor_problem(True, "1502", 3) == "unit: 1502 is on floor 15 by its number, but floor is 3"
    assert floor_problem(True, "1502", 15) is None
    assert floor_problem(False, "1502", 3) is None
    assert floor_problem(True, "G-12", 3) is None  # a car park or shop is not numbered by floor


def test_add_refuses_an_undeclared_building_with_a_did_you_mean(world: World):  # P1
    declare(world)
    before = world.snapshot()
    path = world.tmp / "r.yaml"
    path.write_text(RECORD.replace("building: B03", "building: B3"))
    result = world.cli("clk01", "add", "--file", str(path), "--reason", "new customer", "--approver", "mgr01")
    assert_refused(result, 2, "building: B3 is not one of the estate's buildings", "did you mean B03?")
    assert_unchanged(world, before)


def test_add_refuses_a_unit_that_contradicts_its_floor(world: World):  # P1
    declare(world)
    before = world.snapshot()
    path = world.tmp / "r.yaml"
    path.write_text(RECORD.replace('unit: "1203"', 'unit: "1502"').replace("floor: 12", "floor: 3"))
    result = world.cli("clk01", "add", "--file", str(path), "--reason", "new customer", "--approver", "mgr01")
    assert_refused(result, 2, "unit: 1502 is on floor 15 by its number, but floor is 3")
    assert_unchanged(world, before)


def test_a_declared_building_and_a_fitting_floor_are_added(world: World):  # P1
    declare(world)
    number = world.add("clk01", "mgr01", RECORD)
    assert number.startswith("HO-")


def test_an_archive_without_declared_buildings_accepts_any_as_before(world: World):
    path = world.tmp / "r.yaml"
    path.write_text(RECORD.replace("building: B03", "building: B99").replace("floor: 12", "floor: 3"))
    world.ok("clk01", "add", "--file", str(path), "--reason", "new customer", "--approver", "mgr01")


def test_import_refuses_an_undeclared_building_and_a_wrong_floor_naming_file_and_line(world: World):  # P1
    declare(world)
    before = world.snapshot()
    path = world.tmp / "estate.csv"
    path.write_text(CSV_HEAD + "B03,12,1203,handed-over,vacant\nB99,3,0301,handed-over,vacant\n")
    result = world.cli("clk01", "import", str(path), "--reason", "batch", "--approver", "mgr01")
    assert_refused(result, 2, "estate.csv line 3: building: B99 is not one of the estate's buildings")
    assert_unchanged(world, before)
    path.write_text(CSV_HEAD + "B03,12,1203,handed-over,vacant\nB05,3,1502,handed-over,vacant\n")
    result = world.cli("clk01", "import", str(path), "--reason", "batch", "--approver", "mgr01")
    assert_refused(result, 2, "estate.csv line 3: unit: 1502 is on floor 15", "nothing was imported")
    assert_unchanged(world, before)


def test_edit_refuses_a_floor_that_contradicts_the_unit_and_a_move(world: World):  # P1, P12
    declare(world)
    number = world.add("clk01", "mgr01", RECORD)
    before = world.snapshot()
    result = world.cli("but01", "edit", number, "--set", "floor=3", "--reason", "fix", "--approver", "mgr01")
    assert_refused(result, 2, "unit: 1203 is on floor 12 by its number, but floor is 3")
    result = world.cli("but01", "edit", number, "--set", "building=B99", "--reason", "fix", "--approver", "mgr01")
    assert_refused(result, 2, "building: a household does not move")
    assert_unchanged(world, before)


def test_configure_adds_a_building_with_the_gms_approval(world: World):  # P12
    declare(world, "# the estate\nbuildings:\n  - B03\n  - B05\nunit_floor: true\n")
    out = world.ok("mgr01", "configure", "--add-building", "B07", "--reason", "phase two", "--approver", "gm01")
    assert "awaits approval by gm01" in out
    text = (world.root / "archive.yaml").read_text()
    assert "buildings: [B03, B05, B07]" in text and "# the estate" in text and "unit_floor: true" in text
    assert world.trailers()["Action"] == "configure"
    world.approve("gm01")
    path = world.tmp / "r.yaml"
    path.write_text(RECORD.replace("building: B03", "building: B07"))
    world.ok("clk01", "add", "--file", str(path), "--reason", "new customer", "--approver", "mgr01")
    rows = json.loads(world.ok("aud01", "list", "--format", "json"))
    assert [r["building"] for r in rows] == ["B07"]


def test_configure_adds_the_first_buildings_and_refuses_one_declared_twice(world: World):
    world.ok("mgr01", "configure", "--add-building", "B03", "--reason", "declare", "--approver", "gm01")
    assert "buildings: [B03]" in (world.root / "archive.yaml").read_text()
    before = world.snapshot()
    result = world.cli("mgr01", "configure", "--add-building", "B03", "--reason", "again", "--approver", "gm01")
    assert_refused(result, 2, "--add-building B03: already one of the estate's buildings")
    assert_unchanged(world, before)


def test_configure_refuses_a_building_name_that_is_not_one_and_leaves_archive_yaml(world: World):
    before = world.snapshot()
    result = world.cli("mgr01", "configure", "--add-building", "b 3", "--reason", "declare", "--approver", "gm01")
    assert_refused(result, 2, "buildings: b 3 is not a building name")
    assert_unchanged(world, before)


def test_a_clerk_cannot_declare_buildings(world: World):  # P12
    before = world.snapshot()
    result = world.cli("clk01", "configure", "--add-building", "B07", "--reason", "declare", "--approver", "mgr01")
    assert result.exit_code == 1
    assert_unchanged(world, before)
