"""CSV as offices have it: Excel's GBK/GB18030 or UTF-8 (BOM or not), comma, semicolon or tab (P4)."""

from __future__ import annotations

import json

import pytest
from conftest import OWNER_ID, OWNER_NAME, World, assert_refused, assert_unchanged

HEADER = "building floor unit category occupancy customers.0.role customers.0.name customers.0.id_type"
ROWS = [
    HEADER.split(),
    ["B03", "12", "1203", "handed-over", "owner-occupied", "owner", OWNER_NAME, "resident-id"],
    ["B05", "2", "0201", "not-handed-over", "vacant", "owner", "张三丰", "passport"],
]


def csv_text(separator: str) -> str:
    return "".join(separator.join(row) + "\r\n" for row in ROWS)


@pytest.mark.parametrize(
    ("encoding", "prefix", "said"),
    [
        ("gb18030", b"", "GB18030"),
        ("gbk", b"", "GB18030"),
        ("utf-8", b"", "UTF-8"),
        ("utf-8", b"\xef\xbb\xbf", "UTF-8 with BOM"),
    ],
)
@pytest.mark.parametrize(("separator", "named"), [(",", "','"), (";", "';'"), ("\t", "tab")])
def test_csv_in_any_office_encoding_and_separator_is_read_and_said(
    world: World, encoding: str, prefix: bytes, said: str, separator: str, named: str
):  # P4
    path = world.tmp / "households.csv"
    path.write_bytes(prefix + csv_text(separator).encode(encoding))
    out = world.ok("clk01", "import", str(path), "--reason", "moving off paper", "--approver", "mgr01")
    assert f"households.csv: read as {said}, cells separated by {named}" in out
    assert "imported 2 households" in out
    numbers = world.trailers()["Archive-No"].split(", ")
    revealed = json.loads(world.ok("but01", "show", numbers[0], "--reveal", "-r", "check", "--format", "json"))
    assert revealed["customers"][0]["name"] == OWNER_NAME
    assert revealed["building"] == "B03" and revealed["unit"] == "1203"


def test_a_damaged_utf8_file_is_refused_not_read_as_gbk(world: World):
    before = world.snapshot()
    path = world.tmp / "damaged.csv"
    data = csv_text(",").encode("utf-8")
    cut = data.index(OWNER_NAME.encode()) + 1  # inside the name's first character
    path.write_bytes(data[:cut] + data[cut + 1 :])
    result = world.cli("clk01", "import", str(path), "--reason", "batch", "--approver", "mgr01")
    assert_refused(result, 2, "damaged.csv: not UTF-8 text (byte")
    assert_unchanged(world, before)


def test_a_header_typo_is_named_on_line_1_with_a_did_you_mean(world: World):
    before = world.snapshot()
    path = world.tmp / "typo.csv"
    path.write_text(csv_text(";").replace("occupancy", "ocupancy", 1))
    result = world.cli("clk01", "import", str(path), "--reason", "batch", "--approver", "mgr01")
    assert_refused(result, 2, "typo.csv line 1: column ocupancy: unknown field (did you mean occupancy?)")
    assert_unchanged(world, before)


def test_every_csv_problem_names_file_and_line(world: World):
    before = world.snapshot()
    path = world.tmp / "short.csv"
    path.write_text(csv_text(";") + "B05;3;0301;handed-over\n")
    result = world.cli("clk01", "import", str(path), "--reason", "batch", "--approver", "mgr01")
    assert_refused(result, 2, "short.csv line 4: 4 cells, but the header has 8")
    path.write_text(csv_text("\t").replace(OWNER_ID[:0] + "resident-id", "pass port", 1))
    result = world.cli("clk01", "import", str(path), "--reason", "batch", "--approver", "mgr01")
    assert_refused(result, 2, "short.csv line 2: customers[0].id_type")
    path.write_text('building,floor\n"B03,12\n')
    result = world.cli("clk01", "import", str(path), "--reason", "batch", "--approver", "mgr01")
    assert_refused(result, 2, "short.csv line")
    assert_unchanged(world, before)
