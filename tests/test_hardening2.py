"""Hardening, second round: parser limits, whole-string identifiers, outputs that never follow links,
no plaintext on disk during rotation, errors without values, personal values off the command line,
reasons without personal data, sealed blocks padded to a size bucket (P9, P10, P12, P14, P16)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import pty
import subprocess
import sys
import tempfile
import threading

import pyrage
import pytest
from conftest import (
    OWNER_ID,
    OWNER_NAME,
    OWNER_PHONE,
    RECORD,
    Result,
    World,
    as_built,
    assert_refused,
    assert_unchanged,
    no_secrets_in,
    person_env,
    process_env,
)
from typer.testing import CliRunner

from archivectl import crypto, idcheck, policy, records, yamlio
from archivectl.cli import app
from archivectl.errors import ArchiveError, UsageError
from archivectl.pii import personal_data_in
from archivectl.schema import ecma_pattern, parse_json


def record_path(world: World, number: str, unit: str = "1203"):
    return world.root / f"households/B03/{unit}/{number}/record.yaml"


def record_key(world: World, number: str, reader: str = "but01"):
    identity = crypto.load_identity(world.people[reader].key)
    return crypto.unwrap_record_key(world.key_file(number).read_bytes(), identity)


def cli_with_input(world: World, who: str, text: str, *args: str) -> Result:
    """world.cli with text on standard input."""
    result = CliRunner().invoke(
        app, ["--archive", str(world.root), *args], env=person_env(world.people[who]), input=text
    )
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Result(result.exit_code, result.stdout, result.stderr)


def real_cli(world: World, who: str, *args: str) -> subprocess.CompletedProcess:
    """The real `python -m archivectl` in a child process: a crash there cannot take the test run down."""
    return subprocess.run(
        [sys.executable, "-m", "archivectl", "--archive", str(world.root), *args],
        capture_output=True,
        text=True,
        env=process_env(world.people[who]),
        timeout=120,
    )


def add_file(world: World, content: str, name: str = "input.yaml", reason: str = "r") -> Result:
    path = world.tmp / name
    path.write_text(content)
    return world.cli("clk01", "add", "--file", str(path), "--reason", reason, "--approver", "mgr01")


def commit_by_hand(world: World, message: str) -> None:
    world.git("add", "-A")
    world.git("-c", "commit.gpgsign=false", "commit", "-qm", message)


# ------------------------------------------------------------------ 1. depth and size limits on every parser

NESTED_2KB = "[" * 1024 + "]" * 1024


@pytest.mark.parametrize(
    "content",
    [RECORD + "notes: " + NESTED_2KB + "\n", "customers: " + NESTED_2KB + "\n", "[" * 100_000],
    ids=["nested-in-notes", "nested-in-customers", "unclosed-100k"],
)
def test_deeply_nested_yaml_is_refused_in_one_line(world: World, household: str, content):  # P9, SPEC bad input
    before = world.snapshot()
    assert_refused(add_file(world, content), 2, "input.yaml: line ", "nested deeper than 64 levels")
    assert_unchanged(world, before)


def test_deeply_nested_set_value_is_refused(world: World, household: str):  # P12
    before = world.snapshot()
    result = world.cli(
        "mgr01", "edit", household, "--set", f"customers.0.hobbies={NESTED_2KB}", "-r", "r", "-a", "gm01"
    )
    assert_refused(result, 2, "nested deeper than 64 levels")
    assert_unchanged(world, before)


def test_yaml_nesting_limit_is_exact():  # P9
    assert yamlio.loads("[" * 64 + "]" * 64) is not None
    with pytest.raises(UsageError, match="nested deeper than 64 levels"):
        yamlio.loads("[" * 65 + "]" * 65)
    block = "a:\n" + "".join(" " * i + "b:\n" for i in range(1, 70))
    with pytest.raises(UsageError, match="line 65: nested deeper"):
        yamlio.loads(block)


def test_a_committed_record_nested_100000_deep_is_reported_invalid_and_the_rest_goes_on(world: World):  # P15
    good = world.add()
    bad = world.root / "households/B03/1204/HO-2026-09999/record.yaml"
    bad.parent.mkdir(parents=True)
    bad.write_text("[" * 100_000 + "]" * 100_000 + "\n")
    commit_by_hand(world, "a hostile record, committed by hand")

    validate = real_cli(world, "aud01", "validate", "--format", "json")
    assert validate.returncode == 1, validate.stderr  # not 139: the parser no longer crashes
    problems = json.loads(validate.stdout)
    assert problems == [{"file": "households/B03/1204/HO-2026-09999/record.yaml", "problem": problems[0]["problem"]}]
    assert "nested deeper than 64 levels" in problems[0]["problem"]

    listing = real_cli(world, "aud01", "list", "--format", "json")
    assert listing.returncode == 0, listing.stderr
    assert {r["archive_no"]: r["status"] for r in json.loads(listing.stdout)} == {
        good: "active",
        "HO-2026-09999": "invalid",
    }

    report = real_cli(world, "aud01", "report", "completeness", "--format", "json")
    assert report.returncode == 0, report.stderr
    data = json.loads(report.stdout)
    assert [h["archive_no"] for h in data["households"]] == [good]
    assert [i["file"] for i in data["invalid"]] == ["households/B03/1204/HO-2026-09999/record.yaml"]


def test_a_csv_cell_over_128_kib_is_refused_naming_its_line(world: World):  # P9, SPEC huge files
    before = world.snapshot()
    path = world.tmp / "big.csv"
    path.write_text(
        "building,floor,unit,category,notes\n"
        "B03,1,0101,special,short\n"
        f'B03,2,0201,special,"{OWNER_PHONE}{"x" * 200_000}"\n'
    )
    result = world.cli("clk01", "import", str(path), "-r", "r", "-a", "mgr01")
    assert_refused(result, 2, "big.csv line 3", "longer than 131072 characters")
    assert no_secrets_in(result.stderr) == []
    assert_unchanged(world, before)


def test_a_csv_with_too_many_columns_is_refused(world: World):
    before = world.snapshot()
    path = world.tmp / "wide.csv"
    path.write_text(",".join(f"notes{i}" for i in range(1001)) + "\n")
    assert_refused(world.cli("clk01", "import", str(path), "-r", "r", "-a", "mgr01"), 2, "line 1", "1000 columns")
    assert_unchanged(world, before)


def test_a_deeply_nested_or_huge_schema_committed_by_hand_decides_nothing(world: World, household: str):  # P9
    """Only main's judged state decides (#25): an unapproved schema on main is neither parsed for sealing nor used."""
    schema_file = world.root / "schemas/household.schema.json"
    schema_file.write_text('{"properties": ' + "[" * 100_000 + "]" * 100_000 + "}")
    commit_by_hand(world, "a hostile schema, committed by hand")
    assert world.cli("aud01", "validate").exit_code == 0  # judged by the approved schema, not this one
    shown = world.ok("but01", "show", household)
    assert OWNER_PHONE not in shown  # still masked by the approved schema
    verified = world.cli("aud01", "verify", "--format", "json")
    assert verified.exit_code == 1 and "commit is not signed" in verified.stdout
    schema_file.write_text(" " * (1024 * 1024 + 1))
    commit_by_hand(world, "a huge schema, committed by hand")
    assert world.cli("aud01", "validate").exit_code == 0


