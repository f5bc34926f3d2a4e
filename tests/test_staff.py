"""staff add | edit | deactivate | list: approved writes; signatures keep verifying."""

from __future__ import annotations

import json

from conftest import World, assert_refused, assert_unchanged, make_person


def test_staff_add_is_an_approved_signed_commit_and_the_new_key_signs(world: World):
    newbie = make_person(world.tmp / "newbie", "but03")
    world.people["but03"] = newbie
    world.ok(
        "mgr01",
        "staff",
        "add",
        "but03",
        "--name",
        "新管家",
        "--role",
        "butler",
        "--buildings",
        "B03",
        "--key",
        f"@{newbie.key}.pub",
        "--reason",
        "new butler for B03",
        "--approver",
        "gm01",
    )
    assert world.signature_status() == "G"
    assert world.trailers() == {
        "Action": "staff",
        "Reason": "new butler for B03",
        "Approved-by": "gm01",
        "Acted-by": "mgr01",
    }
    rows = json.loads(world.ok("aud01", "staff", "list", "--format", "json"))
    assert {"id": "but03", "name": "新管家", "role": "butler", "buildings": "B03", "active": True, "handle": ""} in rows
    # once the gm's approval is on main, the new butler's own commits verify and their households open for them
    world.approve("gm01")
    number = world.add(who="but03")
    assert world.signature_status() == "G"
    assert world.ok("but03", "show", number, "--reveal", "--reason", "check")


def test_deactivated_staff_old_commits_verify_and_new_writes_are_refused(world: World):
    number = world.add(who="clk01")
    add_commit = world.git("rev-parse", "HEAD").strip()
    world.ok("mgr01", "staff", "deactivate", "clk01", "--reason", "left", "--approver", "gm01")
    assert world.signature_status(add_commit) == "G"  # valid-before keeps history verifiable
    allowed = (world.root / ".git/archivectl/allowed_signers").read_text()
    assert any(line.startswith("clk01 ") and "valid-before=" in line for line in allowed.splitlines())
    before = world.snapshot()
    result = world.try_add()
    assert_refused(result, 1, "clk01 is no longer active")
    assert_unchanged(world, before)
    assert number


def test_staff_changes_need_an_entitled_approver(world: World):
    before = world.snapshot()
    result = world.cli("mgr01", "staff", "deactivate", "but01", "--reason", "r", "--approver", "but02")
    assert_refused(result, 1, "but02 is a butler")
    result = world.cli(
        "mgr01", "staff", "edit", "but01", "--buildings", "B03,B05", "--reason", "r", "--approver", "mgr02"
    )
    assert_refused(result, 1, "mgr02 is a manager; approvals need a gm")  # staff.yaml decides who reads: the gm
    result = world.cli(
        "gm01", "staff", "edit", "but01", "--buildings", "B03,B05", "--reason", "r", "--approver", "gm01"
    )
    assert_refused(result, 1, "own change")
    assert_unchanged(world, before)


def test_staff_add_refuses_duplicates_and_bad_keys(world: World):
    before = world.snapshot()
    assert_refused(
        world.cli(
            "mgr01",
            "staff",
            "add",
            "but01",
            "--name",
            "x",
            "--role",
            "butler",
            "--key",
            world.people["outsider"].pub,
            "--reason",
            "r",
            "--approver",
            "gm01",
        ),
        1,
        "already on staff.yaml",
    )
    assert_refused(
        world.cli(
            "mgr01",
            "staff",
            "add",
            "but09",
            "--name",
            "x",
            "--role",
            "butler",
            "--key",
            world.people["but01"].pub,
            "--reason",
            "r",
            "--approver",
            "gm01",
        ),
        1,
        "already belongs to but01",
    )
    assert_refused(
        world.cli(
            "mgr01",
            "staff",
            "add",
            "but09",
            "--name",
            "x",
            "--role",
            "butler",
            "--key",
            "ssh-rsa AAAAB3NzaC1yc2E",
            "--reason",
            "r",
            "--approver",
            "gm01",
        ),
        2,
        "ssh-ed25519",
    )
    assert_refused(
        world.cli(
            "mgr01",
            "staff",
            "add",
            "but09",
            "--name",
            "x",
            "--role",
            "chef",
            "--key",
            world.people["outsider"].pub,
            "--reason",
            "r",
            "--approver",
            "gm01",
        ),
        2,
        "role",
    )
    assert_unchanged(world, before)


def test_staff_edit_buildings(world: World):
    world.ok(
        "mgr01", "staff", "edit", "but02", "--buildings", "B05,B07", "--reason", "covers B07 now", "--approver", "gm01"
    )
    rows = {r["id"]: r for r in json.loads(world.ok("aud01", "staff", "list", "--format", "json"))}
    assert rows["but02"]["buildings"] == "B05,B07"
