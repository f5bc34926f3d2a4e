"""find: a person's households by the blind index of their ID and phone numbers, without decrypting (#27, P17)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from baoserver import INSTALL_HINT, bao_binary, running_bao
from conftest import OWNER_ID, OWNER_PHONE, RECORD, World, as_built, assert_refused, assert_unchanged, no_secrets_in

from archivectl import blindindex

TYPED = "+86 138-1234-5678"  # the owner's phone as the customer says it on the telephone


def _record(building: str, unit: str, phone: str, id_number: str | None = OWNER_ID) -> str:
    text = RECORD.replace("building: B03", f"building: {building}").replace('unit: "1203"', f'unit: "{unit}"')
    text = text.replace(f'phone: "{OWNER_PHONE}"', f'phone: "{phone}"')
    if id_number is None:
        text = text.replace("    id_type: resident-id\n", "").replace(f'    id_number: "{OWNER_ID}"\n', "")
    return text


def _stored(world: World, number: str) -> dict:
    (path,) = world.root.glob(f"households/*/*/{number}/record.yaml")
    return yaml.safe_load(path.read_text())


def _build_three(world: World) -> dict[str, str]:
    """One person in three households: active in B01, moved out of B02, tombstoned in B03; all indexed."""
    active = world.add(text=_record("B01", "0101", OWNER_PHONE))
    moved = world.add(text=_record("B02", "0202", "+86-" + OWNER_PHONE))  # written another way: the same number
    gone = world.add(text=_record("B03", "1203", OWNER_PHONE))
    other = world.add(text=_record("B03", "1204", "13700000000", None))
    world.approve("mgr01")
    world.ok("mgr01", "migrate", "blind-index", "-r", "find customers' households (P17)", "-a", "gm01")
    world.approve("gm01")
    world.ok("mgr01", "move-out", moved, "--date", "2026-01-31", "-r", "sold the flat", "-a", "mgr02")
    world.ok("mgr01", "tombstone", gone, "-r", "duplicate dossier", "-a", "mgr02")
    world.approve("mgr02")
    return {"active": active, "moved": moved, "gone": gone, "other": other}


@pytest.fixture
def three(world: World) -> dict[str, str]:
    return as_built(world, "find-three", lambda: _build_three(world))


def _access_entries(world: World) -> list[Path]:
    return sorted((world.root / "registers" / "access").rglob("*.yaml"))


def _everything_on_disk(world: World) -> bytes:
    """Every file of the archive (git objects, logs, caches, the journal) and the keystore, as bytes."""
    out = []
    for base in (world.root, world.keys):
        for path in sorted(base.rglob("*")):
            if path.is_file() and not path.is_symlink():
                out.append(path.read_bytes())
    return b"\n".join(out)


def test_find_phone_lists_the_three_households_of_one_person_and_registers_one_lookup(world, three):  # P17 P8 P9
    before = _access_entries(world)
    result = world.cli("mgr01", "--format", "json", "find", "--phone", TYPED, "-r", "request R-1: copy of my data")
    assert result.exit_code == 0, result
    rows = json.loads(result.stdout)
    assert {(r["archive_no"], r["building"], r["status"]) for r in rows} == {
        (three["active"], "B01", "active"),
        (three["moved"], "B02", "moved-out"),
        (three["gone"], "B03", "tombstoned"),
    }
    # what request open takes, ready to paste
    assert all(f"--household {n}" in result.stderr for n in (three["active"], three["moved"], three["gone"]))

    added = sorted(set(_access_entries(world)) - set(before))
    assert len(added) == 1  # P8: exactly one look-up entry
    entry = yaml.safe_load(added[0].read_text())
    assert entry["who"] == "mgr01" and entry["action"] == "find" and entry["searched"] == "phone"
    assert set(entry["archive_no"].split(", ")) == {three["active"], three["moved"], three["gone"]}
    assert world.trailers()["Action"] == "find" and world.signature_status() == "G"

    # P9: the searched number is nowhere in clear: git objects, logs, caches, the keystore, the output
    for form in (OWNER_PHONE, TYPED, "138-1234-5678", "1234-5678"):
        assert form.encode() not in world.all_git_objects()
        assert form.encode() not in _everything_on_disk(world)
        assert form not in result.stdout + result.stderr
    verified = world.cli("aud01", "verify")
    assert verified.exit_code == 0, verified.stdout


def test_find_by_id_number_ignores_spaces_dashes_and_case(world, three):  # P17
    spaced = f"{OWNER_ID[:6]} {OWNER_ID[6:14]}-{OWNER_ID[14:]}".lower()
    result = world.cli("gm01", "--format", "json", "find", "--id-number", spaced, "-r", "request R-2")
    assert result.exit_code == 0, result
    assert {r["archive_no"] for r in json.loads(result.stdout)} == {three["active"], three["moved"], three["gone"]}


def test_a_butler_finds_only_in_the_buildings_she_reads(world, three):  # P7
    result = world.cli("but01", "--format", "json", "find", "--phone", OWNER_PHONE, "-r", "customer at the desk")
    assert result.exit_code == 0, result
    assert [r["archive_no"] for r in json.loads(result.stdout)] == [three["gone"]]  # B03 only
    assert "only the buildings you read" in result.stderr
    assert three["active"] not in result.stdout + result.stderr and three["moved"] not in result.stdout


@pytest.mark.parametrize("who", ["clk01", "aud01"])
def test_a_non_reader_is_refused_and_nothing_is_written(world, three, who):  # P7
    before = world.snapshot()
    result = world.cli(who, "find", "--phone", OWNER_PHONE, "-r", "curious")
    assert_refused(result, 1, who, "reads no building", "P7")
    assert OWNER_PHONE not in result.stderr
    assert_unchanged(world, before)


@pytest.mark.parametrize(
    "args",
    [
        ("--phone", "12345"),
        ("--phone", "138123456789"),
        ("--id-number", "11010!1980"),
        ("--id-number", "ab"),
        ("--phone", OWNER_PHONE, "--id-number", OWNER_ID),
        (),
    ],
)
def test_a_malformed_search_is_a_usage_error_and_changes_nothing(world, three, args):  # P8
    before = world.snapshot()
    result = world.cli("mgr01", "find", *args, "-r", "request R-3")
    assert_refused(result, 2)
    for value in args[1::2]:
        assert value not in result.stderr  # the number is not echoed back
    assert_unchanged(world, before)


def test_find_without_reason_is_a_usage_error(world, three):  # P8
    before = world.snapshot()
    assert_refused(world.cli("mgr01", "find", "--phone", OWNER_PHONE), 2, "--reason")
    assert_unchanged(world, before)


def test_fingerprints_are_padded_one_phone_or_four_look_the_same(world, three):  # P9
    four = RECORD.replace('unit: "1203"', 'unit: "1205"').replace(
        "emergency_contacts:",
        "".join(f'  - {{role: resident, name: 测试{i}, phone: "1390000{i}000"}}\n' for i in range(3))
        + "emergency_contacts:",
    )
    many = world.add("mgr01", "mgr02", four)  # a reader's add: fingerprinted at once
    one = three["other"]  # one phone, one emergency phone, no ID number
    a, b = _stored(world, one)["blind_index"], _stored(world, many)["blind_index"]
    assert len(a["fingerprints"]) == len(b["fingerprints"]) == blindindex.COUNT
    assert a["key"] == b["key"]
    for fp in a["fingerprints"] + b["fingerprints"]:
        assert len(fp) == 16 and int(fp, 16) >= 0


def test_a_readers_edit_refingerprints_and_the_old_number_finds_it_no_more(world, three):  # P11 P17
    new_phone = "13598765432"
    world.ok("mgr01", "edit", three["active"], "--set", f"customers.0.phone={new_phone}", "-r", "moved", "-a", "mgr02")
    found = world.cli("mgr01", "--format", "json", "find", "--phone", new_phone, "-r", "request R-4")
    assert [r["archive_no"] for r in json.loads(found.stdout)] == [three["active"]]
    old = world.cli("mgr01", "--format", "json", "find", "--phone", OWNER_PHONE, "-r", "request R-4")
    assert {r["archive_no"] for r in json.loads(old.stdout)} == {three["moved"], three["gone"]}


def test_a_correction_that_forgets_keeps_the_household_findable_by_its_new_number_only(world, three):  # P17
    new_phone = "13598765432"
    world.ok(
        "mgr01", "edit", three["active"], "--set", f"customers.0.phone={new_phone}", "--forget-previous",
        "-r", "owner corrected the phone, asked us to forget the old one", "-a", "mgr02",
    )  # fmt: skip
    assert world.trailers()["Action"] == "forget"
    found = world.cli("mgr01", "--format", "json", "find", "--phone", new_phone, "-r", "request R-4")
    assert [r["archive_no"] for r in json.loads(found.stdout)] == [three["active"]]
    old = world.cli("mgr01", "--format", "json", "find", "--phone", OWNER_PHONE, "-r", "request R-4")
    assert {r["archive_no"] for r in json.loads(old.stdout)} == {three["moved"], three["gone"]}


def test_a_clerk_writes_no_blind_index_and_find_opens_it_to_search_it(world, three):  # P7 P17
    late = world.add(text=_record("B01", "0102", OWNER_PHONE))  # clk01 cannot open the index key
    assert "blind_index" not in _stored(world, late)
    result = world.cli("mgr01", "--format", "json", "find", "--phone", OWNER_PHONE, "-r", "request R-5")
    assert result.exit_code == 0, result.stderr
    assert "1 households have no blind index yet: opened on this machine and searched" in result.stderr, result.stderr
    found = {r["archive_no"] for r in json.loads(result.stdout)}
    assert found == {three["active"], three["moved"], three["gone"], late}
    other = world.cli("mgr01", "--format", "json", "find", "--phone", "13912345678", "-r", "request R-5")
    assert late not in other.stdout  # opened, and its numbers are not that one
    assert no_secrets_in(world.all_git_objects()) == []


def test_rotate_index_refingerprints_every_record_in_one_commit_awaiting_approval(world, three):  # P12
    old_key = _stored(world, three["active"])["blind_index"]["key"]
    before = world.snapshot()
    refused = world.cli("clk01", "keys", "rotate-index", "-r", "yearly rotation", "-a", "mgr01")
    assert_refused(refused, 1, "clk01 does not read building")  # P7: it opens every record
    assert_unchanged(world, before)  # no new index key either
    said = world.ok("mgr01", "keys", "rotate-index", "-r", "yearly rotation", "-a", "gm01")
    new_key = _stored(world, three["active"])["blind_index"]["key"]
    assert new_key != old_key and new_key in said and old_key in said
    assert world.trailers()["Action"] == "rotate-index"
    assert {_stored(world, n)["blind_index"]["key"] for n in three.values()} == {new_key}
    old_file = world.keys / "index" / f"{old_key}.age"
    kept = world.ok("mgr01", "--format", "json", "keys", "shred")
    assert old_file.exists() and "awaits approval by" in kept  # P14: nothing destroyed before the approval
    world.approve("gm01")
    shredded = json.loads(world.ok("mgr01", "--format", "json", "keys", "shred"))
    assert next(r for r in shredded if r["archive_no"] == old_key)["shredded"] is True
    assert not old_file.exists() and (world.keys / "index" / f"{new_key}.age").exists()
    assert world.trailers()["Action"] == "shred"
    again = json.loads(world.ok("mgr01", "--format", "json", "keys", "shred"))
    assert old_key not in json.dumps(again)  # idempotent: gone, not listed again
    verified = world.cli("aud01", "verify")
    assert verified.exit_code == 0, verified.stdout
    found = world.cli("mgr01", "--format", "json", "find", "--phone", OWNER_PHONE, "-r", "request R-6")
    assert {r["archive_no"] for r in json.loads(found.stdout)} == {three["active"], three["moved"], three["gone"]}
    assert world.cli("aud01", "verify").exit_code == 0


def test_a_readers_import_fingerprints_every_row(world, three):  # P17
    path = world.tmp / "households.yaml"
    path.write_text(_record("B05", "0501", "+86" + OWNER_PHONE) + "---\n" + _record("B05", "0502", "13700000001"))
    world.ok("mgr01", "import", str(path), "--reason", "moving off paper", "--approver", "gm01")
    result = world.cli("but02", "--format", "json", "find", "--phone", OWNER_PHONE, "-r", "customer at the desk")
    assert result.exit_code == 0, result
    (row,) = json.loads(result.stdout)  # but02 reads B05 only
    assert (row["building"], row["unit"]) == ("B05", "0501")


def test_recipients_sync_wraps_the_index_key_to_main_readers_again(world, three):  # P7
    import pyrage

    from archivectl import agewrite, crypto

    (blob_file,) = (world.keys / "index").glob("ix-*.age")
    mgr = pyrage.ssh.Identity.from_buffer(world.people["mgr01"].key.read_bytes())
    plain = pyrage.decrypt(blob_file.read_bytes(), [mgr])
    blob_file.write_bytes(agewrite.encrypt(plain, [world.people["mgr01"].pub]))  # as if but01 came after it
    before = world.snapshot()
    refused = world.cli("but01", "find", "--phone", OWNER_PHONE, "-r", "customer at the desk")
    assert_refused(refused, 1, "not wrapped to but01")
    assert_unchanged(world, before)

    world.ok("mgr01", "recipients", "sync")
    found = world.cli("but01", "--format", "json", "find", "--phone", OWNER_PHONE, "-r", "customer at the desk")
    assert [r["archive_no"] for r in json.loads(found.stdout)] == [three["gone"]]
    assert world.cli("clk01", "find", "--phone", OWNER_PHONE, "-r", "x").exit_code == 1  # still no reader (P7)
    tags = crypto.wrapped_for(blob_file.read_bytes())[0]  # whom the index key opens for: the readers, no one else
    assert tags == {crypto.ssh_tag(world.people[p].pub) for p in ("gm01", "mgr01", "mgr02", "but01", "but02", "cas01")}


@pytest.mark.skipif(bao_binary() is None, reason=INSTALL_HINT)
def test_find_on_an_openbao_keystore_with_each_roles_policy(world, tmp_path):  # P7 P8
    with running_bao(tmp_path / "bao") as bao:
        active = world.add(text=_record("B01", "0101", OWNER_PHONE))
        gone = world.add(text=_record("B03", "1203", OWNER_PHONE))
        world.approve("mgr01")
        bao.write_policies(world.ok("gm01", "keys", "policy", "--mount", "estate", "--format", "json"))

        def env(who: str) -> dict[str, str]:
            return {"BAO_TOKEN": bao.token(who)}

        world.ok("mgr01", "keys", "migrate", "--to", bao.url, "-r", "one key server", "-a", "gm01", env=env("mgr01"))
        world.approve("gm01")
        world.ok("mgr01", "migrate", "blind-index", "-r", "find customers (P17)", "-a", "gm01", env=env("mgr01"))
        world.approve("gm01")
        assert bao.root.secrets.kv.v2.list_secrets("index", mount_point="estate")["data"]["keys"]  # kept on the server

        found = world.cli("mgr01", "--format", "json", "find", "--phone", TYPED, "-r", "request R-7", env=env("mgr01"))
        assert found.exit_code == 0, found
        assert {r["archive_no"] for r in json.loads(found.stdout)} == {active, gone}
        butler = world.cli("but01", "--format", "json", "find", "--phone", OWNER_PHONE, "-r", "desk", env=env("but01"))
        assert [r["archive_no"] for r in json.loads(butler.stdout)] == [gone]
        before = world.snapshot()
        refused = world.cli("clk01", "find", "--phone", OWNER_PHONE, "-r", "curious", env=env("clk01"))
        assert_refused(refused, 1, "reads no building")
        assert_unchanged(world, before)
        form = tmp_path / "late.yaml"
        form.write_text(_record("B01", "0102", "13700000002"))
        late = world.ok("clk01", "add", "--file", str(form), "-r", "new owner", "-a", "mgr01", env=env("clk01")).strip()
        assert "blind_index" not in _stored(world, late)