def test_json_limits():
    assert parse_json('{"a": "[[[["}', "s.json") == {"a": "[[[["}
    with pytest.raises(UsageError, match=r"s\.json: line 2: nested deeper than 64 levels"):
        parse_json("{\n" + '"a": ' + "[" * 70 + "]" * 70 + "}", "s.json")
    with pytest.raises(UsageError, match="larger than 1024 KiB"):
        parse_json(" " * (1024 * 1024 + 1), "s.json")
    with pytest.raises(UsageError, match="line 1: not valid JSON"):
        parse_json('{"a": 1,}', "s.json")


# ------------------------------------------------------------------ 2. identifiers match whole strings


def test_a_unit_with_a_trailing_newline_makes_no_directory(world: World):  # P1
    before = world.snapshot()
    result = world.cli(
        "clk01",
        "add",
        "--building",
        "B03",
        "--floor",
        "12",
        "--unit",
        "1203\n",
        "--category",
        "special",
        "-r",
        "r",
        "-a",
        "mgr01",
    )
    assert_refused(result, 2, "unit: use letters, digits")
    assert_unchanged(world, before)
    assert not list((world.root / "households").glob("*/*\n*")) if (world.root / "households").exists() else True


def test_a_staff_id_with_a_newline_cannot_split_the_allowed_signers_file(world: World, people):  # P10
    before = world.snapshot()
    result = world.cli(
        "mgr01",
        "staff",
        "add",
        "new01\n",
        "--name",
        "新人",
        "--role",
        "clerk",
        "--key",
        people["outsider"].pub,
        "-r",
        "new clerk",
        "-a",
        "gm01",
    )
    assert_refused(result, 2, "id: a short id in small letters")
    assert_unchanged(world, before)


