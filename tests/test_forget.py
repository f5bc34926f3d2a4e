"""Correct and forget, one household (issue 27 item 4): `edit --forget-previous` seals the corrected record to a
new record key; once that is approved on main and the retention days are over, `keys shred` destroys the old key
and no earlier version of the household opens again, for anyone, from any copy (P12, P13, P14, P16, P17).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pyrage
import pytest
import yaml
from conftest import (
    OWNER_ID,
    RECORD,
    SECRETS,
    World,
    assert_refused,
    assert_unchanged,
    at,
    new_world,
    ok_at,
    person_env,
    staff_yaml,
)
from test_keystore_office import office as office  # the fixture: four machines, the keystore on sshd
from typer.testing import CliRunner

from archivectl import registers
from archivectl.cli import app

NEW_ID = "11010119800517002X"  # the corrected resident ID (valid check digit), the old one is OWNER_ID
REASON = "customer corrected a wrong ID number, asked that the old one be forgotten"
ARMORED = re.compile(rb"-----BEGIN AGE ENCRYPTED FILE-----.*?-----END AGE ENCRYPTED FILE-----", re.S)


def correction(tmp: Path) -> Path:
    """The corrected value in a file: personal data stays off the command line."""
    path = tmp / "correction.yaml"
    path.write_text(f'customers.0.id_number: "{NEW_ID}"\n')
    return path


def forget_args(tmp: Path, number: str) -> list[str]:
    return ["edit", number, "--set-from", str(correction(tmp)), "--forget-previous", "-r", REASON, "-a", "mgr01"]


def record_of(root: Path, number: str, rev: str | None = None) -> dict:
    [path] = [p.relative_to(root) for p in root.glob(f"households/*/*/{number}/record.yaml")]
    if rev is None:
        return yaml.safe_load((root / path).read_text())
    shown = subprocess.run(["git", "-C", str(root), "show", f"{rev}:{path}"], capture_output=True, check=True)
    return yaml.safe_load(shown.stdout)


def household_versions(root: Path, number: str) -> list[bytes]:
    """Every version of the household's record and attachments in the repository's history, all refs."""
    log = subprocess.run(
        ["git", "-C", str(root), "log", "--all", "--format=", "--raw", "--no-abbrev", "--", "households"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    blobs = {line.split()[3] for line in log.splitlines() if f"/{number}/" in line and line.startswith(":")}
    blobs.discard("0" * 40)
    return [
        subprocess.run(["git", "-C", str(root), "cat-file", "blob", b], capture_output=True, check=True).stdout
        for b in sorted(blobs)
    ]


def sealed_payloads(blob: bytes) -> list[bytes]:
    """The age payloads a record or attachment version holds: its armored sealed block, or the file itself."""
    if blob.startswith(b"age-encryption.org/v1"):
        return [blob]
    return [b"\n".join(line.strip() for line in block.splitlines()) + b"\n" for block in ARMORED.findall(blob)]


def record_keys(keystores: list[Path], identities: list) -> list:
    """Every record key any of the identities opens in these keystores."""
    found = []
    for keystore in keystores:
        for wrapped in sorted(keystore.rglob("*.age")):
            for identity in identities:
                try:
                    text = pyrage.decrypt(wrapped.read_bytes(), [identity]).decode()
                except Exception:
                    continue
                secret = re.search(r"AGE-SECRET-KEY-\S+", text)
                if secret:
                    found.append(pyrage.x25519.Identity.from_str(secret[0]))
    return found


def opens(payload: bytes, keys: list) -> bool:
    try:
        pyrage.decrypt(payload, keys)
    except Exception:
        return False
    return True


def staff_identities(world: World) -> list:
    return [pyrage.ssh.Identity.from_buffer(p.key.read_bytes()) for p in world.people.values()]


# ---------------------------------------------------------------------- before approval: a proposal


def test_a_correction_that_forgets_is_an_edit_awaiting_approval_with_a_new_key_beside_the_old(
    world: World, tmp_path: Path
):  # P12, P17
    number = world.add()
    (tmp_path / "scan.pdf").write_bytes(b"%PDF scan of the old ID card")
    world.ok(
        "clk01", "attach", number, str(tmp_path / "scan.pdf"), "--type", "owner-id-copy", "-r", "scan", "-a", "mgr01"
    )
    world.approve("mgr01")
    old_key, old_record = world.key_file(number), record_of(world.root, number)
    before_forget = world.git("rev-parse", "HEAD").strip()

    said = world.ok("but01", *forget_args(tmp_path, number))
    assert f"edited {number} in commit" in said and f"keys shred {number}" in said
    assert world.trailers()["Action"] == "forget" and world.trailers()["Archive-No"] == number
    new_key, new_record = world.key_file(number), record_of(world.root, number)
    assert new_key != old_key and old_key.exists() and new_key.exists()  # both kept until approval and shred
    assert new_record["recipient"] != old_record["recipient"]  # the record names the key that seals it
    # wrapped to the same readers and recovery as the old one, like a new household's key
    from archivectl import crypto

    assert crypto.wrapped_for(new_key.read_bytes()) == crypto.wrapped_for(old_key.read_bytes())
    # every fingerprint keyed from the new key: unchanged fields get new fingerprints too
    assert new_record["sealed_fingerprints"].keys() == old_record["sealed_fingerprints"].keys()
    assert not set(new_record["sealed_fingerprints"].values()) & set(old_record["sealed_fingerprints"].values())
    shown = json.loads(world.ok("but01", "show", number, "--reveal", "--format", "json", "-r", "check the correction"))
    assert shown["customers"][0]["id_number"] == NEW_ID
    opened = tmp_path / "opened.pdf"
    doc = new_record["documents"][0]["file"].split("/")[-1]
    world.ok("but01", "open", number, doc, "--output", str(opened), "-r", "check the scan")
    assert opened.read_bytes() == b"%PDF scan of the old ID card"  # re-encrypted, the same document (P6)

    # a proposal: pending names its approver, verify and the server hook refuse it until mgr01 signs
    assert [row["awaiting"] for row in json.loads(world.ok("aud01", "pending", "--format", "json"))] == ["mgr01"]
    verified = world.cli("aud01", "verify", "--format", "json")
    assert verified.exit_code == 1
    assert [f["rule"] for f in json.loads(verified.stdout)["findings"]] == ["approval"]
    assert "awaiting approval by mgr01" in json.loads(verified.stdout)["findings"][0]["message"]
    hook = CliRunner().invoke(
        app,
        ["--archive", str(world.root), "verify-push", "--main", "main"],
        input=f"{before_forget} {world.git('rev-parse', 'HEAD').strip()} refs/heads/main\n",
        env=person_env(world.people["aud01"]),
    )
    assert hook.exit_code == 1 and "awaiting approval by mgr01" in hook.output

    # keys shred refuses to destroy the old key of a change awaiting its approval: nothing moves
    before = world.snapshot()
    refused = world.cli("aud01", "keys", "shred", number)
    assert_refused(refused, 1, number, "old record key is kept", "awaits approval by mgr01")
    assert_unchanged(world, before)
    rows = json.loads(world.ok("aud01", "keys", "shred", "--format", "json"))  # cron: a row, exit 0
    assert [r["shredded"] for r in rows if r["archive_no"] == number] == [False]
    assert_unchanged(world, before)

    # approved: the old key still waits out the retention days (a backup made before may hold it)
    world.approve("mgr01")
    world.ok("aud01", "verify")
    before = world.snapshot()
    refused = world.cli("aud01", "keys", "shred", number)
    assert_refused(refused, 1, number, "30 days of the 30-day retention are left", "correction")
    assert_unchanged(world, before)


def test_forget_previous_needs_a_reader_and_an_approver(world: World, tmp_path: Path):  # P7, P12
    number = world.add()
    world.approve("mgr01")
    before = world.snapshot()
    assert_refused(world.cli("but02", *forget_args(tmp_path, number)), 1, "B03")  # a butler of another building
    args = ["edit", number, "--forget-previous", "-r", REASON, "-a", "but01"]
    assert_refused(world.cli("mgr01", *args), 1, "but01")  # a butler may not approve
    assert_unchanged(world, before)
    assert_refused(world.cli("aud01", "keys", "shred", "13812345678"), 2, "not an archive number")  # not echoed
    assert_refused(world.cli("aud01", "keys", "shred", number), 1, number, "no record key that main no longer uses")
    assert_unchanged(world, before)
    key = world.key_file(number)  # a key stored before keys had addresses: shred could never find it
    legacy = world.keys / f"{number}.age"
    key.rename(legacy)
    before = world.snapshot()
    assert_refused(world.cli("but01", *forget_args(tmp_path, number)), 1, number, "recipients sync")
    assert_unchanged(world, before)
    legacy.rename(key)
    # forgetting alone (the value was corrected before) re-keys the household
    world.ok("mgr01", "edit", number, "--forget-previous", "-r", "forget the versions before", "-a", "gm01")
    assert world.trailers()["Action"] == "forget"


def test_a_made_up_shred_of_a_key_no_approved_forget_made_obsolete_is_flagged(world: World, tmp_path: Path):  # P14
    number = world.add()
    world.approve("mgr01")
    old = record_of(world.root, number)["recipient"]
    world.ok("but01", *forget_args(tmp_path, number))
    forget = world.git("rev-parse", "HEAD").strip()  # awaits mgr01: it makes nothing obsolete yet
    month = world.git("log", "-1", "--format=%cd", "--date=format:%Y-%m").strip()
    stamp = world.git("log", "-1", "--format=%cd", "--date=format:%Y%m%dT%H%M%S").strip()
    entry = {
        "when": f"{month}-01T00:00:00Z",
        "who": "aud01",
        "action": "shred",
        "archive_no": number,
        "keys": [f"{number} {old} (forget {forget[:12]})"],
        "method": "said, not done",
    }
    path = world.root / "registers" / "destruction" / month / f"{stamp}-shred-aud01-0badc0de.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# register\n" + yaml.safe_dump(entry))
    world.git("add", "-A", who="aud01")
    message = f"keys shred: 1 record keys\n\nAction: shred\nReason: hand-made\nArchive-No: {number}\nActed-by: aud01"
    world.git("commit", "-q", "--no-verify", "-S", "-m", message, who="aud01")
    made_up = world.git("rev-parse", "HEAD").strip()
    result = world.cli("aud01", "verify", "--range", f"{forget}..{made_up}", "--format", "json")
    assert result.exit_code == 1
    findings = json.loads(result.stdout)["findings"]
    assert any(
        f["rule"] == "shred" and f["commit"] == made_up and f"its forget {forget[:12]} is not approved" in f["message"]
        for f in findings
    ), findings


@pytest.mark.parametrize("step", ["key-written", "file-written@2", "before-update-ref", "committed"])
def test_a_forget_killed_at_a_step_keeps_the_household_readable_and_the_old_key(
    world: World, tmp_path: Path, step: str
):  # P14, P16
    from crashkit import keystore_files, killed_at, problems, unreadable

    number = world.add()
    (tmp_path / "scan.pdf").write_bytes(b"%PDF scan")
    world.ok(
        "clk01", "attach", number, str(tmp_path / "scan.pdf"), "--type", "owner-id-copy", "-r", "scan", "-a", "mgr01"
    )
    before, keys_before = world.git("rev-parse", "HEAD").strip(), keystore_files(world)
    killed_at(world, step, "but01", *forget_args(tmp_path, number))
    world.ok("but01", "review", number, "-r", "yearly review", "-a", "mgr01")  # the next write settles the killed one
    forgot = world.git("rev-parse", "HEAD~1").strip() != before
    assert forgot == (step == "committed")
    after = keystore_files(world)
    if forgot:  # the old key kept byte-identical beside the new one until keys shred
        assert keys_before.items() <= after.items() and len(after) == len(keys_before) + 1
    else:
        assert after == keys_before
    assert unreadable(world) == [] and problems(world) == []


# ---------------------------------------------------------------------- approved, shredded: nothing earlier opens


@pytest.fixture
def recovery(tmp_path: Path) -> pyrage.x25519.Identity:
    """The company's offline recovery identity (in the safe): the test holds it, as an auditor of P14 would."""
    return pyrage.x25519.Identity.generate()


