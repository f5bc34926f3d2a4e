"""The mistakes people make every day get a message that says what to do (issue: everyday use)."""

from __future__ import annotations

import shutil
import subprocess

from conftest import LIVE_RECORD, World, assert_refused, assert_unchanged


def test_staff_key_may_be_a_path_to_the_pub_file(world: World, tmp_path):
    from conftest import make_person

    newbie = make_person(tmp_path / "p", "cas02")
    pub = tmp_path / "p" / "cas02.pub"
    world.ok(
        "mgr01",
        "staff",
        "add",
        "cas02",
        "--name",
        "新",
        "--role",
        "cashier",
        "--key",
        str(pub),
        "-r",
        "hired",
        "-a",
        "gm01",
    )
    assert newbie.pub.split()[1] in (world.root / "staff.yaml").read_text()


def test_a_private_key_given_as_key_is_refused_and_never_echoed(world: World, tmp_path):
    from conftest import make_person

    make_person(tmp_path / "p", "cas02")
    private = tmp_path / "p" / "cas02"
    before = world.snapshot()
    for given in (str(private), private.read_text()):
        result = world.cli(
            "mgr01",
            "staff",
            "add",
            "cas02",
            "--name",
            "新",
            "--role",
            "cashier",
            "--key",
            given,
            "-r",
            "r",
            "-a",
            "gm01",
        )
        assert_refused(result, 2, "private key")
        assert "BEGIN OPENSSH" not in result.stderr and private.read_text().splitlines()[1] not in result.stderr
    assert_unchanged(world, before)


def test_a_malformed_staff_yaml_is_named_as_such(world: World):
    staff = world.root / "staff.yaml"
    staff.write_text(staff.read_text().replace("role: clerk", "role: janitor"))
    world.git("commit", "-q", "-a", "-m", "broken by hand", "--no-verify")
    result = world.cli("but01", "show", "HO-2026-00001", "--reveal", "-r", "r")
    assert_refused(result, 2, "staff.yaml", "role")
    assert "signing key" not in result.stderr


def test_a_sealed_block_opened_with_another_households_key_says_so(world: World):
    first = world.add()
    second = world.add(text=LIVE_RECORD)
    shutil.copyfile(world.keys / f"{second}.age", world.keys / f"{first}.age")
    result = world.cli("but01", "show", first, "--reveal", "-r", "check")
    assert_refused(result, 1, "not this household's: check the keystore")
    assert subprocess.run(["git", "-C", str(world.root), "status", "--porcelain"], capture_output=True).stdout == b""
