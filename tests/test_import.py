"""import: many households in one signed commit, all or nothing (P1, P3)."""

from __future__ import annotations

import json

from conftest import OWNER_ID, RECORD, World, assert_refused, assert_unchanged, no_secrets_in

CSV = (
    "building,floor,unit,category,occupancy,customers.0.role,customers.0.name,customers.0.phone,"
    "customers.0.id_type,customers.0.id_number,vehicles.0.plate,vehicles.0.parking_space\n"
    f"B03,12,1203,handed-over,owner-occupied,owner,欧阳测试,13812345678,resident-id,{OWNER_ID},京A12345,P2-045\n"
    "B05,2,0201,not-handed-over,vacant,owner,某某,13700000000,passport,E1234567,,\n"
)


def test_csv_import_adds_every_household_in_one_signed_commit(world: World):
    path = world.tmp / "households.csv"
    path.write_text(CSV)
    out = world.ok("clk01", "import", str(path), "--reason", "moving off paper", "--approver", "mgr01")
    assert "imported 2 households" in out
    assert world.signature_status() == "G"
    trailers = world.trailers()
    numbers = trailers["Archive-No"].split(", ")
    assert len(numbers) == 2 and numbers[0].startswith("HO-") and numbers[1].startswith("NH-")
    assert world.git("rev-list", "--count", "HEAD").strip() == "2"
    revealed = json.loads(world.ok("but01", "show", numbers[0], "--reveal", "-r", "check", "--format", "json"))
    assert revealed["customers"][0]["id_number"] == OWNER_ID
    assert revealed["vehicles"] == [{"plate": "京A12345", "parking_space": "P2-045"}]
    assert no_secrets_in(world.all_git_objects()) == []
    history = json.loads(world.ok("aud01", "history", numbers[1], "--format", "json"))
    assert history[0]["reason"] == "moving off paper"


def test_yaml_stream_import(world: World):
    path = world.tmp / "households.yaml"
    path.write_text(RECORD + "---\n" + RECORD.replace('unit: "1203"', 'unit: "1204"'))
    world.ok("clk01", "import", str(path), "--reason", "batch", "--approver", "mgr01")
    rows = json.loads(world.ok("aud01", "list", "--format", "json"))
    assert [r["unit"] for r in rows] == ["1203", "1204"]


def test_a_bad_row_is_named_by_line_and_field_and_nothing_is_imported(world: World):
    before = world.snapshot()
    path = world.tmp / "bad.csv"
    path.write_text(
        CSV + "B05,3,0301,handed-over,owner-occupied,owner,某,13700000001,resident-id,110101198005170012,,\n"
    )
    result = world.cli("clk01", "import", str(path), "--reason", "batch", "--approver", "mgr01")
    assert_refused(result, 2, "bad.csv line 4", "customers[0].id_number", "check digit", "nothing was imported")
    assert "110101198005170012" not in result.stderr
    assert_unchanged(world, before)


def test_a_cell_of_the_wrong_type_is_named_by_line_and_column_and_nothing_is_imported(world: World):
    before = world.snapshot()
    path = world.tmp / "typed.csv"
    path.write_text(CSV.replace("B05,2,0201", "B05,two,0201"))
    result = world.cli("clk01", "import", str(path), "--reason", "batch", "--approver", "mgr01")
    assert_refused(result, 2, "typed.csv line 3: floor: must be a whole number", "nothing was imported")
    assert_unchanged(world, before)


def test_a_bad_yaml_document_is_named_by_its_line(world: World):
    before = world.snapshot()
    path = world.tmp / "bad.yaml"
    bad = RECORD.replace('unit: "1203"', 'unit: "1204"').replace(
        "special_requests:", "shoe_size: 42\nspecial_requests:"
    )
    path.write_text(RECORD + "---\n" + bad)
    result = world.cli("clk01", "import", str(path), "--reason", "batch", "--approver", "mgr01")
    line = RECORD.count("\n") + 2
    assert_refused(result, 2, f"bad.yaml line {line}", "shoe_size", "unknown field")
    assert_unchanged(world, before)


def test_import_refusals(world: World):
    before = world.snapshot()
    empty = world.tmp / "empty.csv"
    empty.write_text("building,floor\n")
    assert_refused(world.cli("clk01", "import", str(empty), "-r", "r", "-a", "mgr01"), 2, "holds no households")
    ragged = world.tmp / "ragged.csv"
    ragged.write_text("building,floor\nB03\n")
    assert_refused(world.cli("clk01", "import", str(ragged), "-r", "r", "-a", "mgr01"), 2, "line 2", "1 cells")
    path = world.tmp / "ok.csv"
    path.write_text(CSV)
    assert_refused(world.cli("clk01", "import", str(path), "-r", "r", "-a", "clk01"), 1, "clerk")
    odd = world.tmp / "odd.csv"
    odd.write_text("building,../x\nB03,1\n")
    assert_refused(world.cli("clk01", "import", str(odd), "-r", "r", "-a", "mgr01"), 2, "field path")
    assert_unchanged(world, before)