def test_an_archive_number_with_a_trailing_newline_is_refused_in_one_line(world: World, household: str):
    before = world.snapshot()
    assert_refused(world.cli("but01", "show", household + "\n"), 2, "not an archive number")
    assert_unchanged(world, before)


def test_a_phone_with_a_trailing_newline_is_not_a_phone(world: World, household: str):  # P4
    before = world.snapshot()
    result = world.cli("mgr01", "edit", household, "--set", "customers.0.phone=13912345678\n", "-r", "r", "-a", "gm01")
    assert_refused(result, 2, "customers[0].phone")
    assert_unchanged(world, before)
    assert idcheck.phone_problem("13912345678\n") is not None
    assert idcheck.phone_problem("010-12345678\n") is not None
    assert idcheck.phone_problem("13912345678") is None


def test_schema_patterns_mean_the_whole_string():
    assert ecma_pattern("^[0-9]+$").search("1203")
    assert not ecma_pattern("^[0-9]+$").search("1203\n")
    assert ecma_pattern("^a[$]$").search("a$")  # a $ inside a class stays a dollar sign
    assert ecma_pattern(r"^\$$").search("$")


# ------------------------------------------------------------------ 3. outputs never follow symbolic links


def victim_setup(world: World, name: str):
    """A file someone else owns, and the place a planted link makes our output go."""
    victim = world.tmp / "victim" / name
    victim.parent.mkdir(exist_ok=True)
    return victim


@pytest.fixture
def scanned(world: World, household: str) -> str:
    return as_built(world, "hardening2-scanned", lambda: attach_scan(world, household))


def attach_scan(world: World, household: str) -> str:
    scan = world.tmp / "scan.pdf"
    scan.write_bytes(b"decrypted scan of " + OWNER_ID.encode())
    world.ok("clk01", "attach", household, str(scan), "--type", "owner-id-copy", "-r", "scanned", "-a", "mgr01")
    return household


def _output_command(kind: str, number: str, out) -> tuple[str, list[str]]:
    if kind == "open":
        return "but01", ["open", number, "owner-id-copy", "-o", str(out), "-r", "fee dispute"]
    if kind == "export":
        return "but01", ["export", number, "-o", str(out), "-r", "customer request", "-a", "mgr01"]
    return "mgr01", ["backup", "-o", str(out)]


@pytest.mark.parametrize("kind", ["open", "export", "backup"])
def test_a_link_planted_at_the_partial_file_is_not_followed(world: World, scanned: str, kind: str):  # P9
    out = world.tmp / "shared" / "out.bin"
    out.parent.mkdir()
    victim = victim_setup(world, "victim.bin")
    os.symlink(victim, out.parent / ".out.bin.partial")
    before = world.snapshot()
    who, args = _output_command(kind, scanned, out)
    assert_refused(world.cli(who, *args), 2, ".out.bin.partial", "already exists")
    assert not victim.exists()
    assert not out.exists()
    assert os.path.islink(out.parent / ".out.bin.partial")  # not ours to remove
    assert_unchanged(world, before)  # nothing registered either


