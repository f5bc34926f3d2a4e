"""An office: a clerk, a butler and a manager on their own machines, a bare server (P7, P8, P12).

Each person has a HOME, a key, a git config and a clone of their own; they reach
each other only through the server repository (and the keystore directory the
office shares). Nothing is copied by hand between them.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import RECORD, World, as_built, assert_refused, on_terminal, process_env, staff_yaml
from typer.testing import CliRunner

from archivectl.cli import app


class Desk:
    """One person's machine: HOME, git config (their key signs), a clone of the server."""

    def __init__(self, world: World, who: str, server: Path):
        self.world, self.who, self.server = world, who, server
        self.home = world.tmp / f"home-{who}"
        self.home.mkdir(exist_ok=True)
        self.clone = self.home / "estate"

    def env(self) -> dict[str, str]:
        return {
            **process_env(self.world.people[self.who]),
            "HOME": str(self.home),
            "ARCHIVECTL_KEYSTORE": str(self.world.keys),  # the office's shared keystore directory
        }

    def git(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["git", "-C", str(self.clone), *args], capture_output=True, text=True, env=self.env(), check=check
        )

    def join(self) -> None:
        """Clone the server and set up the clone as the README says."""
        subprocess.run(["git", "clone", "-q", str(self.server), str(self.clone)], check=True, env=self.env())
        assert self.cli("install-hooks").exit_code == 0

    def cli(self, *args: str):
        env = {k: v for k, v in self.env().items() if k.startswith(("GIT_", "ARCHIVECTL_", "HOME"))}
        result = CliRunner().invoke(app, ["--archive", str(self.clone), *args], env=env)
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    def ok(self, *args: str) -> str:
        result = self.cli(*args)
        assert result.exit_code == 0, (result.stdout, result.stderr)
        return result.stdout

    def verify(self, range_spec: str = "origin/main..HEAD") -> tuple[int, dict]:
        result = self.cli("verify", "--range", range_spec, "--format", "json")
        return result.exit_code, json.loads(result.stdout)

    def snapshot(self) -> tuple[str, str, str]:
        return (
            self.git("rev-parse", "HEAD").stdout,
            self.git("status", "--porcelain", "--untracked-files=all").stdout,
            self.git("ls-files", "--stage").stdout,
        )


@pytest.fixture
def office(world: World, tmp_path: Path) -> dict[str, Desk]:
    """The gm's archive pushed to a bare server with the pre-receive hook; three people with clones."""
    server = tmp_path / "server.git"
    as_built(world, "office", lambda: open_office(world, server))
    return {who: Desk(world, who, server) for who in ("clk01", "but01", "mgr01", "mgr02")}


def open_office(world: World, server: Path) -> None:
    """The office's server and everyone's clone, as office gives them."""
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(server)], check=True)
    result = CliRunner().invoke(app, ["--archive", str(server), "install-hooks", "--server"])
    assert result.exit_code == 0, result.output
    gm = Desk(world, "gm01", server)
    gm.clone = world.root
    gm.git("remote", "add", "origin", str(server))
    pushed = gm.git("push", "-q", "-u", "origin", "main", check=False)
    assert pushed.returncode == 0, pushed.stderr  # the founding commit alone passes the server's check
    desks = {who: Desk(world, who, server) for who in ("clk01", "but01", "mgr01", "mgr02")}
    for desk in desks.values():
        desk.join()


def propose_household(clerk: Desk, branch: str = "b03-new-owner") -> str:
    clerk.git("switch", "-q", "-c", branch)
    record = clerk.home / "record.yaml"
    record.write_text(RECORD)
    number = clerk.ok("add", "--file", str(record), "--reason", "new owner at hand-over", "--approver", "mgr01").strip()
    pushed = clerk.git("push", "-q", "-u", "origin", branch, check=False)
    assert pushed.returncode == 0, pushed.stderr  # a proposal goes up before its approval
    return number


