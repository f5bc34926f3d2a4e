"""A company of many estates (issue 30): one view over several archives, one staff directory (P15)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import (
    OWNER_ID,
    SECRETS,
    STAFF,
    Result,
    World,
    as_built,
    assert_refused,
    no_secrets_in,
    person_env,
    process_env,
)
from typer.testing import CliRunner

from archivectl import company
from archivectl.cli import app
from archivectl.staff import StaffMember

# Three estates of different sizes and shapes: (id, display name, households as CSV rows, served how)
CSV_HEAD = "building,floor,unit,category,occupancy,customers.0.role,customers.0.name,customers.0.phone\n"
ESTATES = {
    "north": (
        "North Garden",
        ["B03,1,0101,handed-over,owner-occupied", "B03,2,0201,handed-over,rented", "B05,1,0101,not-handed-over,vacant"],
    ),
    "south": ("South Park", ["B03,3,0301,special,owner-occupied", "B03,4,0401,handed-over,owner-occupied"]),
    "east": (
        "East Court",
        [
            "B05,1,0102,handed-over,rented",
            "B05,2,0202,handed-over,owner-occupied",
            "B05,3,0302,not-handed-over,vacant",
            "B03,5,0501,handed-over,owner-occupied",
        ],
    ),
}


def _staff_text(people, key_of: dict[str, str] | None = None) -> str:
    lines = ["staff:"]
    for sid, name, role, buildings in STAFF:
        key = (key_of or {}).get(sid, people[sid].pub)
        lines += [
            f"  - id: {sid}",
            f"    name: {name}",
            f"    role: {role}",
            f"    buildings: [{', '.join(buildings)}]",
            f"    key: {key}",
            "    active: true",
        ]
    return "\n".join(lines) + "\n"


def _cli(people, who: str | None, *args: str) -> tuple[int, str, str]:
    env = person_env(people[who] if who else None)
    result = CliRunner().invoke(app, list(args), env=env)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def _ok(people, who: str | None, *args: str) -> str:
    code, out, err = _cli(people, who, *args)
    assert code == 0, (out, err)
    return out


def _found_estates(world: World) -> dict[str, Path]:
    """Three real archives under world.tmp (east also as a bare server repository), and a company folder."""
    people = world.people
    roots = {}
    for sid, (name, rows) in ESTATES.items():
        home = world.tmp / sid
        home.mkdir()
        (home / "staff.yaml").write_text(_staff_text(people))
        root = home / "archive"
        _ok(people, "gm01", "init", str(root), "--name", name, "--staff-file", str(home / "staff.yaml"))
        data = home / "households.csv"
        data.write_text(CSV_HEAD + "".join(f"{r},owner,某{i},1370000000{i}\n" for i, r in enumerate(rows)))
        _ok(people, "clk01", "--archive", str(root), "import", str(data), "-r", "moving off paper", "-a", "mgr01")
        roots[sid] = root
    numbers = _numbers(people, roots["north"])
    scan = world.tmp / "contract.pdf"
    scan.write_bytes(b"%PDF-1.4 contract of " + OWNER_ID.encode())
    args = ["--archive", str(roots["north"])]
    _ok(
        people,
        "clk01",
        *args,
        "attach",
        numbers[0],
        str(scan),
        "--type",
        "purchase-contract-copy",
        "-r",
        "scan of the contract",
        "-a",
        "mgr01",
    )
    _ok(people, "clk01", *args, "tombstone", numbers[-1], "-r", "entered twice", "-a", "mgr01")
    south = _numbers(people, roots["south"])
    _ok(
        people,
        "clk01",
        "--archive",
        str(roots["south"]),
        "move-out",
        south[0],
        "--date",
        "2026-01-31",
        "-r",
        "sold the flat",
        "-a",
        "mgr01",
    )
    subprocess.run(["git", "clone", "-q", "--bare", str(roots["east"]), str(world.tmp / "east.git")], check=True)
    hq = world.tmp / "hq"
    hq.mkdir()
    (hq / "company.yaml").write_text(
        "company: Sunny Property\n"
        "estates:\n"
        "  - {id: north, name: North Garden, archive: ../north/archive}\n"
        f"  - {{id: south, name: South Park, archive: {roots['south']}}}\n"
        f"  - {{id: east, name: East Court, archive: 'file://{world.tmp / 'east.git'}'}}\n"
        "staff:\n"
        f"  - {{id: gm01, name: 总经理甲, role: gm, key: {people['gm01'].pub}}}\n"
    )
    return roots


@pytest.fixture
def estates(world: World) -> dict[str, Path]:
    """world.tmp/{north,south,east}/archive, world.tmp/east.git, world.tmp/hq/company.yaml (built once per run)."""
    as_built(world, "company-estates", lambda: _found_estates(world))
    return {sid: world.tmp / sid / "archive" for sid in ESTATES}


def _numbers(people, root: Path) -> list[str]:
    rows = json.loads(_ok(people, "aud01", "--archive", str(root), "list", "--format", "json"))
    return [r["archive_no"] for r in rows]


def _own(people, root: Path, kind: str) -> dict:
    """The estate's own report as JSON (report requests exits 1 when one is overdue: it still prints)."""
    code, out, err = _cli(people, None, "--archive", str(root), "report", kind, "--format", "json")
    assert code == 0 or (kind == "requests" and code == 1), (out, err)
    return json.loads(out)


