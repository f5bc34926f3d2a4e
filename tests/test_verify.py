"""verify on a pull-request range: server (bare) repository, a clone, a branch (P7, P10, P12)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import World, as_built, process_env


class Clone:
    """A staff member's clone of the server repository, on a review branch."""

    def __init__(self, world: World, path: Path):
        self.world, self.path = world, path

    def git(self, *args: str, who: str = "but01", env: dict | None = None) -> str:
        full = {**process_env(self.world.people[who]), **(env or {})}
        return subprocess.run(
            ["git", "-C", str(self.path), *args], check=True, capture_output=True, text=True, env=full
        ).stdout

    def cli(self, who: str, *args: str):
        return self.world.cli(
            who, "--archive", str(self.path), *args, env={"ARCHIVECTL_KEYSTORE": str(self.world.keys)}
        )

    def commit_by_hand(self, who: str | None, message: str, sign: bool = True, **env: str) -> None:
        args = ["commit", "-q", "--no-verify", "-m", message]
        if sign:
            args = ["-c", f"user.signingkey={self.world.people[who].key}", "-c", "gpg.format=ssh", *args, "-S"]
        self.git(*args, who=who or "but01", env=env)

    def verify(self, *extra: str) -> tuple[int, dict]:
        result = self.world.cli(
            "aud01", "--archive", str(self.path), "verify", "--range", "origin/main..HEAD", "--format", "json", *extra
        )
        return result.exit_code, json.loads(result.stdout)


@pytest.fixture
def clone(world: World, tmp_path: Path) -> Clone:
    as_built(world, "verify-clone", lambda: review_clone(world, tmp_path))
    return Clone(world, tmp_path / "clone")


def review_clone(world: World, tmp_path: Path) -> None:
    """An approved household on the server, and a clone of it on branch `change` with the hooks."""
    world.add()
    world.approve("mgr01")
    server = tmp_path / "server.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(world.root), str(server)], check=True)
    path = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(server), str(path)], check=True)
    c = Clone(world, path)
    c.git("checkout", "-q", "-b", "change")
    result = c.cli("but01", "install-hooks")
    assert result.exit_code == 0, result


def rules(report: dict) -> set[tuple[str, str]]:
    return {(f["commit"][:7], f["rule"]) for f in report["findings"]}


def test_a_clean_pull_request_verifies(clone: Clone):
    edited = clone.cli(
        "but01",
        "edit",
        f"HO-{_year()}-00001",
        "--set",
        "occupancy=rented",
        "--reason",
        "let out",
        "--approver",
        "mgr01",
    )
    assert edited.exit_code == 0, edited
    clone.cli("but01", "show", f"HO-{_year()}-00001", "--reveal", "--reason", "tenant check")
    approved = clone.cli("mgr01", "approve", "--yes", "--reason", "tenant confirmed")
    assert approved.exit_code == 0, approved
    code, report = clone.verify()
    assert code == 0, report
    assert report == {"range": "origin/main..HEAD", "commits": 3, "ok": True, "findings": [], "pending": []}
    whole = clone.world.cli("aud01", "--archive", str(clone.path), "verify")
    assert whole.exit_code == 0, whole


def _year() -> str:
    import datetime as dt

    return str(dt.date.today().year)


def record_path(clone: Clone) -> Path:
    return clone.path / f"households/B03/1203/HO-{_year()}-00001/record.yaml"


def head(clone: Clone) -> str:
    return clone.git("rev-parse", "--short=7", "HEAD").strip()


def test_unsigned_hand_edit_is_flagged(clone: Clone):
    path = record_path(clone)
    path.write_text(path.read_text().replace("occupancy: owner-occupied", "occupancy: rented"))
    clone.git("add", "-A")
    clone.commit_by_hand(None, "hand edit", sign=False)
    code, report = clone.verify()
    assert code == 1
    assert (head(clone), "signature") in rules(report)
    assert any(f["message"] == "commit is not signed" for f in report["findings"])


