"""Two branches change one record: archivectl's merge driver, and how verify judges its merges (P7, P12).

Real git, real keys, a bare server with the pre-receive hook, one HOME and clone
per person (tests/test_office.py's office and Desk).
"""

from __future__ import annotations

import json

from conftest import OWNER_PHONE, RECORD, World
from test_office import Desk, office  # noqa: F401  (the fixture, used by name)

NEW_PHONE, OTHER_PHONE = "13911112222", "13733334444"
NEW_ADDRESS = "合并测试路9号"


def household_on_main(office: dict[str, Desk], world: World) -> tuple[str, str]:  # noqa: F811
    """The gm adds a B03 household on a branch, mgr01 approves and merges it; (archive number, record path)."""
    gm = Desk(world, "gm01", office["mgr01"].server)
    gm.clone = world.root
    gm.git("switch", "-q", "-c", "base")
    record = gm.home / "r.yaml"
    record.write_text(RECORD)
    number = gm.ok("add", "--file", str(record), "--reason", "new owner", "--approver", "mgr01").strip()
    gm.git("push", "-q", "origin", "base")
    approve(office["mgr01"], "base")
    merge(office["mgr01"], "base")
    path = office["mgr01"].git("ls-files", f"households/*/*/{number}/record.yaml").stdout.strip()
    return number, path


def propose_edit(desk: Desk, branch: str, number: str, *settings: str) -> None:
    """An edit on a branch from main, naming mgr01, pushed for review."""
    desk.git("fetch", "-q")
    desk.git("switch", "-q", "-c", branch, "origin/main")
    args = [a for s in settings for a in ("--set", s)]
    desk.ok("edit", number, *args, "--reason", "the owner called", "--approver", "mgr01")
    desk.git("push", "-q", "-u", "origin", branch)


def approve(manager: Desk, branch: str) -> None:
    manager.git("fetch", "-q")
    manager.git("switch", "-q", branch)
    manager.git("pull", "-q", "--ff-only")
    manager.ok("approve", "--yes", "--reason", "checked the change")
    manager.git("push", "-q", "origin", branch)


def merge(desk: Desk, branch: str, *extra: str, check: bool = True):
    desk.git("fetch", "-q")
    desk.git("switch", "-q", "main")
    desk.git("pull", "-q", "--ff-only", "origin", "main")
    merged = desk.git("merge", "--no-ff", *extra, "-m", f"Merge {branch}", f"origin/{branch}", check=False)
    if check:
        assert merged.returncode == 0 and "CONFLICT" not in merged.stdout, (merged.stdout, merged.stderr)
        pushed = desk.git("push", "origin", "main", check=False)
        assert pushed.returncode == 0, pushed.stderr
    return merged


def two_approved_edits(office, world, first: tuple[str, ...], second: tuple[str, ...]) -> tuple[str, str]:  # noqa: F811
    """A household on main, then but01 and mgr02 each propose an edit that mgr01 approves; the first is merged."""
    number, path = household_on_main(office, world)
    propose_edit(office["but01"], "one", number, *first)
    propose_edit(office["mgr02"], "two", number, *second)
    approve(office["mgr01"], "one")
    approve(office["mgr01"], "two")
    merge(office["mgr01"], "one")
    return number, path


def revealed(desk: Desk, number: str) -> str:
    return desk.ok("show", number, "--reveal", "--reason", "checking the merge")


def test_a_sealed_and_a_clear_change_on_two_branches_merge_cleanly(office, world):  # noqa: F811  # P12
    number, path = two_approved_edits(
        office, world, (f"customers.0.phone={NEW_PHONE}",), ("occupancy=rented", "vehicles.0.parking_space=P9-009")
    )
    manager = office["mgr01"]
    merged = merge(manager, "two")  # pushed: the server's pre-receive hook accepts it
    assert "Merge made by" in merged.stdout and "archivectl" not in merged.stderr
    assert NEW_PHONE not in (manager.clone / path).read_text()  # the sealed block came along whole
    shown = revealed(manager, number)
    assert NEW_PHONE in shown and OWNER_PHONE not in shown
    assert "rented" in shown and "P9-009" in shown
    assert manager.git("push", "-q", "origin", "main", check=False).returncode == 0
    whole = manager.cli("verify", "--format", "json")
    assert whole.exit_code == 0, whole.stdout
    assert json.loads(whole.stdout)["ok"]


SEALED_MERGE = (
    "Merge two: both phone and address\n\n"
    "Action: merge\nReason: both edits approved, merged by a reader\nApproved-by: mgr02\nActed-by: mgr01"
)