@pytest.mark.parametrize(
    "kind",
    [
        "open",
        "export",
        "backup",
    ],
)
def test_a_link_planted_at_the_output_name_is_not_followed(world: World, scanned: str, kind: str):  # P9
    out = world.tmp / "shared" / "out.bin"
    out.parent.mkdir()
    victim = victim_setup(world, "victim.bin")
    os.symlink(victim, out)  # dangling: the victim file does not exist yet
    before = world.snapshot()
    who, args = _output_command(kind, scanned, out)
    result = world.cli(who, *args)
    assert result.exit_code == 2, result
    assert not victim.exists()
    assert_unchanged(world, before)


@pytest.mark.parametrize("kind", ["open", "export", "backup"])
def test_output_into_a_linked_folder_is_refused(world: World, scanned: str, kind: str):  # P9
    real = world.tmp / "elsewhere"
    real.mkdir()
    os.symlink(real, world.tmp / "shared")
    before = world.snapshot()
    who, args = _output_command(kind, scanned, world.tmp / "shared" / "out.bin")
    result = world.cli(who, *args)
    assert result.exit_code == 2, result
    assert list(real.iterdir()) == []
    assert_unchanged(world, before)


def test_open_into_a_missing_folder_is_one_line_exit_2(world: World, scanned: str):
    before = world.snapshot()
    result = world.cli("but01", "open", scanned, "owner-id-copy", "-o", "/missing/dir/x", "-r", "fee dispute")
    assert_refused(result, 2, "/missing/dir", "no such directory")
    assert_unchanged(world, before)


def test_opened_scan_is_private_and_complete(world: World, scanned: str):  # P9
    out = world.tmp / "opened.pdf"
    world.ok("but01", "open", scanned, "owner-id-copy", "-o", str(out), "-r", "fee dispute")
    assert out.read_bytes() == b"decrypted scan of " + OWNER_ID.encode()
    assert out.stat().st_mode & 0o777 == 0o600
    assert not (world.tmp / ".opened.pdf.partial").exists()


def test_a_write_through_a_link_inside_the_archive_is_refused(world: World):  # P6, P10
    number = world.add()
    world.approve("mgr01")
    month = dt.datetime.now(dt.UTC).strftime("%Y-%m")
    folder = world.root / "registers/access" / month
    folder.parent.mkdir(parents=True, exist_ok=True)
    os.symlink("../../schemas", folder)  # a link committed to the archive, pointing at another folder
    (world.root / "schemas/.keep").write_text("")  # a link to a directory is committed as a link
    commit_by_hand(world, "register folder as a link")
    before = world.snapshot()
    schemas = sorted(p.name for p in (world.root / "schemas").iterdir())
    result = world.cli("but01", "show", number, "--reveal", "-r", "check")
    assert_refused(result, 1, f"registers/access/{month} is a symbolic link")
    assert sorted(p.name for p in (world.root / "schemas").iterdir()) == schemas  # nothing written through it
    assert_unchanged(world, before)


# ------------------------------------------------------------------ 4. no plaintext on disk during rotation

MARKER = b"CLEAR-SCAN-" + OWNER_ID.encode()