def test_clerk_proposes_manager_approves_on_own_clone_and_the_server_accepts_the_merge(office):  # P12
    clerk, manager = office["clk01"], office["mgr01"]
    number = propose_household(clerk)

    code, report = clerk.verify()
    assert code == 1
    assert [(f["rule"], f["message"]) for f in report["findings"]] == [("approval", "awaiting approval by mgr01")]

    # the clerk cannot put it on main: the server refuses (even past the clone's own hook)
    refused = clerk.git("push", "--no-verify", "origin", "HEAD:main", check=False)
    assert refused.returncode != 0
    assert "awaiting approval by mgr01" in refused.stderr

    # the manager fetches it on their own machine, sees what awaits them, and signs
    manager.git("fetch", "-q")
    manager.git("switch", "-q", "b03-new-owner")
    waiting = json.loads(manager.ok("pending", "--format", "json"))
    assert [(r["action"], r["acted_by"], r["awaiting"], r["archive_no"]) for r in waiting] == [
        ("add", "clk01", "mgr01", number)
    ]
    approved = manager.cli("approve", "--yes", "--reason", "matches the hand-over form")
    assert approved.exit_code == 0, approved.stderr
    assert "customers.0.phone: - -> 138****5678" in approved.stderr  # masked: a manager reads, unregistered
    approval = manager.git("log", "-1", "--format=%G?%n%(trailers:only,unfold)").stdout
    proposal = manager.git("rev-parse", "HEAD~1").stdout.strip()
    assert approval.splitlines()[0] == "G"
    assert f"Approves: {proposal}" in approval and "Action: approve" in approval and "Acted-by: mgr01" in approval
    assert manager.git("diff", "--stat", "HEAD~1", "HEAD").stdout == ""  # it changes no file
    assert manager.verify() == (
        0,
        {"range": "origin/main..HEAD", "commits": 2, "ok": True, "findings": [], "pending": []},
    )
    assert manager.git("push", "-q", "origin", "b03-new-owner", check=False).returncode == 0

    # merged with an ordinary merge commit (the clone's hooks let it through) and accepted by the server
    manager.git("switch", "-q", "main")
    merged = manager.git("merge", "-q", "--no-ff", "-m", "Merge b03-new-owner", "b03-new-owner", check=False)
    assert merged.returncode == 0, merged.stderr
    accepted = manager.git("push", "origin", "main", check=False)
    assert accepted.returncode == 0, accepted.stderr
    whole = manager.cli("verify")
    assert whole.exit_code == 0, whole.stdout

    # the clerk pulls (a merge) with the hooks in place
    clerk.git("switch", "-q", "main")
    pulled = clerk.git("pull", "-q", "--no-rebase", "origin", "main", check=False)
    assert pulled.returncode == 0, pulled.stderr
    assert number in clerk.ok("list")


def test_a_commit_made_after_the_approval_is_not_covered(office):  # P12
    clerk, manager = office["clk01"], office["mgr01"]
    number = propose_household(clerk)
    manager.git("fetch", "-q")
    manager.git("switch", "-q", "b03-new-owner")
    manager.ok("approve", "--yes", "--reason", "checked")
    manager.git("push", "-q", "origin", "b03-new-owner")
    clerk.git("pull", "-q", "--ff-only")
    clerk.ok("edit", number, "--set", "occupancy=rented", "--reason", "let out", "--approver", "mgr01")
    code, report = clerk.verify()
    assert code == 1
    after = clerk.git("rev-parse", "HEAD").stdout.strip()
    assert [(f["commit"], f["rule"]) for f in report["findings"]] == [(after, "approval")]
    assert "made after, or not named by, their approval" in report["findings"][0]["message"]
    refused = clerk.git("push", "--no-verify", "origin", "HEAD:main", check=False)
    assert refused.returncode != 0 and "awaiting approval by mgr01" in refused.stderr


