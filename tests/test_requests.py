"""Customers' requests on the clock (P17): five Chinese working days, sealed requesters, answers linked by commit."""

from __future__ import annotations

import datetime as dt
import json
import shutil

import pyrage
import pytest
import yaml
from conftest import OWNER_NAME, OWNER_PHONE, World, assert_refused, assert_unchanged, at, no_secrets_in

from archivectl import workdays
from archivectl.ops.requests import clock_of

REQUESTER = OWNER_NAME  # the customer asks for their own data
CONTACT = OWNER_PHONE
YEAR = dt.date.today().year  # request ids are numbered in the year they are opened


def rid(n: int = 1) -> str:
    return f"RQ-{YEAR}-{n:05d}"


def open_request(world: World, household: str, *extra: str, kind: str = "copy", who: str = "clk01") -> str:
    out = world.ok(
        who,
        "request",
        "open",
        "--kind",
        kind,
        "--household",
        household,
        "--checked-by",
        "clk01",
        "--requester",
        REQUESTER,
        "--contact",
        CONTACT,
        "--reason",
        "customer asked at the front desk",
        *extra,
    )
    return out.split()[0]


# ---------------------------------------------------------------------- the calendar (pinned real dates)

D = dt.date
PLAIN = workdays.Calendar()


@pytest.mark.parametrize(
    ("received", "due"),
    [
        # National Day 2025: 1-8 October off, Saturday 11 October worked (调休)
        (D(2025, 9, 30), D(2025, 10, 14)),
        # Friday 26 September 2025: Sunday 28 September is a make-up working day, then the holiday
        (D(2025, 9, 26), D(2025, 10, 10)),
        # Friday 13 February 2026 before Spring Festival: Saturday 14 February worked, 15-23 February off
        (D(2026, 2, 13), D(2026, 2, 27)),
        # Saturday 28 February 2026 is a make-up working day: counted
        (D(2026, 2, 25), D(2026, 3, 3)),
        # an ordinary week
        (D(2026, 12, 7), D(2026, 12, 14)),
    ],
)
def test_due_date_is_five_official_working_days_after_receipt(received, due):  # P17
    assert workdays.due_date(received, PLAIN) == due
    assert not workdays.provisional(received, due, PLAIN)


def test_company_closures_push_the_due_date():  # P17
    closed = workdays.calendar_of(["2026-02-26"])
    assert workdays.due_date(D(2026, 2, 13), closed) == D(2026, 2, 28)  # 26 Feb closed; 28 Feb is a 调休 Saturday


def test_a_year_without_official_data_is_counted_monday_to_friday_and_said_provisional():  # P17
    received = D(2099, 6, 5)  # a Friday no calendar covers
    due = workdays.due_date(received, PLAIN)
    assert due == D(2099, 6, 12)
    assert workdays.provisional(received, due, PLAIN)


def test_clock_counts_working_days_left_due_soon_and_overdue():  # P17
    row = {"due": "2026-02-27", "status": "open"}
    assert clock_of(row, PLAIN, D(2026, 2, 13)) == {"days_left": 5, "overdue": False, "due_soon": False}
    assert clock_of(row, PLAIN, D(2026, 2, 25)) == {"days_left": 2, "overdue": False, "due_soon": True}
    assert clock_of(row, PLAIN, D(2026, 2, 27))["due_soon"]
    assert clock_of(row, PLAIN, D(2026, 3, 2)) == {"days_left": -2, "overdue": True, "due_soon": False}  # 28th worked
    assert not clock_of({**row, "status": "answered"}, PLAIN, D(2026, 3, 9))["overdue"]


# ---------------------------------------------------------------------- opening one


def test_open_registers_the_request_with_its_official_due_date(world: World, household: str):  # P17
    out = world.ok(
        "clk01",
        "request",
        "open",
        "--kind",
        "access",
        "--household",
        household,
        "--checked-by",
        "but01",
        "--requester",
        REQUESTER,
        "--contact",
        CONTACT,
        "--received",
        "2026-02-13",
        "--reason",
        "letter received before Spring Festival",
    )
    assert out.strip() == f"{rid()} opened, received 2026-02-13, due 2026-02-27"
    assert world.signature_status() == "G"
    trailers = world.trailers()
    assert trailers["Action"] == "request-open" and trailers["Request"] == rid()
    assert trailers["Archive-No"] == household and trailers["Acted-by"] == "clk01"
    assert "Approved-by" not in trailers  # the clock starts at once: no approval to wait for
    [event] = list((world.root / "registers" / "requests").glob("*/*.yaml"))
    text = event.read_text()
    entry = yaml.safe_load(text)
    assert (entry["kind"], entry["checked_by"], str(entry["due"]), entry["archive_no"]) == (
        "access", "but01", "2026-02-27", household,
    )  # fmt: skip
    assert no_secrets_in(text) == []
    assert no_secrets_in(world.all_git_objects()) == []  # P9: the requester is sealed everywhere
    listed = json.loads(world.ok("clk01", "request", "list", "--format", "json"))
    assert [(r["request"], r["status"], r["due"]) for r in listed] == [(rid(), "open", "2026-02-27")]
    assert world.cli("aud01", "verify", "--range", "HEAD~1..HEAD").exit_code == 0  # an action verify knows