def test_rotation_never_writes_a_scan_in_clear(world: World, household: str, tmp_path, monkeypatch):  # P9, P14
    # the rotation's temp folder is one of this test's own, so the scan below reads nothing of other tests
    scratch = tmp_path / "system-tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr(tempfile, "tempdir", None)  # gettempdir() reads TMPDIR again
    scan = world.tmp / "large.pdf"
    with open(scan, "wb") as fh:
        fh.write(MARKER)
        fh.write(os.urandom(24 * 1024 * 1024))
    world.ok("clk01", "attach", household, str(scan), "--type", "other", "-r", "scanned", "-a", "mgr01")
    scan.unlink()
    journal = world.root / ".git/archivectl/journal"
    seen: list[str] = []
    done = threading.Event()

    def watch() -> None:  # look at every file the rotation leaves in the journal while it runs
        while not done.is_set():
            try:
                names = list(journal.iterdir())
            except OSError:
                continue
            for path in names:
                try:
                    with open(path, "rb") as fh:
                        if fh.read(len(MARKER)) == MARKER:
                            seen.append(f"{path.name} {oct(path.stat().st_mode & 0o777)}")
                except OSError:
                    pass

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        world.ok("mgr01", "recipients", "sync", "--rotate", "-r", "laptop lost", "-a", "gm01")
    finally:
        done.set()
        watcher.join()
    assert seen == []
    assert not journal.exists()
    leaks = []
    for path in [*world.root.joinpath(".git").rglob("*"), *world.keys.rglob("*")]:
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            if MARKER in data or no_secrets_in(data):
                leaks.append(str(path))
    assert tempfile.gettempdir() == str(scratch)
    for path in [*world.tmp.rglob("*"), *scratch.rglob("*")]:
        if path.is_file() and not path.is_symlink():
            with open(path, "rb") as fh:
                if MARKER in fh.read(len(MARKER) + 64 * 1024):
                    leaks.append(str(path))
    assert leaks == []
    stored = yamlio.load_file(record_path(world, household))
    attachment = record_path(world, household).parent / stored["documents"][0]["file"]
    with open(attachment, "rb") as fh:
        assert pyrage.decrypt(fh.read(), [record_key(world, household)]).startswith(MARKER)


def test_reencrypting_a_corrupted_scan_leaves_no_output(tmp_path):  # P14
    old, new = crypto.new_record_key(), crypto.new_record_key()
    source = tmp_path / "scan.age"
    source.write_bytes(pyrage.encrypt(os.urandom(300_000), [old.to_public()]))
    data = bytearray(source.read_bytes())
    data[200_000] ^= 0xFF
    source.write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match="cannot be decrypted"):
        crypto.reencrypt_file(source, tmp_path / "out.age", old, new.to_public())
    assert not (tmp_path / "out.age").exists()


# ------------------------------------------------------------------ 5. errors never echo a value


@pytest.mark.parametrize(
    "args",
    [
        ["edit", "{n}", "--set", f"customers.0.phone:{OWNER_PHONE}", "-r", "r", "-a", "gm01"],
        ["edit", "{n}", "--set", f"customers.0.{OWNER_PHONE}=1", "-r", "r", "-a", "gm01"],
        ["edit", "{n}", "--set", f"customers.0.hobbies=!{OWNER_PHONE} x", "-r", "r", "-a", "gm01"],
        ["show", OWNER_PHONE],
        ["show", OWNER_ID],
        ["history", OWNER_NAME],
    ],
    ids=["colon-for-equals", "value-as-field", "value-as-tag", "show-phone", "show-id", "history-name"],
)
def test_errors_on_the_command_line_never_repeat_a_value(world: World, household: str, args):  # P9
    before = world.snapshot()
    result = world.cli("mgr01", *[a.format(n=household) for a in args])
    assert_refused(result, 2)
    assert no_secrets_in(result.stderr) == []
    assert_unchanged(world, before)


@pytest.mark.parametrize(
    "content",
    [
        f"{OWNER_PHONE}: 1\n{OWNER_PHONE}: 2\n",
        RECORD + f"{OWNER_NAME}: x\n",
        RECORD.replace("special_requests:", f"special_requests: !{OWNER_PHONE}"),
        RECORD.replace("  - role: owner\n", f"  - role: owner\n    {OWNER_ID}: x\n"),
    ],
    ids=["duplicate-phone-key", "name-as-field", "phone-as-tag", "id-as-nested-field"],
)
def test_errors_about_files_never_repeat_a_value(world: World, content):  # P9
    before = world.snapshot()
    result = add_file(world, content)
    assert_refused(result, 2)
    assert no_secrets_in(result.stderr) == []
    assert_unchanged(world, before)


