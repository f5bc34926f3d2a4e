"""One judge, and it reads only main (SPEC, third stage): each attack of the third review, made as the attacker would.

Real keys, real git, a real bare server with the real pre-receive hook where the
attack goes through a push. Each test failed on the code before the judge layer:
the work tree's schemas decided sealing, a branch's archive.yaml whom keys were
wrapped to, a replace ref what the server hook judged, an uncommitted file what
textconv opened, any destruction entry on any branch what a restore withheld, and
clear text typed by a clerk reached the approver's terminal raw.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pyrage
import pytest
import yaml
from conftest import OWNER_ID, OWNER_NAME, OWNER_PHONE, World, assert_refused, assert_unchanged, process_env
from test_rule_table import (
    Desk,
    base,  # noqa: F401 - the rule table's archive, server and clone, built once
    destruction_entry,
    flagged,
)
from test_rule_table import desk as rule_table_desk  # noqa: F401

TODAY = dt.date.today().isoformat()


@pytest.fixture(name="desk")
def _desk(request: pytest.FixtureRequest) -> Desk:
    """A private copy of the rule table's archive: server, keystore and a clone on branch `change`."""
    return request.getfixturevalue("rule_table_desk")


def serve(desk: Desk) -> Path:
    """The desk's server repository with archivectl's pre-receive hook, as the IT person installs it."""
    server = desk.world.tmp / "server.git"
    result = desk.world.cli(None, "--archive", str(server), "install-hooks", "--server")
    assert result.exit_code == 0, result
    return server


def server_main(server: Path) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(server), "rev-parse", "refs/heads/main"], capture_output=True, text=True, check=True
    ).stdout.strip()


def push(desk: Desk, refspec: str, who: str = "clk01") -> subprocess.CompletedProcess:
    return subprocess.run(
        ["git", "-C", str(desk.path), "push", "--no-verify", "origin", refspec],
        capture_output=True,
        text=True,
        env=process_env(desk.world.people[who]),
    )


# ------------------------------------------------------------------------------- git that cannot be fooled


def test_the_server_takes_branches_only_not_replace_refs_or_notes(desk: Desk):  # P12
    server = serve(desk)
    before = server_main(server)
    head = desk.head()
    for ref in (f"refs/replace/{head}", "refs/notes/commits", "refs/tags/v1"):
        pushed = push(desk, f"{head}:{ref}")
        assert pushed.returncode != 0, ref
        assert f"{ref}: this server takes branches only (refs/heads/*)" in pushed.stderr
        listed = subprocess.run(["git", "--git-dir", str(server), "for-each-ref", ref], capture_output=True, text=True)
        assert listed.stdout == ""
    assert push(desk, "HEAD:refs/heads/a-proposal").returncode == 0  # a proposal branch still goes up
    assert server_main(server) == before


def test_a_replace_ref_on_the_server_does_not_make_the_hook_judge_a_stand_in(desk: Desk):  # P7, P12
    """The clerk's unsigned commit that makes them a gm, standing behind a harmless signed look-up."""
    server = serve(desk)
    before = server_main(server)
    live = desk.h["live"]
    desk.ok("but01", "show", live, "--reveal", "--reason", "phone call")  # a look-up: needs no approval
    stand_in = desk.head()
    desk.branch("evil")
    staff = yaml.safe_load((desk.path / "staff.yaml").read_text())
    for member in staff["staff"]:
        if member["id"] == "clk01":
            member["role"] = "gm"
    (desk.path / "staff.yaml").write_text(yaml.safe_dump(staff, allow_unicode=True, sort_keys=False))
    desk.git("add", "staff.yaml")
    message = "look-up\n\nAction: reveal\nReason: call\nActed-by: but01"
    desk.git("commit", "-q", "--no-verify", "-m", message, who="clk01")
    unsigned = desk.head()
    for ref in (f"{stand_in}:refs/heads/look-up", "HEAD:refs/heads/evil"):  # both reach the server on branches
        assert push(desk, ref).returncode == 0
    # A replace ref on the server (an older server took it, or someone with shell access made it):
    subprocess.run(["git", "--git-dir", str(server), "replace", unsigned, stand_in], check=True)
    pushed = push(desk, f"{unsigned}:refs/heads/main")
    assert pushed.returncode != 0
    assert f"{unsigned[:12]} signature: commit is not signed" in pushed.stderr
    assert server_main(server) == before