@pytest.mark.parametrize(
    ("who", "words"),
    [
        ("clk01", "clk01 is a clerk; approvals need"),  # the clerk approving their own change
        ("but01", "but01 is a butler; approvals need"),
        ("mgr02", "nothing in origin/main..HEAD awaits mgr02; it awaits mgr01"),
    ],
)
def test_only_the_named_entitled_approver_can_approve(office, who, words):  # P12, four-eyes
    clerk = office["clk01"]
    propose_household(clerk)
    desk = office[who]
    if who != "clk01":
        desk.git("fetch", "-q")
        desk.git("switch", "-q", "b03-new-owner")
    before = desk.snapshot()
    assert_refused(desk.cli("approve", "--yes", "--reason", "looks fine"), 1, words)
    assert desk.snapshot() == before


def test_a_manager_approving_their_own_change_is_refused(office):  # four-eyes
    manager = office["mgr01"]
    manager.git("switch", "-q", "-c", "mine")
    record = manager.home / "r.yaml"
    record.write_text(RECORD)
    manager.ok("add", "--file", str(record), "--reason", "new owner", "--approver", "mgr02")
    before = manager.snapshot()
    assert_refused(
        manager.cli("approve", "--yes", "--reason", "mine"), 1, "mgr01 cannot approve their own change (four-eyes rule)"
    )
    assert manager.snapshot() == before


def hand_approval(desk: Desk, who: str) -> None:
    """An approval commit made by hand with who's own key, naming HEAD (what approve would write)."""
    target = desk.git("rev-parse", "HEAD").stdout.strip()
    key = desk.world.people[who].key
    desk.git(
        "-c",
        "gpg.format=ssh",
        "-c",
        f"user.signingkey={key}",
        "commit",
        "-q",
        "--no-verify",
        "--allow-empty",
        "-S",
        "-m",
        f"approve\n\nAction: approve\nReason: ok\nActed-by: {who}\nApproves: {target}",
    )


@pytest.mark.parametrize(
    ("who", "words"),
    [
        ("clk01", "asks mgr01, not clk01"),
        ("but01", "asks mgr01, not but01"),
    ],
)
def test_a_forced_approval_by_the_wrong_person_is_flagged(office, who, words):  # P12
    clerk = office["clk01"]
    propose_household(clerk)
    hand_approval(clerk, who)
    code, report = clerk.verify()
    assert code == 1
    messages = [f["message"] for f in report["findings"]]
    assert any(words in m for m in messages), messages
    assert "awaiting approval by mgr01" in messages


def test_an_approval_by_a_manager_who_has_left_is_refused_and_flagged(office, world):  # P12
    gm, clerk, departing = Desk(world, "gm01", office["mgr01"].server), office["clk01"], office["mgr02"]
    gm.clone = world.root
    # the clerk proposes, naming mgr02, before mgr02 leaves
    clerk.git("switch", "-q", "-c", "late")
    record = clerk.home / "r.yaml"
    record.write_text(RECORD)
    clerk.ok("add", "--file", str(record), "--reason", "new owner", "--approver", "mgr02")
    clerk.git("push", "-q", "-u", "origin", "late")
    # mgr01 proposes mgr02's departure; the gm approves it and it lands on main
    office["mgr01"].git("switch", "-q", "-c", "departure")
    office["mgr01"].ok("staff", "deactivate", "mgr02", "--reason", "left the company", "--approver", "gm01")
    office["mgr01"].git("push", "-q", "origin", "departure")
    gm.git("fetch", "-q")
    gm.git("switch", "-q", "-c", "departure", "origin/departure")
    gm.ok("approve", "--yes", "--reason", "signed the leaving papers")
    gm.git("switch", "-q", "main")
    gm.git("merge", "-q", "--no-ff", "-m", "Merge departure", "departure")
    assert gm.git("push", "origin", "main", check=False).returncode == 0
    # the proposal brought up to date with main: mgr02 may no longer approve it
    clerk.git("pull", "-q", "--no-rebase", "origin", "main")
    departing.git("fetch", "-q")
    departing.git("switch", "-q", "late")
    departing.git("pull", "-q", "--no-rebase", "origin", "main")
    before = departing.snapshot()
    assert_refused(departing.cli("approve", "--yes", "--reason", "still here"), 1, "mgr02 is no longer active")
    assert departing.snapshot() == before
    hand_approval(clerk, "mgr02")  # forced with the departed key
    code, report = clerk.verify()
    assert code == 1
    found = {(f["rule"], f["message"]) for f in report["findings"]}
    assert ("approver", "approver mgr02 is no longer active") in found
    assert any(rule == "signature" and "no longer active" in message for rule, message in found)
    refused = clerk.git("push", "--no-verify", "origin", "HEAD:main", check=False)
    assert refused.returncode != 0


