"""import of many households: sealed on every core, keys stored beside the record files, all or nothing (P3, P14).

MANY is past importing.MIN_PARALLEL, so the rows are checked and sealed by the
forked workers and the keys are stored by the import's key thread while the
record files are written, in batches of importing.FLUSH.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import World, assert_refused, assert_unchanged
from crashkit import head_records, keystore_files, killed_at, problems, reserved_numbers

from archivectl import clock, idcheck
from archivectl.ops import importing

MANY = importing.MIN_PARALLEL + 200
HEADER = "building,floor,unit,category,customers.0.role,customers.0.name,customers.0.phone,customers.0.id_number\n"


def many_csv(world: World, count: int = MANY) -> Path:
    """count households, one a unit, each with an owner whose name, phone and resident ID are sealed."""
    rows = []
    for i in range(count):
        body = f"110105{1950 + i % 50}{1 + i % 12:02d}{1 + i % 28:02d}{i % 1000:03d}"
        category = ("handed-over", "not-handed-over", "special")[i % 3]
        rows.append(f"B{i % 7:02d},{1 + i % 30},{i:04d},{category},owner,测试{i},139{i:08d},{body}")
        rows[-1] += idcheck.check_digit(body)
    path = world.tmp / "many.csv"
    path.write_text(HEADER + "\n".join(rows) + "\n")
    return path


IMPORT = ("import", "-r", "moving off paper", "-a", "mgr01")


def test_an_import_of_many_households_seals_each_to_its_own_key_in_one_commit(world: World):
    commits = int(world.git("rev-list", "--count", "HEAD"))
    out = world.ok("clk01", *IMPORT[:1], str(many_csv(world)), *IMPORT[1:])
    assert f"imported {MANY} households" in out
    assert int(world.git("rev-list", "--count", "HEAD")) == commits + 1
    records = head_records(world)
    assert len(records) == MANY
    assert len({r["recipient"] for r in records.values()}) == MANY  # one record key a household
    assert reserved_numbers(world) == set(records)
    # every key at its address opens for a reader and opens its household's sealed block; no journal left;
    # no number or key that the commit does not use; nothing of a key or personal data outside the keystore
    assert problems(world) == []
    number, record = next((n, r) for n, r in sorted(records.items()) if r["building"] == "B03")  # but01's
    shown = world.ok("but01", "show", number, "--reveal", "-r", "check", "--format", "yaml")
    assert f"测试{record['unit'].lstrip('0')}" in shown


@pytest.mark.parametrize("step", ["key-written@1", "file-written@1100", "signed"])
def test_an_import_killed_before_its_commit_leaves_no_household_key_or_number(world: World, household: str, step):
    """Killed with keys of its first batch stored, or half its files written, or its commit signed but not on
    HEAD: the next command takes every file, key and number back."""
    keys_before = keystore_files(world)
    head = world.git("rev-parse", "HEAD").strip()
    killed_at(world, step, "clk01", *IMPORT[:1], str(many_csv(world)), *IMPORT[1:])
    assert len(keystore_files(world)) > len(keys_before)  # it got as far as storing numbers (and keys)
    world.ok("but01", "review", household, "-r", "yearly review", "-a", "mgr01")  # settles it first
    assert keystore_files(world) == keys_before
    assert list(head_records(world)) == [household]
    assert world.git("rev-parse", "HEAD~1").strip() == head
    assert problems(world) == []


def test_an_import_killed_once_its_commit_is_on_head_is_finished_by_the_next_command(world: World, household: str):
    killed_at(world, "after-update-ref", "clk01", *IMPORT[:1], str(many_csv(world)), *IMPORT[1:])
    assert (world.root / ".git/archivectl/journal").exists()
    world.ok("but01", "review", household, "-r", "yearly review", "-a", "mgr01")
    assert len(head_records(world)) == MANY + 1
    assert problems(world) == []


def test_an_import_onto_a_folder_left_where_a_new_household_goes_is_refused(world: World):
    """A stray folder of the number an imported household would get: refused, and nothing is imported."""
    path = world.tmp / "two.csv"
    path.write_text("building,floor,unit,category\nB03,12,1203,handed-over\nB03,12,1204,handed-over\n")
    stray = world.root / "households" / "B03" / "1204" / f"HO-{clock.today().year}-00002"
    stray.mkdir(parents=True)
    before = world.snapshot()
    result = world.cli("clk01", *IMPORT[:1], str(path), *IMPORT[1:])
    assert_refused(result, 1, f"{stray.relative_to(world.root).as_posix()}/record.yaml already exists")
    assert_unchanged(world, before)


@pytest.mark.parametrize("link", ["households/B03", "households/B03/1204"])
def test_an_import_through_a_linked_folder_is_refused_and_writes_nothing_there(world: World, link: str):
    """A building's or a unit's folder that is a symbolic link (to a shared drive, say): the import writes
    nothing through it, nothing anywhere, and says which folder it is."""
    path = world.tmp / "linked.csv"
    path.write_text("building,floor,unit,category\nB03,12,1203,handed-over\nB03,12,1204,handed-over\n")
    elsewhere = world.tmp / "elsewhere"
    elsewhere.mkdir()
    (world.root / link).parent.mkdir(parents=True, exist_ok=True)
    os.symlink(elsewhere, world.root / link)
    before, keys_before = world.snapshot(), keystore_files(world)
    result = world.cli("clk01", *IMPORT[:1], str(path), *IMPORT[1:])
    assert_refused(result, 1, f"{link} is a symbolic link; archivectl does not write through links")
    assert list(elsewhere.iterdir()) == []
    assert_unchanged(world, before)
    assert keystore_files(world) == keys_before


def test_an_imported_household_gets_its_number_whatever_its_other_fields_hold(world: World):
    """An import seals each household before its number is taken, then writes the number into its text:
    a value that reads like the number's line is left as it was."""
    lookalike = f"P1\narchive_no: HO-{clock.today().year}-00000"  # the number a household holds until numbered
    path = world.tmp / "lookalike.yaml"
    path.write_text(
        "building: B03\nfloor: 12\nunit: '1203'\ncategory: handed-over\n"
        f"renovation:\n  permit_no: {json.dumps(lookalike)}\n"
    )
    world.ok("clk01", *IMPORT[:1], str(path), *IMPORT[1:])
    records = head_records(world)
    number = f"HO-{clock.today().year}-00001"
    assert list(records) == [number]
    assert records[number]["archive_no"] == number
    assert records[number]["renovation"]["permit_no"] == lookalike
    assert problems(world) == []


def test_bad_rows_among_many_are_named_by_line_and_field_and_nothing_is_imported(world: World):
    """Checked on every core: a phone number too short and a floor that is no number, far into the file,
    are both found; the first is named, and nothing is written (P3: no number taken)."""
    path = many_csv(world)
    lines = path.read_text().splitlines()
    short = lines[1100].split(",")
    short[6] = short[6][:7]
    lines[1100] = ",".join(short)
    floor_at = lines[1150].split(",")
    lines[1150] = ",".join([floor_at[0], "twelve", *floor_at[2:]])
    path.write_text("\n".join(lines) + "\n")
    before, keys_before = world.snapshot(), keystore_files(world)
    result = world.cli("clk01", *IMPORT[:1], str(path), *IMPORT[1:])
    assert_refused(result, 2, "many.csv line 1101: customers[0].phone", "(and 1 more); nothing was imported")
    assert short[6] not in result.stderr  # P7: the phone number itself is not shown
    assert_unchanged(world, before)
    assert keystore_files(world) == keys_before