def test_a_csv_without_its_header_line_does_not_echo_the_first_row(world: World):  # P9
    before = world.snapshot()
    path = world.tmp / "headless.csv"
    path.write_text(f"{OWNER_NAME},{OWNER_PHONE},B03,12,1203,handed-over,owner-occupied,owner\n")
    result = world.cli("clk01", "import", str(path), "-r", "r", "-a", "mgr01")
    assert_refused(result, 2, "field path")
    assert no_secrets_in(result.stderr) == []
    assert_unchanged(world, before)


# ------------------------------------------------------------------ 6. personal values without argv


def test_set_field_dash_reads_the_value_from_stdin(world: World, household: str):  # P9, P12
    result = cli_with_input(
        world,
        "mgr01",
        "13912345678\n",
        "edit",
        household,
        "--set",
        "customers.0.phone=-",
        "-r",
        "new number",
        "-a",
        "gm01",
    )
    assert result.exit_code == 0, result
    shown = json.loads(world.ok("but01", "show", household, "--reveal", "-r", "check", "--format", "json"))
    assert shown["customers"][0]["phone"] == "13912345678"
    assert "13912345678" not in world.git("log", "-1", "--format=%B")


def test_only_one_field_reads_stdin(world: World, household: str):
    before = world.snapshot()
    args = ["edit", household, "--set", "customers.0.phone=-", "--set", "customers.0.name=-", "-r", "r", "-a", "gm01"]
    assert_refused(cli_with_input(world, "mgr01", "x\n", *args), 2, "only one field")
    assert_unchanged(world, before)


@pytest.mark.parametrize(
    "content",
    [
        f"# fields for the new household\ncustomers.0.role=owner\ncustomers.0.name = {OWNER_NAME}\n"
        f"customers.0.phone={OWNER_PHONE}\nvehicles.0.plate=京A12345\n",
        f"customers.0.role: owner\ncustomers.0.name: {OWNER_NAME}\n"
        f'customers.0.phone: {OWNER_PHONE}\n"vehicles.0.plate": 京A12345\n',
    ],
    ids=["field=value-lines", "yaml-mapping"],
)
def test_set_from_file_keeps_personal_values_off_the_command_line(world: World, content):  # P9
    values = world.tmp / "values.txt"
    values.write_text(content)
    number = world.ok(
        "clk01",
        "add",
        "--building",
        "B03",
        "--floor",
        "12",
        "--unit",
        "1203",
        "--category",
        "special",
        "--set-from",
        str(values),
        "-r",
        "new customer",
        "-a",
        "mgr01",
    ).strip()
    shown = json.loads(world.ok("but01", "show", number, "--reveal", "-r", "check", "--format", "json"))
    assert shown["customers"] == [{"role": "owner", "name": OWNER_NAME, "phone": OWNER_PHONE}]
    assert shown["vehicles"] == [{"plate": "京A12345"}]


def test_a_bad_set_from_line_is_named_without_its_value(world: World, household: str):
    before = world.snapshot()
    values = world.tmp / "values.txt"
    values.write_text(f"customers.0.name=x\n{OWNER_PHONE}\n")
    result = world.cli("mgr01", "edit", household, "--set-from", str(values), "-r", "r", "-a", "gm01")
    assert_refused(result, 2, "values.txt line 2", "field=value")
    assert no_secrets_in(result.stderr) == []
    assert_unchanged(world, before)


