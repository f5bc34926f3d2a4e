"""edit: approved changes, personal fields resealed, command-owned fields refused (P12)."""

from __future__ import annotations

import json

import pytest
from conftest import World, assert_refused, assert_unchanged, no_secrets_in

from archivectl import yamlio


def reveal(world: World, number: str, who: str = "but01") -> dict:
    return json.loads(world.ok(who, "show", number, "--reveal", "--reason", "check", "--format", "json"))


def test_edit_personal_field_is_resealed_and_committed_with_trailers(world: World, household: str):  # P12
    out = world.ok(
        "but01",
        "edit",
        household,
        "--set",
        "customers.0.phone=13911112222",
        "--reason",
        "owner called",
        "--approver",
        "mgr01",
    )
    assert household in out
    assert world.signature_status() == "G"
    assert world.trailers() == {
        "Action": "edit",
        "Reason": "owner called",
        "Approved-by": "mgr01",
        "Archive-No": household,
        "Acted-by": "but01",
    }
    assert reveal(world, household)["customers"][0]["phone"] == "13911112222"
    assert "13911112222" not in world.all_git_objects().decode("utf-8", "replace")


def test_edit_clear_field_keeps_the_sealed_ciphertext(world: World, household: str):
    path = world.root / f"households/B03/1203/{household}/record.yaml"
    sealed_before = yamlio.load_file(path)["sealed"]
    world.ok("but01", "edit", household, "--set", "occupancy=rented", "--reason", "let out", "--approver", "mgr01")
    after = yamlio.load_file(path)
    assert after["occupancy"] == "rented"
    assert after["sealed"] == sealed_before  # a reviewer's diff shows only what changed


def test_non_reader_may_edit_clear_fields_but_not_personal_ones(world: World, household: str):  # P7
    world.ok(
        "clk01", "edit", household, "--set", "last_reviewed=2026-01-10", "--reason", "review", "--approver", "mgr01"
    )
    before = world.snapshot()
    result = world.cli(
        "clk01", "edit", household, "--set", "customers.0.phone=13911112222", "--reason", "r", "--approver", "mgr01"
    )
    assert_refused(result, 1, "clk01 (clerk) is not a reader of building B03")
    assert_unchanged(world, before)


def test_edit_with_file_and_unset(world: World, household: str):
    patch = world.tmp / "patch.yaml"
    patch.write_text("move_in_date: 2024-05-20\nnotes: 新业主\n")
    world.ok(
        "mgr01",
        "edit",
        household,
        "--file",
        str(patch),
        "--unset",
        "special_requests",
        "--reason",
        "move-in recorded",
        "--approver",
        "mgr02",
    )
    record = reveal(world, household)
    assert record["move_in_date"] == "2024-05-20" and record["notes"] == "新业主"
    assert "special_requests" not in record


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["--set", "building=B05"], 2, ["building", "does not move"]),
        (["--set", "status=tombstoned"], 2, ["status"]),
        (["--set", "archive_no=HO-2026-09999"], 2, ["archive_no"]),
        (["--set", "customers.0.id_number=110101198005170012"], 2, ["customers[0].id_number", "check digit"]),
        (["--set", "nickname=x"], 2, ["nickname", "unknown field"]),
        (["--set", "floor=twelve"], 2, ["floor", "whole number"]),
        (["--set", "occupancy=owner-occupied"], 1, ["nothing to change"]),
        (["--set", "customers.5.name=x"], 2, ["out of range"]),
        (["--unset", "nothing_here"], 2, ["nothing_here: unknown field"]),
    ],
)
def test_refused_edits_leave_the_archive_unchanged(world: World, household: str, args, code, words):
    before = world.snapshot()
    result = world.cli("but01", "edit", household, *args, "--reason", "r", "--approver", "mgr01")
    assert_refused(result, code, *words)
    assert no_secrets_in(result.stderr) == []
    assert_unchanged(world, before)


def test_edit_of_unknown_or_malformed_archive_number(world: World, household: str):
    before = world.snapshot()
    assert_refused(
        world.cli("but01", "edit", "HO-2020-00077", "--set", "notes=x", "--reason", "r", "--approver", "mgr01"),
        1,
        "no such household",
    )
    assert_refused(
        world.cli("but01", "edit", "../HO-2026-00001", "--set", "notes=x", "--reason", "r", "--approver", "mgr01"),
        2,
        "not an archive number",
    )
    assert_unchanged(world, before)


def test_edit_of_a_file_changed_by_hand_is_refused(world: World, household: str):
    path = world.root / f"households/B03/1203/{household}/record.yaml"
    path.write_text(path.read_text() + "# hand edit\n")
    before = world.snapshot()
    result = world.cli("but01", "edit", household, "--set", "occupancy=rented", "--reason", "r", "--approver", "mgr01")
    assert_refused(result, 1, "uncommitted changes")
    assert_unchanged(world, before)
