"""The mistakes people make every day get a message that says what to do (issue: everyday use)."""

from __future__ import annotations

import shutil
import subprocess
import sys

from conftest import LIVE_RECORD, World, assert_refused, assert_unchanged, on_terminal, process_env


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
    shutil.copyfile(world.key_file(second), world.key_file(first))
    result = world.cli("but01", "show", first, "--reveal", "-r", "check")
    assert_refused(result, 1, "not this household's: check the keystore")
    assert subprocess.run(["git", "-C", str(world.root), "status", "--porcelain"], capture_output=True).stdout == b""


def test_a_typo_in_a_sealed_field_is_named_before_any_permission_check(world: World):  # P7
    number = world.add()
    before = world.snapshot()
    result = world.cli("clk01", "edit", number, "--set", "customers.0.phnoe=1", "-r", "r", "-a", "mgr01")
    assert_refused(result, 2, "customers[0].phnoe: unknown field (did you mean phone?)")
    assert "reader" not in result.stderr and "general manager" not in result.stderr
    assert_unchanged(world, before)


def test_every_problem_is_listed_in_words_not_regular_expressions(world: World):
    before = world.snapshot()
    result = world.cli(
        "clk01", "add", "--building", "b 03", "--floor", "1", "--unit", "12/3", "--category", "handed-over",
        "-r", "r", "-a", "mgr01",
    )  # fmt: skip
    assert_refused(result, 2, "building: use capital letters, digits and '-', e.g. B03", "unit: use letters, digits")
    assert "[A-Z0-9]" not in result.stderr and "^" not in result.stderr
    result = world.cli(
        "clk01", "add", "--file", str(_record_file(world, "custmers:\n  - {role: owner}\n")), "-r", "r", "-a", "mgr01"
    )
    assert_refused(result, 2, "custmers: unknown field (did you mean customers?)")
    assert_unchanged(world, before)


def _record_file(world: World, extra: str):
    path = world.tmp / "typo.yaml"
    path.write_text("building: B03\nfloor: 1\nunit: '0101'\ncategory: handed-over\n" + extra)
    return path


def test_a_second_active_household_on_a_unit_is_refused_naming_the_first(world: World):  # P1
    first = world.add()
    before = world.snapshot()
    result = world.cli("clk01", "add", "--file", str(world.tmp / "new-record.yaml"), "-r", "new", "-a", "mgr01")
    assert_refused(result, 1, f"{first} is already the active household of B03/1203", "move it out first")
    assert_unchanged(world, before)
    second = world.add("clk01", "mgr01", LIVE_RECORD.replace('unit: "1204"', 'unit: "1203"'), "--also-active")
    assert second != first


def test_long_commands_show_progress_on_a_terminal_and_nothing_when_piped(world: World, tmp_path):  # 16
    rows = "\n".join(f"B05,1,{i:04d},special" for i in range(1, 601))
    (tmp_path / "many.csv").write_text("building,floor,unit,category\n" + rows + "\n")
    world.ok("clk01", "import", str(tmp_path / "many.csv"), "-r", "batch", "-a", "mgr01")
    world.approve("mgr01")
    env = {**process_env(world.people["aud01"]), "COLUMNS": "100", "TERM": "xterm"}
    base = [sys.executable, "-m", "archivectl", "--archive", str(world.root)]
    for args, stage in (
        (["keys", "fsck"], b"checking record keys"),
        (["backup", "--output", str(tmp_path / "b.tar")], b"bundling the history"),
    ):
        code, screen = on_terminal([*base, *args], env, stage, b"")
        assert code == 0 and stage in screen, screen[-400:]
        (tmp_path / "b.tar").unlink(missing_ok=True)
        piped = subprocess.run([*base, *args], env=env, capture_output=True)
        assert piped.returncode == 0 and stage not in piped.stderr + piped.stdout