# ------------------------------------------------------------------------------- only main decides


def drop_sensitive(doc: object) -> object:
    """The schema a proposal would carry: nothing is personal any more."""
    if isinstance(doc, dict):
        return {k: drop_sensitive(v) for k, v in doc.items() if k != "x-sensitive"}
    if isinstance(doc, list):
        return [drop_sensitive(v) for v in doc]
    return doc


def test_a_proposal_that_drops_x_sensitive_seals_nothing_in_clear(desk: Desk):  # P9
    """The gm's schema proposal awaits its approval; a reader edits a household on that branch meanwhile."""
    live = desk.h["live"]
    schema = desk.path / "schemas/household.schema.json"
    schema.write_text(json.dumps(drop_sensitive(json.loads(schema.read_text())), ensure_ascii=False, indent=2))
    desk.sign("mgr01", "configure", subject="simpler schema", approver="gm01")
    desk.ok("but01", "edit", live, "--set", "occupancy=rented", "--reason", "now let", "--approver", "mgr01")
    edited = desk.git("show", f"HEAD:{desk.home(live)}record.yaml")
    for secret in (OWNER_NAME, OWNER_PHONE, OWNER_ID):
        assert secret not in edited
    assert "-----BEGIN AGE ENCRYPTED FILE-----" in edited
    shown = desk.ok("but01", "show", live)
    assert OWNER_PHONE not in shown and OWNER_NAME not in shown  # masked by main's schema
    # an uncommitted edit of the work tree's schema decides nothing either
    desk.git("checkout", "-q", "HEAD~1", "--", "schemas/household.schema.json")
    assert OWNER_PHONE not in desk.ok("but01", "show", live)


def test_a_branch_recovery_key_gets_no_record_key(desk: Desk):  # P7
    """A butler names his own age key as the recovery recipient on a branch; a manager syncs there."""
    mine = pyrage.x25519.Identity.generate()
    settings = yaml.safe_load((desk.path / "archive.yaml").read_text())
    settings["recovery"] = str(mine.to_public())
    (desk.path / "archive.yaml").write_text(yaml.safe_dump(settings, allow_unicode=True, sort_keys=False))
    desk.sign("but01", "configure", subject="recovery key", approver="gm01")
    desk.ok("mgr01", "recipients", "sync")
    opened = []
    for key_file in sorted((desk.world.keys / "keys").glob("*.age")):
        try:
            pyrage.decrypt(key_file.read_bytes(), [mine])
            opened.append(key_file.name)
        except pyrage.DecryptError:
            pass
    assert opened == []


def test_an_uncommitted_review_entry_opens_nothing_in_git_log(desk: Desk):  # P8
    live = desk.h["live"]
    record = desk.home(live) + "record.yaml"
    version = desk.git("rev-parse", f"HEAD:{record}").strip()
    desk.ok("but01", "install-hooks")  # the diff driver (textconv), as every clone has it
    desk.append(
        desk.register("access"),
        {"when": f"{TODAY}T00:00:00Z", "who": "but01", "action": "view", "archive_no": live, "versions": [version]},
    )
    env = {**process_env(desk.world.people["but01"]), "ARCHIVECTL_KEYSTORE": str(desk.world.keys)}
    shown = subprocess.run(
        ["git", "-C", str(desk.path), "log", "-p", "--", record], capture_output=True, text=True, env=env, check=True
    ).stdout
    assert OWNER_PHONE not in shown and f"sealed fields of version {version[:12]} stay encrypted" in shown


# ------------------------------------------------------------------------------- destruction entries are facts