def test_approve_asks_before_signing_and_needs_a_terminal_or_yes(office):  # P12
    propose_household(office["clk01"])
    manager = office["mgr01"]
    manager.git("fetch", "-q")
    manager.git("switch", "-q", "b03-new-owner")
    before = manager.snapshot()
    assert_refused(manager.cli("approve", "--reason", "ok"), 2, "run it on a terminal, or give --yes")
    assert manager.snapshot() == before


def test_approve_with_reveal_shows_clear_fields_and_registers_the_view(office):  # P8
    number = propose_household(office["clk01"])
    manager = office["mgr01"]
    manager.git("fetch", "-q")
    manager.git("switch", "-q", "b03-new-owner")
    result = manager.cli("approve", "--yes", "--reveal", "--reason", "checked the ID number")
    assert result.exit_code == 0, result.stderr
    assert "customers.0.phone: - -> 13812345678" in result.stderr
    view = manager.git("log", "-1", "--skip=1", "--format=%(trailers:only,unfold)").stdout
    assert "Action: view" in view and f"Archive-No: {number}" in view
    assert manager.verify()[0] == 0


def test_clone_hooks_refuse_hand_made_commits_but_let_merges_through(office):
    clerk = office["clk01"]
    (clerk.clone / "CODEOWNERS").write_text("* @someone\n")
    clerk.git("add", "-A")
    refused = clerk.git("commit", "-q", "-m", "hand edit", check=False)
    assert refused.returncode != 0 and "archivectl commands" in refused.stderr
    clerk.git("reset", "-q", "--hard")
    propose_household(clerk, "one")
    clerk.git("switch", "-q", "main")
    merged = clerk.git("merge", "-q", "--no-ff", "-m", "Merge one", "one", check=False)
    assert merged.returncode == 0, merged.stderr


def test_server_refuses_rewriting_or_deleting_main(office, world):
    gm = Desk(world, "gm01", office["mgr01"].server)
    gm.clone = world.root
    tree = gm.git("rev-parse", "HEAD^{tree}").stdout.strip()
    key = world.people["gm01"].key
    rewritten = gm.git(
        "-c", "gpg.format=ssh", "-c", f"user.signingkey={key}", "commit-tree", "-S", tree, "-m", "history, rewritten"
    ).stdout.strip()
    forced = gm.git("push", "--no-verify", "-f", "origin", f"{rewritten}:refs/heads/main", check=False)
    assert forced.returncode != 0 and "may not rewrite its history" in forced.stderr
    deleted = gm.git("push", "--no-verify", "origin", ":main", check=False)
    assert deleted.returncode != 0
    assert "main cannot be deleted" in deleted.stderr or "refusing to delete the current branch" in deleted.stderr


def test_a_staff_change_on_a_branch_gives_nobody_anything_until_the_gm_approves(office):  # P7
    butler5 = office["but01"]
    butler5.git("switch", "-q", "-c", "more-buildings")
    result = butler5.cli("staff", "edit", "but01", "--buildings", "B03,B05", "--reason", "cover", "--approver", "mgr01")
    assert_refused(result, 1, "mgr01 is a manager; approvals need a gm")
    office["mgr01"].git("switch", "-q", "-c", "more")
    office["mgr01"].ok("staff", "edit", "but02", "--buildings", "B03,B05", "--reason", "cover", "--approver", "gm01")
    code, report = office["mgr01"].verify()
    assert code == 1 and report["findings"][0]["message"] == "awaiting approval by gm01"


