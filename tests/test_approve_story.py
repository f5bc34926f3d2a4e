"""approve shows exactly what it signs: review's story of the commits it binds (issue 26 item 5; P8, P12).

The butler edits one sealed phone (and one clear field) on a branch of their own clone and pushes it to
the bare server with the hook; the manager, on their own clone, is shown by approve the very lines
`review --open` tells (one rendering, ops/review.story_lines), the sealed field's values masked (revealed,
and registered, only with --reveal), every commit id the approval will name, and the range's tip, which
a script pins with --expect. A range that moved since it was shown is refused, nothing written.
"""

from __future__ import annotations

import json
import sys

from conftest import (
    OWNER_NAME,
    OWNER_PHONE,
    SECRETS,
    World,
    acting_as,
    assert_refused,
    assert_unchanged,
    on_terminal,
)
from test_office import office  # noqa: F401 (a fixture)
from test_review import NEW_PHONE, _on_main, _phone_change

from archivectl import records
from archivectl.archive import Archive
from archivectl.errors import ArchiveError
from archivectl.ops import approvals
from archivectl.ops import review as review_ops

MASKED_OLD, MASKED_NEW = "138****5678", "139****2222"


def _two_changes_proposed(office) -> list[str]:  # noqa: F811
    """The butler's branch: the phone (sealed), then a permit number (clear); the manager fetches it; their ids."""
    number = _on_main(office)
    _phone_change(office, number)
    butler, manager = office["but01"], office["mgr01"]
    butler.ok("edit", number, "--set", "renovation.permit_no=ZX-2024-032", "-r", "permit renewed", "-a", "mgr01")
    assert butler.git("push", "-q", "origin", "b03-phone", check=False).returncode == 0
    manager.git("fetch", "-q")
    manager.git("switch", "-q", "b03-phone")
    ids = manager.git("rev-list", "--reverse", "origin/main..HEAD").stdout.split()
    return ids


def test_approve_shows_reviews_story_masked_and_every_commit_it_binds(office):  # noqa: F811 - P9, P12
    ids = _two_changes_proposed(office)
    manager = office["mgr01"]
    story = json.loads(manager.ok("review", "--open", "--format", "json"))
    [phone, permit] = story["changes"]
    assert phone["households"][0]["sealed_values"] == [
        {"field": "customers.0.phone", "old": MASKED_OLD, "new": MASKED_NEW}
    ]
    assert permit["households"][0]["clear"] == [
        {"field": "renovation.permit_no", "old": "ZX-2024-031", "new": "ZX-2024-032"}
    ]
    opened_md = manager.ok("review", "--open", "--format", "markdown")
    assert f"  - `customers.0.phone`: `{MASKED_OLD}` → `{MASKED_NEW}`" in opened_md
    keyless = manager.ok("review", "--format", "markdown")  # what the forge's comment holds: names only
    assert MASKED_OLD not in keyless and "sealed_values" not in manager.ok("review", "--format", "json")

    approved = manager.cli("approve", "--yes", "--reason", "the customer called")
    assert approved.exit_code == 0, approved.stderr
    shown = approved.stderr
    # the very lines review tells, rendered by the same function, for a terminal
    assert "\n".join(review_ops.story_lines(story, as_markdown=False, whole=True)) in shown
    assert f"  - customers.0.phone: {MASKED_OLD} -> {MASKED_NEW}" in shown
    assert "approval: awaiting approval by mgr01" in shown
    for secret in [OWNER_PHONE, NEW_PHONE, OWNER_NAME, *SECRETS]:
        assert secret not in shown + approved.stdout
    # every commit it binds, in full, and exactly those in the signed approval
    assert "This approval binds exactly these 2 commit(s):" in shown
    assert all(f"  {commit}  edit by but01: " in shown for commit in ids)
    assert f"The range's tip is {ids[-1]}" in shown
    trailers = manager.git("log", "-1", "--format=%(trailers:key=Approves,valueonly)").stdout.split()
    assert trailers == ids
    after = json.loads(manager.ok("review", "--format", "json"))
    assert after["state"] == "approved" and [c["approval"]["text"] for c in after["changes"]] == [
        "approved by mgr01",
        "approved by mgr01",
    ]


def test_approve_reveal_shows_the_sealed_values_and_registers_the_view_first(office):  # noqa: F811 - P8
    ids = _two_changes_proposed(office)
    manager = office["mgr01"]
    approved = manager.cli("approve", "--yes", "--reveal", "--reason", "checked with the customer")
    assert approved.exit_code == 0, approved.stderr
    assert f"  - customers.0.phone: {OWNER_PHONE} -> {NEW_PHONE}" in approved.stderr
    view, approval = manager.git("log", "-2", "--format=%(trailers:key=Action,valueonly)").stdout.split()[::-1]
    assert (view, approval) == ("view", "approve")
    assert manager.git("log", "-1", "--format=%(trailers:key=Approves,valueonly)").stdout.split() == ids
    assert manager.verify()[0] == 0