def test_the_requester_is_sealed_to_managers_and_gm_only(world: World, household: str):  # P9, P17
    open_request(world, household)
    [event] = list((world.root / "registers" / "requests").glob("*/*.yaml"))
    sealed = yaml.safe_load(event.read_text())["requester"].encode()
    for who in ("mgr01", "gm01"):
        opened = pyrage.decrypt(sealed, [pyrage.ssh.Identity.from_buffer(world.people[who].key.read_bytes())])
        assert REQUESTER in opened.decode() and CONTACT in opened.decode()
    with pytest.raises(pyrage.DecryptError):
        pyrage.decrypt(sealed, [pyrage.ssh.Identity.from_buffer(world.people["but01"].key.read_bytes())])


def test_two_requests_get_two_ids(world: World, household: str):  # P17
    assert open_request(world, household) == rid(1)
    assert open_request(world, household, kind="correction") == rid(2)


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["--kind", "gossip"], 2, ["--kind must be one of"]),
        (["--household", "HO-2026-09999"], 1, ["HO-2026-09999"]),
        (["--household", "13812345678"], 2, ["not an archive number"]),
        (["--checked-by", "nobody"], 1, ["nobody is not an active member"]),
        (["--received", "2026-02-30"], 2, ["--received is not a real calendar date"]),
        (["--received", "2999-01-01"], 2, ["--received is in the future"]),
        (["--reason", f"{OWNER_NAME} wants a copy"], 2, ["requester's details"]),
        (["--reason", ""], 2, ["--reason is required"]),
    ],
)
def test_a_bad_request_is_refused_and_writes_nothing(world: World, household: str, args, code, words):  # P17
    options = {
        "--kind": "copy",
        "--household": household,
        "--checked-by": "clk01",
        "--requester": REQUESTER,
        "--contact": CONTACT,
        "--reason": "front desk",
    }
    for key, value in zip(args[::2], args[1::2], strict=True):
        options[key] = value
    before = world.snapshot()
    result = world.cli("clk01", "request", "open", *[x for kv in options.items() for x in kv])
    assert_refused(result, code, *words)
    assert no_secrets_in(result.stderr) == []
    assert_unchanged(world, before)


# ---------------------------------------------------------------------- answering


def test_export_with_request_links_the_commit_and_answer_names_it(world: World, household: str, tmp_path):  # P17
    request = open_request(world, household)
    zipped = tmp_path / "copy.zip"
    world.ok(
        "mgr01", "export", household, "-o", str(zipped), "--reason", "copy for the owner", "-a", "gm01",
        "--request", request,
    )  # fmt: skip
    export_commit = world.git("rev-parse", "HEAD").strip()
    assert world.trailers()["Request"] == request and world.trailers()["Action"] == "export"
    listed = json.loads(world.ok("clk01", "request", "list", "--format", "json"))
    assert listed[0]["commits"] == [export_commit[:12]]
    out = world.ok("clk01", "request", "answer", request, "--reason", "copy handed over")
    assert export_commit[:12] in out and "answered" in out
    assert world.trailers()["Action"] == "request-answer"
    listed = json.loads(world.ok("clk01", "request", "list", "--format", "json"))
    assert listed[0]["status"] == "answered" and listed[0]["commits"] == [export_commit[:12]]
    world.approve("mgr01", "gm01")  # the add and the export awaited their approvers; the request events none
    assert world.cli("aud01", "verify").exit_code == 0


def test_edit_and_tombstone_take_request_too(world: World, household: str):  # P17
    correction = open_request(world, household, kind="correction")
    world.ok("mgr01", "edit", household, "--set", "occupancy=rented", "-r", "corrected", "-a", "gm01",
             "--request", correction)  # fmt: skip
    assert world.trailers()["Request"] == correction
    deletion = open_request(world, household, kind="deletion")
    world.ok("but01", "tombstone", household, "-r", "the owner asked for deletion", "-a", "mgr01",
             "--request", deletion)  # fmt: skip
    assert world.trailers()["Request"] == deletion and world.trailers()["Action"] == "tombstone"


def test_request_option_refuses_unknown_malformed_or_answered_requests(world: World, household: str):  # P17
    before = world.snapshot()
    tomb = ["tombstone", household, "-r", "asked", "-a", "mgr01"]
    assert_refused(world.cli("but01", *tomb, "--request", "RQ-2026-77777"), 1, "no request RQ-2026-77777")
    assert_refused(world.cli("but01", *tomb, "--request", "13812345678"), 2, "not a request id")
    assert_unchanged(world, before)
    request = open_request(world, household)
    world.ok("clk01", "request", "answer", request, "--reason", "answered by letter")
    before = world.snapshot()
    assert_refused(world.cli("but01", *tomb, "--request", request), 1, f"request {request} is answered")
    assert_refused(world.cli("clk01", "request", "answer", request, "-r", "again"), 1, "answered")
    assert_unchanged(world, before)