def test_a_second_office_history_cannot_be_merged_in(office, world, people, tmp_path):
    """A root commit inside a range: its own staff.yaml cannot make anyone gm here."""
    other = tmp_path / "other"
    staff = tmp_path / "other-staff.yaml"
    staff.write_text(
        staff_yaml(people).replace("id: gm01", "id: gmx").replace(people["gm01"].pub, people["outsider"].pub)
    )
    result = CliRunner().invoke(
        app,
        ["init", str(other), "--name", "Elsewhere", "--staff-file", str(staff)],
        env=process_env(people["outsider"]),
    )
    assert result.exit_code == 0, result.output
    clerk = office["clk01"]
    clerk.git("switch", "-q", "-c", "graft")
    clerk.git("fetch", "-q", str(other), "main:other-main")
    clerk.git("merge", "-q", "--allow-unrelated-histories", "-X", "ours", "-m", "merge", "other-main", check=False)
    code, report = clerk.verify()
    assert code == 1
    assert any(f["rule"] == "root" for f in report["findings"])


def test_settings_change_needs_the_gm_and_a_local_edit_changes_no_rule(office, world):  # P13
    manager = office["mgr01"]
    settings = manager.clone / "archive.yaml"
    settings.write_text(settings.read_text().replace("retention_days: 30", "retention_days: 0"))
    assert_refused(
        manager.cli("configure", "--reason", "faster purges", "--approver", "mgr02"), 1, "approvals need a gm"
    )
    assert settings.read_text().count("retention_days: 0") == 1  # the edit is left as it was
    report = json.loads(manager.ok("report", "retention", "--format", "json"))
    assert report["retention_days"] == 30  # only the committed archive.yaml counts
    manager.git("switch", "-q", "-c", "settings")
    manager.ok("configure", "--reason", "faster purges", "--approver", "gm01")
    code, found = manager.verify()
    assert code == 1 and found["findings"][0]["message"] == "awaiting approval by gm01"


def test_pending_all_lists_every_branch(office):
    clerk = office["clk01"]
    propose_household(clerk, "first")
    clerk.git("switch", "-q", "main")
    clerk.git("switch", "-q", "-c", "second")
    record = clerk.home / "r2.yaml"
    record.write_text(RECORD.replace('unit: "1203"', 'unit: "1205"'))
    clerk.ok("add", "--file", str(record), "--reason", "another", "--approver", "mgr02")
    rows = json.loads(clerk.ok("pending", "--all", "--format", "json"))
    assert sorted((r["branch"], r["action"], r["awaiting"]) for r in rows) == [
        ("first", "add", "mgr01"),  # origin/first holds the same commit: listed once
        ("second", "add", "mgr02"),
    ]


def test_hook_scripts_name_this_python(office):
    hook = Path(office["clk01"].server) / "hooks" / "pre-receive"
    assert os.access(hook, os.X_OK)
    assert "archivectl" in hook.read_text()


def _on_terminal(desk: Desk, args: list[str], answer: bytes) -> tuple[int, bytes]:
    import sys

    return on_terminal([sys.executable, "-m", "archivectl", *args], desk.env(), b"[y/N]", answer, desk.clone)


def test_on_a_terminal_approve_shows_the_change_and_asks(office):  # P12
    propose_household(office["clk01"])
    manager = office["mgr01"]
    manager.git("fetch", "-q")
    manager.git("switch", "-q", "b03-new-owner")
    before = manager.snapshot()
    code, screen = _on_terminal(manager, ["approve", "--reason", "checked"], b"n\n")
    assert code == 1 and b"not approved; nothing was written" in screen
    assert b"add by clk01" in screen and b"138****5678" in screen
    assert manager.snapshot() == before
    code, screen = _on_terminal(manager, ["approve", "--reason", "checked"], b"y\n")
    assert code == 0, screen
    assert b"approved 1 change(s)" in screen
    assert manager.verify()[0] == 0