def test_a_declined_approve_reveal_still_registers_what_was_seen(office):  # noqa: F811 - P8
    ids = _two_changes_proposed(office)
    manager = office["mgr01"]
    args = [sys.executable, "-m", "archivectl", "approve", "--reveal", "--reason", "checked with the customer"]
    code, screen = on_terminal(args, manager.env(), b"[y/N]", b"n\n", manager.clone)
    assert code == 1 and b"not approved; only your look-up was registered (P8)" in screen
    assert NEW_PHONE.encode() in screen  # it was shown in clear
    assert manager.git("log", "-1", "--format=%(trailers:key=Action,valueonly)").stdout.strip() == "view"
    assert manager.git("rev-parse", "HEAD~1").stdout.strip() == ids[-1]  # the view only: nothing approved


def test_approve_expect_pins_the_tip_a_script_was_shown(office):  # noqa: F811 - P12
    ids = _two_changes_proposed(office)
    manager = office["mgr01"]
    seen = json.loads(manager.ok("review", "--format", "json"))["head"]
    assert seen == ids[-1]
    before = manager.snapshot()
    stale = manager.cli("approve", "--yes", "--expect", ids[0], "--reason", "checked")
    assert_refused(stale, 1, f"origin/main..HEAD ends at {ids[-1][:12]}, not at {ids[0][:12]} as you expected")
    assert manager.snapshot() == before
    for wrong in (ids[-1][:12], "HEAD", "-x"):
        assert_refused(manager.cli("approve", "--yes", "--expect", wrong, "--reason", "checked"), 2, "--expect")
        assert manager.snapshot() == before
    assert manager.cli("approve", "--yes", "--expect", seen, "--reason", "checked").exit_code == 0
    assert manager.verify()[0] == 0


def _acting_as(monkeypatch, world: World, who: str) -> None:
    """The process acts as who (their git config and key), as the CLI would run for them."""
    acting_as(monkeypatch, world.people[who])


def test_approve_refuses_when_the_range_moved_while_it_was_shown(world: World, monkeypatch):  # P12
    world.git("switch", "-q", "-c", "b03-proposal")
    world.add()
    archive = Archive.find(str(world.root))
    _acting_as(monkeypatch, world, "mgr01")
    monkeypatch.chdir(world.root)
    before = world.snapshot()

    def main_moves_meanwhile(plan: approvals.ApprovalPlan) -> bool:
        assert "This approval binds exactly these 1 commit(s):" in plan.lines
        world.git("update-ref", "refs/heads/main", "HEAD")  # someone took the proposal onto main meanwhile
        return True

    try:
        approvals.approve(archive, "main..HEAD", "checked", main_moves_meanwhile)
    except ArchiveError as exc:
        assert "moved while you were approving" in str(exc) and "nothing was written" in str(exc)
    else:
        raise AssertionError("approve signed a range that moved")
    assert world.git("rev-parse", "HEAD").strip() == before["head"]
    world.git("update-ref", "refs/heads/main", "HEAD~1")
    assert_unchanged(world, before)


def test_approve_refuses_a_change_that_drops_the_fingerprints(office):  # noqa: F811 - P12
    """Signed, every trailer, the sealed block untouched: verify finds nothing, the story and approve do."""
    number = _on_main(office)
    butler, manager = office["but01"], office["mgr01"]
    butler.git("fetch", "-q")
    butler.git("switch", "-q", "-c", "b03-bare", "origin/main")
    relpath = Archive.find(str(butler.clone)).locate(number)
    stored = records.load_stored((butler.clone / relpath).read_bytes(), relpath)
    del stored["sealed_fingerprints"]
    (butler.clone / relpath).write_text(records.dump(stored))
    butler.git("add", relpath)
    trailers = f"Action: edit\nReason: tidy\nApproved-by: mgr01\nArchive-No: {number}\nActed-by: but01"
    key = butler.world.people["but01"].key
    butler.git("-c", f"user.signingkey={key}", "-c", "gpg.format=ssh", "commit", "-q", "--no-verify", "-S",
               "-m", f"edit {number}: tidy\n\n{trailers}")  # fmt: skip
    butler.git("push", "-q", "-u", "origin", "b03-bare")
    manager.git("fetch", "-q")
    manager.git("switch", "-q", "-c", "b03-bare", "origin/b03-bare")

    verified = json.loads(
        manager.ok("verify", "--range", "origin/main..HEAD", "--allow-pending", "--format", "json")
    )  # it awaits mgr01; nothing else is wrong without a key
    assert verified["findings"] == [] and len(verified["pending"]) == 1
    story = json.loads(manager.ok("review", "--format", "json"))
    assert "fingerprints: the change drops the sealed-field fingerprints" in story["changes"][0]["findings"]
    before = manager.snapshot()
    refused = manager.cli("approve", "--yes", "--reason", "looks fine")
    assert_refused(refused, 1, f"{number}: the change drops the sealed-field fingerprints; nothing was signed")
    assert manager.snapshot() == before
    assert_refused(manager.cli("approve", "nosuch..HEAD", "--yes", "--reason", "x"), 2, "nosuch..HEAD: no such commit")
    assert manager.snapshot() == before
