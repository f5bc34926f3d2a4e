"""show (masked), show --reveal (registered look-up), list, history."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys

import pytest
from conftest import OWNER_NAME, OWNER_PHONE, World, assert_refused, assert_unchanged, no_secrets_in, process_env

from archivectl import registers, yamlio


def test_show_is_masked_for_a_reader(world: World, household: str):
    out = json.loads(world.ok("but01", "show", household, "--format", "json"))
    owner = out["customers"][0]
    assert owner["name"] == OWNER_NAME[0] + "***"
    assert owner["phone"] == "138****5678"
    assert owner["id_number"] == "1101**********0011"
    assert owner["role"] == "owner"
    assert out["vehicles"][0] == {"plate": "京A***5", "parking_space": "P2-045"}
    assert no_secrets_in(json.dumps(out, ensure_ascii=False)) == []


def test_show_without_a_reader_key_shows_sealed_placeholders(world: World, household: str):  # P7
    out = json.loads(world.ok("but02", "show", household, "--format", "json"))
    assert out["customers"] == "(sealed)"
    assert out["building"] == "B03"
    assert no_secrets_in(json.dumps(out, ensure_ascii=False)) == []


def test_a_masked_show_reads_mains_judged_state_from_its_memo_without_the_judges_checks(world: World, household: str):
    world.ok("but01", "show", household)  # judges main's schema and staff once, and keeps the answer
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "archivectl", "--archive", str(world.root), "show", household],
        capture_output=True, text=True, env=process_env(world.people["but01"]), cwd=world.tmp, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "138****5678" in result.stdout  # masked as main's approved schema says
    loaded = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert "archivectl.judge.state" in loaded
    assert not {m for m in loaded if m.startswith(("archivectl.judge.checks", "archivectl.judge.history"))}


def test_show_does_not_commit(world: World, household: str):
    head = world.git("rev-parse", "HEAD")
    world.ok("but01", "show", household)
    assert world.git("rev-parse", "HEAD") == head


def test_reveal_prints_clear_data_and_registers_the_look_up(world: World, household: str):  # P8
    out = yamlio.loads(world.ok("cas01", "show", household, "--reveal", "--reason", "fee dispute", "--format", "yaml"))
    assert out["customers"][0]["name"] == OWNER_NAME
    assert out["customers"][0]["phone"] == OWNER_PHONE
    assert world.signature_status() == "G"
    assert world.trailers() == {
        "Action": "reveal",
        "Reason": "fee dispute",
        "Archive-No": household,
        "Acted-by": "cas01",
    }
    register = "".join(p.read_text() for p in (world.root / "registers/access").rglob("*.yaml"))
    entry = registers.entries(world.root, "access")[-1]
    assert entry["who"] == "cas01" and entry["archive_no"] == household
    assert entry["action"] == "reveal" and entry["reason"] == "fee dispute" and entry["when"]
    assert no_secrets_in(register) == []


def test_reveal_output_round_trips_into_add_file(world: World, household: str):
    text = world.ok("but01", "show", household, "--reveal", "--reason", "copy", "--format", "yaml")
    record = yamlio.loads(text)
    for managed in ("archive_no", "status"):
        record.pop(managed)
    record["unit"] = "1205"
    (world.tmp / "copy.yaml").write_text(yamlio.dumps(record))
    second = world.ok(
        "clk01", "add", "--file", str(world.tmp / "copy.yaml"), "--reason", "r", "--approver", "mgr01"
    ).strip()
    again = yamlio.loads(world.ok("but01", "show", second, "--reveal", "--reason", "r", "--format", "yaml"))
    assert {k: v for k, v in again.items() if k not in ("archive_no", "unit")} == {
        k: v for k, v in yamlio.loads(text).items() if k not in ("archive_no", "unit")
    }


@pytest.mark.parametrize("who", ["but02", "clk01", "aud01"])
def test_non_readers_cannot_reveal(world: World, household: str, who: str):  # P7
    before = world.snapshot()
    result = world.cli(who, "show", household, "--reveal", "--reason", "curious")
    assert_refused(result, 1, "not a reader of building B03")
    assert no_secrets_in(result.stdout + result.stderr) == []
    assert_unchanged(world, before)


def test_reveal_needs_a_reason(world: World, household: str):  # P8
    before = world.snapshot()
    assert_refused(world.cli("but01", "show", household, "--reveal"), 2, "--reason")
    assert_unchanged(world, before)


def test_reveal_with_wrong_identity_is_refused_without_registering(world: World, household: str):
    before = world.snapshot()
    result = world.cli(
        "but01", "show", household, "--reveal", "--reason", "r", "--identity", str(world.people["but02"].key)
    )
    assert_refused(result, 1, "not one of this household's readers")
    assert_unchanged(world, before)


def test_reveal_with_missing_identity_file(world: World, household: str):
    before = world.snapshot()
    result = world.cli("but01", "show", household, "--reveal", "--reason", "r", "--identity", "/nonexistent/key")
    assert_refused(result, 1, "does not exist")
    assert_unchanged(world, before)


def test_list_filters_and_formats(world: World, household: str):
    world.add(text=(world.tmp / "new-record.yaml").read_text().replace("B03", "B05"))
    rows = json.loads(world.ok("aud01", "list", "--format", "json"))
    assert [r["building"] for r in rows] == ["B03", "B05"]
    assert json.loads(world.ok("aud01", "list", "--building", "B05", "--format", "json"))[0]["building"] == "B05"
    parsed = list(csv.DictReader(io.StringIO(world.ok("aud01", "list", "--format", "csv"))))
    assert parsed[0]["archive_no"] == household
    md = world.ok("aud01", "list", "--format", "markdown")
    assert md.splitlines()[0].startswith("| archive_no |")
    assert json.loads(world.ok("aud01", "list", "--status", "tombstoned", "--format", "json")) == []
    assert_refused(world.cli("aud01", "list", "--status", "gone"), 2, "--status")
    # the choices are the schema's own enum, not a copy in the CLI
    refused = world.cli("aud01", "list", "--category", "shop")
    assert_refused(refused, 2, "--category must be one of handed-over, not-handed-over, special")


def test_history_shows_each_change_with_reason_and_approver(world: World, household: str):  # P12
    world.ok("but01", "edit", household, "--set", "occupancy=rented", "--reason", "let out", "--approver", "mgr02")
    world.ok("but01", "show", household, "--reveal", "--reason", "tenant check")
    rows = json.loads(world.ok("aud01", "history", household, "--format", "json"))
    assert [(r["acted_by"], r["approved_by"], r["reason"]) for r in rows] == [
        ("clk01", "mgr01", "new customer"),
        ("but01", "mgr02", "let out"),
        ("but01", "", "tenant check"),
    ]
    assert no_secrets_in(json.dumps(rows, ensure_ascii=False)) == []


def test_a_passphrase_protected_identity_opens_with_its_passphrase(world: World, household: str):

    protected = protected_copy(world, "but01", "correct horse")
    before = world.snapshot()
    wrong = world.cli(
        "but01",
        "show",
        household,
        "--reveal",
        "-r",
        "r",
        "--identity",
        str(protected),
        env={"ARCHIVECTL_KEY_PASSPHRASE": "battery staple"},
    )
    assert_refused(wrong, 1, "wrong passphrase")
    assert_unchanged(world, before)
    right = world.cli(
        "but01",
        "show",
        household,
        "--reveal",
        "-r",
        "r",
        "--identity",
        str(protected),
        "--format",
        "json",
        env={"ARCHIVECTL_KEY_PASSPHRASE": "correct horse"},
    )
    assert right.exit_code == 0, right
    assert json.loads(right.stdout)["customers"][0]["phone"] == OWNER_PHONE


def test_the_passphrase_is_asked_on_the_terminal(world: World, household: str):
    import sys

    from conftest import on_terminal, process_env

    protected = protected_copy(world, "but01", "correct horse")
    argv = [sys.executable, "-m", "archivectl", "--archive", str(world.root), "show", household, "--reveal"]
    argv += ["-r", "desk", "--identity", str(protected), "--format", "json"]
    code, seen = on_terminal(argv, process_env(world.people["but01"]), b"Passphrase for", b"correct horse\n")
    assert code == 0, seen
    assert b"Passphrase for" in seen and OWNER_PHONE.encode() in seen


def protected_copy(world: World, who: str, passphrase: str):
    """A copy of someone's private key, protected with a passphrase (ssh-keygen -p)."""
    import shutil
    import subprocess

    protected = world.tmp / f"{who}-protected"
    shutil.copyfile(world.people[who].key, protected)
    protected.chmod(0o600)
    subprocess.run(["ssh-keygen", "-q", "-p", "-P", "", "-N", passphrase, "-f", str(protected)], check=True)
    return protected


def test_history_fits_a_terminal_and_json_keeps_full_times(world: World, household: str):
    table = world.ok("aud01", "history", household, env={"COLUMNS": "80"})  # 16: an 80-column terminal
    assert max(len(line) for line in table.splitlines()) <= 80
    assert re.search(r"20[0-9]{2}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2} ", table)  # the time never wraps
    commits = re.findall(r"│ [0-9a-f]{10} │", table)
    assert commits and len(commits) == len(re.findall(r"20[0-9]{2}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}", table))
    assert "+00:" not in table and "T" not in re.findall(r"20[0-9]{2}-[0-9]{2}-[0-9]{2}.", table)[0]
    rows = json.loads(world.ok("aud01", "history", household, "--format", "json"))
    assert re.fullmatch(r"20[0-9]{2}-[0-9]{2}-[0-9]{2}T[0-9:]{8}[+-][0-9]{2}:[0-9]{2}", rows[0]["date"])


def test_a_format_a_command_cannot_render_is_refused(world: World, household: str):
    before = world.snapshot()
    assert_refused(world.cli("aud01", "list", "--format", "html"), 2, "--format html is not available")
    assert_refused(world.cli("aud01", "history", household, "--format", "html"), 2, "not available")
    assert_unchanged(world, before)