def test_one_approval_of_two_households_with_reveal_verifies(office):  # P8, P12
    clerk = office["clk01"]
    first = propose_household(clerk)
    record = clerk.home / "r2.yaml"
    record.write_text(RECORD.replace('unit: "1203"', 'unit: "1205"'))
    second = clerk.ok("add", "--file", str(record), "--reason", "second owner", "--approver", "mgr01").strip()
    clerk.git("push", "-q")
    manager = office["mgr01"]
    manager.git("fetch", "-q")
    manager.git("switch", "-q", "b03-new-owner")
    result = manager.cli("approve", "--yes", "--reveal", "--reason", "both checked")
    assert result.exit_code == 0, result.stderr
    view = manager.git("log", "-1", "--skip=1", "--format=%(trailers:only,unfold)").stdout
    assert f"Archive-No: {first}, {second}" in view
    assert manager.verify() == (
        0,
        {"range": "origin/main..HEAD", "commits": 4, "ok": True, "findings": [], "pending": []},
    )


def test_look_ups_on_two_clones_merge_without_a_conflict(office, world):  # P8
    """Each register entry is a file of its own: two reveals in one month never collide."""
    gm = Desk(world, "gm01", office["mgr01"].server)
    gm.clone = world.root
    gm.git("switch", "-q", "-c", "base")
    record = gm.home / "r.yaml"
    record.write_text(RECORD)
    number = gm.ok("add", "--file", str(record), "--reason", "new owner", "--approver", "mgr01").strip()
    gm.git("push", "-q", "origin", "base")
    office["mgr01"].git("fetch", "-q")
    office["mgr01"].git("switch", "-q", "base")
    office["mgr01"].ok("approve", "--yes", "--reason", "ok")
    office["mgr01"].git("switch", "-q", "main")
    office["mgr01"].git("merge", "-q", "--no-ff", "-m", "Merge base", "base")
    office["mgr01"].git("push", "-q", "origin", "main")
    butler, manager = office["but01"], office["mgr02"]
    for desk, branch in ((butler, "look-1"), (manager, "look-2")):
        desk.git("pull", "-q", "--no-rebase", "origin", "main")
        desk.git("switch", "-q", "-c", branch)
        desk.ok("show", number, "--reveal", "--reason", "front desk")
        desk.git("push", "-q", "origin", branch)
    manager.git("fetch", "-q")
    manager.git("switch", "-q", "main")
    for branch in ("look-1", "look-2"):
        merged = manager.git("merge", "--no-ff", "-m", f"Merge {branch}", f"origin/{branch}", check=False)
        assert merged.returncode == 0 and "CONFLICT" not in merged.stdout, merged.stdout
    assert manager.git("push", "origin", "main", check=False).returncode == 0
    from archivectl import registers

    whos = [e["who"] for e in registers.entries(manager.clone, "access") if e.get("archive_no") == number]
    assert sorted(whos) == ["but01", "mgr02"]


def test_month_files_of_earlier_versions_are_still_read(tmp_path):  # P8
    from archivectl import registers

    folder = tmp_path / "registers" / "lending"
    (folder / "2026-10").mkdir(parents=True)
    (folder / "2026-10.yaml").write_text("- {who: but01, action: lend, archive_no: HO-2026-00001, due: 2026-10-30}\n")
    (folder / "2026-10" / "20261020T100000-return-but01-0a0b0c0d.yaml").write_text(
        "who: but01\naction: return\narchive_no: HO-2026-00001\n"
    )
    assert [e["action"] for e in registers.entries(tmp_path, "lending")] == ["lend", "return"]
    assert registers.lent_out(tmp_path) == {}
