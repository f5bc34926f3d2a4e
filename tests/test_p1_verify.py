"""P1 in verify: a unit's second active household on main needs the mark `add --also-active` and
import's `also_active` leave in the signed commit (`Also-Active:`), or verify names it (#29 item 3).

The breaking commits are made by hand: the real command's commit, its message without the mark,
signed again with the same staff member's own key, as someone editing it by hand would.
"""

from __future__ import annotations

import datetime as dt
import json

from conftest import RECORD, World


def verify(world: World, *args: str) -> tuple[int, list[dict]]:
    result = world.cli("aud01", "verify", "--format", "json", *args)
    return result.exit_code, json.loads(result.stdout)["findings"]


def unit_findings(findings: list[dict]) -> list[str]:
    return [f["message"] for f in findings if f["rule"] == "unit"]


def resign_without_the_mark(world: World, who: str) -> str:
    """HEAD again, its message without the Also-Active: line, signed by who's own key; its new id."""
    message = world.git("log", "-1", "--format=%B")
    assert "Also-Active: " in message
    stripped = "\n".join(line for line in message.splitlines() if not line.startswith("Also-Active:"))
    key = world.people[who].key
    world.git(
        "-c", f"user.signingkey={key}", "-c", "gpg.format=ssh",
        "commit", "-q", "--amend", "--no-verify", "-S", "-m", stripped, who=who,
    )  # fmt: skip
    assert world.signature_status() == "G"
    return world.git("rev-parse", "HEAD").strip()


def test_a_second_active_household_added_with_also_active_carries_the_mark_and_verifies(
    world: World, household: str
):  # P1
    world.approve("mgr01")
    second = world.add("clk01", "mgr01", RECORD, "--also-active")
    assert world.trailers()["Also-Active"] == second
    world.approve("mgr01")
    code, findings = verify(world)
    assert (code, findings) == (0, [])


def test_a_second_active_household_without_the_mark_is_flagged_in_one_line(world: World, household: str):  # P1
    world.approve("mgr01")
    second = world.add("clk01", "mgr01", RECORD, "--also-active")
    forged = resign_without_the_mark(world, "clk01")
    refused = world.cli("mgr01", "approve", "--yes", "--reason", "looks fine")
    assert refused.exit_code == 1 and "not marked Also-Active (P1)" in refused.stderr  # nothing to approve
    code, findings = verify(world)
    assert code == 1
    assert [(f["commit"], f["rule"]) for f in findings] == [(forged, "unit"), (forged, "approval")]
    message = findings[0]["message"]
    assert message == (
        f"{second}: a second active household on B03/1203 beside {household}, not marked Also-Active (P1)"
    )
    assert "\n" not in message
    # the commit alone, as the server's hook judges a push
    code, findings = verify(world, "--range", f"{forged}~1..{forged}")
    assert code == 1 and unit_findings(findings) == [message]


def test_the_first_active_household_of_a_unit_needs_no_mark_and_a_moved_out_one_does_not_count(
    world: World, household: str
):  # P1
    world.approve("mgr01")
    today = dt.date.today().isoformat()
    world.ok("but01", "move-out", household, "--date", today, "--reason", "sold the flat", "--approver", "mgr01")
    world.approve("mgr01")
    world.add("clk01", "mgr01", RECORD)  # the unit's one active household again: no mark asked for
    assert "Also-Active" not in world.trailers()
    world.approve("mgr01")
    assert verify(world) == (0, [])


def test_import_marks_the_rows_saying_also_active_and_verify_flags_them_without_it(world: World):  # P1
    rows = world.tmp / "rows.yaml"
    rows.write_text(RECORD + "---\n" + RECORD.replace("building: B03", "building: B03\nalso_active: true"))
    out = world.ok("clk01", "import", str(rows), "--reason", "digitising paper dossiers", "--approver", "mgr01")
    first, second = (n.strip() for n in world.trailers()["Archive-No"].split(","))
    assert world.trailers()["Also-Active"] == second and first in out + world.trailers()["Archive-No"]
    world.approve("mgr01")
    assert unit_findings(verify(world)[1]) == []

    world.git("reset", "-q", "--hard", "HEAD~1")  # the import again, its mark taken out by hand
    forged = resign_without_the_mark(world, "clk01")
    code, findings = verify(world)
    assert code == 1 and [(f["commit"], f["rule"]) for f in findings if f["rule"] != "approval"] == [(forged, "unit")]
    assert findings[0]["message"].startswith(f"{second}: a second active household on B03/1203 beside {first}")


def branches_adding_to_one_unit(world: World, *second_flags: str) -> tuple[str, str]:
    """Two proposals made side by side, each the unit's only household on its branch; both approved,
    merged into main one after the other (a merge commit each, as a forge's button makes)."""
    numbers = []
    for branch, flags in (("first", ()), ("second", second_flags)):
        world.git("switch", "-q", "-c", branch, "main")
        numbers.append(world.add("clk01", "mgr01", RECORD, *flags))
        world.approve("mgr01")
    world.git("switch", "-q", "main")
    for branch in ("first", "second"):
        world.git("merge", "-q", "--no-ff", "-m", f"Merge {branch}", branch)
    return numbers[0], numbers[1]


def test_branches_that_each_add_the_unit_s_household_are_flagged_where_they_merge(world: World):  # P1
    first, second = branches_adding_to_one_unit(world)
    merge = world.git("rev-parse", "HEAD").strip()
    code, findings = verify(world)
    assert code == 1 and [(f["commit"], f["rule"]) for f in findings] == [(merge, "unit")]
    assert findings[0]["message"] == (
        f"{second}: a second active household on B03/1203 beside {first} (brought in by this merge), "
        "not marked Also-Active (P1)"
    )


def test_a_branch_whose_add_says_also_active_merges_beside_the_other(world: World):  # P1
    branches_adding_to_one_unit(world, "--also-active")
    assert verify(world) == (0, [])


def test_an_import_of_more_units_than_are_listed_by_path_flags_only_the_unmarked_second(world: World):  # P1
    # More units than one ls-tree lists by their own folders (checks._UNITS_LISTED_BY_PATH): they are
    # listed by building and picked out, with the same answer.
    from archivectl.judge.checks import _UNITS_LISTED_BY_PATH

    units = [f"{1300 + i}" for i in range(_UNITS_LISTED_BY_PATH + 6)]
    rows = [RECORD.replace('unit: "1203"', f'unit: "{u}"') for u in units]
    rows.append(RECORD.replace("building: B03", "building: B03\nalso_active: true"))  # beside the next one
    rows.append(RECORD)  # B03/1203 once more: its second active household
    (world.tmp / "rows.yaml").write_text("---\n".join(rows))
    world.ok("clk01", "import", str(world.tmp / "rows.yaml"), "--reason", "digitising paper dossiers", "-a", "mgr01")
    numbers = [n.strip() for n in world.trailers()["Archive-No"].split(",")]
    assert world.trailers()["Also-Active"] == numbers[-2]
    assert unit_findings(verify(world)[1]) == []  # the marked one beside the first: nothing to flag

    forged = resign_without_the_mark(world, "clk01")
    code, findings = verify(world, "--range", f"{forged}~1..{forged}")
    assert code == 1
    assert unit_findings(findings) == [
        f"{numbers[-1]}: a second active household on B03/1203 beside {numbers[-2]}, not marked Also-Active (P1)"
    ]
