"""Costs that follow the change (issue 30): what a range check, a judged file or a warm report still catch.

The range check looks up only the archive numbers a range adds, through the households
listing kept in .git/archivectl/cache/households; the approved version of archive.yaml
and the schema is remembered per main tip. These tests make each shortcut face the case
it could get wrong: a stale, missing or lying-about-its-commit listing, a server that
has judged pushes before, a schema change awaiting its approval after one was remembered.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import OWNER_ID, OWNER_NAME, OWNER_PHONE, RECORD, World
from test_judge import drop_sensitive, push, serve, server_main
from test_rule_table import (
    Desk,
    base,  # noqa: F401 - the rule table's archive, server and clone, built once
    flagged,
    new_household,
    next_number,
    verifies,
)
from test_rule_table import desk as rule_table_desk  # noqa: F401


@pytest.fixture(name="desk")
def _desk(request: pytest.FixtureRequest) -> Desk:
    return request.getfixturevalue("rule_table_desk")


def listing(repo: Path) -> Path:
    return repo / "archivectl" / "cache" / "households"


def test_the_server_hook_refuses_a_push_that_reuses_a_number_after_judging_earlier_pushes(desk: Desk):  # P3
    """The server keeps a listing from an earlier push; a later push adding a used number is still refused."""
    server = serve(desk)
    fresh = next_number(desk)
    new_household(desk, "1206", number=fresh)
    desk.sign("clk01", "add", subject=f"add {fresh} (B03/1206)", archive_no=fresh)
    desk.approve_by_hand("mgr01", desk.head())
    verifies(desk)
    assert push(desk, "HEAD:refs/heads/main", who="mgr01").returncode == 0
    desk.git("fetch", "-q", "origin")
    assert listing(server).exists()  # the hook kept what it listed, for the next push

    desk.branch("again")
    reused = desk.h["live"]
    new_household(desk, "1207", number=reused)
    desk.sign("clk01", "add", subject=f"add {reused} (B03/1207)", archive_no=reused)
    desk.approve_by_hand("mgr01", desk.head())
    flagged(desk, "numbers", f"{reused} is used by two households")
    before = server_main(server)
    pushed = push(desk, "HEAD:refs/heads/main", who="mgr01")
    assert pushed.returncode != 0 and f"numbers: {reused} is used by two households" in pushed.stderr
    assert server_main(server) == before


@pytest.mark.parametrize("memo", ["missing", "of-another-commit", "of-no-commit", "garbage"])
def test_a_reused_number_is_flagged_whatever_the_kept_listing_says(desk: Desk, memo: str):  # P3
    reused = desk.h["live"]
    new_household(desk, "1206", number=reused)
    commit = desk.sign("clk01", "add", subject=f"add {reused} (B03/1206)", archive_no=reused)
    memo_file = listing(desk.path / ".git")
    memo_file.parent.mkdir(parents=True, exist_ok=True)
    if memo == "missing":
        memo_file.unlink(missing_ok=True)
    elif memo == "of-another-commit":  # an empty listing of the founding commit: the diff brings it up to date
        root = desk.git("rev-list", "--max-parents=0", "HEAD").split()[0]
        memo_file.write_bytes(json.dumps({"commit": root, "highest": {}}).encode() + b"\n")
    elif memo == "of-no-commit":
        memo_file.write_bytes(json.dumps({"commit": "1" * 40, "highest": {}}).encode() + b"\n")
    else:
        memo_file.write_bytes(b"\x00not json\n")
    report = flagged(desk, "numbers", f"{reused} is used by two households")
    assert commit in {f["commit"] for f in report["findings"] if f["rule"] == "numbers"}


def test_a_number_held_only_in_a_kept_listing_of_another_branch_is_not_a_reuse(desk: Desk):  # P3
    """The listing is looked up where it lies and put right by the diff to the tip: a path gone there does not count."""
    fresh = next_number(desk)
    desk.branch("elsewhere")
    new_household(desk, "1206", number=fresh)
    elsewhere = desk.sign("clk01", "add", subject=f"add {fresh} (B03/1206)", archive_no=fresh)
    paths = desk.git("ls-tree", "-r", "--name-only", elsewhere, "--", "households").split()
    kept = "".join(f"{p}\n" for p in paths if p.endswith("/record.yaml"))
    assert f"/{fresh}/record.yaml" in kept
    memo_file = listing(desk.path / ".git")
    memo_file.parent.mkdir(parents=True, exist_ok=True)
    memo_file.write_bytes(json.dumps({"commit": elsewhere, "highest": {}}).encode() + b"\n" + kept.encode())
    desk.branch("here")  # from main: the same number for another household, used nowhere else in its tree
    new_household(desk, "1207", number=fresh)
    desk.sign("clk01", "add", subject=f"add {fresh} (B03/1207)", archive_no=fresh)
    desk.approve_by_hand("mgr01", desk.head())
    report = verifies(desk)
    assert not [f for f in report["findings"] if f["rule"] == "numbers"]


def test_a_schema_change_on_main_awaiting_approval_seals_by_the_remembered_schema_until_approved(desk: Desk):  # P9
    """show remembers main's approved schema; a schema change on main then awaits the gm: sealing keeps the old one."""
    from archivectl.archive import Archive
    from archivectl.judge.state import approved_commit

    live = desk.h["live"]
    desk.git("checkout", "-q", "-B", "main", "origin/main")
    desk.ok("but01", "show", live)
    assert (desk.path / ".git/archivectl/cache/approved.json").exists()  # what the next command starts from
    schema = desk.path / "schemas/household.schema.json"
    schema.write_text(json.dumps(drop_sensitive(json.loads(schema.read_text())), ensure_ascii=False, indent=2))
    change = desk.sign("mgr01", "configure", subject="simpler schema", approver="gm01")
    desk.ok("but01", "edit", live, "--set", "occupancy=rented", "--reason", "now let", "--approver", "mgr01")
    edited = desk.git("show", f"HEAD:{desk.home(live)}record.yaml")
    for secret in (OWNER_NAME, OWNER_PHONE, OWNER_ID):
        assert secret not in edited
    assert "-----BEGIN AGE ENCRYPTED FILE-----" in edited
    assert OWNER_PHONE not in desk.ok("but01", "show", live)
    archive = Archive(desk.path)
    path = "schemas/household.schema.json"
    before = desk.git("show", f"{change}~1:{path}")
    assert desk.git("show", f"{approved_commit(archive, desk.head(), path)}:{path}") == before
    approval = desk.approve_by_hand("gm01", change)
    assert approved_commit(archive, approval, path) == change  # the remembered answer gave way to the approval
    assert approved_commit(archive, approval, path) == change