def _company(world: World, kind: str, *more: str) -> dict:
    out = _ok(world.people, None, "company", "report", kind, "--company", str(world.tmp / "hq"), "-f", "json", *more)
    return json.loads(out)


def _tree(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# ------------------------------------------------------------------ the company report is the sum of its estates


def test_company_completeness_is_the_sum_of_each_estates_own_report(world: World, estates):  # P5, P15
    found = _company(world, "completeness")
    own = {sid: _own(world.people, root, "completeness") for sid, root in estates.items()}
    assert [r["estate"] for r in found["estates"]] == ["north", "south", "east"]
    assert [r["name"] for r in found["estates"]] == ["North Garden", "South Park", "East Court"]
    for row in found["estates"]:
        for figure in ("households", "complete", "incomplete"):
            assert row[figure] == own[row["estate"]]["overall"][figure]
    for figure in ("households", "complete", "incomplete"):
        assert found["totals"][figure] == sum(doc["overall"][figure] for doc in own.values())
    assert found["totals"]["households"] == 3 + 2 + 4 - 1 - 1  # north's tombstone and south's move-out are not active
    missing = {m["document"]: m["households"] for m in found["missing_by_type"]}
    expected: dict[str, int] = {}
    for doc in own.values():
        for m in doc["missing_by_type"]:
            expected[m["document"]] = expected.get(m["document"], 0) + m["households"]
    assert missing == expected


def test_company_retention_and_stats_are_the_sums_of_the_estates_reports(world: World, estates):  # P13, P15
    retention = _company(world, "retention")
    own = {sid: _own(world.people, root, "retention") for sid, root in estates.items()}
    by = {r["estate"]: r for r in retention["estates"]}
    assert by["north"]["tombstoned"] == len(own["north"]["tombstoned"]) == 1
    assert by["south"]["moved_out"] == len(own["south"]["moved_out"]) == 1
    assert retention["totals"]["review_due"] == sum(len(d["review_due"]) for d in own.values())
    assert retention["totals"]["tombstoned"] == 1 and retention["totals"]["moved_out"] == 1
    assert retention["totals"]["holds"] == sum(len(d.get("holds") or []) for d in own.values())

    stats = _company(world, "stats")
    own = {sid: _own(world.people, root, "stats") for sid, root in estates.items()}
    assert stats["totals"]["households"] == sum(d["households"] for d in own.values()) == 9
    assert stats["totals"]["complete"] == sum(d["completeness"]["complete"] for d in own.values())
    for kind in ("changes", "reveals", "exports", "approvals"):
        assert stats["totals"][kind] == sum(m[kind] for d in own.values() for m in d["activity"])
    assert stats["totals"]["changes"] >= 3 * 2  # each estate's founding and import at least
    categories = {(c["dimension"], c["value"]): c["households"] for c in stats["counts"]}
    assert categories[("status", "tombstoned")] == 1 and categories[("status", "moved-out")] == 1
    assert categories[("category", "handed-over")] == 6


def test_fail_on_action_exits_1_for_cron_when_an_estate_has_something_to_do(world: World, estates):  # P5, P13
    hq = str(world.tmp / "hq")
    code, out, _err = _cli(world.people, None, "company", "report", "completeness", "--company", hq, "--fail-on-action")
    assert code == 1 and "(total)" in out  # every estate has incomplete households: the report, then exit 1
    retention = ("company", "report", "retention", "--company", hq, "--fail-on-action", "-f", "csv")
    code, out, _err = _cli(world.people, None, *retention)
    assert code == 0 and "(total)" in out  # nothing eligible for purge yet (the tombstone is days old)


def test_every_format_shows_each_estate_and_the_totals(world: World, estates):  # P15
    hq = str(world.tmp / "hq")
    args = ("company", "report", "completeness", "--company", hq)
    rows = list(csv.DictReader(io.StringIO(_ok(world.people, None, *args, "-f", "csv"))))
    assert [r["estate"] for r in rows] == ["north", "south", "east", "(total)"]
    assert int(rows[-1]["households"]) == sum(int(r["households"]) for r in rows[:-1])
    doc = yaml.safe_load(_ok(world.people, None, *args, "-f", "yaml"))
    assert doc["totals"]["households"] == int(rows[-1]["households"])
    assert "| north | North Garden |" in _ok(world.people, None, *args, "-f", "markdown")
    page = _ok(world.people, None, *args, "-f", "html")
    assert page.startswith("<!DOCTYPE html>") and "East Court" in page and "<svg" in page
    table = _ok(world.people, None, *args)
    assert "South Park" in table and "(total)" in table


def test_the_company_reads_clear_parts_only_never_attachments_or_keys(world: World, estates):  # P9
    _company(world, "completeness")
    _company(world, "retention")  # reads the records from the work tree: checked out, attachments still not
    cache = world.tmp / "hq" / ".cache"
    assert sorted(p.name for p in cache.iterdir() if p.is_dir()) == ["east", "north", "south"]
    north = cache / "north"
    assert list(north.glob("households/*/*/*/record.yaml")), "retention's records are checked out"
    assert not list(north.glob("households/*/*/*/attachments/*")), "attachments are not checked out"
    listed = subprocess.run(
        ["git", "-C", str(north), "ls-files", "-s", "*/attachments/*"], capture_output=True, text=True, check=True
    ).stdout.split()
    blobs = [word for word in listed if len(word) == 40]
    assert blobs, "the attachment is in the estate's tree"
    held = subprocess.run(
        ["git", "-C", str(north), "cat-file", "--batch-all-objects", "--batch-check"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert not [b for b in blobs if b in held], "the scan was never fetched"
    assert not list(cache.rglob("*.keys")) and not list(cache.rglob("keys"))
    for path in cache.rglob("*"):
        if path.is_file():
            assert no_secrets_in(path.read_bytes()) == [], path
    assert (cache / ".gitignore").read_text() == "*\n"


def test_a_change_in_one_estate_shows_at_the_next_run(world: World, estates):  # P15
    before = _company(world, "completeness")
    data = world.tmp / "more.csv"
    data.write_text(CSV_HEAD + "B05,9,0901,handed-over,owner-occupied,owner,某九,13700000009\n")
    _ok(world.people, "clk01", "--archive", str(estates["north"]), "import", str(data), "-r", "late", "-a", "mgr01")
    after = _company(world, "completeness")
    assert after["totals"]["households"] == before["totals"]["households"] + 1
    north = next(r for r in after["estates"] if r["estate"] == "north")
    assert north["households"] == _own(world.people, estates["north"], "completeness")["overall"]["households"]
    # east is served by its bare repository: what is pushed there shows at the next run
    data.write_text(CSV_HEAD + "B05,8,0801,handed-over,owner-occupied,owner,某八,13700000008\n")
    _ok(world.people, "clk01", "--archive", str(estates["east"]), "import", str(data), "-r", "late", "-a", "mgr01")
    subprocess.run(
        ["git", "-C", str(estates["east"]), "push", "-q", "--no-verify", str(world.tmp / "east.git"), "main"],
        check=True,
    )
    later = _company(world, "completeness")
    east = next(r for r in later["estates"] if r["estate"] == "east")
    assert east["households"] == _own(world.people, estates["east"], "completeness")["overall"]["households"]
    assert later["totals"]["households"] == after["totals"]["households"] + 1
    # company.yaml names another archive for north: its copy is made again from there
    company_file = world.tmp / "hq" / "company.yaml"
    company_file.write_text(company_file.read_text().replace("../north/archive", "../south/archive"))
    moved = _company(world, "completeness")
    assert moved["estates"][0]["households"] == moved["estates"][1]["households"]


def test_a_warm_run_reads_again_only_the_estate_that_changed_even_when_its_refs_are_packed(
    world: World, estates
):  # P15
    hq = world.tmp / "hq"
    first = _company(world, "completeness")
    south_copy, north_copy = _tree(hq / ".cache" / "south"), _tree(hq / ".cache" / "north")
    assert _company(world, "completeness")["estates"] == first["estates"]
    assert _tree(hq / ".cache" / "north") == north_copy, "a warm run with nothing changed fetches nothing"
    data = world.tmp / "more.csv"
    data.write_text(CSV_HEAD + "B05,7,0701,handed-over,owner-occupied,owner,某七,13700000007\n")
    _ok(world.people, "clk01", "--archive", str(estates["north"]), "import", str(data), "-r", "late", "-a", "mgr01")
    # north's main now lives in packed-refs only, as after a `git gc` on the estate's machine
    subprocess.run(["git", "-C", str(estates["north"]), "pack-refs", "--all", "--prune"], check=True)
    assert not (estates["north"] / ".git" / "refs" / "heads" / "main").exists()
    after = _company(world, "completeness")
    north = next(r for r in after["estates"] if r["estate"] == "north")
    assert north["households"] == _own(world.people, estates["north"], "completeness")["overall"]["households"]
    assert after["totals"]["households"] == first["totals"]["households"] + 1
    assert _tree(hq / ".cache" / "north") != north_copy
    assert _tree(hq / ".cache" / "south") == south_copy, "an estate whose server did not change is not fetched"
    assert _company(world, "completeness")["totals"] == after["totals"]


def test_an_estate_whose_server_cannot_be_reached_after_a_warm_run_is_refused_in_one_line(
    world: World, estates, monkeypatch
):  # P15
    _company(world, "completeness")
    company_file = world.tmp / "hq" / "company.yaml"
    served = f"file://{world.tmp / 'east.git'}"
    # nothing listens on port 9 of this machine: the ssh connection is refused at once
    company_file.write_text(company_file.read_text().replace(served, "ssh://127.0.0.1:9/srv/east.git"))
    monkeypatch.setenv(
        "GIT_SSH_COMMAND",
        "ssh -F /dev/null -o BatchMode=yes -o ConnectTimeout=5 -o StrictHostKeyChecking=no "
        "-o UserKnownHostsFile=/dev/null",
    )
    _refused(world, 1, "estate east")
    _refused(world, 1, "estate east", args=("report", "stats"))
    # a local server gone since the last run: refused the same way, before any copy is touched
    company_file.write_text(company_file.read_text().replace("ssh://127.0.0.1:9/srv/east.git", served))
    (world.tmp / "east.git").rename(world.tmp / "east-gone.git")
    _refused(world, 1, "estate east", "no archive at")


def test_two_company_reports_at_once_both_answer_the_same(world: World, estates):  # P15
    hq = world.tmp / "hq"
    command = [sys.executable, "-m", "archivectl", "company", "report", "completeness", "--company", str(hq), "-f"]
    env = process_env(None)
    runs = [
        subprocess.Popen([*command, "csv"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env) for _ in range(2)
    ]
    answers = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], answers
    assert answers[0][0] == answers[1][0] and b"(total),Sunny Property,7," in answers[0][0]
    assert sorted(p.name for p in (hq / ".cache").iterdir() if p.is_dir()) == ["east", "north", "south"]


# ------------------------------------------------------------------ refusals


def _refused(world: World, code: int, *words: str, args: tuple[str, ...] = ("report", "completeness")) -> None:
    hq = world.tmp / "hq"
    before = _tree(hq)
    exit_code, out, err = _cli(world.people, None, "company", *args, "--company", str(hq))

    assert_refused(Result(exit_code, out, err), code, *words)
    assert out == ""
    assert _tree(hq) == before


def test_an_estate_with_no_archive_is_refused_and_nothing_is_written(world: World, estates):
    company_file = world.tmp / "hq" / "company.yaml"
    company_file.write_text(company_file.read_text().replace("../north/archive", "../nowhere/archive"))
    _refused(world, 1, "estate north", "no archive at")
    _refused(world, 1, "estate north", "no archive at", args=("staff",))
    assert not (world.tmp / "hq" / ".cache").exists()


def test_an_estate_git_cannot_fetch_stops_the_report_in_one_line(world: World, estates):
    company_file = world.tmp / "hq" / "company.yaml"
    company_file.write_text(company_file.read_text().replace("name: East Court,", "name: East Court, branch: nope,"))
    hq = world.tmp / "hq"
    exit_code, out, err = _cli(world.people, None, "company", "report", "stats", "--company", str(hq))
    assert_refused(Result(exit_code, out, err), 1, "estate east", "nope")
    assert out == ""
    assert not (hq / ".cache" / "east").exists() and not (hq / ".cache" / "east.new").exists()


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda t: t.replace("estates:", "estates: [\n"), ["company.yaml"]),
        (lambda t: t + "branches: 3\n", ["company.yaml", "branches"]),
        (
            lambda t: t.replace("archive: ../north/archive", "archive: 'https://example.invalid/north'"),
            ["estate north", "file:// or ssh://"],
        ),
        (lambda t: t.replace("archive: ../north/archive", "archive: 'ext::sh -c touch% /tmp/x'"), ["estate north"]),
        (lambda t: t.replace("id: south", "id: north"), ["estate id north", "more than once"]),
        (lambda t: t.replace("id: north,", "id: North Side,"), ["company.yaml", "id"]),
        (lambda t: t.replace("role: gm", "role: boss"), ["company.yaml", "role"]),
        (lambda t: t.replace("name: South Park", 'name: "South \\u202ePark"'), ["company.yaml", "estates[1].name"]),
        (lambda t: t.replace("key: ssh-ed25519 AAAA", "key: ssh-ed25519 AAAB"), ["company.yaml", "staff gm01"]),
    ],
)
def test_a_malformed_company_yaml_is_refused_in_one_line(world: World, estates, change, words):
    company_file = world.tmp / "hq" / "company.yaml"
    company_file.write_text(change(company_file.read_text()))
    _refused(world, 2, *words)
    assert not (world.tmp / "hq" / ".cache").exists()


