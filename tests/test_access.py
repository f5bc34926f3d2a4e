"""Attachments, open, export, readers after staff changes, grants, lending, readable diffs (P5-P10, P17)."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import zipfile

import pyrage
import pytest
from conftest import (
    OWNER_NAME,
    OWNER_PHONE,
    World,
    assert_refused,
    assert_unchanged,
    make_person,
    no_secrets_in,
    process_env,
)

from archivectl import registers, yamlio


def scan(world: World, name: str, content: bytes) -> str:
    path = world.tmp / name
    path.write_bytes(content)
    return str(path)


def attach(world: World, number: str, name: str, content: bytes, doc_type: str, date: str, who: str = "clk01"):
    return world.ok(
        who,
        "attach",
        number,
        scan(world, name, content),
        "--type",
        doc_type,
        "--date",
        date,
        "--reason",
        "scanned at front desk",
        "--approver",
        "mgr01",
    )


def record(world: World, number: str) -> dict:
    return yamlio.load_file(world.root / f"households/B03/1203/{number}/record.yaml")


def record_key(world: World, number: str, reader: str = "but01"):
    identity = pyrage.ssh.Identity.from_buffer(world.people[reader].key.read_bytes())
    text = pyrage.decrypt(world.key_file(number).read_bytes(), [identity]).decode()
    return pyrage.x25519.Identity.from_str(text.splitlines()[-1])


def test_attach_encrypts_to_the_record_key_and_lists_newest_first(world: World, household: str):  # P5, P6
    attach(
        world,
        household,
        "contract.pdf",
        b"%PDF contract v1 " + OWNER_PHONE.encode(),
        "purchase-contract-copy",
        "2024-02-20",
    )
    assert world.signature_status() == "G"
    assert world.trailers()["Archive-No"] == household and world.trailers()["Approved-by"] == "mgr01"
    attach(world, household, "card.jpg", b"JPEG card", "resident-info-card", "2024-03-01")
    attach(world, household, "contract-fixed.PDF", b"%PDF contract v2", "purchase-contract-copy", "2024-02-20")
    docs = record(world, household)["documents"]
    assert [(d["type"], d["date"], d["version"]) for d in docs] == [
        ("resident-info-card", "2024-03-01", 1),
        ("purchase-contract-copy", "2024-02-20", 2),
        ("purchase-contract-copy", "2024-02-20", 1),
    ]
    assert docs[1]["file"] == "attachments/purchase-contract-copy-2024-02-20-2.pdf.age"
    home = world.root / f"households/B03/1203/{household}"
    v1 = (home / "attachments/purchase-contract-copy-2024-02-20-1.pdf.age").read_bytes()
    assert pyrage.decrypt(v1, [record_key(world, household)]).startswith(b"%PDF contract v1")  # original kept
    assert no_secrets_in(world.all_git_objects()) == []


def test_a_scan_of_many_chunks_is_committed_as_sealed_without_being_read_again(world: World, household: str):  # P6
    # attach seals the scan a chunk at a time and stores the git blob in the same pass (issue 30):
    # git holds exactly the work tree's file, finds nothing changed, and the store passes git fsck.
    content = os.urandom(5 * 64 * 1024 + 123)
    attach(world, household, "deed.pdf", content, "purchase-contract-copy", "2024-02-20")
    name = f"households/B03/1203/{household}/attachments/purchase-contract-copy-2024-02-20-1.pdf.age"
    committed = subprocess.run(
        ["git", "-C", str(world.root), "cat-file", "blob", f"HEAD:{name}"], capture_output=True, check=True
    ).stdout
    assert committed == (world.root / name).read_bytes()
    assert pyrage.decrypt(committed, [record_key(world, household)]) == content
    assert world.git("status", "--porcelain", "--untracked-files=all") == ""
    assert world.git("ls-files", "--stage", "--", name).split()[1] == world.git("rev-parse", f"HEAD:{name}").strip()
    world.git("fsck", "--full", "--strict")
    assert no_secrets_in(world.all_git_objects()) == []
    assert world.signature_status() == "G"
    world.approve("mgr01")  # the attach asked mgr01: once approved, the history verifies
    world.ok("gm01", "verify")


@pytest.mark.parametrize("where", ["--archive relative to here", "inside a subfolder"])
def test_a_scan_is_stored_wherever_the_archive_is_named_from(world: World, household: str, where: str):  # P6
    # The blob goes straight into the object store (gitio.LooseBlob): its folder, as git names it relative to
    # where it was asked, must be found again from an archive named relatively or from a subfolder.
    content = os.urandom(3 * 64 * 1024)
    scan = world.tmp / "deed.pdf"
    scan.write_bytes(content)
    args = ["attach", household, str(scan), "--type", "other", "--reason", "scan", "--approver", "mgr01"]
    if where.startswith("--archive"):
        cwd, args = world.root.parent, ["--archive", world.root.name, *args]
    else:
        cwd = world.root / "households" / "B03"
    done = subprocess.run(
        [sys.executable, "-m", "archivectl", *args], cwd=cwd, env=process_env(world.people["clk01"]),
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    name = f"households/B03/1203/{household}/attachments/other-{dt.date.today().isoformat()}-1.pdf.age"
    assert pyrage.decrypt((world.root / name).read_bytes(), [record_key(world, household)]) == content
    assert world.git("status", "--porcelain", "--untracked-files=all") == ""
    world.git("fsck", "--full", "--strict")


def test_a_clerk_who_cannot_read_may_still_attach(world: World, household: str):
    attach(world, household, "pledge.pdf", b"fire pledge", "fire-safety-pledge", "2024-03-01", who="clk01")
    assert record(world, household)["documents"][0]["type"] == "fire-safety-pledge"


@pytest.mark.parametrize(
    ("name", "args", "code", "words"),
    [
        ("x.pdf", ["--type", "love-letter"], 2, ["--type must be one of"]),
        ("x.pdf", ["--type", "other", "--date", "2024-13-01"], 2, ["--date"]),
        ("x.p;rm -rf", ["--type", "other"], 2, ["file extension"]),
        ("missing.pdf", ["--type", "other"], 2, ["no such file"]),
    ],
)
def test_refused_attach_changes_nothing(world: World, household: str, name, args, code, words):
    if name != "missing.pdf":
        scan(world, name, b"data")
    before = world.snapshot()
    result = world.cli(
        "clk01", "attach", household, str(world.tmp / name), *args, "--reason", "r", "--approver", "mgr01"
    )
    assert_refused(result, code, *words)
    assert_unchanged(world, before)


@pytest.mark.skipif(shutil.which("age") is None, reason="reference age CLI missing: apt-get install age")
def test_reference_age_opens_key_then_attachment(world: World, household: str, tmp_path):
    attach(world, household, "id.png", b"PNG owner id scan", "owner-id-copy", "2024-02-21")
    k = tmp_path / "k"
    subprocess.run(
        ["age", "-d", "-i", str(world.people["cas01"].key), "-o", str(k), str(world.key_file(household))],
        check=True,
    )
    scan_file = world.root / f"households/B03/1203/{household}/attachments/owner-id-copy-2024-02-21-1.png.age"
    plain = subprocess.run(["age", "-d", "-i", str(k), str(scan_file)], check=True, capture_output=True).stdout
    assert plain == b"PNG owner id scan"
    refused = subprocess.run(
        ["age", "-d", "-i", str(world.people["but02"].key), str(world.key_file(household))], capture_output=True
    )
    assert refused.returncode != 0


def test_open_decrypts_for_a_reader_and_registers_it(world: World, household: str):  # P8
    attach(world, household, "c1.pdf", b"first", "purchase-contract-copy", "2024-02-20")
    attach(world, household, "c2.pdf", b"second", "purchase-contract-copy", "2024-02-20")
    out = world.tmp / "out.pdf"
    result = world.cli(
        "but01", "open", household, "purchase-contract-copy", "--output", str(out), "--reason", "fee dispute"
    )
    assert result.exit_code == 0, result
    assert out.read_bytes() == b"second"  # a type means its latest version
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    assert world.trailers() == {
        "Action": "open",
        "Reason": "fee dispute",
        "Archive-No": household,
        "Acted-by": "but01",
    }
    entry = registers.entries(world.root, "access")[-1]
    assert entry["action"] == "open"
    assert entry["document"] == "attachments/purchase-contract-copy-2024-02-20-2.pdf.age"
    out2 = world.tmp / "v1.pdf"
    world.ok("mgr01", "open", household, "purchase-contract-copy-2024-02-20-1.pdf", "-o", str(out2), "-r", "audit")
    assert out2.read_bytes() == b"first"


def test_non_reader_cannot_open(world: World, household: str):  # P7
    attach(world, household, "c1.pdf", b"secret scan", "purchase-contract-copy", "2024-02-20")
    before = world.snapshot()
    out = world.tmp / "stolen.pdf"
    result = world.cli("but02", "open", household, "purchase-contract-copy", "--output", str(out), "--reason", "x")
    assert_refused(result, 1, "not a reader of building B03")
    assert not out.exists()
    assert_unchanged(world, before)


def test_export_gives_the_customer_their_data_and_registers_a_transfer(world: World, household: str):  # P17, P9
    attach(world, household, "c1.pdf", b"contract scan", "purchase-contract-copy", "2024-02-20")
    target = world.tmp / "export.zip"
    world.ok(
        "but01",
        "export",
        household,
        "--output",
        str(target),
        "--reason",
        "customer request 2026-11-24",
        "--approver",
        "mgr01",
    )
    with zipfile.ZipFile(target) as zf:
        data = json.loads(zf.read("record.json"))
        assert data["customers"][0]["name"] == OWNER_NAME
        assert zf.read("attachments/purchase-contract-copy-2024-02-20-1.pdf") == b"contract scan"
    assert world.trailers()["Approved-by"] == "mgr01"
    register = "".join(p.read_text() for p in (world.root / "registers/transfer").rglob("*.yaml"))
    entry = registers.entries(world.root, "transfer")[-1]
    assert entry["archive_no"] == household and entry["who"] == "but01" and entry["approved_by"] == "mgr01"
    assert no_secrets_in(register) == []


def test_export_refusals(world: World, household: str):
    before = world.snapshot()
    inside = world.root / "export.zip"
    assert_refused(
        world.cli("but01", "export", household, "-o", str(inside), "-r", "r", "-a", "mgr01"), 2, "inside the archive"
    )
    no_approver = world.cli("but01", "export", household, "-o", str(world.tmp / "e.zip"), "-r", "r")
    assert_refused(no_approver, 2, "--approver is required")  # usage, like a missing --reason (issue 29.9)
    assert_refused(
        world.cli("but02", "export", household, "-o", str(world.tmp / "e.zip"), "-r", "r", "-a", "mgr01"),
        1,
        "not a reader",
    )
    assert not (world.tmp / "e.zip").exists()
    assert_unchanged(world, before)


def key_opens(world: World, number: str, who: str) -> bool:
    identity = pyrage.ssh.Identity.from_buffer(world.people[who].key.read_bytes())
    try:
        pyrage.decrypt(world.key_file(number).read_bytes(), [identity])
        return True
    except pyrage.DecryptError:
        return False


def test_after_deactivation_and_sync_departed_key_opens_nothing_and_new_butler_can(world: World, household):
    assert key_opens(world, household, "but01")
    newbie = make_person(world.tmp / "p", "but03")
    world.people["but03"] = newbie
    world.ok(
        "mgr01",
        "staff",
        "add",
        "but03",
        "--name",
        "新",
        "--role",
        "butler",
        "--buildings",
        "B03",
        "--key",
        newbie.pub,
        "--reason",
        "replaces but01",
        "--approver",
        "gm01",
    )
    world.ok("mgr01", "staff", "deactivate", "but01", "--reason", "left", "--approver", "gm01")
    assert not key_opens(world, household, "but03")  # not until the keys are re-wrapped
    assert "0 record keys re-wrapped" in world.ok("mgr01", "recipients", "sync")  # awaiting the gm's approval
    assert not key_opens(world, household, "but03")
    world.approve("gm01")
    head = world.git("rev-parse", "HEAD")
    assert "1 record keys re-wrapped" in world.ok("mgr01", "recipients", "sync")
    assert world.git("rev-parse", "HEAD") == head  # keys follow main: nothing to commit
    assert "0 record keys re-wrapped, 1 already right" in world.ok("mgr01", "recipients", "sync")  # idempotent
    assert not key_opens(world, household, "but01")
    assert key_opens(world, household, "but03")
    assert key_opens(world, household, "cas01") and key_opens(world, household, "gm01")
    assert world.ok("but03", "show", household, "--reveal", "--reason", "hand-over of duties")


def test_rotate_re_keys_sealed_block_and_attachments(world: World, household: str):
    attach(world, household, "c1.pdf", b"contract scan", "purchase-contract-copy", "2024-02-20")
    old_key = record_key(world, household)
    old_record = record(world, household)
    world.ok("mgr01", "recipients", "sync", "--rotate", "--reason", "laptop lost", "--approver", "gm01")
    new_record = record(world, household)
    assert new_record["recipient"] != old_record["recipient"]
    with pytest.raises(pyrage.DecryptError):
        pyrage.decrypt(new_record["sealed"].encode(), [old_key])
    new_key = record_key(world, household)
    assert (
        yamlio.loads(pyrage.decrypt(new_record["sealed"].encode(), [new_key]))["customers"][0]["phone"] == OWNER_PHONE
    )
    scan_file = world.root / f"households/B03/1203/{household}/attachments/purchase-contract-copy-2024-02-20-1.pdf.age"
    assert pyrage.decrypt(scan_file.read_bytes(), [new_key]) == b"contract scan"
    world.approve("mgr01", "gm01")
    verified = world.cli("aud01", "verify")
    assert verified.exit_code == 0, verified


def test_sync_by_someone_who_cannot_read_everything_is_refused(world: World, household: str):
    before = world.snapshot()
    assert_refused(world.cli("but01", "recipients", "sync", "--reason", "r"), 2, "--reason/--approver go with --rotate")
    assert_unchanged(world, before)
    world.add(text=(world.tmp / "new-record.yaml").read_text().replace("B03", "B05"))
    world.ok(
        "mgr01",
        "staff",
        "add",
        "but03",
        "--name",
        "管家",
        "--role",
        "butler",
        "--buildings",
        "B03",
        "--key",
        world.people.setdefault("but03", make_person(world.tmp / "p", "but03")).pub,
        "--reason",
        "new butler",
        "--approver",
        "gm01",
    )
    world.ok("mgr01", "staff", "deactivate", "but02", "--reason", "left", "--approver", "gm01")
    world.approve("gm01")
    result = world.cli("but01", "recipients", "sync")  # B03's key re-wrapped; B05's cannot be opened by but01
    assert_refused(result, 1, "not one of this household's readers")
    assert key_opens(world, household, "but03")


def test_grant_gives_a_time_limited_read_that_gm_must_approve(world: World, household: str):  # P7
    tomorrow = (dt.date.today() + dt.timedelta(days=1)).isoformat()
    before = world.snapshot()
    assert_refused(
        world.cli("mgr01", "grant", "but02", "--building", "B03", "--until", tomorrow, "-r", "cover", "-a", "mgr02"),
        1,
        "approvals need a gm",
    )
    assert_unchanged(world, before)
    world.ok(
        "mgr01",
        "grant",
        "but02",
        "--building",
        "B03",
        "--until",
        tomorrow,
        "--reason",
        "covering for but01",
        "--approver",
        "gm01",
    )
    assert world.trailers()["Approved-by"] == "gm01"
    assert not key_opens(world, household, "but02")  # a grant gives a key only through recipients sync
    world.ok("gm01", "recipients", "sync")
    assert not key_opens(world, household, "but02")  # ... once the gm's signed approval is on main
    world.approve("gm01")
    world.ok("gm01", "recipients", "sync")
    assert key_opens(world, household, "but02")
    assert world.ok("but02", "show", household, "--reveal", "--reason", "covering")


@pytest.mark.skipif(shutil.which("faketime") is None, reason="faketime missing: apt-get install faketime")
def test_grant_expires_on_the_next_sync_after_its_date(world: World, household: str):  # P7
    today = dt.date.today().isoformat()
    world.ok(
        "mgr01", "grant", "but02", "--building", "B03", "--until", today, "--reason", "one day", "--approver", "gm01"
    )
    world.approve("gm01")
    world.ok("gm01", "recipients", "sync")
    assert key_opens(world, household, "but02")
    env = {
        **os.environ,
        "GIT_CONFIG_GLOBAL": str(world.people["mgr01"].gitconfig),
        "GIT_CONFIG_NOSYSTEM": "1",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }
    later = subprocess.run(
        [
            "faketime",
            "-f",
            "+2d",
            sys.executable,
            "-m",
            "archivectl",
            "--archive",
            str(world.root),
            "recipients",
            "sync",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert later.returncode == 0, later.stderr
    assert not key_opens(world, household, "but02")
    assert key_opens(world, household, "but01")


def test_lend_and_return_are_registered(world: World, household: str):  # P8
    due = (dt.date.today() + dt.timedelta(days=7)).isoformat()
    world.ok("clk01", "lend", household, "--to", "but01", "--due", due, "--reason", "home visit", "--approver", "mgr01")
    assert world.trailers()["Archive-No"] == household
    before = world.snapshot()
    assert_refused(
        world.cli("clk01", "lend", household, "--to", "but02", "--due", due, "-r", "r", "-a", "mgr01"),
        1,
        "already lent to but01",
    )
    assert_unchanged(world, before)
    world.ok("but01", "return", household, "--reason", "back in the cabinet")
    before = world.snapshot()
    assert_refused(world.cli("but01", "return", household), 1, "not lent out")
    assert_unchanged(world, before)
    entries = registers.entries(world.root, "lending")
    assert [(e["action"], e["archive_no"]) for e in entries] == [("lend", household), ("return", household)]
    assert entries[0]["due"] == due and entries[1]["from"] == "but01"


def test_every_look_up_kind_leaves_a_signed_commit(world: World, household: str):  # P8, P10
    attach(world, household, "c.pdf", b"x", "other", "2024-01-01")
    world.ok("but01", "show", household, "--reveal", "-r", "a")
    world.ok("but01", "open", household, "other", "-o", str(world.tmp / "o"), "-r", "b")
    world.ok("but01", "export", household, "-o", str(world.tmp / "e.zip"), "-r", "c", "-a", "mgr01")
    subjects = world.git("log", "--format=%G? %s", "-3").splitlines()
    assert subjects == [
        f"G register export of {household}",
        f"G register open of {household}",
        f"G register reveal of {household}",
    ]


def test_git_log_p_shows_clear_text_to_a_reader_and_ciphertext_to_others(world: World, household: str):
    world.ok(
        "but01",
        "edit",
        household,
        "--set",
        "customers.0.phone=13911112222",
        "--reason",
        "new phone",
        "--approver",
        "mgr01",
    )
    world.approve("mgr01")
    edit = world.git("rev-parse", "HEAD~1").strip()
    unreviewed = world.git("log", "-p", "-1", edit, who="but01")  # a reader, but no review registered (P8)
    assert "13911112222" not in unreviewed and "13812345678" not in unreviewed
    assert "register a review to read them (archivectl review-start RANGE -r R)" in unreviewed
    assert "-----BEGIN AGE ENCRYPTED FILE-----" in unreviewed
    said = world.ok("but01", "review-start", f"{edit}~1..{edit}", "--reason", "check the phone change")
    assert f"review of 1 households ({household})" in said
    entry = registers.entries(world.root, "access")[-1]
    assert entry["who"] == "but01" and entry["action"] == "view" and entry["archive_no"] == household
    assert entry["range"].endswith(edit) and len(entry["versions"]) == 2
    assert world.trailers()["Action"] == "view" and world.signature_status() == "G"
    as_reader = world.git("log", "-p", "-1", edit, who="but01")
    assert "-  phone: '13812345678'" in as_reader and "+  phone: '13911112222'" in as_reader
    as_other = world.git("log", "-p", "-1", edit, who="but02")
    assert "13911112222" not in as_other and "-----BEGIN AGE ENCRYPTED FILE-----" in as_other
    before = world.snapshot()
    assert_refused(world.cli("but02", "review-start", f"{edit}~1..{edit}", "-r", "curious"), 1, "no household")
    assert_unchanged(world, before)
    world.ok("but01", "edit", household, "--set", "customers.0.phone=13955556666", "-r", "again", "-a", "mgr01")
    later = world.git("log", "-p", "-1", who="but01")  # a version outside the reviewed range stays sealed
    assert "13955556666" not in later and "stay encrypted: register a review" in later
    assert world.git("config", "diff.archivectl.cachetextconv").strip() == "false"
    assert no_secrets_in(world.all_git_objects()) == []
    assert "13911112222" not in world.all_git_objects().decode("utf-8", "replace")
