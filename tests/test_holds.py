"""Legal holds: a household in a dispute is not tombstoned, purged or shredded until its hold is released (P13, P14)."""

from __future__ import annotations

import datetime as dt
import json

from conftest import LIVE_RECORD, World, assert_refused, assert_unchanged

from archivectl import holds


def hold(world: World, number: str, who: str = "but01", approver: str = "mgr01") -> None:
    world.ok(who, "hold", number, "--reason", "fee dispute in court", "--approver", approver)


# ---------------------------------------------------------------------- the rule, as verify will call it


def test_hold_problem_stops_tombstone_purge_and_shred_only():  # P13, P14
    entries = [
        {"action": "hold", "archive_no": "HO-2026-00001", "when": "2026-12-01T10:00:00+08:00", "approved_by": "mgr01"},
        {"action": "hold", "archive_no": "HO-2026-00002", "when": "2026-12-01T10:00:00+08:00", "approved_by": "mgr01"},
        {"action": "release", "archive_no": "HO-2026-00002"},
    ]
    held = holds.held(entries)
    assert set(held) == {"HO-2026-00001"}
    for action in ("tombstone", "purge", "shred"):
        problem = holds.hold_problem(action, ["HO-2026-00001"], held)
        assert problem and "HO-2026-00001 is under legal hold since 2026-12-01 (approved by mgr01)" in problem
        assert action in problem
        assert holds.hold_problem(action, ["HO-2026-00002"], held) is None
    for action in ("edit", "attach", "export", "review", "restore"):
        assert holds.hold_problem(action, ["HO-2026-00001"], held) is None


def test_a_hold_counts_until_every_view_has_its_release():  # P14: keeping longer is the safe side
    hold_entry = {"action": "hold", "archive_no": "HO-2026-00001"}
    released = holds.held([hold_entry, {"action": "release", "archive_no": "HO-2026-00001"}])
    assert holds.held_union(released, holds.held([hold_entry])) == {"HO-2026-00001": hold_entry}
    assert holds.held_union(released, released) == {}


# ---------------------------------------------------------------------- hold and release


def test_hold_is_an_approved_write_and_stops_a_tombstone_until_released(world: World, household: str):  # P13
    before = world.snapshot()
    assert_refused(
        world.cli("but01", "hold", household, "--reason", "dispute"), 2, "--approver"
    )  # usage, like a missing --reason
    assert_refused(world.cli("but01", "hold", household, "-r", "dispute", "-a", "but01"), 1)
    assert_unchanged(world, before)
    hold(world, household)
    trailers = world.trailers()
    assert (trailers["Action"], trailers["Archive-No"], trailers["Approved-by"]) == ("hold", household, "mgr01")
    assert world.signature_status() == "G"
    before = world.snapshot()
    result = world.cli("but01", "tombstone", household, "-r", "customer asked for deletion", "-a", "mgr01")
    assert_refused(result, 1, household, "under legal hold", "approved by mgr01", "no tombstone")
    assert_refused(world.cli("but01", "hold", household, "-r", "again", "-a", "mgr01"), 1, "already under legal hold")
    assert_unchanged(world, before)
    world.ok("but01", "release", household, "--reason", "court case settled", "--approver", "mgr01")
    assert world.trailers()["Action"] == "release"
    assert_refused(world.cli("but01", "release", household, "-r", "x", "-a", "mgr01"), 1, "not under legal hold")
    world.ok("but01", "tombstone", household, "-r", "customer asked for deletion", "-a", "mgr01")
    world.approve("mgr01")
    assert world.cli("aud01", "verify").exit_code == 0  # hold and release are actions verify knows


def test_hold_refuses_an_unknown_household(world: World, household: str):
    before = world.snapshot()
    said = ["-r", "dispute", "-a", "mgr01"]
    assert_refused(world.cli("but01", "hold", "HO-2026-09999", *said), 1, "HO-2026-09999")
    assert_refused(world.cli("but01", "hold", "13812345678", *said), 2, "not an archive number")
    assert_unchanged(world, before)