def test_no_company_yaml_is_a_usage_error(world: World, estates):
    exit_code, out, err = _cli(world.people, None, "company", "report", "stats", "--company", str(world.tmp))

    assert_refused(Result(exit_code, out, err), 2, "no company.yaml")


def test_an_unknown_report_is_a_usage_error(world: World, estates):
    _refused(world, 2, "unknown report", args=("report", "everything"))


def test_company_requests_is_the_sum_of_the_estates_requests_reports(world: World, estates):  # P17
    people = world.people
    south = estates["south"]
    number = _numbers(people, south)[-1]
    for received in ("2026-01-05", None):  # one long overdue, one received today
        args = ["--archive", str(south), "request", "open", "--kind", "access", "--household", number]
        args += ["--checked-by", "clk01", "--requester", "某人", "--contact", "13700000000", "-r", "at the desk"]
        _ok(people, "clk01", *args, *(["--received", received] if received else []))
    _ok(people, "clk01", "--archive", str(south), "hold", number, "-r", "arrears case in court", "-a", "mgr01")
    found = _company(world, "requests")
    own = {sid: _own(people, root, "requests") for sid, root in estates.items()}
    assert found["totals"]["holds"] == sum(len(d["holds"]) for d in own.values()) == 1
    assert _company(world, "retention")["totals"]["holds"] == 1
    assert found["totals"]["open"] == sum(len(d["open"]) for d in own.values()) == 2
    assert found["totals"]["overdue"] == sum(1 for d in own.values() for r in d["open"] if r["overdue"]) == 1
    by = {r["estate"]: r for r in found["estates"]}
    assert by["south"]["open"] == 2 and by["north"]["open"] == 0
    code, out, _err = _cli(
        people, None, "company", "report", "requests", "--company", str(world.tmp / "hq"), "--fail-on-action"
    )
    assert code == 1 and "某人" not in out and "13700000000" not in out  # overdue: cron hears of it