def _add_on_a_terminal(world: World, *sets: str) -> str:
    """Run a real add with stderr on a pseudo-terminal; return what the terminal showed."""
    master, slave = pty.openpty()
    args = [sys.executable, "-m", "archivectl", "--archive", str(world.root), "add", "--building", "B03"]
    args += ["--floor", "1", "--unit", "0101", "--category", "special", "-r", "new customer", "-a", "mgr01"]
    for pair in sets:
        args += ["--set", pair]
    proc = subprocess.Popen(
        args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave, env=process_env(world.people["clk01"])
    )
    os.close(slave)
    shown = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    proc.wait(timeout=120)
    os.close(master)
    assert proc.returncode == 0, shown
    return shown.decode("utf-8", "replace")


def test_personal_values_on_argv_draw_one_warning_on_a_terminal(world: World):  # P9
    shown = _add_on_a_terminal(
        world, "customers.0.role=owner", f"customers.0.name={OWNER_NAME}", f"customers.0.phone={OWNER_PHONE}"
    )
    warnings = [ln for ln in shown.splitlines() if "warning" in ln]
    assert len(warnings) == 1, shown
    assert "customers.0.name, customers.0.phone" in warnings[0] and "--set-from" in warnings[0]
    assert no_secrets_in(shown) == []


def test_no_warning_for_clear_fields_or_off_a_terminal(world: World):
    assert "warning" not in _add_on_a_terminal(world, "renovation.started=2024-03-15")
    result = world.cli(
        "clk01",
        "add",
        "--building",
        "B03",
        "--floor",
        "1",
        "--unit",
        "0102",
        "--category",
        "special",
        "--set",
        "customers.0.role=owner",
        "--set",
        "customers.0.name=某某",
        "-r",
        "r",
        "-a",
        "mgr01",
    )
    assert result.exit_code == 0 and "warning" not in result.stderr


def test_help_explains_how_to_keep_values_off_the_command_line(world: World):
    for command in ("add", "edit"):
        text = " ".join(world.cli(None, command, "--help").stdout.replace("│", " ").split())
        assert "--set-from" in text and "FIELD=- reads the value from stdin" in text


# ------------------------------------------------------------------ 7. reasons that look like personal data


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        (f"called {OWNER_PHONE}", "a phone number"),
        ("called +86 138-1234-5678", "a phone number"),
        ("called 138 1234 5678", "a phone number"),
        (f"ID {OWNER_ID} checked", "an ID number"),
        (f"{OWNER_NAME} asked", "a customer's name"),
        ("customer asked for deletion", None),
        ("scan of 2024-03-15, ticket 12345", None),
        ("commit 3a13812345678b reverted", None),
    ],
)
def test_personal_data_in_names_the_kind_never_the_value(text, kind):  # P9
    assert personal_data_in(text, [OWNER_NAME, "李"]) == kind


def test_reason_problem_refuses_phone_and_id_numbers():  # P9, P12
    problem = policy.reason_problem(f"called {OWNER_PHONE}")
    assert problem and "a phone number" in problem and OWNER_PHONE not in problem
    assert "an ID number" in (policy.reason_problem(f"id {OWNER_ID}") or "")
    assert policy.reason_problem("customer asked for deletion") is None


@pytest.mark.parametrize(
    ("who", "args"),
    [
        ("but01", ["tombstone", "{n}", "-a", "mgr01", "-r"]),
        ("but01", ["show", "{n}", "--reveal", "-r"]),
        ("mgr01", ["lend", "{n}", "--to", "but01", "--due", "2099-01-01", "-a", "gm01", "-r"]),
        ("mgr01", ["grant", "but02", "--building", "B03", "--until", "2099-01-01", "-a", "gm01", "-r"]),
        ("clk01", ["edit", "{n}", "--set", "floor=13", "-a", "mgr01", "-r"]),
    ],
    ids=["tombstone", "reveal", "lend", "grant", "edit"],
)
@pytest.mark.parametrize("reason", [f"called {OWNER_PHONE}", f"ID {OWNER_ID}"], ids=["phone", "id"])
def test_reasons_holding_personal_data_are_refused(world: World, household: str, who, args, reason):  # P9, P12
    before = world.snapshot()
    result = world.cli(who, *[a.format(n=household) for a in args], reason)
    assert_refused(result, 2, "--reason seems to hold")
    assert no_secrets_in(result.stderr) == []
    assert_unchanged(world, before)


