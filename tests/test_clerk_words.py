"""What a clerk reads: purge proposes, usage mistakes are usage, help without policy tags (issue 29.9)."""

from __future__ import annotations

import re
from pathlib import Path

import typer
from conftest import World, assert_refused, assert_unchanged
from typer.testing import CliRunner

from archivectl.cli.app import app

README = Path(__file__).resolve().parent.parent / "README.md"


def every_help_page() -> dict[str, str]:
    """`--help` of archivectl and of every command and subcommand, by command line."""
    root = typer.main.get_command(app)
    pages: dict[str, str] = {}

    def walk(command: object, words: list[str]) -> None:
        pages[" ".join(words)] = CliRunner().invoke(app, [*words, "--help"], env={"COLUMNS": "200"}).stdout
        for name, sub in getattr(command, "commands", {}).items():  # a group's commands (typer's bundled click)
            walk(sub, [*words, name])

    walk(root, [])
    return pages


def test_no_help_page_cites_a_policy_tag():  # a clerk does not know P12
    pages = every_help_page()
    assert len(pages) > 30
    cited = {line: tag for line, page in pages.items() for tag in re.findall(r"\bP1?[0-9]\b", page)}
    assert cited == {}


def test_purge_help_and_output_say_it_is_a_proposal(old_world: World):  # P13, P14
    w = old_world
    page = CliRunner().invoke(app, ["purge", "--help"], env={"COLUMNS": "200"}).stdout
    assert "Propose destroying" in page and "keys shred" in page and "Destroy households" not in page
    out = w.ok("mgr01", "purge", "--eligible", "--reason", "retention passed", "--approver", "gm01")
    assert "proposed for purge" in out and w.doomed in out
    assert "nothing is destroyed until it is approved on main" in out
    assert "purged" not in out
    assert w.key_file(w.doomed).exists()  # a proposal: the key is still there


def test_a_missing_approver_and_a_missing_reason_are_both_usage(world: World, household: str):  # P12
    before = world.snapshot()
    no_approver = world.cli("but01", "edit", household, "--set", "occupancy=rented", "--reason", "sold")
    assert_refused(no_approver, 2, "--approver is required")
    no_reason = world.cli("but01", "edit", household, "--set", "occupancy=rented", "--approver", "mgr01")
    assert_refused(no_reason, 2, "--reason is required")
    assert_unchanged(world, before)


def test_a_look_up_without_a_reason_is_asked_why_you_look(world: World, household: str):  # P8
    before = world.snapshot()
    result = world.cli("but01", "show", household, "--reveal")
    assert_refused(result, 2, "--reason is required: say why you look")
    assert "this change" not in result.stderr
    assert_unchanged(world, before)


def test_a_mistyped_approver_gets_a_did_you_mean(world: World, household: str):  # P12
    before = world.snapshot()
    result = world.cli("but01", "edit", household, "--set", "occupancy=rented", "-r", "sold", "--approver", "mgr1")
    assert_refused(result, 1, "approver mgr1 is not on staff.yaml (did you mean mgr01?)")
    result = world.cli("but01", "edit", household, "--set", "occupancy=rented", "-r", "sold", "--approver", "zzzz")
    assert_refused(result, 1, "approver zzzz is not on staff.yaml")
    assert "did you mean" not in result.stderr
    assert_unchanged(world, before)


def test_the_readme_documents_archivectl_ssh():
    text = README.read_text()
    assert "`ARCHIVECTL_SSH`" in text and "ssh -F" in text