# ------------------------------------------------------------------ staff


def test_company_staff_agree_when_every_archive_lists_the_same_people(world: World, estates):
    out = _ok(world.people, None, "company", "staff", "--company", str(world.tmp / "hq"))
    assert out == ""


def test_company_staff_finds_a_key_that_differs_between_estates(world: World, estates):  # P7, P10
    people = world.people
    west = world.tmp / "west"
    west.mkdir()
    (west / "staff.yaml").write_text(_staff_text(people, {"mgr01": people["outsider"].pub}))
    _ok(people, "gm01", "init", str(west / "archive"), "--name", "West", "--staff-file", str(west / "staff.yaml"))
    company_file = world.tmp / "hq" / "company.yaml"
    text = company_file.read_text().replace(
        "staff:", "  - {id: west, name: West Hill, archive: ../west/archive}\nstaff:"
    )
    company_file.write_text(text + f"  - {{id: aud01, name: 审计辛, role: manager, key: {people['aud01'].pub}}}\n")
    code, out, err = _cli(people, None, "company", "staff", "--company", str(world.tmp / "hq"))
    assert code == 1, (out, err)
    lines = out.splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("aud01: different roles: manager in head office; auditor in north, south, east, west")
    assert lines[1].startswith("mgr01: different keys: ")
    assert lines[1].endswith(" in west")
    assert "north, south, east" in lines[1]