def test_a_reason_naming_the_customer_is_refused_on_add_import_and_edit(world: World, household: str):  # P9, P12
    before = world.snapshot()
    result = add_file(world, RECORD.replace("1203", "1205"), reason=f"{OWNER_NAME} moved in")
    assert_refused(result, 2, "a customer's name")
    assert no_secrets_in(result.stderr) == []
    (world.tmp / "batch.yaml").write_text(RECORD.replace("1203", "1206"))
    result = world.cli(
        "clk01", "import", str(world.tmp / "batch.yaml"), "-r", f"paper file of {OWNER_NAME}", "-a", "mgr01"
    )
    assert_refused(result, 2, "a customer's name")
    result = world.cli("mgr01", "edit", household, "--set", "floor=13", "-r", f"{OWNER_NAME} asked", "-a", "gm01")
    assert_refused(result, 2, "a customer's name")
    result = world.cli(
        "mgr01", "edit", household, "--set", "customers.0.name=新名字", "-r", "renamed 新名字", "-a", "gm01"
    )
    assert_refused(result, 2, "a customer's name")
    assert no_secrets_in(result.stderr) == []
    assert_unchanged(world, before)


# ------------------------------------------------------------------ 8. sealed blocks padded to a size bucket

SMALL_RECORD = """\
building: B03
floor: 3
unit: "0301"
category: special
occupancy: vacant
customers:
  - {role: owner, name: 王五}
"""


def test_sealed_blocks_do_not_tell_how_much_personal_data_a_household_has(world: World):  # P9
    full = world.add()
    small = world.add(text=SMALL_RECORD)
    blocks = [yamlio.load_file(record_path(world, n, u))["sealed"] for n, u in ((full, "1203"), (small, "0301"))]
    # age's header carries a random-length "grease" stanza, so the armored text varies by a few lines whatever
    # it holds; the encrypted payload after the header is what grows with the data.
    assert payload_length(blocks[0]) == payload_length(blocks[1]) == 16 + 512 + 16  # nonce, one chunk, its tag
    for number, block in zip((full, small), blocks, strict=True):
        assert len(pyrage.decrypt(block.encode(), [record_key(world, number)])) == records.SEALED_BUCKET


def payload_length(armored: str) -> int:
    """Bytes after an age file's header (which ends with the line starting ---)."""
    body = base64.b64decode("".join(armored.strip().splitlines()[1:-1]))
    header_end = body.index(b"\n---")
    return len(body) - (body.index(b"\n", header_end + 1) + 1)


def test_a_block_sealed_before_padding_still_opens(world: World, household: str):  # P16: old archives stay readable
    path = record_path(world, household)
    stored = yamlio.load_file(path)
    key = record_key(world, household)
    padded = pyrage.decrypt(stored["sealed"].encode(), [key])
    unpadded = padded[: padded.index(b"# padding")]
    stored["sealed"] = pyrage.encrypt(unpadded, [key.to_public()], armored=True).decode()
    path.write_text(yamlio.dumps(stored))
    commit_by_hand(world, "a record sealed by an older archivectl")
    shown = json.loads(world.ok("but01", "show", household, "--reveal", "-r", "check", "--format", "json"))
    assert shown["customers"][0]["phone"] == OWNER_PHONE
    world.ok("mgr01", "edit", household, "--set", "floor=14", "-r", "floor renumbered", "-a", "gm01")
    assert yamlio.load_file(path)["sealed"] == stored["sealed"]  # unchanged personal data keeps its block


def test_padding_is_a_comment_the_parser_skips():
    for text in ("a: 1\n", "notes: |+\n  x\n\n...\n", "x" * 600):
        data = records.padded(text)
        assert len(data) % records.SEALED_BUCKET == 0
        assert yamlio.loads(data) == yamlio.loads(text if text.endswith("\n") else text + "\n")