def test_commit_signed_by_a_key_not_on_staff_is_flagged(clone: Clone):
    (clone.path / "registers").mkdir(exist_ok=True)
    (clone.path / "registers/numbers.yaml").write_text("HO-2026: 99\n")
    clone.git("add", "-A")
    clone.commit_by_hand("outsider", "tamper\n\nReason: x\nApproved-by: mgr01\nActed-by: outsider")
    code, report = clone.verify()
    assert code == 1
    assert any(f["rule"] == "signature" and "does not list" in f["message"] for f in report["findings"])


def test_key_added_to_staff_by_the_same_commit_cannot_vouch_for_itself(clone: Clone):
    staff = clone.path / "staff.yaml"
    staff.write_text(
        staff.read_text() + f"  - id: evil\n    name: x\n    role: manager\n    key: "
        f"{clone.world.people['outsider'].pub}\n    active: true\n"
    )
    clone.git("add", "-A")
    clone.commit_by_hand("outsider", "add myself\n\nReason: x\nApproved-by: mgr01\nActed-by: evil")
    code, report = clone.verify()
    assert code == 1
    assert (head(clone), "signature") in rules(report)


def test_missing_reason_and_approver_are_flagged(clone: Clone):
    path = record_path(clone)
    path.write_text(path.read_text().replace("occupancy: owner-occupied", "occupancy: rented"))
    clone.git("add", "-A")
    clone.commit_by_hand("but01", f"edit\n\nAction: edit\nActed-by: but01\nArchive-No: HO-{_year()}-00001")
    code, report = clone.verify()
    assert code == 1
    messages = {f["message"] for f in report["findings"]}
    assert "Reason trailer is missing" in messages
    assert "Approved-by trailer is missing" in messages


@pytest.mark.parametrize(("approver", "words"), [("but02", "but02 is a butler"), ("mgr01", "cannot approve their own")])
def test_unentitled_approver_is_flagged(clone: Clone, approver: str, words: str):
    path = record_path(clone)
    path.write_text(path.read_text().replace("occupancy: owner-occupied", "occupancy: rented"))
    clone.git("add", "-A")
    clone.commit_by_hand(
        "mgr01",
        f"edit\n\nAction: edit\nReason: r\nApproved-by: {approver}\nArchive-No: HO-{_year()}-00001\nActed-by: mgr01",
    )
    code, report = clone.verify()
    assert code == 1
    assert any(f["rule"] == "approver" and words in f["message"] for f in report["findings"])


def test_signer_must_be_the_acted_by_staff_member(clone: Clone):
    path = record_path(clone)
    path.write_text(path.read_text().replace("occupancy: owner-occupied", "occupancy: rented"))
    clone.git("add", "-A")
    clone.commit_by_hand(
        "but01", f"edit\n\nReason: r\nApproved-by: mgr01\nArchive-No: HO-{_year()}-00001\nActed-by: cas01"
    )
    code, report = clone.verify()
    assert code == 1
    assert any(
        f["rule"] == "signer" and "signed by but01 but Acted-by says cas01" == f["message"] for f in report["findings"]
    )


def test_phone_number_pasted_in_clear_is_flagged(clone: Clone):  # P9
    path = record_path(clone)
    path.write_text(
        path.read_text().replace("occupancy: owner-occupied", "occupancy: owner-occupied\nnotes: 13812345678")
    )
    clone.git("add", "-A")
    clone.commit_by_hand(
        "but01", f"note\n\nReason: r\nApproved-by: mgr01\nArchive-No: HO-{_year()}-00001\nActed-by: but01"
    )
    code, report = clone.verify()
    assert code == 1
    found = {(f["rule"], f["message"]) for f in report["findings"]}
    assert ("personal-data", f"households/B03/1203/HO-{_year()}-00001/record.yaml: a phone number in clear") in found
    assert any(r == "record" and "notes: personal field must not be stored in clear" in m for r, m in found)
    assert "13812345678" not in json.dumps(report)