def test_disagreements_name_one_key_under_two_ids_and_an_inactive_flag():
    key_a = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHm0d1k2o1Tf4SW0gqLzHw1wW0Rrq3yC3P6aVFGQ0aAA a"
    seen = [
        ("north", StaffMember("but01", "甲", "butler", key_a)),
        ("south", StaffMember("but07", "甲", "butler", key_a, active=False)),
        ("east", StaffMember("but07", "甲", "butler", key_a)),
    ]
    problems = company.disagreements(seen)
    assert problems[0] == "but07: different active flags: inactive in south; active in east"
    assert problems[1].startswith("one key (SHA256:") and problems[1].endswith("but01 in north; but07 in south, east")
    assert len(problems) == 2


def test_no_personal_data_in_company_output(world: World, estates):  # P9
    for kind in ("completeness", "retention", "stats"):
        out = _ok(world.people, None, "company", "report", kind, "--company", str(world.tmp / "hq"), "-f", "json")
        assert no_secrets_in(out) == [] and not [s for s in SECRETS if s in out]


# ------------------------------------------------------------------ company.yaml in a signed repository of its own


def _commit_company(world: World, who: str, message: str) -> None:
    hq = world.tmp / "hq"
    env = {**process_env(world.people[who])}
    subprocess.run(["git", "-C", str(hq), "add", "company.yaml"], check=True, env=env)
    subprocess.run(["git", "-C", str(hq), "commit", "-q", "-S", "-m", message], check=True, env=env)


