"""init: a new archive founded by a gm's signed commit."""

from __future__ import annotations

import stat

from conftest import World, assert_refused, person_env, staff_yaml
from typer.testing import CliRunner

from archivectl.cli import app


def test_founding_commit_is_signed_by_the_gm_and_self_approved(world: World):  # P12
    assert world.signature_status() == "G"
    trailers = world.trailers()
    assert trailers["Acted-by"] == "gm01"
    assert trailers["Approved-by"] == "gm01"
    assert trailers["Reason"]
    tracked = set(world.git("ls-files").split())
    assert {
        "archive.yaml",
        "staff.yaml",
        ".gitattributes",
        "schemas/household.schema.json",
        "schemas/completeness.schema.json",
    } <= tracked


def test_keystore_is_a_private_sibling_directory_outside_git(world: World):
    assert world.keys.is_dir()
    assert stat.S_IMODE(world.keys.stat().st_mode) == 0o700
    assert not (world.root / "archive.keys").exists()


def test_init_refused_when_signer_is_not_a_gm(tmp_path, people):
    staff_file = tmp_path / "staff.yaml"
    staff_file.write_text(staff_yaml(people))
    target = tmp_path / "new"
    result = CliRunner().invoke(
        app, ["init", str(target), "--name", "X", "--staff-file", str(staff_file)], env=person_env(people["mgr01"])
    )
    assert result.exit_code == 1
    assert "gm" in result.stderr
    assert not target.exists()
    assert not (tmp_path / "new.keys").exists()


def test_init_without_signing_key_says_what_to_configure(tmp_path, people):
    staff_file = tmp_path / "staff.yaml"
    staff_file.write_text(staff_yaml(people))
    target = tmp_path / "new"
    result = CliRunner().invoke(
        app, ["init", str(target), "--name", "X", "--staff-file", str(staff_file)], env=person_env(None)
    )
    assert result.exit_code == 1
    assert "user.signingkey" in result.stderr
    assert not target.exists()


def test_init_refuses_a_staff_file_with_an_unknown_role(tmp_path, people):
    staff_file = tmp_path / "staff.yaml"
    staff_file.write_text(staff_yaml(people).replace("role: auditor", "role: janitor"))
    result = CliRunner().invoke(
        app,
        ["init", str(tmp_path / "new"), "--name", "X", "--staff-file", str(staff_file)],
        env=person_env(people["gm01"]),
    )
    assert result.exit_code == 2
    assert "role" in result.stderr
    assert not (tmp_path / "new").exists()


def test_init_refuses_a_non_empty_directory(world: World):
    before = world.snapshot()
    result = world.cli("gm01", "init", str(world.root), "--name", "X", "--staff-file", str(world.tmp / "staff.yaml"))
    assert_refused(result, 2, "not an empty directory")
    assert world.snapshot() == before