def backup_and_restore(desk: Desk, tmp: Path) -> tuple[subprocess.CompletedProcess, list[str]]:
    """A backup of the clone's main and its restore elsewhere; (the restore's run, the record keys it put back)."""
    backup = tmp / "b.tar"
    desk.ok("mgr01", "backup", "--output", str(backup))
    env = {**process_env(desk.world.people["mgr01"])}
    restored = subprocess.run(
        [sys.executable, "-m", "archivectl", "restore", str(backup), str(tmp / "restored")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp,
    )
    keys = sorted(p.name.split(".")[0] for p in (tmp / "restored.keys" / "keys").glob("*.age"))
    return restored, keys


def test_a_destruction_entry_on_an_unmerged_branch_withholds_no_live_key(desk: Desk, tmp_path: Path):  # P14, P16
    live = desk.h["live"]
    desk.branch("made-up")
    desk.append(desk.register("destruction"), destruction_entry("mgr01", live))
    desk.sign("mgr01", "purge", subject=f"purge {live}", approver="gm01", archive_no=live)
    desk.git("checkout", "-q", "main")
    restored, keys = backup_and_restore(desk, tmp_path)
    assert restored.returncode == 0, restored.stderr
    assert live in keys and "withheld" not in restored.stdout


def test_a_made_up_shred_entry_on_main_is_flagged_and_withholds_nothing(desk: Desk, tmp_path: Path):  # P14, P16
    live = desk.h["live"]
    recipient = desk.record(live)["recipient"]
    entry = {
        "when": f"{TODAY}T00:00:00Z",
        "who": "aud01",
        "action": "shred",
        "archive_no": live,
        "keys": [f"{live} {recipient} (purge 0123456789ab)"],
        "method": "said, not done",
    }
    desk.append(desk.register("destruction"), entry)
    commit = desk.sign("aud01", "shred", subject="keys shred", approver=None, archive_no=live)
    flagged(desk, "shred", f"{live}: the key it names is the one the household's record still uses", commit)
    desk.push_main()  # a server without the hook took it
    desk.git("checkout", "-q", "-B", "main", "origin/main")
    restored, keys = backup_and_restore(desk, tmp_path)
    assert restored.returncode == 0, restored.stderr
    assert live in keys
    assert f"a destruction entry that is no fact on main withholds nothing: {commit[:12]}" in restored.stderr


# ------------------------------------------------------------------------------- the screen shows what is signed


HOSTILE = "roof leak\x1b[2J\x1b[1A\r\u202eelbaliava"


def test_control_characters_in_clear_text_are_refused_flagged_and_shown_inert(desk: Desk):  # P12
    live = desk.h["live"]
    before = desk.git("rev-parse", "HEAD")
    refused = desk.cli("but01", "edit", live, "--set", f"repairs.0.summary={HOSTILE}", "--set",
                       f"repairs.0.date={TODAY}", "-r", "leak", "-a", "mgr01")  # fmt: skip
    assert_refused(refused, 2, "repairs.0.summary: holds a control character (\\x1b)")
    assert desk.git("rev-parse", "HEAD") == before
    stored = desk.record(live)  # the same change made by hand, signed by the butler
    stored["repairs"] = [{"date": TODAY, "summary": HOSTILE}]
    desk.put_record(live, stored)
    commit = desk.sign("but01", "edit", subject=f"edit {live}", archive_no=live)
    flagged(desk, "record", "repairs.0.summary: holds a control character (\\x1b)", commit)
    assert_refused(desk.cli("mgr01", "approve", "--yes", "--reason", "seen"), 1, "findings", "(\\x1b)")
    for args in (("show", live), ("show", live, "--format", "json"), ("history", live), ("pending",)):
        shown = desk.cli("mgr01", *args)
        seen = shown.stdout + shown.stderr
        assert "\x1b" not in seen and "\u202e" not in seen and "\r" not in seen, args
    shown = desk.ok("mgr01", "show", live, "--format", "csv")
    assert "repairs[0].summary,roof leak\\x1b[2J\\x1b[1A\\x0d\\u202eelbaliava" in shown


# ------------------------------------------------------------------------------- no core dumps


def test_a_running_command_leaves_no_core_dump(world: World):  # P9
    """The server hook's process (it reads what is pushed) runs with a core size of 0, like every command."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "archivectl", "--archive", str(world.root), "verify-push", "--main", "main"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=process_env(world.people["gm01"]),
    )
    try:
        limits = ""
        for _ in range(200):  # until the command has started (it then waits for the pushed refs)
            limits = Path(f"/proc/{proc.pid}/limits").read_text()
            if "Max core file size        0                    0" in limits:
                break
            time.sleep(0.05)
        assert "Max core file size        0                    0" in limits, limits
    finally:
        proc.communicate(b"", timeout=60)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_the_process_is_not_dumpable():  # P9
    """prctl(PR_GET_DUMPABLE) answers 0 in a process that ran the hardening, as every command does first."""
    code = (
        "import ctypes; from archivectl.harden import no_core_dumps; no_core_dumps(); "
        "print(ctypes.CDLL(None).prctl(3, 0, 0, 0, 0))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ)
    assert result.stdout.strip() == "0"


# ------------------------------------------------------------------------------- legal holds


def test_a_tombstone_made_on_a_branch_from_before_a_hold_is_refused_by_the_server(desk: Desk):  # P4, P13
    """The hold is approved on main; a butler's branch started earlier tombstones the household anyway."""
    live = desk.h["live"]
    before_hold = desk.head("origin/main")
    desk.ok("mgr02", "hold", live, "--reason", "fee dispute in court", "--approver", "mgr01")
    desk.ok("mgr01", "approve", "--yes", "--reason", "the court asked")
    desk.push_main()
    server = serve(desk)
    desk.branch("tidy-up", start=before_hold)
    desk.ok("but01", "tombstone", live, "--reason", "duplicate dossier", "--approver", "mgr01")
    tombstone = desk.head()
    refused = desk.cli("mgr01", "approve", "--yes", "--reason", "checked")  # approve judges against main: held
    assert_refused(refused, 1, "under legal hold")
    desk.approve_by_hand("mgr01", tombstone)  # signed all the same, by hand
    desk.git("push", "-q", "origin", "tidy-up")
    desk.git("checkout", "-q", "-B", "main", "origin/main")
    desk.git("merge", "-q", "--no-ff", "-m", "Merge tidy-up", "tidy-up")
    found_hold = flagged(desk, "hold", f"{live} is under legal hold since")
    assert found_hold["findings"][0]["rule"] == "hold"
    main_before = server_main(server)
    pushed = push(desk, "HEAD:refs/heads/main", who="mgr01")
    assert pushed.returncode != 0 and f"hold: {live} is under legal hold since" in pushed.stderr
    assert server_main(server) == main_before


# ------------------------------------------------------------------------------- keys in words (#29)


def test_a_signing_key_others_may_read_is_refused_in_words_before_any_work(world: World):
    """ssh-keygen would refuse it with a screen of '@' at the commit; archivectl says what to run, first."""
    loose = world.tmp / "loose-key"
    loose.write_bytes(world.people["clk01"].key.read_bytes())
    loose.chmod(0o644)
    (world.tmp / "loose-key.pub").write_text(world.people["clk01"].pub + "\n")
    config = world.tmp / "loose.gitconfig"
    config.write_text(f"[user]\n\tsigningkey = {loose}\n[gpg]\n\tformat = ssh\n")
    before = world.snapshot()
    args = ["add", "--building", "B03", "--floor", "3", "--unit", "0301", "--category", "not-handed-over"]
    result = world.cli("clk01", *args, "-r", "new", "-a", "mgr01", env={"GIT_CONFIG_GLOBAL": str(config)})
    assert_refused(result, 1, f"signing key {loose} is readable by others (mode 0644): run `chmod 600 {loose}`")
    assert "@@@" not in result.stderr
    assert_unchanged(world, before)


def test_install_hooks_server_works_run_inside_the_bare_repository(tmp_path):
    """The IT person's step as they type it: cd into the server's repository, install the hook (#29)."""
    server = tmp_path / "estate.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(server)], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIVECTL_")}
    result = subprocess.run(
        [sys.executable, "-m", "archivectl", "install-hooks", "--server"],
        cwd=server, capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    hook = server / "hooks" / "pre-receive"
    assert "archivectl install-hooks" in hook.read_text() and os.access(hook, os.X_OK)


@pytest.mark.parametrize(
    "value",
    [
        {"a": "plain", "b": ["x", {"c": "y\tz\nw"}], "n": 3, "none": None},
        {"repairs": [{"summary": "ok"}, {"summary": "bad \x1b[31m"}]},
        {"note": "\u202eevil"},
        {"note": "\u00adsoft hyphen"},
        {"deep": [[["\x07"]]]},
        "\x1b",
        ["a", "b\n"],
    ],
)
def test_control_characters_quick_look_agrees_with_the_paths(value):
    # verify asks every record; the quick look without paths answers what the full one finds
    from archivectl.schema import _any_control_character, control_characters

    assert _any_control_character(value) == bool(control_characters(value))