def test_a_company_repository_is_read_as_committed_by_head_office(world: World, estates):  # P7
    hq = world.tmp / "hq"
    subprocess.run(["git", "init", "-q", "-b", "main", str(hq)], check=True)
    _commit_company(world, "gm01", "the company")
    (hq / "company.yaml").write_text((hq / "company.yaml").read_text().replace("North Garden", "Uncommitted"))
    found = _company(world, "completeness")
    assert found["estates"][0]["name"] == "North Garden"  # a local edit changes nothing
    assert (
        subprocess.run(
            ["git", "-C", str(hq), "status", "--porcelain"], capture_output=True, text=True, check=True
        ).stdout
        == " M company.yaml\n"
    )


def test_a_company_repository_whose_last_commit_no_head_office_key_signed_is_refused(world: World, estates):
    hq = world.tmp / "hq"
    subprocess.run(["git", "init", "-q", "-b", "main", str(hq)], check=True)
    _commit_company(world, "gm01", "the company")
    text = (hq / "company.yaml").read_text()
    (hq / "company.yaml").write_text(
        text + f"  - {{id: mgr01, name: 经理乙, role: manager, key: {world.people['mgr01'].pub}}}\n"
    )
    _commit_company(world, "mgr01", "mgr01 lets themself in")  # not listed before: refused
    _refused(world, 1, "not signed by head-office staff")
    _refused(world, 1, "not signed by head-office staff", args=("staff",))
    assert not (hq / ".cache").exists()


