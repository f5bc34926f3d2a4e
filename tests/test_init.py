"""init: a new archive founded by a gm's signed commit."""

from __future__ import annotations

import stat

import pyrage
import pytest
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


# Curve25519 points of small order, bech32-encoded as age recipients (u = 0 and u = 1): the checksums are
# right, so pyrage takes them, but every secret made with them is all zeros; and a typo's bad checksum.
SMALL_ORDER = [
    "age1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq5cu47z",
    "age1qyqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqj7vrya",
]


@pytest.mark.parametrize("recovery", [*SMALL_ORDER, SMALL_ORDER[0][:-1] + "q"])
def test_init_refuses_a_recovery_key_no_record_key_could_be_wrapped_to(tmp_path, people, recovery):
    # P16, P9: the recovery recipient is what restores keys lost to a fault; a weak one would crash
    # every later add, or (wrapped anyway) leave every key readable by anyone.
    staff_file = tmp_path / "staff.yaml"
    staff_file.write_text(staff_yaml(people))
    target = tmp_path / "new"
    result = CliRunner().invoke(
        app,
        ["init", str(target), "--name", "X", "--staff-file", str(staff_file), "--recovery-key", recovery],
        env=person_env(people["gm01"]),
    )
    assert_refused(result, 2, "--recovery-key", "not a usable age public key")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["staff.yaml"]  # no archive, no keystore


def test_pyrage_alone_would_take_the_small_order_recipients():  # why the check above is archivectl's own
    for recovery in SMALL_ORDER:
        pyrage.x25519.Recipient.from_str(recovery)