def test_refusing_and_closing_need_a_managers_approval(world: World, household: str):  # P12, P17
    request = open_request(world, household)
    before = world.snapshot()
    assert_refused(world.cli("clk01", "request", "refuse", request, "-r", "not the owner"), 2, "--approver")
    assert_refused(world.cli("clk01", "request", "close", request, "-r", "withdrawn"), 2, "--approver")
    assert_unchanged(world, before)
    world.ok("clk01", "request", "refuse", request, "-r", "identity could not be confirmed", "-a", "mgr01")
    assert world.trailers()["Action"] == "request-refuse" and world.trailers()["Approved-by"] == "mgr01"
    world.ok("clk01", "request", "close", request, "-r", "customer informed", "-a", "mgr01")
    listed = json.loads(world.ok("clk01", "request", "list", "--format", "json"))
    assert listed[0]["status"] == "closed"
    pending = world.cli("aud01", "verify")
    assert pending.exit_code != 0 and "mgr01" in pending.stdout + pending.stderr  # awaiting the approver's signature
    world.approve("mgr01")
    assert world.cli("aud01", "verify").exit_code == 0


def test_closures_come_from_archive_yaml(world: World, household: str):  # P17
    settings = world.root / "archive.yaml"
    settings.write_text(settings.read_text() + "closures: [2026-02-26]\n")
    world.ok("mgr01", "configure", "-r", "company closed for its anniversary", "-a", "gm01")
    out = world.ok(
        "clk01", "request", "open", "--kind", "copy", "--household", household, "--checked-by", "clk01",
        "--requester", REQUESTER, "--contact", CONTACT, "--received", "2026-02-13", "-r", "letter",
    )  # fmt: skip
    assert out.strip().endswith("due 2026-02-28")  # 26 February closed, Saturday 28 February worked (调休)


# ---------------------------------------------------------------------- the report, for cron


def test_report_requests_lists_open_requests_in_every_format(world: World, household: str):  # P17
    request = open_request(world, household)
    for fmt in ("table", "json", "csv", "markdown", "html"):
        result = world.cli(None, "report", "requests", "--format", fmt)
        assert result.exit_code == 0, result
        assert request in result.stdout
        assert no_secrets_in(result.stdout) == []
    doc = json.loads(world.ok("aud01", "report", "requests", "--format", "json"))
    [row] = doc["open"]
    assert row["request"] == request and row["overdue"] is False and row["days_left"] == 5


def test_a_late_request_fails_the_report_and_an_answered_one_does_not(world: World, household: str):  # P17
    late = open_request(world, household, "--received", "2026-02-13")
    result = world.cli(None, "report", "requests", "--format", "json")
    assert result.exit_code == 1
    [row] = json.loads(result.stdout)["open"]
    assert row["request"] == late and row["overdue"] is True and row["days_left"] < 0
    world.ok("clk01", "request", "answer", late, "-r", "answered by letter")
    assert world.cli(None, "report", "requests").exit_code == 0


def test_an_unanswered_request_turns_overdue_under_faketime(world: World, household: str):  # P17
    if shutil.which("faketime") is None:
        pytest.skip("faketime missing: apt-get install faketime")
    request = open_request(world, household)
    now = at(world, None, "aud01", "--archive", str(world.root), "report", "requests", "--format", "json")
    assert now.returncode == 0, now.stderr
    later = at(world, "+30d", "aud01", "--archive", str(world.root), "report", "requests", "--format", "json")
    assert later.returncode == 1, later.stderr
    [row] = json.loads(later.stdout)["open"]
    assert row["request"] == request and row["overdue"] is True
    assert "1 overdue" in at(world, "+30d", "aud01", "--archive", str(world.root), "report", "requests").stdout


def test_a_manager_reveals_the_requester_and_the_look_up_is_registered(world: World, household: str):  # P8, P17
    request = open_request(world, household)
    shown = world.ok("clk01", "request", "show", request, "--format", "json")
    assert no_secrets_in(shown) == [] and json.loads(shown)[0]["request"] == request
    before = world.snapshot()
    refused = world.cli("but01", "request", "show", request, "--reveal", "-r", "call back")
    assert_refused(refused, 1, "sealed to the managers and gm")
    assert_unchanged(world, before)
    assert_refused(world.cli("mgr01", "request", "show", request, "--reveal"), 2, "--reason is required")
    revealed = json.loads(world.ok("mgr01", "request", "show", request, "--reveal", "-r", "call back", "-f", "json"))
    assert (revealed[0]["requester"], revealed[0]["contact"]) == (REQUESTER, CONTACT)
    trailers = world.trailers()
    assert (trailers["Action"], trailers["Archive-No"], trailers["Acted-by"]) == ("reveal", household, "mgr01")
    assert no_secrets_in(world.all_git_objects()) == []
    assert_refused(world.cli("mgr01", "request", "show", "RQ-2026-77777"), 1, "no request RQ-2026-77777")