# ------------------------------------------------------------------ an estate served over ssh://


def test_an_estate_served_over_ssh_is_read_without_its_attachments(world: World, estates, tmp_path):  # P9, P15
    from sshd import INSTALL_HINT, SSHD, keygen, running_sshd, ssh_command, ssh_home

    if not SSHD.exists():
        pytest.skip(f"sshd missing: {INSTALL_HINT}")
    server_repo = world.tmp / "north.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(estates["north"]), str(server_repo)], check=True)
    for setting in ("uploadpack.allowFilter", "uploadpack.allowAnySHA1InWant"):  # what the server's admin sets
        subprocess.run(["git", "-C", str(server_repo), "config", setting, "true"], check=True)
    company_file = world.tmp / "hq" / "company.yaml"
    url = f"ssh://estates.office{server_repo}"
    company_file.write_text(company_file.read_text().replace("archive: ../north/archive", f"archive: '{url}'"))
    with running_sshd(tmp_path / "ssh-server") as sshd:
        key = tmp_path / "hq_key"
        sshd.authorize(keygen(key, "head-office"))
        config = ssh_home(tmp_path / "hq-home", sshd, key, "estates.office")
        result = CliRunner().invoke(
            app,
            ["company", "report", "completeness", "--company", str(world.tmp / "hq"), "-f", "json"],
            env={**person_env(None), "GIT_SSH_COMMAND": ssh_command(config)},
        )
    assert result.exit_code == 0, (result.stdout, result.stderr)
    north = json.loads(result.stdout)["estates"][0]
    assert north["households"] == _own(world.people, estates["north"], "completeness")["overall"]["households"]
    copy = world.tmp / "hq" / ".cache" / "north"
    listed = subprocess.run(
        ["git", "-C", str(copy), "ls-files", "-s", "*/attachments/*"], capture_output=True, text=True, check=True
    ).stdout.split()
    held = subprocess.run(
        ["git", "-C", str(copy), "cat-file", "--batch-all-objects", "--batch-check"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    blobs = [word for word in listed if len(word) == 40]
    assert blobs and not [b for b in blobs if b in held], "the scan stayed on the server"