def test_after_an_approved_forget_is_shredded_no_earlier_version_opens_with_any_key(
    tmp_path: Path, people, built_once: Path, recovery
):  # P13, P14, P16, P17
    w = new_world(tmp_path, people, built_once)
    if not subprocess.run(["sh", "-c", "command -v faketime"], capture_output=True).stdout:
        pytest.skip("faketime missing: apt-get install faketime")
    (tmp_path / "staff.yaml").write_text(staff_yaml(people))
    founded = at(
        w, "-35d", "gm01", "init", str(w.root), "--name", "Forget", "--staff-file", str(tmp_path / "staff.yaml"),
        "--recovery-key", str(recovery.to_public()),
    )  # fmt: skip
    assert founded.returncode == 0, founded.stderr
    (tmp_path / "r.yaml").write_text(RECORD)
    number = ok_at(w, "-35d", "clk01", "add", "--file", str(tmp_path / "r.yaml"), "-r", "new", "-a", "mgr01").strip()
    (tmp_path / "scan.pdf").write_bytes(b"%PDF ID card " + OWNER_ID.encode())
    ok_at(w, "-35d", "clk01", "attach", number, str(tmp_path / "scan.pdf"), "--type", "owner-id-copy", "-r", "scan",
          "-a", "mgr01")  # fmt: skip
    ok_at(w, "-35d", "mgr01", "approve", "--yes", "--reason", "checked")
    old_backup = tmp_path / "before-forget.tar"
    ok_at(w, "-35d", "aud01", "backup", "--output", str(old_backup))
    old_key = w.key_file(number)
    ok_at(w, "-35d", "but01", *forget_args(tmp_path, number))
    ok_at(w, "-35d", "mgr01", "approve", "--yes", "--reason", "checked the correction")
    new_key = w.key_file(number)
    recent_backup = tmp_path / "before-shred.tar"  # made now, while the old key still waits in the keystore
    w.ok("aud01", "backup", "--output", str(recent_backup))
    assert old_key.exists()

    # a legal hold keeps the old key, with the hold's own message, until its approved release
    w.ok("but01", "hold", number, "--reason", "fee dispute in court", "--approver", "mgr01")
    w.approve("mgr01")
    before = w.snapshot()
    assert_refused(w.cli("aud01", "keys", "shred", number), 1, number, "under legal hold")
    assert_unchanged(w, before)
    w.ok("but01", "release", number, "--reason", "court case settled", "--approver", "mgr01")
    w.approve("mgr01")

    said = json.loads(w.ok("aud01", "keys", "shred", number, "--format", "json"))
    assert [(r["archive_no"], r["shredded"]) for r in said] == [(number, True)] and "forget" in said[0]["why"]
    assert not old_key.exists() and new_key.exists()
    assert w.trailers()["Action"] == "shred"
    w.ok("aud01", "verify")  # the shred entry states a fact: an approved forget made the key obsolete

    # the destruction register: which household and why, never a value
    [entry] = [e for e in registers.entries(w.root, "destruction") if e.get("action") == "shred"]
    assert entry["archive_no"] == number and "crypto-shredding" in entry["method"]
    assert any(number in why and REASON in why for why in entry["why"])
    text = json.dumps(entry, ensure_ascii=False)
    assert not [s for s in [*SECRETS, NEW_ID] if s in text]

    # every version before the forget, record and scan, opens with no key anyone holds; the current one does
    identities = [*staff_identities(w), recovery]
    keys = record_keys([w.keys], identities)
    home = w.root / "households" / "B03" / "1203" / number
    now = {p.read_bytes() for p in home.rglob("*") if p.is_file()}  # the record and its scan as they are now
    versions = household_versions(w.root, number)
    earlier = [p for v in versions if v not in now for p in sealed_payloads(v)]
    assert len([v for v in versions if v not in now and v.startswith(b"age-encryption")]) == 1  # the old scan
    assert len(earlier) >= 3  # the record as added, with its scan listed, and the scan
    assert not any(opens(p, keys) for p in earlier)
    now_payloads = [p for v in now for p in sealed_payloads(v)]
    assert len(now_payloads) == 2 and all(opens(p, keys) for p in now_payloads)
    but01 = record_keys([w.keys], [pyrage.ssh.Identity.from_buffer(people["but01"].key.read_bytes())])
    assert all(opens(p, but01) for p in now_payloads)  # the building's butler reads the corrected record

    # backups: the one made before the forget has expired; the one made before the shred never held the old key
    refused = CliRunner().invoke(
        app, ["restore", str(old_backup), str(tmp_path / "a")], env=person_env(people["aud01"])
    )
    assert refused.exit_code == 1 and "expired" in refused.output
    restored = CliRunner().invoke(
        app, ["restore", str(recent_backup), str(tmp_path / "b")], env=person_env(people["aud01"])
    )
    assert restored.exit_code == 0, restored.output
    keys = record_keys([tmp_path / "b.keys"], identities)
    assert not any(opens(p, keys) for p in earlier)
    assert all(opens(p, keys) for p in now_payloads)