def test_a_warm_report_written_in_pieces_after_an_edit_equals_a_cold_one(world: World, tmp_path: Path):  # P5
    """The JSON is streamed from each building's kept rows; a file, stdout and a cold run agree byte for byte."""
    from test_reports import rows_of, without_generated

    first = world.add()
    second = world.add(text=RECORD.replace('unit: "1203"', 'unit: "1204"'))
    (tmp_path / "reports").mkdir()
    out = tmp_path / "reports" / "completeness.json"
    args = ("report", "completeness", "--format", "json")
    world.ok("aud01", *args, "--output", str(out))  # cold: every building's rows kept
    world.ok("but01", "edit", second, "--set", "occupancy=rented", "-r", "let", "-a", "mgr01")
    world.ok("aud01", *args, "--output", str(out))  # warm after one edit: one building made again, streamed
    warm_file = out.read_text()
    warm_stdout = world.ok("aud01", *args)  # warm, nothing changed: the same pieces, to stdout
    shutil.rmtree(world.root / ".git/archivectl/cache")
    cold = world.ok("aud01", *args)
    assert warm_file.endswith("}\n") and json.loads(warm_file)["households"]
    assert without_generated(warm_file) == without_generated(warm_stdout) == without_generated(cold)
    rows = rows_of(warm_file)
    assert rows[second]["occupancy"] == "rented" and rows[first]["occupancy"] != "rented"
    assert sorted(p.name for p in out.parent.iterdir()) == ["completeness.json"]  # no temporary file left beside it