def test_commit_dated_before_its_parent_is_flagged(clone: Clone):
    path = record_path(clone)
    path.write_text(path.read_text().replace("occupancy: owner-occupied", "occupancy: vacant"))
    clone.git("add", "-A")
    clone.commit_by_hand(
        "but01",
        f"edit\n\nReason: r\nApproved-by: mgr01\nArchive-No: HO-{_year()}-00001\nActed-by: but01",
        GIT_COMMITTER_DATE="2001-01-01T00:00:00+00:00",
    )
    code, report = clone.verify()
    assert code == 1
    assert any(f["rule"] == "dates" and "before its parent" in f["message"] for f in report["findings"])


def test_rewriting_a_register_is_flagged(clone: Clone):
    clone.cli("but01", "show", f"HO-{_year()}-00001", "--reveal", "--reason", "look")
    register = next((clone.path / "registers/access").rglob("*.yaml"))
    register.write_text(register.read_text().replace("look", "nothing to see"))
    clone.git("add", "-A")
    clone.commit_by_hand("but01", "tidy\n\nAction: reveal\nReason: r\nActed-by: but01")
    code, report = clone.verify()
    assert code == 1
    assert any(f["rule"] == "register" and "written once" in f["message"] for f in report["findings"])


def test_a_file_outside_the_layout_is_flagged(clone: Clone):
    (clone.path / "notes.txt").write_text("hello")
    clone.git("add", "-A")
    clone.commit_by_hand("but01", "notes\n\nReason: r\nApproved-by: mgr01\nActed-by: but01")
    code, report = clone.verify()
    assert code == 1
    assert ("layout", "notes.txt: outside archivectl's layout") in {
        (f["rule"], f["message"]) for f in report["findings"]
    }


def test_verify_table_output_names_commit_and_rule(clone: Clone):
    (clone.path / "notes.txt").write_text("hello")
    clone.git("add", "-A")
    clone.commit_by_hand(None, "unsigned", sign=False)
    result = clone.world.cli("aud01", "--archive", str(clone.path), "verify", "--range", "origin/main..HEAD")
    assert result.exit_code == 1
    assert head(clone) in result.stdout and "signature" in result.stdout


def test_verify_rejects_an_option_smuggled_as_a_range(clone: Clone):
    result = clone.world.cli("aud01", "--archive", str(clone.path), "verify", "--range", "--output=/tmp/x")
    assert result.exit_code == 2


def test_hooks_refuse_a_hand_commit_without_trailers(clone: Clone):
    (clone.path / "registers").mkdir(exist_ok=True)
    (clone.path / "registers/numbers.yaml").write_text("x: 1\n")
    clone.git("add", "-A")
    proc = subprocess.run(
        ["git", "-C", str(clone.path), "commit", "-q", "-m", "hand"],
        capture_output=True,
        text=True,
        env=process_env(clone.world.people["but01"]),
    )
    assert proc.returncode != 0
    assert "archivectl commands" in proc.stderr


def test_codeowners_per_building(world: World):  # P7
    world.ok("mgr02", "staff", "edit", "mgr01", "--handle", "li-jingli", "--reason", "git host", "--approver", "gm01")
    world.ok("mgr02", "staff", "edit", "but01", "--handle", "ding", "--reason", "git host", "--approver", "gm01")
    out = world.ok("aud01", "codeowners")
    assert "* @li-jingli" in out
    assert "/households/B03/ @ding @li-jingli" in out
    assert "/households/B05/ @li-jingli" in out


