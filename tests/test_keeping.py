"""Keeping periods (保管期限): dossiers are kept no longer than their class allows (PIPL, P13, P18)."""

from __future__ import annotations

import datetime as dt
import json

from conftest import LIVE_RECORD, World, assert_refused, assert_unchanged


def keep_moved_out_for(world: World, days: int) -> None:
    """The gm's settings change, as the office makes it: edited, configured, approved."""
    settings = world.root / "archive.yaml"
    settings.write_text(settings.read_text() + f"keeping:\n  moved-out: {{days: {days}}}\n")
    world.ok("mgr01", "configure", "--reason", "keep moved-out dossiers 30 days", "--approver", "gm01")
    world.approve("gm01")


def test_households_past_their_keeping_period_are_listed_and_tombstoned_together(world: World):  # P13, P18
    keep_moved_out_for(world, 30)
    old = world.add()
    recent = world.add(text=LIVE_RECORD)
    long_ago = (dt.date.today() - dt.timedelta(days=40)).isoformat()
    lately = (dt.date.today() - dt.timedelta(days=10)).isoformat()
    world.ok("but01", "move-out", old, "--date", long_ago, "-r", "sold", "-a", "mgr01")
    world.ok("but01", "move-out", recent, "--date", lately, "-r", "left", "-a", "mgr01")
    report = json.loads(world.ok("aud01", "report", "retention", "--format", "json"))
    assert [(r["archive_no"], r["class"], r["days_kept"], r["period_days"]) for r in report["past_keeping"]] == [
        (old, "moved-out", 40, 30)
    ]
    assert world.cli("aud01", "report", "retention", "--fail-on-eligible").exit_code == 1
    out = world.ok("mgr02", "tombstone", "--due", "--reason", "keeping periods ended", "--approver", "mgr01")
    assert "tombstoned 1 households" in out
    shown = json.loads(world.ok("aud01", "show", old, "--format", "json"))
    assert shown["status"] == "tombstoned"
    assert shown["tombstone"]["reason"].startswith("keeping period ended: moved-out, 30 days")
    assert json.loads(world.ok("aud01", "show", recent, "--format", "json"))["status"] == "moved-out"
    world.approve("mgr01")
    assert world.cli("aud01", "verify").exit_code == 0


def test_tombstone_due_with_nothing_due_changes_nothing(world: World):
    keep_moved_out_for(world, 30)
    world.add()
    before = world.snapshot()
    result = world.cli("mgr02", "tombstone", "--due", "--reason", "r", "--approver", "mgr01")
    assert_refused(result, 1, "no household is past its keeping period")
    assert_unchanged(world, before)


def test_a_keeping_class_archivectl_does_not_know_is_refused(world: World):
    settings = world.root / "archive.yaml"
    settings.write_text(settings.read_text() + "keeping:\n  forever-ish: {years: 3}\n")
    result = world.cli("mgr01", "configure", "--reason", "r", "--approver", "gm01")
    assert_refused(result, 2, "keeping: forever-ish is not one of")
