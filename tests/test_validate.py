"""validate: exit 0 on a good archive, 1 naming file and field on a bad one."""

from __future__ import annotations

import json

from conftest import World

from archivectl import yamlio


def record_path(world: World, number: str):
    return world.root / f"households/B03/1203/{number}/record.yaml"


def test_validate_passes_a_good_archive(world: World):
    world.add()
    result = world.cli("aud01", "validate")
    assert result.exit_code == 0, result
    assert "all records valid" in result.stdout


def test_validate_names_file_and_field_of_a_hand_edited_record(world: World):
    number = world.add()
    path = record_path(world, number)
    record = yamlio.load_file(path)
    record["occupancy"] = "squatted"
    path.write_text(yamlio.dumps(record))
    result = world.cli("aud01", "validate")
    assert result.exit_code == 1
    assert f"households/B03/1203/{number}/record.yaml: occupancy: must be one of" in result.stdout


def test_validate_flags_personal_data_pasted_in_clear(world: World):  # P9
    number = world.add()
    path = record_path(world, number)
    path.write_text(path.read_text() + 'customers:\n- {role: owner, name: 某人, phone: "13800000000"}\n')
    result = world.cli("aud01", "validate", "--format", "json", str(path))
    assert result.exit_code == 1
    problems = json.loads(result.stdout)
    assert {
        "file": f"households/B03/1203/{number}/record.yaml",
        "problem": "customers: personal field must not be stored in clear (it belongs in the sealed block)",
    } in problems
    assert "13800000000" not in result.stdout


def test_validate_flags_a_record_in_the_wrong_directory(world: World):
    number = world.add()
    path = record_path(world, number)
    path.write_text(path.read_text().replace("building: B03", "building: B05"))
    result = world.cli("aud01", "validate", str(path.parent))
    assert result.exit_code == 1
    assert "building: does not match the record's directory" in result.stdout


def test_validate_reports_unparseable_yaml_as_a_problem(world: World):
    number = world.add()
    record_path(world, number).write_text("a: [\n")
    result = world.cli("aud01", "validate")
    assert result.exit_code == 1
    assert "record.yaml: line" in result.stdout


def test_validate_refuses_paths_outside_the_archive(world: World):
    result = world.cli("aud01", "validate", "/etc/passwd")
    assert result.exit_code == 2
    assert "not inside the archive" in result.stderr


def test_list_and_reports_survive_a_hand_edited_record(world: World):
    first = world.add()
    world.add(text=(world.tmp / "new-record.yaml").read_text().replace('unit: "1203"', 'unit: "1204"'))
    path = record_path(world, first)
    path.write_text(path.read_text().replace("floor: 12", "floor: twelve"))
    world.git("commit", "-qam", "hand edit")
    assert world.cli("aud01", "validate").exit_code == 1
    rows = json.loads(world.ok("aud01", "list", "--format", "json"))
    assert len(rows) == 2
    assert world.cli("aud01", "report", "completeness").exit_code == 0
    assert world.cli("aud01", "report", "catalog").exit_code == 0
    broken = record_path(world, first)
    broken.write_text("a: [\n")
    world.git("commit", "-qam", "broken")
    rows = json.loads(world.ok("aud01", "list", "--format", "json"))
    assert {"archive_no": first, "status": "invalid"}.items() <= next(
        r for r in rows if r["archive_no"] == first
    ).items()


def test_validate_flags_a_committed_link_and_two_households_with_one_number(world):  # P3
    import shutil
    import subprocess

    number = world.add()
    home = world.root / f"households/B03/1203/{number}"
    twin = world.root / f"households/B03/1209/{number}"
    shutil.copytree(home, twin)
    (twin / "record.yaml").write_text((twin / "record.yaml").read_text().replace("unit: '1203'", "unit: '1209'"))
    (world.root / "households/B03/1203/link.yaml").symlink_to("../../../archive.yaml")
    subprocess.run(["git", "-C", str(world.root), "add", "-A"], check=True)
    result = world.cli("aud01", "validate", "--format", "json")
    assert result.exit_code == 1
    problems = {(p["file"], p["problem"]) for p in json.loads(result.stdout)}
    assert ("households/B03/1203/link.yaml", "a symbolic link; the archive holds plain files only") in problems
    assert any(f == f"households/B03/1209/{number}/record.yaml" and "same number" in p for f, p in problems)