def test_reports_show_holds(world: World, household: str):  # P13, P17
    hold(world, household)
    retention = json.loads(world.ok("aud01", "report", "retention", "--format", "json"))
    assert [h["archive_no"] for h in retention["holds"]] == [household]
    assert "under legal hold" in world.ok("aud01", "report", "retention")
    world.ok(
        "clk01", "request", "open", "--kind", "deletion", "--household", household, "--checked-by", "clk01",
        "--requester", "某人", "--contact", "letter", "-r", "deletion asked",
    )  # fmt: skip
    report = json.loads(world.ok("aud01", "report", "requests", "--format", "json"))
    assert report["open"][0]["held"] == [household]
    assert [h["archive_no"] for h in report["holds"]] == [household]


# ---------------------------------------------------------------------- purge and keys shred


def test_a_held_household_is_not_purged(old_world: World):  # P13
    w = old_world
    hold(w, w.doomed)
    before = w.snapshot()
    result = w.cli("mgr01", "purge", w.doomed, "-r", "retention passed, confirmed again", "-a", "gm01")
    assert_refused(result, 1, w.doomed, "under legal hold", "no purge")
    result = w.cli("mgr01", "purge", "--eligible", "-r", "retention passed, confirmed again", "-a", "gm01")
    assert_refused(result, 1, "no household is eligible for purge")
    assert_unchanged(w, before)
    w.ok("but01", "release", w.doomed, "-r", "court case settled", "-a", "mgr01")
    w.ok("mgr01", "purge", w.doomed, "-r", "retention passed, confirmed again", "-a", "gm01")


def test_keys_shred_keeps_the_key_of_a_household_held_after_its_purge(old_world: World):  # P14
    w = old_world
    key = w.key_file(w.doomed)
    w.ok("mgr01", "purge", w.doomed, "-r", "retention passed, confirmed again", "-a", "gm01")
    w.approve("gm01")
    hold(w, w.doomed)  # the lawyer calls before the nightly shred: the key is still there to keep
    w.approve("mgr01")
    rows = json.loads(w.ok("aud01", "keys", "shred", "--format", "json"))
    [row] = [r for r in rows if r["archive_no"] == w.doomed]
    assert row["shredded"] is False and "under legal hold" in row["why"]
    assert key.exists()
    w.ok("but01", "release", w.doomed, "-r", "court case settled", "-a", "mgr01")
    rows = json.loads(w.ok("aud01", "keys", "shred", "--format", "json"))  # the release awaits its approval
    assert key.exists()
    w.approve("mgr01")
    rows = json.loads(w.ok("aud01", "keys", "shred", "--format", "json"))
    assert [r["shredded"] for r in rows if r["archive_no"] == w.doomed] == [True]
    assert not key.exists()


def test_tombstone_due_leaves_a_held_household_for_after_its_release(world: World):  # P13
    settings = world.root / "archive.yaml"
    settings.write_text(settings.read_text() + "keeping:\n  moved-out: {days: 30}\n")
    world.ok("mgr01", "configure", "--reason", "keep moved-out dossiers 30 days", "--approver", "gm01")
    held, free = world.add(), world.add(text=LIVE_RECORD)
    long_ago = (dt.date.today() - dt.timedelta(days=40)).isoformat()
    for number in (held, free):
        world.ok("but01", "move-out", number, "--date", long_ago, "-r", "sold", "-a", "mgr01")
    hold(world, held)
    assert "tombstoned 1 households" in world.ok("mgr02", "tombstone", "--due", "-r", "keeping ended", "-a", "mgr01")
    assert world.trailers()["Archive-No"] == free
    before = world.snapshot()
    result = world.cli("mgr02", "tombstone", "--due", "-r", "keeping ended", "-a", "mgr01")
    assert_refused(result, 1, "no household is past its keeping period")
    assert_unchanged(world, before)