# ---------------------------------------------------------------------- the office: a branch, the hook, SSH keystore


def test_in_the_office_a_forget_is_a_proposal_the_hook_refuses_until_approved_then_its_old_key_goes(
    office, tmp_path: Path, people
):  # P12, P14, P17
    from officekit import approve_and_merge, everything, probe, propose

    machines, keystore = office
    gm, clerk, butler, manager = (machines[w] for w in ("gm01", "clk01", "but01", "mgr01"))
    number = propose(clerk, "owner", RECORD, "-40d")
    approve_and_merge(manager, "owner", "matches the form", when="-40d")
    fix = correction(tmp_path)  # the customer's letter, typed in: beside the HOMEs, not in one
    butler.git("fetch", "-q", when="-35d")
    butler.git("switch", "-q", "-c", "fix", "origin/main", when="-35d")
    butler.ok("edit", number, "--set-from", str(fix), "--forget-previous", "-r", REASON, "-a", "mgr01", when="-35d")
    keys = sorted(p.name for p in (keystore / "keys").iterdir() if p.name.startswith(number))
    assert len(keys) == 2  # the old key and the new one, both on the office's SSH server
    pushed = butler.run("git", "push", "--no-verify", "origin", "fix:main", when="-35d")  # past the clone's hook
    assert pushed.returncode != 0 and "awaiting approval by mgr01" in pushed.stderr, pushed  # the server's hook
    butler.git("push", "-q", "-u", "origin", "fix", when="-35d")
    approve_and_merge(manager, "fix", "checked the customer's letter", when="-35d")

    gm.git("pull", "-q", "--ff-only")
    rows = json.loads(gm.ok("keys", "shred", "--format", "json"))
    assert [(r["archive_no"], r["shredded"]) for r in rows] == [(number, True)]
    gm.git("push", "-q", "origin", "main")  # the destruction entry, accepted by the server's hook
    left = [p.name for p in (keystore / "keys").iterdir() if p.name.startswith(number)]
    assert len(left) == 1 and left[0] in keys
    assert gm.cli("verify").returncode == 0

    for machine in machines.values():
        machine.git("switch", "-q", "main")
        machine.git("pull", "-q", "--ff-only")
    revealed = probe(everything(list(machines.values()), keystore), [people[w] for w in people])
    assert OWNER_ID not in revealed  # the ID number before the correction: no version of it opens
    assert NEW_ID in revealed and SECRETS[0] in revealed  # the current record opens for its readers