def test_swapping_a_records_recipient_is_flagged(clone: Clone):
    """Scans would be encrypted to the swapped key: only a rotation may change it."""
    import pyrage

    path = record_path(clone)
    text = path.read_text()
    old = next(line for line in text.splitlines() if line.startswith("recipient: "))
    path.write_text(text.replace(old, f"recipient: {pyrage.x25519.Identity.generate().to_public()}"))
    clone.git("add", "-A")
    clone.commit_by_hand(
        "but01",
        f"edit\n\nAction: edit\nReason: r\nApproved-by: mgr01\nArchive-No: HO-{_year()}-00001\nActed-by: but01",
    )
    code, report = clone.verify()
    assert code == 1
    assert any(f["rule"] == "record" and "changes recipient" in f["message"] for f in report["findings"])


def test_every_archivectl_command_makes_commits_that_verify(world: World):  # P10, P12
    import datetime as dt

    from conftest import RECORD, make_person

    today = dt.date.today()
    ahead = today + dt.timedelta(days=7)  # still ahead when a run crosses midnight
    first = world.add()
    world.ok("but01", "edit", first, "--set", "occupancy=rented", "-r", "let", "-a", "mgr01")
    scan = world.tmp / "c.pdf"
    scan.write_bytes(b"contract")
    world.ok("clk01", "attach", first, str(scan), "--type", "lease-copy", "-r", "scan", "-a", "mgr01")
    world.ok("but01", "show", first, "--reveal", "-r", "check")
    world.ok("but01", "open", first, "lease-copy", "-o", str(world.tmp / "o.pdf"), "-r", "check")
    world.ok("but01", "export", first, "-o", str(world.tmp / "e.zip"), "-r", "customer asked", "-a", "mgr01")
    world.ok("clk01", "lend", first, "--to", "but01", "--due", ahead.isoformat(), "-r", "visit", "-a", "mgr01")
    world.ok("but01", "return", first)
    world.ok("mgr01", "grant", "but02", "--building", "B03", "--until", ahead.isoformat(), "-r", "cover", "-a", "gm01")
    newbie = make_person(world.tmp / "p", "cas02")
    world.ok(
        "mgr01",
        "staff",
        "add",
        "cas02",
        "--name",
        "新",
        "--role",
        "cashier",
        "--buildings",
        "B03",
        "--key",
        newbie.pub,
        "-r",
        "hired",
        "-a",
        "gm01",
    )
    world.ok("mgr01", "staff", "edit", "cas02", "--handle", "xin", "-r", "git host", "-a", "gm01")
    world.ok("mgr01", "staff", "deactivate", "cas01", "-r", "left", "-a", "gm01")
    world.ok("mgr01", "recipients", "sync")  # keys follow main: no commit
    world.ok("mgr01", "recipients", "sync", "--rotate", "-r", "laptop lost", "-a", "gm01")
    second = world.add(text=RECORD.replace('unit: "1203"', 'unit: "1204"'))
    world.ok("but01", "review", second, "-r", "annual", "-a", "mgr01")
    world.ok("but01", "move-out", second, "--date", today.isoformat(), "-r", "sold", "-a", "mgr01")
    world.ok("but01", "tombstone", second, "-r", "duplicate", "-a", "mgr01")
    world.ok("but01", "restore", second, "-r", "not a duplicate", "-a", "mgr02")
    csv_file = world.tmp / "h.csv"
    csv_file.write_text("building,floor,unit,category\nB05,1,0101,special\n")
    world.ok("clk01", "import", str(csv_file), "-r", "batch", "-a", "mgr01")
    world.approve("mgr01", "mgr02", "gm01")
    world.ok("gm01", "recipients", "sync")  # the staff changes are approved: keys follow
    shredded = json.loads(world.ok("aud01", "keys", "shred", "--format", "json"))  # the rotation's old key
    assert [(r["archive_no"], r["shredded"]) for r in shredded] == [(first, True)], shredded
    result = world.cli("aud01", "verify", "--format", "json")
    assert result.exit_code == 0, result.stdout
    report = json.loads(result.stdout)
    assert report["ok"] and report["commits"] == 24  # init, twenty writes, three approvals