def test_two_sealed_changes_merge_for_a_reader_who_signs_the_merge_and_an_approver_approves_it(office, world):  # noqa: F811  # P7, P12
    number, path = two_approved_edits(
        office, world, (f"customers.0.phone={NEW_PHONE}",), (f"customers.0.mailing_address={NEW_ADDRESS}",)
    )
    manager, other = office["mgr01"], office["mgr02"]
    merged = merge(manager, "two", check=False)
    assert merged.returncode == 0 and "CONFLICT" not in merged.stdout, merged.stderr
    text = (manager.clone / path).read_text()
    assert NEW_PHONE not in text and NEW_ADDRESS not in text  # re-sealed, nothing in clear
    # unsigned, no one vouches for a sealed block verify cannot open
    code, report = manager.verify()
    assert code == 1
    assert f"{number}: a merge of sealed fields must be signed by a reader of the building (git merge -S)" in [
        f["message"] for f in report["findings"] if f["rule"] == "merge"
    ]
    # signed by a reader, the merge is an edit of personal fields nobody else can check: it asks an approver
    manager.git("commit", "-q", "--amend", "-S", "-m", SEALED_MERGE)
    code, report = manager.verify()
    assert code == 1 and [f["message"] for f in report["findings"]] == ["awaiting approval by mgr02"]
    refused = manager.git("push", "--no-verify", "origin", "main", check=False)  # the server's hook judges it
    assert refused.returncode != 0 and "awaiting approval by mgr02" in refused.stderr
    manager.git("push", "-q", "origin", "HEAD:refs/heads/merge-two")
    other.git("fetch", "-q")
    other.git("switch", "-q", "-c", "merge-two", "origin/merge-two")
    other.ok("approve", "--yes", "--reason", "the merged phone and address are the approved ones")
    other.git("push", "-q", "origin", "merge-two")
    manager.git("fetch", "-q")
    manager.git("merge", "-q", "--ff-only", "origin/merge-two")
    assert manager.verify()[0] == 0
    assert manager.git("push", "origin", "main", check=False).returncode == 0
    shown = revealed(manager, number)
    assert NEW_PHONE in shown and NEW_ADDRESS in shown
    assert manager.git("push", "-q", "origin", "main", check=False).returncode == 0
    assert manager.cli("verify").exit_code == 0


def test_a_reader_merge_that_slips_in_a_phone_nobody_approved_is_refused_by_the_server(office, world):  # noqa: F811  # P12
    """The butler merges two approved sealed edits and, resolving by hand, writes a third phone into the block."""
    number, _ = two_approved_edits(
        office, world, (f"customers.0.phone={NEW_PHONE}",), (f"customers.0.mailing_address={NEW_ADDRESS}",)
    )
    butler = office["but01"]
    merged = merge(butler, "two", check=False)
    assert merged.returncode == 0, merged.stderr
    butler.ok("edit", number, "--set", f"customers.0.phone={OTHER_PHONE}", "--reason", "x", "--approver", "mgr01")
    butler.git("reset", "-q", "--soft", "HEAD~1")  # the edit folded into the merge: one commit, no edit to approve
    butler.git("commit", "-q", "--amend", "-S", "--no-verify", "-m", SEALED_MERGE.replace("mgr01", "but01"))
    refused = butler.git("push", "--no-verify", "origin", "main", check=False)  # the server's hook judges it
    assert refused.returncode != 0 and "awaiting approval by mgr02" in refused.stderr
    assert OTHER_PHONE not in revealed(office["mgr01"], number)


def test_the_same_sealed_field_changed_on_both_sides_is_a_conflict_naming_the_field(office, world):  # noqa: F811
    number, path = two_approved_edits(
        office, world, (f"customers.0.phone={NEW_PHONE}",), (f"customers.0.phone={OTHER_PHONE}",)
    )
    manager = office["mgr01"]
    merged = merge(manager, "two", check=False)
    assert merged.returncode != 0 and "CONFLICT" in merged.stdout
    assert f"archivectl: {number}: both sides changed customers.0.phone;" in merged.stderr
    for value in (NEW_PHONE, OTHER_PHONE, OWNER_PHONE):
        assert value not in merged.stderr and value not in merged.stdout
    assert (manager.clone / path).read_text() == manager.git("show", f"HEAD:{path}").stdout  # ours, unchanged
    manager.git("merge", "--abort")


def test_a_clerk_cannot_merge_two_sealed_changes_and_is_told_who_can(office, world):  # noqa: F811  # P7
    number, path = two_approved_edits(
        office, world, (f"customers.0.phone={NEW_PHONE}",), (f"customers.0.mailing_address={NEW_ADDRESS}",)
    )
    clerk = office["clk01"]
    merged = merge(clerk, "two", check=False)
    assert merged.returncode != 0 and "CONFLICT" in merged.stdout
    assert (
        f"archivectl: {number}: both sides changed sealed fields; a reader of building B03 "
        "(a butler or cashier of B03, a manager or the gm) can merge it"
    ) in merged.stderr
    assert (clerk.clone / path).read_text() == clerk.git("show", f"HEAD:{path}").stdout


def test_a_merge_holding_a_value_from_neither_side_is_flagged(office, world):  # noqa: F811  # P12
    number, path = two_approved_edits(office, world, (f"customers.0.phone={NEW_PHONE}",), ("occupancy=rented",))
    manager = office["mgr01"]
    merged = merge(manager, "two", "--no-commit", check=False)
    assert merged.returncode == 0, merged.stderr
    record = manager.clone / path
    record.write_text(record.read_text().replace("occupancy: rented", "occupancy: vacant"))
    manager.git("add", path)
    manager.git("commit", "-q", "-S", "-m", "Merge two")
    code, report = manager.verify()
    assert code == 1
    found = [(f["rule"], f["message"]) for f in report["findings"]]
    assert (
        "merge",
        f"{number}: the merged record is not the field-level merge of its parents (a value neither side has)",
    ) in found
    assert ("trailers", "Acted-by trailer is missing") in found  # not clean: then judged like any commit
    refused = manager.git("push", "--no-verify", "origin", "main", check=False)
    assert refused.returncode != 0 and "a value neither side has" in refused.stderr
