"""Reports for people and cron: completeness, retention, stats, catalogue (P5, P11, P13, P15, P18)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import LIVE_SECRETS, RECORD, SECRETS, World, as_built, no_secrets_in
from hypothesis import given, settings
from hypothesis import strategies as st
from props import examples

HANDED_OVER_DOCS = [
    "purchase-contract-copy",
    "owner-id-copy",
    "resident-info-card",
    "preliminary-service-agreement",
    "management-covenant",
    "fire-safety-pledge",
    "handover-documents",
    "renovation-documents",
]


def attach_all(world: World, number: str, skip: tuple[str, ...] = ()) -> None:
    for doc_type in HANDED_OVER_DOCS:
        if doc_type in skip:
            continue
        scan = world.tmp / f"{doc_type}.pdf"
        scan.write_bytes(doc_type.encode())
        world.ok(
            "clk01",
            "attach",
            number,
            str(scan),
            "--type",
            doc_type,
            "--date",
            "2024-03-01",
            "--reason",
            "scan",
            "--approver",
            "mgr01",
        )


@pytest.fixture
def two_households(world: World) -> tuple[str, str]:
    return as_built(world, "two_households", lambda: add_two_households(world))


def add_two_households(world: World) -> tuple[str, str]:
    complete = world.add()
    pledgeless = world.add(text=RECORD.replace('unit: "1203"', 'unit: "1204"'))
    attach_all(world, complete)
    attach_all(world, pledgeless, skip=("fire-safety-pledge",))
    return complete, pledgeless


def bare_run(world: World, *args: str, home: Path) -> subprocess.CompletedProcess:
    """The real command as cron runs it: no key, no git identity, empty HOME."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "ARCHIVECTL_", "SSH_"))}
    env.update({"HOME": str(home), "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"})
    return subprocess.run(
        [sys.executable, "-m", "archivectl", "--archive", str(world.root), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_household_missing_its_fire_safety_pledge_is_listed_with_exactly_that(world, two_households):  # P5
    complete, pledgeless = two_households
    report = json.loads(world.ok("aud01", "report", "completeness", "--format", "json"))
    rows = {r["archive_no"]: r for r in report["households"]}
    assert rows[pledgeless]["missing_documents"] == ["fire-safety-pledge"]
    assert rows[pledgeless]["missing_labels"] == ["消防安全承诺书"]
    assert rows[pledgeless]["missing_fields"] == []
    assert rows[complete]["complete"] is True and rows[complete]["missing_documents"] == []
    assert report["overall"] == {"households": 2, "complete": 1, "incomplete": 1, "rate": 50.0}
    assert report["buildings"] == [{"building": "B03", "households": 2, "complete": 1, "incomplete": 1, "rate": 50.0}]


def test_missing_fields_come_from_sealed_fields_without_a_key(world: World):  # P5
    number = world.ok(
        "clk01",
        "add",
        "--building",
        "B05",
        "--floor",
        "2",
        "--unit",
        "0201",
        "--category",
        "handed-over",
        "--set",
        "customers.0.role=owner",
        "--set",
        "customers.0.name=某",
        "--reason",
        "r",
        "--approver",
        "mgr01",
    ).strip()
    row = json.loads(world.ok("aud01", "report", "completeness", "--format", "json"))["households"][0]
    assert row["archive_no"] == number
    assert row["missing_fields"] == ["customers.id_number", "customers.phone", "emergency_contacts", "handover_date"]


def test_reports_run_with_no_key_no_git_config_and_show_no_personal_data(world, two_households, tmp_path):
    home = tmp_path / "cron-home"
    home.mkdir()
    for name in ("completeness", "retention", "stats", "catalog"):
        for fmt in ("table", "json", "csv", "markdown", "html"):
            result = bare_run(world, "report", name, "--format", fmt, home=home)
            assert result.returncode == 0, (name, fmt, result.stderr)
            assert no_secrets_in(result.stdout + result.stderr) == [], (name, fmt)
            assert not [s for s in LIVE_SECRETS if s in result.stdout]


def test_every_format_parses_or_renders(world, two_households, tmp_path):
    _complete, pledgeless = two_households
    data = json.loads(world.ok("aud01", "report", "completeness", "--format", "json"))
    assert set(data) == {"report", "archive", "generated", "overall", "buildings", "households", "missing_by_type"}
    rows = list(csv.DictReader(io.StringIO(world.ok("aud01", "report", "completeness", "--format", "csv"))))
    assert {r["archive_no"]: r["missing_documents"] for r in rows}[pledgeless] == "fire-safety-pledge"
    md = world.ok("aud01", "report", "completeness", "--format", "markdown")
    assert "| archive_no | building |" in md and "|---|" in md
    out = tmp_path / "completeness.html"
    world.ok("aud01", "report", "completeness", "--format", "html", "--output", str(out))
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and "<table>" in page and "<svg" in page and "<rect" in page
    assert "http" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")  # self-contained
    for name in ("retention", "stats", "catalog"):
        json.loads(world.ok("aud01", "report", name, "--format", "json"))
        csv_text = world.ok("aud01", "report", name, "--format", "csv")
        assert list(csv.reader(io.StringIO(csv_text)))


def test_fail_on_incomplete_exit_codes(world, two_households):
    assert world.cli("aud01", "report", "completeness").exit_code == 0
    assert world.cli("aud01", "report", "completeness", "--fail-on-incomplete").exit_code == 1
    _complete, pledgeless = two_households
    scan = world.tmp / "pledge.pdf"
    scan.write_bytes(b"pledge")
    world.ok("clk01", "attach", pledgeless, str(scan), "--type", "fire-safety-pledge", "-r", "r", "-a", "mgr01")
    assert world.cli("aud01", "report", "completeness", "--fail-on-incomplete").exit_code == 0


def test_usage_errors_exit_2(world: World):
    assert world.cli("aud01", "report", "completeness", "--format", "pdf").exit_code == 2
    assert world.cli("aud01", "report", "catalog", "--status", "gone").exit_code == 2
    assert world.cli("aud01", "report", "nosuch").exit_code == 2


def test_retention_shows_days_left_for_a_fresh_tombstone(world: World):  # P13
    number = world.add()
    world.ok("but01", "tombstone", number, "--reason", "duplicate", "--approver", "mgr01")
    report = json.loads(world.ok("aud01", "report", "retention", "--format", "json"))
    [row] = report["tombstoned"]
    assert row["archive_no"] == number and row["days_left"] in (29, 30) and row["eligible"] is False
    assert world.cli("aud01", "report", "retention", "--fail-on-eligible").exit_code == 0


def test_retention_fail_on_eligible_after_35_days(old_world: World):  # P13
    result = old_world.cli("aud01", "report", "retention", "--fail-on-eligible", "--format", "json")
    assert result.exit_code == 1
    [row] = json.loads(result.stdout)["tombstoned"]
    assert row["archive_no"] == old_world.doomed and row["eligible"] is True and row["days_left"] == 0


def test_retention_lists_moved_out_reviews_due_and_lent_dossiers(world: World):  # P11, P8, P18
    number = world.add()
    world.ok("but01", "move-out", number, "--date", dt.date.today().isoformat(), "-r", "sold", "-a", "mgr01")
    other = world.add(text=RECORD.replace('unit: "1203"', 'unit: "1205"'))
    world.ok(
        "clk01", "lend", other, "--to", "but01", "--due", dt.date.today().isoformat(), "-r", "visit", "-a", "mgr01"
    )
    report = json.loads(world.ok("aud01", "report", "retention", "--format", "json"))
    assert [r["archive_no"] for r in report["moved_out"]] == [number]
    assert report["review_due"] == []  # added today: its review is due in review_interval_days (issue 29.7)
    assert report["lent"] == [
        {"archive_no": other, "to": "but01", "due": dt.date.today().isoformat(), "overdue": False}
    ]


def test_stats_counts_and_activity(world, two_households):  # P15
    complete, _ = two_households
    world.ok("but01", "show", complete, "--reveal", "--reason", "check")
    world.ok("but01", "export", complete, "-o", str(world.tmp / "x.zip"), "-r", "request", "-a", "mgr01")
    data = json.loads(world.ok("aud01", "report", "stats", "--format", "json"))
    assert {"dimension": "building", "value": "B03", "households": 2} in data["counts"]
    assert {"dimension": "category", "value": "handed-over", "households": 2} in data["counts"]
    month = dt.date.today().strftime("%Y-%m")
    [activity] = [a for a in data["activity"] if a["month"] == month]
    assert activity["reveals"] == 1 and activity["exports"] == 1
    assert activity["changes"] == 1 + 2 + 15  # init, two adds, fifteen attachments
    assert data["completeness"]["rate"] == 50.0


def test_catalog_by_building_and_floor_for_moved_out(world: World):  # P18
    first = world.add()
    second = world.add(text=RECORD.replace("B03", "B05"))
    world.ok("but01", "move-out", first, "--date", dt.date.today().isoformat(), "-r", "left", "-a", "mgr01")
    data = json.loads(
        world.ok(
            "aud01",
            "report",
            "catalog",
            "--status",
            "moved-out",
            "--year",
            str(dt.date.today().year),
            "--format",
            "json",
        )
    )
    assert [r["archive_no"] for r in data["households"]] == [first]
    everyone = json.loads(world.ok("aud01", "report", "catalog", "--format", "json"))["households"]
    assert [(r["building"], r["archive_no"]) for r in everyone] == [("B03", first), ("B05", second)]
    assert (
        json.loads(
            world.ok("aud01", "report", "catalog", "--status", "moved-out", "--year", "1999", "--format", "json")
        )["households"]
        == []
    )


def test_a_second_run_reuses_parsed_records_until_a_record_changes(world: World):
    number = world.add()
    world.ok("aud01", "report", "completeness", "--format", "json")
    from archivectl.facts import _FACT_KEYS, CACHE_VERSION

    cache_dir = world.root / f".git/archivectl/cache/reports-v{CACHE_VERSION}"
    [cache_file] = cache_dir.glob("b-*.json")  # the one building's facts, keyed by its subtree
    cache = json.loads(cache_file.read_text())
    [row] = cache["rows"]
    row[2][_FACT_KEYS.index("occupancy")] = "from-the-cache"
    cache_file.write_text(json.dumps(cache))
    for kept in cache_dir.glob("completeness*"):  # the report itself, keyed by the whole households tree
        kept.unlink()
    row = json.loads(world.ok("aud01", "report", "completeness", "--format", "json"))["households"][0]
    assert row["occupancy"] == "from-the-cache"  # not parsed again: the building's tree is unchanged
    world.ok("but01", "edit", number, "--set", "occupancy=rented", "-r", "let", "-a", "mgr01")
    row = json.loads(world.ok("aud01", "report", "completeness", "--format", "json"))["households"][0]
    assert row["occupancy"] == "rented"
    for cached in cache_dir.iterdir():
        assert SECRETS[0] not in cached.read_text()


DOC_TYPES = [*HANDED_OVER_DOCS, "lease-copy", "tenant-id-copy", "other"]
FIELD_NAMES = [
    "customers",
    "customers.name",
    "customers.phone",
    "customers.id_number",
    "handover_date",
    "emergency_contacts",
    "notes",
]


@settings(max_examples=examples(300), deadline=None, derandomize=True)
@given(
    category=st.sampled_from(["handed-over", "not-handed-over", "special"]),
    occupancy=st.sampled_from(["owner-occupied", "rented", "vacant"]),
    renovation=st.booleans(),
    documents=st.sets(st.sampled_from(DOC_TYPES)),
    fields=st.sets(st.sampled_from(FIELD_NAMES)),
)
def test_compiled_completeness_rules_agree_with_json_schema(category, occupancy, renovation, documents, fields):
    from archivectl import schema
    from archivectl.reports.completeness import compile_rules, missing, missing_by_rules

    doc = schema.load_json(schema.shipped_dir() / "completeness.schema.json")
    rules = compile_rules(doc)
    assert rules is not None  # the shipped schema has the fast shape
    facts = {
        "category": category,
        "occupancy": occupancy,
        "renovation": renovation,
        "documents": [[d, "2024-01-01"] for d in sorted(documents)],
        "fields": sorted(fields),
    }
    assert missing_by_rules(rules, facts) == missing(schema.validator_for(doc), facts)


def test_an_unusual_completeness_schema_falls_back_to_json_schema(world: World):
    path = world.root / "schemas/completeness.schema.json"
    doc = json.loads(path.read_text())
    doc["allOf"].append(
        {
            "if": {"properties": {"category": {"const": "special"}}},
            "then": {
                "properties": {"documents": {"allOf": [{"contains": {"const": "correspondence"}}]}},
                "required": ["documents"],
            },
        }
    )
    path.write_text(json.dumps(doc))
    world.git("commit", "-qam", "local rule change for the test")
    number = world.add(text=RECORD.replace("handed-over", "special"))
    row = json.loads(world.ok("aud01", "report", "completeness", "--format", "json"))["households"][0]
    assert row["archive_no"] == number
    assert "correspondence" in row["missing_documents"]


def test_output_to_a_pipe_or_device_writes_into_it_instead_of_replacing_it(world: World, tmp_path):
    import stat
    import threading

    world.add()
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    world.ok("aud01", "report", "completeness", "--format", "json", "--output", str(fifo))
    reader.join(timeout=30)
    assert stat.S_ISFIFO(fifo.stat().st_mode)  # still a pipe, not replaced by a regular file
    assert json.loads(received[0])["report"] == "completeness"


def _png_pixels(png: bytes) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGBA/RGB bytes) of an 8-bit, non-interlaced PNG, with the stdlib only."""
    import struct
    import zlib

    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos : pos + 8])
        body = png[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and color in (2, 6)
            bpp = 4 if color == 6 else 3
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw, rows, prev = zlib.decompress(idat), [], bytearray(width * bpp)
    stride = width * bpp + 1
    for y in range(height):
        kind, line = raw[y * stride], bytearray(raw[y * stride + 1 : (y + 1) * stride])
        for i in range(len(line)):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + a) & 255
            elif kind == 2:
                line[i] = (line[i] + b) & 255
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, bpp, rows


def test_the_html_report_renders_its_chart_and_tables_in_a_browser(world, tmp_path):  # P15
    import shutil
    import sys

    if shutil.which("chromium") is None:
        pytest.skip("chromium missing: apt-get install chromium")
    world.add()
    page = tmp_path / "completeness.html"
    world.ok("aud01", "report", "completeness", "--format", "html", "--output", str(page))
    text = page.read_text()
    assert "缺少的文件<small>missing_labels</small>" in text and "@page{size:A4" in text
    assert "Missing documents by type" in text and "Test Estate ·" in text
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    from screenshot_report import screenshot

    png = tmp_path / "completeness.png"
    screenshot(page, png)
    width, bpp, rows = _png_pixels(png.read_bytes())
    assert width == 1200

    def seen(rgb: bytes) -> int:
        return sum(row[i : i + 3] == rgb for row in rows for i in range(0, len(row), bpp))

    assert seen(bytes.fromhex("e6e6e6")) > 1000  # the chart's track: a building at 0 % still shows
    assert seen(bytes.fromhex("f3f3f3")) > 1000  # table headers


# ---------------------------------------------------------------- warm runs answer as cold ones (issue #14)

SEEN = [  # what people and cron read: every format that is kept, and every report built on the same facts
    ("completeness", "--format", "json"),
    ("completeness", "--format", "csv"),
    ("completeness", "--format", "table"),
    ("catalog", "--format", "json"),
    ("stats", "--format", "json"),
    ("retention", "--format", "json"),
    ("list", "--format", "json"),
]


def seen(world: World) -> list[str]:
    """What each of SEEN prints, without the time it was generated."""
    texts = []
    for args in SEEN:
        command = ["report", *args] if args[0] != "list" else list(args)
        text = world.ok("aud01", *command)
        texts.append("\n".join(line for line in text.splitlines() if '"generated"' not in line))
    return texts


def assert_warm_equals_cold(world: World) -> list[str]:
    """A run on whatever the cache holds prints what a run with no cache prints; the cache holds no secret."""
    warm = seen(world)
    cache = world.root / ".git/archivectl/cache"
    for kept in cache.rglob("*"):
        if kept.is_file():
            assert not any(secret in kept.read_text(errors="replace") for secret in SECRETS)
    import shutil

    shutil.rmtree(cache)
    cold = seen(world)
    assert warm == cold
    return warm


def rows_of(text: str) -> dict[str, dict]:
    return {r["archive_no"]: r for r in json.loads(text)["households"]}


def test_a_warm_report_shows_an_edit_of_one_household(world: World):  # P5
    first = world.add()
    second = world.add(text=RECORD.replace('unit: "1203"', 'unit: "1204"'))
    seen(world)  # fills the cache
    world.ok("but01", "edit", second, "--set", "occupancy=rented", "-r", "let", "-a", "mgr01")
    shown = assert_warm_equals_cold(world)
    rows = rows_of(shown[0])
    assert rows[second]["occupancy"] == "rented" and rows[first]["occupancy"] != "rented"


def test_a_warm_report_shows_a_tombstone(world: World):  # P13
    number = world.add()
    other = world.add(text=RECORD.replace('unit: "1203"', 'unit: "1204"'))
    seen(world)
    world.ok("but01", "tombstone", number, "--reason", "duplicate", "--approver", "mgr01")
    shown = assert_warm_equals_cold(world)
    assert list(rows_of(shown[0])) == [other]  # no longer active: not in completeness
    assert [r["archive_no"] for r in json.loads(shown[5])["tombstoned"]] == [number]


def test_a_warm_report_follows_a_checkout_of_another_branch(world: World):  # P5
    number = world.add()
    world.git("branch", "before-the-edit")
    world.ok("but01", "edit", number, "--set", "occupancy=rented", "-r", "let", "-a", "mgr01")
    added = world.add(text=RECORD.replace('unit: "1203"', 'unit: "1204"'))
    assert rows_of(seen(world)[0])[number]["occupancy"] == "rented"
    world.git("checkout", "-q", "before-the-edit")
    rows = rows_of(assert_warm_equals_cold(world)[0])
    assert list(rows) == [number] and rows[number]["occupancy"] != "rented"
    seen(world)
    world.git("checkout", "-q", "main")
    rows = rows_of(assert_warm_equals_cold(world)[0])
    assert set(rows) == {number, added} and rows[number]["occupancy"] == "rented"


@pytest.mark.parametrize("damage", ["truncated", "garbage", "emptied"])
def test_a_damaged_cache_means_reading_again_not_a_wrong_report(world: World, damage: str):
    number = world.add()
    world.add(text=RECORD.replace('unit: "1203"', 'unit: "1204"'))
    seen(world)
    world.ok("but01", "edit", number, "--set", "occupancy=rented", "-r", "let", "-a", "mgr01")
    seen(world)  # the cache now holds the edited tree
    for kept in (world.root / ".git/archivectl/cache").rglob("*"):
        if kept.is_file():
            data = kept.read_bytes()
            kept.write_bytes(
                {"truncated": data[: len(data) // 2], "garbage": b"\x00\xff{[" * 9, "emptied": b""}[damage]
            )
    rows = rows_of(assert_warm_equals_cold(world)[0])
    assert rows[number]["occupancy"] == "rented"


@pytest.mark.parametrize("to_file", [False, True])
def test_a_kept_building_changed_in_place_is_never_copied_into_the_report(world: World, tmp_path, to_file: bool):  # P5
    # the kept rows are checked (size, CRC) once, before the first byte goes out, then copied as checked
    number = world.add()
    world.add(text=RECORD.replace('unit: "1203"', 'unit: "1204"'))
    world.ok("but01", "edit", number, "--set", "occupancy=rented", "-r", "let", "-a", "mgr01")
    world.ok("aud01", "report", "completeness", "--format", "json")
    [rows] = sorted((world.root / ".git/archivectl/cache").rglob("completeness-*.txt"))
    assert b'"rented"' in rows.read_bytes()
    rows.write_bytes(rows.read_bytes().replace(b'"rented"', b'"RENTED"'))  # same size, another CRC
    output = tmp_path / "completeness.json"
    shown = world.ok("aud01", "report", "completeness", "--format", "json", *(["--output", str(output)] * to_file))
    text = output.read_text() if to_file else shown
    assert rows_of(text)[number]["occupancy"] == "rented" and "RENTED" not in text


def test_the_cold_parse_skips_only_a_sealed_block_it_can_prove_is_one():
    from archivectl.facts import clear_part, facts_of

    stored = (
        b"archive_no: HO-2026-00001\nbuilding: B03\nstatus: active\nsealed_fields:\n- customers\n"
        b"sealed: |\n  -----BEGIN AGE ENCRYPTED FILE-----\n  YWdl+/=\n  -----END AGE ENCRYPTED FILE-----\n"
    )
    assert clear_part(stored) == stored[: stored.index(b"sealed: |")]
    assert facts_of(stored, "x")["fields"] == ["archive_no", "building", "customers", "status"]
    hostile = [
        stored.replace(b"status: active\n", b'status: "active\n').replace(b"-----END", b'"-----END'),  # open quote
        stored.replace(b"sealed: |\n", b"sealed: |\n  *alias\n"),  # not armor
        stored + b"sealed: again\n",  # a duplicate key after the block
        b"---\n" + stored,  # a document marker
        stored.replace(b"building: B03\n", b"building: B03\n...\n"),
        b"  " + stored.replace(b"\n", b"\n  ").rstrip(b" "),  # an indented mapping
        stored.replace(b"status: active\n", b"sealed: twice\n"),  # sealed twice
        stored.replace(b"status: active\n", b"status: active\nbuilding: B04\n"),  # a duplicate key
        stored.replace(b"status: active\n", b"status: active\nnotes: {a: [1]}\n"),  # flow collections
        stored.replace(b"status: active\n", b"floor: 0b_\n"),  # what the constructor cannot make
        stored.replace(b"status: active\n", b"deep:\n" + b"".join(b" " * i + b"- x:\n" for i in range(1, 70))),
        stored.replace(b"status: active\n", b"deep:\n" + b"".join(b" " * i + b"- x:\n" for i in range(1, 30))),
        stored.replace(b"B03", "B\u00e9".encode("utf-16-le")),  # not UTF-8
    ]
    for text in hostile:
        try:
            from archivectl import yamlio
            from archivectl.facts import summarise

            expected = summarise(yamlio.loads(text, source="x"))
        except Exception as refused:  # what the strict loader refuses (or fails on) is an invalid record
            expected = {"invalid": True, "refused": type(refused).__name__}
        if "refused" in expected:
            try:
                got = facts_of(text, "x")
            except Exception as failed:
                got = {"invalid": True, "refused": type(failed).__name__}
            assert got["invalid"] is True
            continue
        assert facts_of(text, "x") == expected


JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8)
)
JSON_KEYS = st.one_of(st.text(max_size=6), st.integers(), st.booleans(), st.none(), st.floats(allow_nan=False))
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(JSON_KEYS, inner, max_size=4)),
    max_leaves=20,
)


@settings(max_examples=examples(400), deadline=None, derandomize=True)
@given(document=st.dictionaries(st.text(max_size=6), JSON_VALUES, max_size=5))
def test_report_json_is_exactly_what_json_dumps_writes(document):
    from archivectl.reports.render import json_text

    assert json_text(document) == json.dumps(document, ensure_ascii=False, indent=2)


def add_odd_records(world: World) -> None:
    """Hand-made record files beside real ones, staged: outside the fast reader's subset, or not readable at all."""
    [real, *_] = sorted((world.root / "households").glob("*/*/*/record.yaml"))
    text = real.read_text()
    odd = {
        "quoted-key": text.replace("\noccupancy:", "\n'occupancy':"),  # read by the strict loader
        "unicode": text.replace("\nunit: '1203'", "\nunit: 楼栋·1203").replace(
            "\nstatus: active", '\nstatus: "active"'
        ),
        "comment": text.replace("\nstatus: active", "\nstatus: active  # checked"),
        "alias": text.replace("\noccupancy: owner-occupied", "\noccupancy: *owner"),  # refused: invalid
        "duplicate": text.replace("\nstatus: active", "\nstatus: active\nstatus: moved-out"),  # refused
        "tagged": text.replace("\nfloor: ", "\nfloor: !!binary aGk= #"),  # refused: bytes in a record
    }
    for name, content in odd.items():
        path = world.root / f"households/B03/9{len(name):03d}/HO-2026-{name}/record.yaml"
        path.parent.mkdir(parents=True)
        path.write_text(content.replace("archive_no: HO-2026-00001", f"archive_no: HO-2026-{name}"))
    world.git("add", "households")


def test_records_parsed_in_two_processes_make_the_reports_one_process_makes(world: World, monkeypatch):
    from archivectl import facts

    world.add()
    world.add(text=RECORD.replace('unit: "1203"', 'unit: "1204"'))
    add_odd_records(world)
    monkeypatch.setattr(facts, "PARALLEL_FROM", 10**9)  # every record parsed here
    one = seen(world)
    shutil.rmtree(world.root / ".git/archivectl/cache")
    monkeypatch.setattr(facts, "PARALLEL_FROM", 1)  # half of them in a forked process
    assert seen(world) == one
    assert len(rows_of(one[0])) == 5 and rows_of(one[0])["HO-2026-unicode"]["unit"] == "楼栋·1203"
    assert {r["file"].split("/")[3] for r in json.loads(one[0])["invalid"]} == {
        "HO-2026-alias",
        "HO-2026-duplicate",
        "HO-2026-tagged",
    }


def test_a_cache_of_the_previous_version_is_removed_not_read(world: World):
    from archivectl.facts import CACHE_VERSION

    world.add()
    older = world.root / f".git/archivectl/cache/reports-v{CACHE_VERSION - 1}"
    older.mkdir(parents=True)
    (older / "b-0.json").write_text('{"name": "B03", "rows": []}')
    (older.parent / "summaries-v1.json").write_text("{}")
    assert len(rows_of(world.ok("aud01", "report", "completeness", "--format", "json"))) == 1
    assert not older.exists() and not (older.parent / "summaries-v1.json").exists()


def without_generated(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if '"generated"' not in line)


def add_building(world: World, building: str, named: str) -> None:
    """A household in folder building whose record names building named (staged as a hand-made file)."""
    [real, *_] = sorted((world.root / "households").glob("*/*/*/record.yaml"))
    text = real.read_text().replace("\nbuilding: B03\n", f"\nbuilding: {named}\n")
    path = world.root / f"households/{building}/0101/HO-2026-{building}{named}/record.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(text.replace("archive_no: HO-2026-00001", f"archive_no: HO-2026-{building}{named}"))
    world.git("add", "households")


def test_results_kept_per_building_give_the_json_all_rows_give_and_one_edit_remakes_one(world: World, monkeypatch):
    from archivectl.reports import completeness

    number = world.add()
    attach_all(world, world.add(text=RECORD.replace('unit: "1203"', 'unit: "1204"')))
    add_odd_records(world)
    add_building(world, "B07", "B07")
    world.git("commit", "-q", "-m", "hand-made records")  # edit wants nothing staged
    world.ok("aud01", "report", "completeness", "--format", "json")
    parts = sorted((world.root / ".git/archivectl/cache").rglob("completeness-*.json"))
    assert len(parts) == 2  # one per building
    before = {p: p.read_bytes() for p in parts}
    world.ok("but01", "edit", number, "--set", "occupancy=rented", "-r", "let", "-a", "mgr01")
    by_parts = world.ok("aud01", "report", "completeness", "--format", "json")
    assert [p.read_bytes() == before[p] for p in parts].count(False) == 1  # only the edited building's
    assert rows_of(by_parts)[number]["occupancy"] == "rented"
    with monkeypatch.context() as m:
        m.setattr(completeness, "_by_building", lambda *_: None)  # every row made and rendered together
        shutil.rmtree(world.root / ".git/archivectl/cache")
        assert without_generated(world.ok("aud01", "report", "completeness", "--format", "json")) == (
            without_generated(by_parts)
        )
    add_building(world, "B09", "B03")  # rows of two folders now sort together: the parts cannot be joined
    answers, kept_per_building = [], completeness._by_building
    monkeypatch.setattr(completeness, "_by_building", lambda *a: answers.append(kept_per_building(*a)) or answers[-1])
    joined = world.ok("aud01", "report", "completeness", "--format", "json")
    assert answers == [None]
    shutil.rmtree(world.root / ".git/archivectl/cache")
    monkeypatch.setattr(completeness, "_by_building", lambda *_: None)
    assert without_generated(world.ok("aud01", "report", "completeness", "--format", "json")) == (
        without_generated(joined)
    )
    assert len(rows_of(joined)) == 7