def test_a_phone_number_in_a_commit_message_is_flagged(clone: Clone):  # P9
    from conftest import OWNER_PHONE

    clone.cli("but01", "show", f"HO-{_year()}-00001", "--reveal", "--reason", "look")
    clone.git("reset", "-q", "--soft", "HEAD~1")
    clone.commit_by_hand(
        "but01",
        f"register reveal for {OWNER_PHONE}\n\nAction: reveal\nReason: called {OWNER_PHONE}\n"
        f"Archive-No: HO-{_year()}-00001\nActed-by: but01",
    )
    code, report = clone.verify()
    assert code == 1
    messages = [(f["rule"], f["message"]) for f in report["findings"]]
    assert messages.count(("personal-data", "the commit message holds a phone number")) == 1
    assert OWNER_PHONE not in json.dumps(report)
    history = clone.world.cli("aud01", "--archive", str(clone.path), "history", f"HO-{_year()}-00001")
    assert history.exit_code == 0 and OWNER_PHONE not in history.stdout and "withheld" in history.stdout


def test_an_edit_that_breaks_the_schema_after_valid_versions_is_flagged(clone: Clone):
    """verify checks only the fields that changed since a version it found valid: a broken field is still found."""
    edited = clone.cli("but01", "edit", f"HO-{_year()}-00001", "--set", "occupancy=rented", "-r", "let", "-a", "mgr01")
    assert edited.exit_code == 0, edited
    path = record_path(clone)
    text = path.read_text()
    floor = next(line for line in text.splitlines() if line.startswith("floor: "))
    path.write_text(text.replace(floor, "floor: high") + "colour: red\n")
    clone.git("add", "-A")
    clone.commit_by_hand(
        "but01",
        f"edit\n\nAction: edit\nReason: r\nApproved-by: mgr01\nArchive-No: HO-{_year()}-00001\nActed-by: but01",
    )
    broken = head(clone)
    whole = clone.world.cli("aud01", "--archive", str(clone.path), "verify", "--format", "json")
    assert whole.exit_code == 1
    found = {(f["commit"][:7], f["rule"], f["message"]) for f in json.loads(whole.stdout)["findings"]}
    relpath = path.relative_to(clone.path)
    assert (broken, "record", f"{relpath}: floor: must be of type integer") in found
    assert (broken, "record", f"{relpath}: colour: unknown field") in found
    code, report = clone.verify()  # the range: the version before it was not checked in this run
    assert code == 1
    assert ("record", f"{relpath}: floor: must be of type integer") in {
        (f["rule"], f["message"]) for f in report["findings"]
    }


def test_validating_only_changed_fields_gives_the_full_answer(world: World):
    """HouseholdSchema.validate_stored(record, valid_before): the same problems as validating everything."""
    from archivectl import records
    from archivectl.archive import Archive

    number = world.add()
    path = next(world.root.glob(f"households/*/*/{number}/record.yaml"))
    valid = records.load_stored(path.read_bytes(), "record.yaml")
    schema = Archive(world.root).household_schema
    assert schema.validate_stored(valid) == []
    changes = {
        "floor a word": {"floor": "high"},
        "floor a bool": {"floor": True},  # == 1 in Python, not an integer to JSON Schema
        "floor a fraction": {"floor": valid["floor"] + 0.5},
        "unknown field": {"colour": "red"},
        "unknown field, null": {"colour": None},
        "personal field in clear": {"notes": "called at 9"},
        "nested date broken": {"renovation": {"started": "yesterday"}},
        "category not in enum": {"category": "palace"},
    }
    for name, change in changes.items():
        record = {**valid, **change}
        full = schema.validate_stored(record)
        assert full, name  # each change really breaks the record
        assert schema.validate_stored(record, valid_before=valid) == full, name
    for field in ("unit", "recipient"):  # a required field removed
        record = {k: v for k, v in valid.items() if k != field}
        assert schema.validate_stored(record, valid_before=valid) == schema.validate_stored(record) != [], field
