"""A model-based adversary (#25 item 9): people on their own clones, one real server, hostile moves mixed in.

A hypothesis state machine drives an office: a clerk, the butler of B03, two managers
and the gm, each with a HOME, key, git config and clone of their own (tests/test_office.py's
Desk), sharing one keystore directory, pushing to a bare server repository with the real
pre-receive hook (`archivectl install-hooks --server`). Its rules mix what people do
(propose a household, edit, tombstone, a look-up, approve and merge, a settings change the
gm approves, the keys shred cron) with what an insider could try with their own real key:
hand-made commits to staff.yaml, archive.yaml, schemas/ or a record; someone else's commit
re-signed; an old approval replayed (its signed object re-parented, or signed anew naming an
earlier commit); an approved branch rebased; a signed merge carrying a sealed block neither
parent has (also: two approved edits of one phone resolved by hand with a third);
refs/replace, refs/notes and tags; a made-up destruction entry (and `keys shred` run on top of it);
force pushes and deleting main; unsigned commits.

After every step that moved the server's main it checks, reading the server only:
1. every commit on main is signed by a key its first parent's staff.yaml lists as active
   (`archivectl verify --format json` on a fresh clone as the auditor, and independently
   `git log --format=%G?` against an allowed-signers file made from staff.yaml; a merge
   may be unsigned only if it adds nothing either parent did not have);
2. no commit the model made as a hostile move is reachable from main (verify ok covers
   "every change approved"; this covers a verify that approves too much);
3. no personal value in clear in any object reachable from main;
4. every record key the model made is still in the keystore (no purge is ever approved
   here, so `keys shred` may destroy nothing), and the server holds branches only.

Profiles: the suite runs a small, derandomized one (3 examples of 8 steps); the deep one
(50 of 25; ARCHIVECTL_ADVERSARY_EXAMPLES / ARCHIVECTL_ADVERSARY_STEPS change it) by hand:
`ARCHIVECTL_ADVERSARY=deep pytest -s -n 0 tests/test_adversary.py -k nothing_hostile`; figures in
bench/RESULTS.md. What the machine found is kept as an ordinary test at the end.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import RECORD, SECRETS, Person, World, _repoint, found_world, no_secrets_in, once
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test
from test_office import Desk, open_office
from test_rule_table import Desk as HandDesk
from test_rule_table import destruction_entry

TODAY = dt.date.today().isoformat()
PEOPLE = ("clk01", "but01", "mgr01", "mgr02", "gm01")
INSIDERS = ("clk01", "but01", "mgr01", "mgr02")

# ---------------------------------------------------------------------------------------------- profiles

settings.register_profile(
    "adversary-small",
    max_examples=3,
    stateful_step_count=8,
    deadline=None,
    derandomize=True,  # the suite's run is the same every time (CI is repeatable)
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
settings.register_profile(
    "adversary-deep",
    max_examples=int(os.environ.get("ARCHIVECTL_ADVERSARY_EXAMPLES", "50")),
    stateful_step_count=int(os.environ.get("ARCHIVECTL_ADVERSARY_STEPS", "25")),
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],  # a finding is reported with its steps, unshrunk (hours)
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
# What the runs of this process did, printed at the end (pytest -s) for bench/RESULTS.md.
STATS: dict[str, int] = {}


def count(what: str) -> None:
    STATS[what] = STATS.get(what, 0) + 1


PROFILE = settings.get_profile(
    "adversary-deep" if os.environ.get("ARCHIVECTL_ADVERSARY") == "deep" else "adversary-small"
)


# ---------------------------------------------------------------------------------------------- the office


def build_office(tmp: Path, people: dict[str, Person]) -> dict:
    """The founded archive with two approved households, the server with its hook, everyone's clone, and two
    proposals on the server: a household approved but not merged, a sealed edit awaiting mgr02."""
    w = World(tmp, people)
    found_world(w)
    numbers = [w.add(), w.add(text=RECORD.replace('unit: "1203"', 'unit: "1204"'))]
    w.approve("mgr01")
    server = tmp / "server.git"
    open_office(w, server)
    clerk, butler, manager = (Desk(w, who, server) for who in ("clk01", "but01", "mgr01"))
    proposals = []
    form = tmp / "form-1290.yaml"
    form.write_text(RECORD.replace('unit: "1203"', 'unit: "1290"'))
    for seat, branch, args, approver in (
        (clerk, "add-0", ("add", "--file", str(form)), "mgr01"),
        (butler, "edit-0", ("edit", numbers[0], "--set", "customers.0.phone=13799990000"), "mgr02"),
    ):
        seat.git("switch", "-q", "-c", branch)
        said = seat.cli(*args, "--reason", "as asked", "--approver", approver)
        assert said.exit_code == 0, said.stderr
        head = seat.git("rev-parse", "HEAD").stdout.strip()
        seat.git("push", "-q", "--no-verify", "origin", f"HEAD:refs/heads/{branch}")
        number = said.stdout.strip() if args[0] == "add" else numbers[0]
        kind = args[0]
        proposals.append(dict(branch=branch, kind=kind, actor=seat.who, approver=approver, number=number, head=head))
    proposals[1]["phone"] = "13799990000"
    manager.git("fetch", "-q")
    manager.git("switch", "-q", "add-0")
    manager.ok("approve", "--yes", "--reason", "checked")
    manager.git("push", "-q", "--no-verify", "origin", "add-0")
    proposals[0]["approved"] = True
    for repo in [server, w.root, *(tmp / f"home-{who}" / "estate" for who in INSIDERS)]:
        subprocess.run(["git", "-C", str(repo), "gc", "-q"], check=True)  # fewer files to copy per example
    return {"households": numbers, "proposals": proposals}


@pytest.fixture(scope="session")
def office_base(built_once: Path, people) -> tuple[Path, dict]:
    """Built once per run: (its directory, what build_office made there)."""
    return once(built_once, "adversary-office", lambda tmp: build_office(tmp, people))


def run(*args: str, input: bytes | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), input=input, capture_output=True, check=False, env=env)


def sgit(server: Path, *args: str, input: bytes | None = None) -> str:
    """git on the server repository itself (replace refs off: the invariant reads what is stored)."""
    proc = run("git", "--no-replace-objects", "--git-dir", str(server), *args, input=input)
    assert proc.returncode == 0, (args, proc.stderr)
    return proc.stdout.decode("utf-8", "replace")


@dataclasses.dataclass
class Proposal:
    branch: str
    kind: str  # add, edit, tombstone, configure
    actor: str
    approver: str
    number: str | None
    head: str
    approved: bool = False
    phone: str | None = None  # a sealed edit's new phone


class Office(RuleBasedStateMachine):
    """The office and the model of what its server's main may hold."""

    def __init__(self, base: tuple[Path, dict], tmp: Path, people: dict[str, Person]):
        super().__init__()
        source, made = base
        self.tmp = tmp
        shutil.copytree(source, tmp, symlinks=True)
        _repoint(tmp, str(source), str(tmp))
        self.world = World(tmp, people)
        self.server = tmp / "server.git"
        self.seat = {who: Desk(self.world, who, self.server) for who in PEOPLE}
        self.seat["gm01"].clone = self.world.root
        self.households = dict.fromkeys(made["households"], "active")  # on the server's main: number -> status
        self.proposals = [Proposal(**p) for p in made["proposals"]]
        self.busy = {p.number for p in self.proposals if p.kind != "add"}  # households with an open proposal
        self.hostile: dict[str, str] = {}  # commit -> the move that made it: never on main
        self.keys = {*self.households, *(p.number for p in self.proposals)}  # must stay in the keystore
        self.secrets = [*SECRETS, *(p.phone for p in self.proposals if p.phone)]
        self.counter = 0
        self.checked = self.shred_seen = ""
        self.steps: list[str] = []
        count("examples")

    # ------------------------------------------------------------------------------------------ helpers
    def name(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}-{self.counter}"

    def main(self) -> str:
        return sgit(self.server, "rev-parse", "refs/heads/main").strip()

    def fresh(self, who: str, branch: str = "main", start: str = "origin/main") -> Desk:
        """who's clone, fetched, on branch reset to start (what was there before is dropped)."""
        seat = self.seat[who]
        seat.git("merge", "--abort", check=False)
        seat.git("rebase", "--abort", check=False)
        seat.git("fetch", "-q", "--prune", "origin")
        seat.git("reset", "-q", "--hard")
        seat.git("clean", "-q", "-fd")
        seat.git("switch", "-q", "-C", branch, start)
        return seat

    def hand(self, who: str) -> HandDesk:
        """test_rule_table's Desk on who's clone: hand-made commits signed with a real staff key."""
        return HandDesk(self.world, self.seat[who].clone, {})

    def head(self, who: str, rev: str = "HEAD") -> str:
        return self.seat[who].git("rev-parse", rev).stdout.strip()

    def push(self, who: str, *refspecs: str, force: bool = False) -> subprocess.CompletedProcess:
        """Push past the clone's own hook (the server is the judge); then check main if it moved."""
        args = ["push", "--no-verify", *(["--force"] if force else []), "origin", *refspecs]
        pushed = self.seat[who].git(*args, check=False)
        count("pushes")
        self.check()
        return pushed

    def attack(
        self, who: str, move: str, commits: list[str], refspec: str = "HEAD:main"
    ) -> subprocess.CompletedProcess:
        """A hostile move's commits, pushed to main: none of them may ever be reachable from it."""
        self.steps.append(f"{move} by {who}")
        for commit in commits:
            self.hostile.setdefault(commit, f"{move} by {who}")
        pushed = self.push(who, refspec)
        refusal = re.search(r"refused: [0-9a-f]{12} ([a-z-]+):|refused: (.{0,40})", pushed.stderr)
        count(f"hostile {move.split(' ')[0]} refused ({(refusal and (refusal[1] or refusal[2])) or pushed.returncode})")
        return pushed

    def propose(self, who: str, kind: str, approver: str, number: str | None, *args: str, **extra) -> Proposal:
        """A change as people make it: a branch off the server's main, the archivectl command, a push."""
        branch = self.name(kind)
        seat = self.fresh(who, branch)
        said = seat.cli(*args, "--reason", f"{kind} as asked", "--approver", approver)
        assert said.exit_code == 0, (args, said.stdout, said.stderr)
        number = number or said.stdout.strip()
        pushed = self.push(who, f"HEAD:refs/heads/{branch}")
        assert pushed.returncode == 0, pushed.stderr  # a proposal goes up before its approval
        proposal = Proposal(branch, kind, who, approver, number, self.head(who), **extra)
        self.proposals.append(proposal)
        if number and kind != "add":
            self.busy.add(number)
        self.steps.append(f"{kind} {number or ''} by {who} for {approver}")
        return proposal

    def active(self) -> list[str]:
        return sorted(n for n, s in self.households.items() if s == "active" and n not in self.busy)

    def record_path(self, who: str, number: str) -> Path:
        found = list(self.seat[who].clone.glob(f"households/*/*/{number}/record.yaml"))
        assert len(found) == 1, (number, found)
        return found[0]

    # ------------------------------------------------------------------------------------------ legitimate
    @rule(approver=st.sampled_from(["mgr01", "mgr02"]))
    def clerk_proposes_a_household(self, approver: str) -> None:
        count("rule clerk_proposes_a_household")
        form = self.tmp / f"form-{self.counter}.yaml"
        form.write_text(RECORD.replace('unit: "1203"', f'unit: "{1300 + self.counter}"'))
        proposal = self.propose("clk01", "add", approver, None, "add", "--file", str(form))
        self.keys.add(proposal.number)

    @precondition(lambda self: self.active())
    @rule(data=st.data(), sealed=st.booleans(), approver=st.sampled_from(["mgr01", "mgr02"]))
    def butler_edits_a_field(self, data: st.DataObject, sealed: bool, approver: str) -> None:
        count("rule butler_edits_a_field")
        number = data.draw(st.sampled_from(self.active()), label="household")
        if sealed:  # a reader changes a sealed field: the phone
            phone = f"137{self.counter + 1:08d}"
            self.secrets.append(phone)
            self.propose(
                "but01", "edit", approver, number, "edit", number, "--set", f"customers.0.phone={phone}", phone=phone
            )
        else:
            floor = f"{20 + self.counter}"  # a clear field, a new value each time
            self.propose("but01", "edit", approver, number, "edit", number, "--set", f"floor={floor}")

    @precondition(lambda self: self.active())
    @rule(data=st.data(), approver=st.sampled_from(["mgr01", "mgr02"]))
    def butler_tombstones(self, data: st.DataObject, approver: str) -> None:
        count("rule butler_tombstones")
        number = data.draw(st.sampled_from(self.active()), label="household")
        self.propose("but01", "tombstone", approver, number, "tombstone", number)

    @precondition(lambda self: not any(p.kind == "configure" for p in self.proposals))
    @rule()
    def manager_proposes_a_settings_change(self) -> None:
        count("rule manager_proposes_a_settings_change")
        seat = self.fresh("mgr02", self.name("settings"))
        settings_file = seat.clone / "archive.yaml"
        days = 200 + self.counter
        text = re.sub(r"review_interval_days: \d+", f"review_interval_days: {days}", settings_file.read_text())
        settings_file.write_text(text)
        said = seat.cli("configure", "--reason", "review more often", "--approver", "gm01")
        assert said.exit_code == 0, said.stderr
        branch = seat.git("branch", "--show-current").stdout.strip()
        assert self.push("mgr02", f"HEAD:refs/heads/{branch}").returncode == 0
        self.proposals.append(Proposal(branch, "configure", "mgr02", "gm01", None, self.head("mgr02")))
        self.steps.append(f"configure by mgr02 for gm01 ({branch})")

    @precondition(lambda self: any(not p.approved for p in self.proposals))
    @rule(data=st.data())
    def approver_signs(self, data: st.DataObject) -> None:
        count("rule approver_signs")
        self.sign(data.draw(st.sampled_from([p for p in self.proposals if not p.approved]), label="proposal"))

    def sign(self, proposal: Proposal) -> None:
        """The approver, on their own machine: fetch the proposal, sign the approval, push the branch."""
        seat = self.fresh(proposal.approver, proposal.branch, f"origin/{proposal.branch}")
        approved = seat.cli("approve", "--yes", "--reason", "checked against the form")
        assert approved.exit_code == 0, (proposal, approved.stderr)
        pushed = self.push(proposal.approver, f"HEAD:refs/heads/{proposal.branch}")
        assert pushed.returncode == 0, (proposal, pushed.stderr)
        proposal.approved = True
        self.steps.append(f"{proposal.approver} approves {proposal.branch}")

    @precondition(lambda self: self.proposals)
    @rule(data=st.data())
    def approver_merges(self, data: st.DataObject) -> None:
        """The approver merges the proposal into main (signing it first if they have not yet): git merge, push."""
        count("rule approver_merges")
        self.merge(data.draw(st.sampled_from(self.proposals), label="proposal"))

    def merge(self, proposal: Proposal) -> None:
        if not proposal.approved:
            self.sign(proposal)
        seat = self.fresh(proposal.approver)
        merged = seat.git(
            "merge", "-q", "--no-ff", "-m", f"Merge {proposal.branch}", f"origin/{proposal.branch}", check=False
        )
        assert merged.returncode == 0, (proposal, merged.stdout, merged.stderr)
        pushed = self.push(proposal.approver, "main")
        assert pushed.returncode == 0, (proposal, pushed.stderr)  # approved, so main takes it
        self.proposals.remove(proposal)
        self.busy.discard(proposal.number or "")
        if proposal.kind == "add":
            self.households[proposal.number] = "active"
        elif proposal.kind == "tombstone":
            self.households[proposal.number] = "tombstoned"
        self.steps.append(f"{proposal.approver} merges {proposal.branch}")

    @precondition(lambda self: self.active())
    @rule(data=st.data())
    def butler_looks_up(self, data: st.DataObject) -> None:
        count("rule butler_looks_up")
        number = data.draw(st.sampled_from(self.active()), label="household")
        seat = self.fresh("but01")
        shown = seat.cli("show", number, "--reveal", "--reason", "phone call")
        assert shown.exit_code == 0, shown.stderr
        pushed = self.push("but01", "main")
        assert pushed.returncode == 0, pushed.stderr  # a look-up needs no approval
        self.steps.append(f"but01 reveals {number}")

    @precondition(lambda self: self.shred_seen != self.main())
    @rule()
    def the_shred_cron_runs(self) -> None:
        """The cron on a manager's machine, once per new main: keys shred (nothing is purged here: no key goes)."""
        count("rule the_shred_cron_runs")
        self.shred_seen = self.main()
        seat = self.fresh("mgr01")
        shredded = seat.cli("keys", "shred")
        assert shredded.exit_code == 0, shredded.stderr
        if self.head("mgr01") != self.main():
            assert self.push("mgr01", "main").returncode == 0
        self.steps.append("mgr01 runs keys shred")

    # ------------------------------------------------------------------------------------------ hostile
    @rule(
        who=st.sampled_from(INSIDERS),
        what=st.sampled_from(["staff", "settings", "schema", "record", "clear"]),
        via_branch=st.booleans(),
    )
    def hand_made_change(self, who: str, what: str, via_branch: bool) -> None:
        """A signed commit by hand: no approval, or content its action may not change."""
        count("rule hand_made_change")
        seat, desk = self.fresh(who), self.hand(who)
        number = sorted(self.households)[0]
        if what == "staff":  # make myself a gm
            staff = yaml.safe_load((seat.clone / "staff.yaml").read_text())
            for member in staff["staff"]:
                if member["id"] == who:
                    member["role"], member["buildings"] = "gm", []
            (seat.clone / "staff.yaml").write_text(yaml.safe_dump(staff, allow_unicode=True, sort_keys=False))
            commit = desk.sign(who, "staff", subject=f"staff edit {who}", approver="gm01")
        elif what == "settings":
            path = seat.clone / "archive.yaml"
            path.write_text(path.read_text().replace("retention_days: 30", "retention_days: 0"))
            commit = desk.sign(who, "configure", subject="configure", approver="gm01")
        elif what == "schema":  # nothing personal any more: every later edit writes in clear
            path = seat.clone / "schemas/household.schema.json"
            path.write_text(path.read_text().replace('"x-sensitive"', '"x-was-sensitive"'))
            commit = desk.sign(who, "configure", subject="simpler schema", approver="gm01")
        elif what == "record":
            desk.put_record(number, {**desk.record(number), "occupancy": "vacant"})
            commit = desk.sign(who, "edit", subject=f"edit {number}", approver="mgr01", archive_no=number)
        else:  # personal data in clear in a record
            desk.put_record(number, {**desk.record(number), "special_requests": SECRETS[-1]})
            commit = desk.sign(who, "edit", subject=f"edit {number}", approver="mgr01", archive_no=number)
        if not via_branch:
            self.attack(who, f"hand-made {what}", [commit])
            return
        branch = self.name(f"hand-{what}")  # a proposal branch, then merged by a manager without approval
        self.hostile[commit] = f"hand-made {what} by {who}"
        self.push(who, f"HEAD:refs/heads/{branch}")
        merger = "mgr02" if who == "mgr01" else "mgr01"
        seat = self.fresh(merger)
        seat.git("merge", "-q", "--no-ff", "-m", f"Merge {branch}", f"origin/{branch}", check=False)
        self.attack(merger, f"merge of hand-made {what} by {who}", [self.head(merger)], "main")

    @precondition(lambda self: self.proposals)
    @rule(data=st.data(), who=st.sampled_from(PEOPLE))
    def re_signs_someone_elses_commit(self, data: st.DataObject, who: str) -> None:
        """The proposal's change and message on top of main, signed with who's key (the actor's: re-signed anew).

        Where main has not moved since the proposal, its exact tree, parent and message.
        """
        count("rule re_signs_someone_elses_commit")
        proposal = data.draw(st.sampled_from(self.proposals), label="proposal")
        seat = self.fresh(who)
        if self.head(who, f"{proposal.head}~1") == self.head(who):
            tree = self.head(who, f"{proposal.head}^{{tree}}")
            message = seat.git("log", "-1", "--format=%B", proposal.head).stdout
            made = seat.git("commit-tree", "-S", tree, "-p", "HEAD", "-m", message).stdout.strip()
        else:
            if seat.git("cherry-pick", "--no-commit", proposal.head, check=False).returncode != 0:
                return
            seat.git("commit", "-q", "--no-verify", "-S", "-C", proposal.head)
            made = self.head(who)
        self.attack(who, f"re-signed {proposal.branch}", [made], f"{made}:refs/heads/main")

    @precondition(lambda self: self.active())
    @rule(data=st.data(), raw=st.booleans())
    def replays_an_old_approval(self, data: st.DataObject, raw: bool) -> None:
        """A new edit naming mgr01, under mgr01's old approval: its signed object re-parented, or signed anew."""
        count("rule replays_an_old_approval")
        number = data.draw(st.sampled_from(self.active()), label="household")
        seat, desk = self.fresh("but01"), self.hand("but01")
        old = seat.git("log", "--format=%H", "--grep=^Action: approve$", "-n", "1", "origin/main").stdout.strip()
        approved = seat.git("log", "-1", "--format=%(trailers:key=Approves,valueonly)", old).stdout.split()
        desk.put_record(number, {**desk.record(number), "occupancy": "vacant"})
        change = desk.sign("but01", "edit", subject=f"edit {number}", approver="mgr01", archive_no=number)
        if raw:
            body = run("git", "-C", str(seat.clone), "cat-file", "commit", old).stdout
            body = re.sub(rb"^parent [0-9a-f]{40}\n", f"parent {change}\n".encode(), body, count=1, flags=re.M)
            made = run("git", "-C", str(seat.clone), "hash-object", "-t", "commit", "-w", "--stdin", input=body)
            replay = made.stdout.decode().strip()
            seat.git("update-ref", "HEAD", replay)
        else:  # mgr01 is asked to sign again "what you approved last week"; it names the old commit
            manager = HandDesk(self.world, seat.clone, {})
            replay = manager.approve_by_hand("mgr01", *approved)
        self.attack("but01", f"{'raw' if raw else 'signed'} replay of {old[:12]}", [change, replay])

    @precondition(lambda self: any(p.approved for p in self.proposals))
    @rule(data=st.data(), by_approver=st.booleans())
    def rebases_an_approved_branch(self, data: st.DataObject, by_approver: bool) -> None:
        """The approved branch rebased onto main (re-signed): the approval names commits no longer there."""
        count("rule rebases_an_approved_branch")
        proposal = data.draw(st.sampled_from([p for p in self.proposals if p.approved]), label="approved")
        who = proposal.approver if by_approver else proposal.actor
        seat = self.fresh(who, self.name("rebased"), f"origin/{proposal.branch}")
        rebased = seat.git("-c", "commit.gpgsign=true", "rebase", "-q", "--force-rebase", "origin/main", check=False)
        if rebased.returncode != 0:
            seat.git("rebase", "--abort", check=False)
            return
        made = seat.git("rev-list", "origin/main..HEAD").stdout.split()
        self.attack(who, f"rebase of {proposal.branch}", made)

    @precondition(lambda self: self.active() and any(p.approved for p in self.proposals))
    @rule(data=st.data())
    def merge_with_a_new_sealed_block(self, data: st.DataObject) -> None:
        """The butler merges an approved branch and, in the signed merge, a phone nobody approved."""
        count("rule merge_with_a_new_sealed_block")
        proposal = data.draw(st.sampled_from([p for p in self.proposals if p.approved]), label="approved")
        number = data.draw(st.sampled_from(self.active()), label="household")
        phone = f"136{self.counter + 1:08d}"
        self.secrets.append(phone)
        seat = self.fresh("but01", self.name("scratch"))
        said = seat.cli("edit", number, "--set", f"customers.0.phone={phone}", "--reason", "x", "--approver", "mgr01")
        assert said.exit_code == 0, said.stderr
        forged = self.record_path("but01", number).read_bytes()
        seat = self.fresh("but01")
        seat.git("merge", "-q", "--no-ff", "--no-commit", f"origin/{proposal.branch}", check=False)
        self.record_path("but01", number).write_bytes(forged)
        seat.git("add", "-A")
        seat.git("commit", "-q", "--no-verify", "-S", "-m", f"Merge {proposal.branch}")
        self.attack("but01", f"merge of {proposal.branch} with a new sealed block for {number}", [self.head("but01")])

    @precondition(lambda self: any(p.phone for p in self.proposals))
    @rule(data=st.data())
    def resolves_a_sealed_conflict_by_hand(self, data: st.DataObject) -> None:
        count("rule resolves_a_sealed_conflict_by_hand")
        proposal = data.draw(st.sampled_from([p for p in self.proposals if p.phone]), label="sealed edit")
        self.sealed_conflict(proposal)

    def sealed_conflict(self, proposal: Proposal) -> tuple[str, subprocess.CompletedProcess]:
        """Two approved edits of one phone; the butler resolves the conflict with a third phone and signs the merge.

        The merge's sealed block is sealed to the household's record key, its clear part is the
        field-level merge, its signer reads the building: only an approval could make the third
        phone legitimate, and nobody gave one (#25 item 4). Returns the merge commit and its push.
        """
        number = proposal.number
        if not proposal.approved:
            self.sign(proposal)
        self.busy.discard(number)
        first = self.propose(
            "but01",
            "edit",
            "mgr01",
            number,
            "edit",
            number,
            "--set",
            f"customers.0.phone=135{self.counter + 1:08d}",
            phone=f"135{self.counter + 1:08d}",
        )
        self.secrets.append(first.phone)
        self.merge(first)  # the other approved edit of the phone reaches main first
        third = f"134{self.counter + 1:08d}"
        self.secrets.append(third)
        seat = self.fresh("but01", self.name("scratch"))  # the butler's own version, made with archivectl
        said = seat.cli("edit", number, "--set", f"customers.0.phone={third}", "--reason", "x", "--approver", "mgr01")
        assert said.exit_code == 0, said.stderr
        forged = self.record_path("but01", number).read_bytes()
        seat = self.fresh("but01")
        seat.git("merge", "-q", "--no-ff", "--no-commit", f"origin/{proposal.branch}", check=False)
        self.record_path("but01", number).write_bytes(forged)
        seat.git("add", "-A")
        seat.git("commit", "-q", "--no-verify", "-S", "-m", f"Merge {proposal.branch}")
        merge = self.head("but01")
        self.proposals.remove(proposal)  # it conflicts with main now: abandoned
        pushed = self.attack("but01", f"merge of {proposal.branch} resolving the phone of {number} by hand", [merge])
        return merge, pushed

    @rule(who=st.sampled_from(INSIDERS), kind=st.sampled_from(["replace", "notes", "tag"]))
    def pushes_other_refs(self, who: str, kind: str) -> None:
        """A stand-in (an unsigned commit making who a gm) behind main, as a replace ref, a note or a tag."""
        count("rule pushes_other_refs")
        seat = self.fresh(who)
        staff = seat.clone / "staff.yaml"
        staff.write_text(staff.read_text().replace("role: clerk", "role: gm"))
        seat.git("add", "-A")
        seat.git("-c", "commit.gpgsign=false", "commit", "-q", "--no-verify", "-m", "look-up\n\nAction: reveal")
        stand_in = self.head(who)
        main = self.main()
        ref = {"replace": f"refs/replace/{main}", "notes": "refs/notes/commits", "tag": f"refs/tags/{self.name('v')}"}
        self.hostile[stand_in] = f"stand-in by {who}"
        pushed = self.push(who, f"{stand_in}:{ref[kind]}")
        assert pushed.returncode != 0 and "this server takes branches only" in pushed.stderr, pushed.stderr
        self.attack(who, f"stand-in behind a {kind} ref", [stand_in])

    @precondition(lambda self: self.active())
    @rule(data=st.data(), who=st.sampled_from(PEOPLE), kind=st.sampled_from(["shred", "purge"]))
    def made_up_destruction(self, data: st.DataObject, who: str, kind: str) -> None:
        """A destruction entry naming a live household's key; then `keys shred` on that local main."""
        count("rule made_up_destruction")
        number = data.draw(st.sampled_from(self.active()), label="household")
        self.fresh(who)
        desk = self.hand(who)
        recipient = desk.record(number)["recipient"]
        if kind == "shred":
            entry = {
                "when": f"{TODAY}T00:00:00Z",
                "who": who,
                "action": "shred",
                "archive_no": number,
                "keys": [f"{number} {recipient} (purge 0123456789ab)"],
                "method": "said, not done",
            }
            desk.append(desk.register("destruction"), entry)
            commit = desk.sign(who, "shred", subject="keys shred", approver=None, archive_no=number)
        else:  # a purge that is not one: never tombstoned, never approved
            shutil.rmtree(desk.path / desk.home(number))
            desk.append(desk.register("destruction"), destruction_entry(who, number))
            approver = "mgr01" if who != "mgr01" else "mgr02"
            commit = desk.sign(who, "purge", subject=f"purge {number}", approver=approver, archive_no=number)
        shredded = self.seat[who].cli("keys", "shred")  # the cron's command, on this clone's main
        assert not no_secrets_in(shredded.stdout + shredded.stderr)
        self.attack(who, f"made-up {kind} of {number}", [commit])
        self.check_keys()

    @rule(who=st.sampled_from(PEOPLE), how=st.sampled_from(["force", "delete", "rewrite"]))
    def rewrites_or_deletes_main(self, who: str, how: str) -> None:
        count("rule rewrites_or_deletes_main")
        before = self.main()
        seat = self.fresh(who)
        if how == "force":
            parent = self.head(who, "HEAD~1")
            pushed = self.push(who, f"+{parent}:refs/heads/main")
        elif how == "delete":
            pushed = self.push(who, ":refs/heads/main")
        else:  # the same tree, history rewritten: one signed commit on main's grandparent
            tree, parent = self.head(who, "HEAD^{tree}"), self.head(who, "HEAD~1")
            made = seat.git("commit-tree", "-S", tree, "-p", parent, "-m", "tidy\n\nAction: edit\nReason: tidy")
            self.hostile[made.stdout.strip()] = f"rewritten main by {who}"
            pushed = self.push(who, f"+{made.stdout.strip()}:refs/heads/main")
        self.steps.append(f"{how} main by {who}")
        assert pushed.returncode != 0, pushed.stderr
        assert self.main() == before

    @rule(who=st.sampled_from(INSIDERS), merge=st.booleans())
    def unsigned_commit(self, who: str, merge: bool) -> None:
        """An unsigned change of a record: a plain commit, or a merge that adds it (a forge button's merge)."""
        count("rule unsigned_commit")
        seat = self.fresh(who)
        number = sorted(self.households)[0]
        if merge and self.proposals:
            branch = self.proposals[0].branch
            seat.git("merge", "-q", "--no-ff", "--no-commit", f"origin/{branch}", check=False)
        desk = self.hand(who)
        desk.put_record(number, {**desk.record(number), "floor": 13})
        seat.git("add", "-A")
        message = f"edit {number}\n\nAction: edit\nReason: typo\nApproved-by: mgr01\nActed-by: {who}"
        seat.git("-c", "commit.gpgsign=false", "commit", "-q", "--no-verify", "-m", message)
        self.attack(who, f"unsigned {'merge' if merge else 'commit'}", [self.head(who)])

    # ------------------------------------------------------------------------------------------ the invariant
    @invariant()
    def main_holds_only_judged_history(self) -> None:
        count("steps (and starts)")
        self.check()

    def check(self) -> None:
        main = self.main()
        refs = sgit(self.server, "for-each-ref", "--format=%(refname)").split()
        assert all(r.startswith("refs/heads/") for r in refs), refs  # (4) branches only
        assert "refs/heads/main" in refs
        if main == self.checked:
            return
        commits = sgit(self.server, "rev-list", "--parents", main).splitlines()
        self.verified_by_archivectl(main)  # (1), (2)
        self.signed_by_staff(commits)  # (1), independently
        reached = {line.split()[0] for line in commits}
        smuggled = {c: why for c, why in self.hostile.items() if c in reached}
        assert not smuggled, f"hostile commits on the server's main: {smuggled}; steps: {self.steps}"  # (2)
        self.nothing_in_clear(main)  # (3)
        self.check_keys()  # (4)
        self.checked = main
        count("invariant checks of a new main")

    def verified_by_archivectl(self, main: str) -> None:
        audit = self.tmp / "audit"
        shutil.rmtree(audit, ignore_errors=True)
        subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(self.server), str(audit)], check=True)
        result = self.world.cli(
            "aud01",
            "--archive",
            str(audit),
            "verify",
            "--format",
            "json",
            env={"ARCHIVECTL_KEYSTORE": str(self.world.keys)},
        )
        report = json.loads(result.stdout)
        assert result.exit_code == 0 and report["ok"], (report["findings"], self.steps)

    def signed_by_staff(self, commits: list[str]) -> None:
        """%G? against an allowed-signers file from the first parent's staff.yaml (the root's own for the root)."""
        judged = {}
        for line in commits:
            commit, *parents = line.split()
            judged[commit] = parents[0] if parents else commit
        listing = sgit(
            self.server,
            "cat-file",
            "--batch-check=%(objectname)",
            input="".join(f"{p}:staff.yaml\n" for p in judged.values()).encode(),
        )
        groups: dict[str, list[str]] = {}
        for (commit, _), blob in zip(judged.items(), listing.split(), strict=True):
            groups.setdefault(blob, []).append(commit)
        for blob, members in groups.items():
            staff = yaml.safe_load(sgit(self.server, "cat-file", "blob", blob))["staff"]
            signers = self.tmp / f"allowed-{blob[:12]}"
            signers.write_text("".join(f'{m["id"]} namespaces="git" {m["key"]}\n' for m in staff if m.get("active")))
            shown = sgit(
                self.server,
                "-c",
                f"gpg.ssh.allowedSignersFile={signers}",
                "log",
                "--no-walk=unsorted",
                "--format=%H %G? %P",
                *members,
            )
            for line in shown.splitlines():
                commit, status, *parents = line.split()
                if status == "G":
                    continue
                assert status == "N" and len(parents) == 2, f"{commit}: signature {status}; steps: {self.steps}"
                self.adds_nothing(commit, *parents)

    def adds_nothing(self, merge: str, first: str, second: str) -> None:
        """An unsigned merge holds, path by path and in records value by value, only what a parent has."""
        changed = sgit(self.server, "diff-tree", "-r", "--no-renames", "--name-only", "-z", first, merge)
        for path in filter(None, changed.split("\0")):
            mine, theirs = self.blob(merge, path), self.blob(second, path)
            if mine == theirs:
                continue
            assert path.endswith("/record.yaml") and mine and theirs, f"{merge}: unsigned merge adds {path}"
            ours = self.blob(first, path)
            assert ours is not None, f"{merge}: unsigned merge adds {path}"
            merged = leaves_from(yaml.safe_load(mine), yaml.safe_load(ours), yaml.safe_load(theirs))
            assert merged, f"{merge}: unsigned merge makes up a value in {path}; steps: {self.steps}"

    def blob(self, commit: str, path: str) -> str | None:
        proc = run("git", "--git-dir", str(self.server), "cat-file", "blob", f"{commit}:{path}")
        return proc.stdout.decode("utf-8", "replace") if proc.returncode == 0 else None

    def nothing_in_clear(self, main: str) -> None:
        objects = sgit(self.server, "rev-list", "--objects", main)
        ids = "".join(line.split()[0] + "\n" for line in objects.splitlines())
        data = run("git", "--git-dir", str(self.server), "cat-file", "--batch", input=ids.encode()).stdout
        text = data.decode("utf-8", "replace")
        found = [s for s in self.secrets if s in text]
        assert not found and not no_secrets_in(data), f"in clear on main: {found}; steps: {self.steps}"

    def check_keys(self) -> None:
        held = {p.name.split(".")[0] for p in (self.world.keys / "keys").glob("*.age")}
        missing = self.keys - held
        assert not missing, f"record keys destroyed without an approved purge: {missing}; steps: {self.steps}"

    def teardown(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def leaves_from(merged: object, ours: object, theirs: object) -> bool:
    """Every value in merged is the value one of the sides has at that place (the sealed block as a whole)."""
    if merged == ours or merged == theirs:
        return True
    if isinstance(merged, dict):
        return all(
            leaves_from(
                v,
                (ours or {}).get(k) if isinstance(ours, dict) else None,
                (theirs or {}).get(k) if isinstance(theirs, dict) else None,
            )
            for k, v in merged.items()
        )
    if isinstance(merged, list) and isinstance(ours, list) and isinstance(theirs, list):
        return all(
            leaves_from(v, ours[i] if i < len(ours) else None, theirs[i] if i < len(theirs) else None)
            for i, v in enumerate(merged)
        )
    return False


def test_nothing_hostile_reaches_the_servers_main(office_base, tmp_path: Path, people):  # P7, P9, P12, P13, P14
    """The office under a random mix of work and attacks; the server's main stays judged history."""
    examples = iter(range(10**6))
    STATS.clear()
    try:
        run_state_machine_as_test(
            lambda: Office(office_base, tmp_path / f"ex{next(examples)}", people), settings=PROFILE
        )
    finally:
        print("adversary:", json.dumps(STATS, indent=1, sort_keys=True))


# ---------------------------------------------------------------------------------------------- what it found


def test_a_merge_resolving_two_sealed_edits_with_a_third_value_is_refused(office_base, tmp_path: Path, people):  # P12
    """The machine's finding, made by hand: the butler's signed merge carries a phone nobody approved.

    Found on ec1ab26 (verify and the server hook took the merge, and `show --reveal` on main gave the third
    phone); refused since #25 item 4 landed (judge/merges.py SEALED_BY_HAND).

    1. but01 proposes `edit H --set customers.0.phone=A` (approver mgr02), mgr02 approves it (branch edit-0).
    2. but01 proposes `edit H --set customers.0.phone=B` (approver mgr01); mgr01 approves and merges it to main.
    3. but01 makes `edit H --set customers.0.phone=C` on a scratch branch (never pushed, never approved) and
       keeps its record.yaml; on main, `git merge --no-commit origin/edit-0` conflicts on H's record; but01
       writes the kept record.yaml (phone C, sealed to H's record key, clear part unchanged), commits the merge
       signed with their own key (`git commit -S`) and pushes it to main.
    """
    office = Office(office_base, tmp_path / "office", people)
    proposal = next(p for p in office.proposals if p.phone)
    merge, pushed = office.sealed_conflict(proposal)  # its check() fails when the server takes the merge
    assert pushed.returncode != 0
    assert f"{merge[:12]} approver: both sides changed its sealed fields: the merge needs an approval" in pushed.stderr
    assert merge not in sgit(office.server, "rev-list", "main").split()
