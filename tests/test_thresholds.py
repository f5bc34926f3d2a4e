"""Two approvers for a purge (P13, P14): archive.yaml `approvals: {purge: 2}`, counted by the judge everywhere.

One approval is not enough for pending, verify, the server's pre-receive hook or keys shred; two
distinct managers are; the same manager twice is not. Real keys, real git, a real bare server
with the real hook, the 30-day clock under faketime (old_world).
"""

from __future__ import annotations

import json
import subprocess

from conftest import World, assert_refused, ok_at, process_env


def two_for_purges(w: World) -> None:
    """The gm's rule, approved on main: a purge needs two distinct approvers."""
    settings = w.root / "archive.yaml"
    settings.write_text(settings.read_text() + "approvals:\n  purge: 2\n")
    w.ok("mgr01", "configure", "archive.yaml", "--reason", "two approvers for every purge", "--approver", "gm01")
    w.approve("gm01")


def pending(w: World) -> list[dict]:
    return json.loads(w.ok("aud01", "pending", "--format", "json"))


def verified(w: World) -> tuple[int, dict]:
    result = w.cli("aud01", "verify", "--format", "json")
    return result.exit_code, json.loads(result.stdout)


def hand_approval(w: World, who: str, commit: str) -> None:
    """An approval commit made by hand with who's key (what approve would write), naming commit."""
    key = w.people[who].key
    message = f"approve\n\nAction: approve\nReason: again\nActed-by: {who}\nApproves: {commit}"
    subprocess.run(
        ["git", "-C", str(w.root), "-c", "gpg.format=ssh", "-c", f"user.signingkey={key}", "commit", "-q",
         "--no-verify", "--allow-empty", "-S", "-m", message],
        check=True, env=process_env(w.people[who]),
    )  # fmt: skip


def test_a_purge_needs_two_distinct_approvers_everywhere(old_world: World):  # P13, P14
    w = old_world
    two_for_purges(w)
    server = w.tmp / "server.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(w.root), str(server)], check=True)
    assert w.cli(None, "--archive", str(server), "install-hooks", "--server").exit_code == 0
    w.git("remote", "add", "origin", str(server))
    w.git("fetch", "-q", "origin")

    w.ok("mgr01", "purge", w.doomed, "--reason", "retention passed", "--approver", "mgr02")
    purge = w.git("rev-parse", "HEAD").strip()
    [row] = pending(w)
    assert row["awaiting"] == "mgr02" and row["approvals"] == "0/2"

    w.approve("mgr02")  # one approval: not enough anywhere
    [row] = pending(w)
    assert row["commit"] == purge and row["approvals"] == "1/2" and row["signed"] == "mgr02"
    code, report = verified(w)
    assert code == 1
    assert [f["message"] for f in report["findings"]] == [
        "awaiting 1 more approval by a manager or gm (1 of 2 approvals: mgr02)"
    ]
    pushed = subprocess.run(
        ["git", "-C", str(w.root), "push", "--no-verify", "origin", "main"], capture_output=True, text=True
    )
    assert pushed.returncode != 0 and "awaiting 1 more approval by a manager or gm" in pushed.stderr
    shred = json.loads(w.ok("aud01", "keys", "shred", "--dry-run", "--format", "json"))
    assert [r["shredded"] for r in shred if r["archive_no"] == w.doomed] == [False]
    assert w.key_file(w.doomed).exists()

    # the same manager twice is still one approver: approve has nothing for them, a hand-made one counts once
    assert_refused(w.cli("mgr02", "approve", "--yes", "--reason", "again"), 1, "awaits one more manager, gm")
    hand_approval(w, "mgr02", purge)
    assert verified(w)[0] == 1

    refused = w.cli("mgr01", "approve", "--yes", "--reason", "mine")  # the actor cannot be the second: four-eyes
    assert_refused(refused, 1, "mgr01 cannot approve their own change (four-eyes rule)")
    assert verified(w)[0] == 1
    w.approve("gm01")  # a second, distinct entitled approver
    code, report = verified(w)
    assert code == 0, report["findings"]
    assert pending(w) == []
    assert subprocess.run(["git", "-C", str(w.root), "push", "-q", "--no-verify", "origin", "main"]).returncode == 0
    shredded = json.loads(ok_at(w, None, "aud01", "keys", "shred", "--format", "json"))
    assert [r["shredded"] for r in shredded if r["archive_no"] == w.doomed] == [True]


def test_approvals_in_archive_yaml_name_actions_that_need_approval(world: World):
    settings = world.root / "archive.yaml"
    text = settings.read_text()
    for wrong, words in (
        ("approvals:\n  reveal: 2\n", "reveal is not an action that needs approval"),
        ("approvals:\n  purge: 9\n", "purge needs a number of approvers from 1 to 5"),
    ):
        settings.write_text(text + wrong)
        world.git("commit", "-q", "--no-verify", "--no-gpg-sign", "-am", "hand edit")
        refused = world.cli("aud01", "validate")
        assert refused.exit_code != 0 and f"archive.yaml: approvals: {words}" in refused.stdout + refused.stderr
        world.git("reset", "-q", "--hard", "HEAD~1")


def test_the_story_counts_approvals_toward_the_threshold(old_world: World):  # P13, P12 (issue 26: review, approve)
    w = old_world
    two_for_purges(w)
    start = w.git("rev-parse", "HEAD").strip()
    w.ok("mgr01", "purge", w.doomed, "--reason", "retention passed", "--approver", "mgr02")

    def story() -> dict:
        return json.loads(w.ok("aud01", "review", f"{start}..HEAD", "--format", "json"))

    [purge] = story()["changes"]
    assert purge["approval"]["text"] == "0 of 2 approvals; awaiting approval by mgr02 and 1 more by a manager or gm"
    assert story()["summary"] == "awaiting approval by mgr02 and 1 more by a manager or gm"

    w.approve("mgr02")
    [purge] = story()["changes"]
    assert purge["approval"]["text"] == "1 of 2 approvals: mgr02; awaiting 1 more by a manager or gm"
    assert (purge["approval"]["signed"], purge["approval"]["needed"]) == (["mgr02"], 2)
    markdown = w.ok("aud01", "review", f"{start}..HEAD", "--format", "markdown")
    assert "### ⏳ archivectl review: awaiting 1 more by a manager or gm" in markdown

    # the second approver is shown the same words before signing, and the commit it binds
    second = w.cli("gm01", "approve", "--yes", "--reason", "second pair of eyes")
    assert second.exit_code == 0, second
    assert "approval: 1 of 2 approvals: mgr02; awaiting 1 more by a manager or gm" in second.stderr
    assert f"  {purge['commit']}  purge by mgr01: retention passed" in second.stderr
    after = story()
    assert after["state"] == "approved"
    assert after["changes"][0]["approval"]["text"] == "approved by mgr02, gm01 (2 of 2 approvals)"
