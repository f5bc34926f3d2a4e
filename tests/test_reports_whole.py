"""Reports whole: every section in every format; reviews due counted from the day added (P11, P15)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

from conftest import RECORD, World


def rows_of(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def review_every_30_days(world: World) -> None:
    settings = world.root / "archive.yaml"
    settings.write_text(settings.read_text().replace("review_interval_days: 365", "review_interval_days: 30"))
    world.ok("mgr01", "configure", "--reason", "review monthly", "--approver", "gm01")
    world.approve("gm01")


def test_never_reviewed_households_are_due_counted_from_the_day_they_were_added(old_world: World):  # P11
    w = old_world
    review_every_30_days(w)
    today = w.add("clk01", "mgr01", RECORD.replace("building: B03", "building: B05").replace('"1203"', '"1201"'))
    data = json.loads(w.ok("aud01", "report", "retention", "--format", "json"))
    due = {r["archive_no"]: r for r in data["review_due"]}
    assert today not in due  # added today: its first review is 30 days away
    assert w.live in due
    added = (dt.date.today() - dt.timedelta(days=35)).isoformat()
    assert due[w.live]["last_reviewed"] == "" and due[w.live]["added"] == added
    assert due[w.live]["days_since"] == 35
    w.ok("but01", "review", w.live, "--reason", "checked with the owner", "--approver", "mgr01")
    data = json.loads(w.ok("aud01", "report", "retention", "--format", "json"))
    assert w.live not in {r["archive_no"] for r in data["review_due"]}


def test_retention_csv_carries_every_section_in_a_section_column(old_world: World):  # P11, P13, P18
    w = old_world
    review_every_30_days(w)
    due = (dt.date.today() + dt.timedelta(days=14)).isoformat()
    w.ok("clk01", "lend", w.live, "--to", "but01", "--due", due, "--reason", "home visit", "--approver", "mgr01")
    rows = rows_of(w.ok("aud01", "report", "retention", "--format", "csv"))
    assert list(rows[0])[:2] == ["section", "archive_no"]
    by_section = {}
    for row in rows:
        by_section.setdefault(row["section"], []).append(row["archive_no"])
    assert by_section == {"tombstoned": [w.doomed], "review_due": [w.live], "lent": [w.live]}
    lent = next(r for r in rows if r["section"] == "lent")
    assert lent["due"] == due and lent["to"] == "but01" and lent["days_left"] == ""
    markdown = w.ok("aud01", "report", "retention", "--format", "markdown")
    for title in ("Tombstoned", "Moved out", "Not reviewed for more than 30 days", "Paper dossiers lent", "keeping"):
        assert f"## {title}" in markdown or title in markdown
    data = json.loads(w.ok("aud01", "report", "retention", "--format", "json"))
    assert {"tombstoned", "moved_out", "review_due", "lent", "past_keeping"} <= set(data)


def test_stats_csv_carries_counts_completeness_and_activity(world: World, household: str):  # P15
    rows = rows_of(world.ok("aud01", "report", "stats", "--format", "csv"))
    sections = {row["section"] for row in rows}
    assert sections == {"counts", "completeness_by_building", "activity"}
    building = next(r for r in rows if r["section"] == "completeness_by_building")
    assert building["building"] == "B03" and building["households"] == "1"
    assert any(r["section"] == "counts" and r["dimension"] == "status" and r["value"] == "active" for r in rows)
    assert any(r["section"] == "activity" and r["changes"] not in ("", "0") for r in rows)
    data = json.loads(world.ok("aud01", "report", "stats", "--format", "json"))
    assert {"counts", "completeness_by_building", "activity"} <= set(data)


def test_an_empty_report_csv_is_its_header_line(world: World):  # P15
    text = world.ok("aud01", "report", "retention", "--format", "csv").strip()
    assert text.startswith("section,archive_no,building,") and "\n" not in text
