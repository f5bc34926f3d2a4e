"""Every row of verify's rule table, broken by a hand-made commit signed with a real staff key (P3, P6-P14).

archivectl/rules.py holds one row per `Action:`: which paths may change and how,
which approval, which registers, how a record may change. Each test below makes
the kind of commit a staff member could make by hand with their own key (git
commit -S, plausible trailers) and shows that `verify` names what is wrong; where
it matters, the real command making the same kind of change verifies, so a test
cannot pass for the wrong reason. Content decides, never the subject.

BREAKS holds at least one breaking commit per row; test_breaking_a_row_is_flagged_by_that_row
also loosens that one row (monkeypatching rules.TABLE, the thing under test: git, ssh and age
stay real) and shows the finding goes, so deleting or relaxing any row fails a test.

Speed: one archive, server and clone are built per module and copied per test.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import secrets
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pyrage
import pytest
from conftest import RECORD, World, assert_refused, assert_unchanged, ok_at, once, person_env, process_env, staff_yaml
from test_verify import Clone
from typer.testing import CliRunner

from archivectl import records, rules, yamlio
from archivectl.cli import app

TODAY = dt.date.today().isoformat()
DUE = (dt.date.today() + dt.timedelta(days=7)).isoformat()  # still ahead when a run crosses midnight


# ---------------------------------------------------------------------------------------------- helpers


class Desk(Clone):
    """A staff member's clone of the server, where commits are made by hand and verified."""

    def __init__(self, world: World, path: Path, households: dict[str, str]):
        super().__init__(world, path)
        self.h = households  # role -> archive number: live (with a scan), tombstoned, moved-out

    # ---- files
    def home(self, number: str) -> str:
        """households/<building>/<unit>/<number>/ of a household on this branch."""
        found = list(self.path.glob(f"households/*/*/{number}"))
        assert len(found) == 1, (number, found)
        return str(found[0].relative_to(self.path)) + "/"

    def record(self, number: str) -> dict:
        return yamlio.loads((self.path / self.home(number) / "record.yaml").read_bytes())

    def put_record(self, number: str, stored: dict, home: str | None = None) -> None:
        target = self.path / (home or self.home(number)) / "record.yaml"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(records.dump(stored))

    def write(self, relpath: str, data: str | bytes) -> None:
        target = self.path / relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data if isinstance(data, bytes) else data.encode())

    def append(self, register: str, entry: dict) -> str:
        """Register one entry as archivectl writes it: a file of its own, named by time, action and who."""
        kind = register.split("/")[1]
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
        relpath = f"{register}/{stamp}-{entry.get('action', kind)}-{entry.get('who')}-{secrets.token_hex(4)}.yaml"
        self.write(relpath, "# register\n" + yamlio.dumps(entry))
        return relpath

    def register(self, kind: str) -> str:
        """The folder this month's entries of a register go into."""
        return f"registers/{kind}/{TODAY[:7]}"

    def entry_files(self, kind: str) -> list[str]:
        """The register's entry files in the work tree, oldest first."""
        return sorted(str(p.relative_to(self.path)) for p in (self.path / "registers" / kind).rglob("*.yaml"))

    def scan(self, number: str) -> str:
        return self.home(number) + str(self.record(number)["documents"][0]["file"])

    # ---- commits
    def branch(self, name: str, start: str = "origin/main") -> None:
        self.git("checkout", "-q", "-B", name, start)

    def sign(
        self,
        who: str,
        action: str | None,
        *,
        subject: str | None = None,
        reason: str = "hand-made change",
        approver: str | None = "mgr01",
        archive_no: str | None = None,
        acted_by: str | None = None,
        approves: tuple[str, ...] = (),
        stage: bool = True,
        **env: str,
    ) -> str:
        """Stage everything and make one commit signed with who's own key; return its full id."""
        lines = [f"Action: {action}"] if action else []
        lines.append(f"Reason: {reason}")
        if approver:
            lines.append(f"Approved-by: {approver}")
        if archive_no:
            lines.append(f"Archive-No: {archive_no}")
        lines.append(f"Acted-by: {acted_by or who}")
        lines += [f"Approves: {c}" for c in approves]
        if stage:
            self.git("add", "-A")
        message = f"{subject or action or 'change'}\n\n" + "\n".join(lines)
        args = ["commit", "-q", "--no-verify", "--allow-empty", "-m", message]
        key = self.world.people[who].key
        self.git("-c", f"user.signingkey={key}", "-c", "gpg.format=ssh", *args, "-S", who=who, env=env)
        return self.head()

    def approve_by_hand(self, who: str, *commits: str, reason: str = "seen it") -> str:
        """An approval commit as `archivectl approve` makes it: no file changes, Approves: trailers."""
        return self.sign(who, "approve", subject="approve", reason=reason, approver=None, approves=commits)

    def head(self, rev: str = "HEAD") -> str:
        return self.git("rev-parse", rev).strip()

    def push_main(self) -> None:
        """Bring this branch to main on the server (as the forge would after review)."""
        self.git("push", "-q", "origin", "HEAD:main")
        self.git("fetch", "-q", "origin")

    # ---- verify
    def verify(self, range_spec: str | None = "origin/main..HEAD") -> tuple[int, dict]:
        args = ["verify", "--format", "json"] + (["--range", range_spec] if range_spec else [])
        result = self.cli("aud01", *args)
        return result.exit_code, json.loads(result.stdout)

    def ok(self, who: str, *args: str) -> str:
        result = self.cli(who, *args)
        assert result.exit_code == 0, result
        return result.stdout


def found(report: dict, rule: str, words: str, commit: str | None = None) -> bool:
    """Does the report hold a finding of this rule whose message contains words (on that commit)?"""
    return any(
        f["rule"] == rule and words in f["message"] and (commit is None or f["commit"] == commit)
        for f in report["findings"]
    )


def flagged(desk: Desk, rule: str, words: str, commit: str | None = None, range_spec: str | None = "origin/main..HEAD"):
    """verify exits 1 with a finding of rule naming words; returns the report."""
    code, report = desk.verify(range_spec)
    assert code == 1, report
    assert found(report, rule, words, commit), json.dumps(report["findings"], ensure_ascii=False, indent=1)
    return report


def verifies(desk: Desk, range_spec: str | None = "origin/main..HEAD") -> dict:
    code, report = desk.verify(range_spec)
    assert code == 0, json.dumps(report["findings"], ensure_ascii=False, indent=1)
    return report


# ---------------------------------------------------------------------------------------------- the archive


@dataclasses.dataclass
class Base:
    tmp: Path
    households: dict[str, str]


@pytest.fixture(scope="session")
def base(built_once: Path, people) -> Base:
    """Built once: a live household with a scan, a tombstoned and a moved-out one, a reveal, all approved."""
    tmp, households = once(built_once, "rule-table", lambda tmp: build_base(tmp, people))
    return Base(tmp, households)


def build_base(tmp: Path, people) -> dict[str, str]:
    """base's archive, server and clone in tmp; its households."""
    w = World(tmp, people)
    (tmp / "staff.yaml").write_text(staff_yaml(people))
    result = CliRunner().invoke(
        app,
        ["init", str(w.root), "--name", "Rules", "--staff-file", str(tmp / "staff.yaml")],
        env=person_env(people["gm01"]),
    )
    assert result.exit_code == 0, result.output
    live = w.add()
    scan = tmp / "scan.pdf"
    scan.write_bytes(b"%PDF original scan")
    w.ok("clk01", "attach", live, str(scan), "--type", "owner-id-copy", "-r", "scan", "-a", "mgr01")
    gone = w.add(text=RECORD.replace('unit: "1203"', 'unit: "1204"'))
    w.ok("but01", "tombstone", gone, "-r", "duplicate dossier", "-a", "mgr01")
    moved = w.add(text=RECORD.replace('unit: "1203"', 'unit: "1205"'))
    w.ok("but01", "move-out", moved, "--date", TODAY, "-r", "sold the flat", "-a", "mgr01")
    w.ok("but01", "show", live, "--reveal", "-r", "phone call")
    w.ok("clk01", "lend", live, "--to", "but01", "--due", DUE, "-r", "visit", "-a", "mgr01")
    w.approve("mgr01")
    subprocess.run(["git", "clone", "-q", "--bare", str(w.root), str(tmp / "server.git")], check=True)
    subprocess.run(["git", "clone", "-q", str(tmp / "server.git"), str(tmp / "clone")], check=True)
    for repo in ("archive", "server.git", "clone"):  # fewer files to copy per test
        subprocess.run(["git", "-C", str(tmp / repo), "gc", "-q"], check=True)
    return {"live": live, "tombstoned": gone, "moved": moved}


@pytest.fixture
def desk(base: Base, tmp_path: Path, people) -> Desk:
    """A private copy of the base: server, keystore and a clone on branch `change`."""
    for name in ("archive", "archive.keys", "server.git", "clone"):
        shutil.copytree(base.tmp / name, tmp_path / name, symlinks=True)
    d = Desk(World(tmp_path, people), tmp_path / "clone", base.households)
    d.git("remote", "set-url", "origin", str(tmp_path / "server.git"))
    d.branch("change")
    return d


# ---------------------------------------------------------------------------------------------- records by hand


def next_number(desk: Desk) -> str:
    """The next serial of this year's HO series after every household in the tree (the keystore reserves it)."""
    series = f"HO-{dt.date.today().year}"
    used = [int(p.parent.name.rsplit("-", 1)[1]) for p in desk.path.glob(f"households/*/*/{series}-*/record.yaml")]
    return f"{series}-{max(used, default=0) + 1:05d}"


def advance_numbers(desk: Desk, number: str) -> None:
    """Format 3: numbers are reserved in the keystore, the commit changes no numbers file."""


def new_household(desk: Desk, unit: str, number: str | None = None, **fields) -> str:
    """A new household's stored record as add writes it (the live one's, renumbered, no documents)."""
    stored = desk.record(desk.h["live"])
    stored.pop("documents", None)
    number = number or next_number(desk)
    stored.update({"archive_no": number, "unit": unit, "status": "active", **fields})
    desk.put_record(number, stored, f"households/B03/{unit}/{number}/")
    return number


def edited(desk: Desk, number: str, **fields) -> dict:
    """Change top-level fields of a household's stored record (None removes one); returns the old record."""
    old = desk.record(number)
    new = {**old, **fields}
    desk.put_record(number, {k: v for k, v in new.items() if v is not None})
    return old


def entry(who: str, action: str, number: str | None = None, **more) -> dict:
    """A register entry as archivectl writes it."""
    row = {"when": f"{TODAY}T09:00:00+00:00", "who": who, "action": action}
    if number:
        row["archive_no"] = number
    return {**row, "reason": "hand-made", **more}


def own_age_key() -> str:
    """An age X25519 recipient whose identity only the actor holds."""
    return str(pyrage.x25519.Identity.generate().to_public())


def forged_scan(desk: Desk, number: str) -> bytes:
    """A different document, properly encrypted to the household's record key (anyone can encrypt)."""
    recipient = pyrage.x25519.Recipient.from_str(desk.record(number)["recipient"])
    return pyrage.encrypt(b"%PDF forged contract", [recipient])


def destruction_entry(who: str, number: str, approver: str = "gm01") -> dict:
    return entry(who, "purge", number, building="B03", approved_by=approver, method="crypto-shredding")


# ---------------------------------------------------------------------------------------------- one break per row
#
# Each function in BREAKS[action] makes, on top of main, a commit with that Action that does something
# the row forbids; it returns (commit, rule, words): the finding verify must report. The parametrized
# test below also widens that one row to "anything goes" and shows the finding goes away: the
# finding comes from that row and nowhere else, so deleting or loosening the row fails a test.

Break = tuple[str, str, str]
BREAKS: dict[str, list[Callable[[Desk], Break]]] = {}


def breaks(action: str):
    def register(fn: Callable[[Desk], Break]) -> Callable[[Desk], Break]:
        BREAKS.setdefault(action, []).append(fn)
        return fn

    return register


@breaks("init")
def init_on_top_of_main(desk: Desk) -> Break:
    """A second 'founding' that zeroes the retention period (P13)."""
    settings = desk.path / "archive.yaml"
    settings.write_text(settings.read_text().replace("retention_days: 30", "retention_days: 0"))
    commit = desk.sign("gm01", "init", subject="init archive Rules", reason="found the archive", approver="gm01")
    return commit, "changes", "archive.yaml: init may not change it"


@breaks("add")
def add_that_also_edits_another_household(desk: Desk) -> Break:  # P12
    number = new_household(desk, "1206")
    advance_numbers(desk, number)
    edited(desk, desk.h["live"], occupancy="vacant")
    home = desk.home(desk.h["live"])
    commit = desk.sign("clk01", "add", subject=f"add {number} (B03/1206)", archive_no=f"{number}, {desk.h['live']}")
    return commit, "changes", f"{home}record.yaml: add may not change it"


@breaks("import")
def import_of_an_already_tombstoned_household(desk: Desk) -> Break:  # P13: its clock would start in the past
    number = new_household(
        desk,
        "1206",
        status="tombstoned",
        tombstone={"date": "2020-01-01", "reason": "old", "approver": "mgr01", "previous_status": "active"},
    )
    advance_numbers(desk, number)
    commit = desk.sign("clk01", "import", subject="import 1 households", archive_no=number)
    return commit, "record", f"{number}: import a new household must be active"


@breaks("edit")
def edit_that_deletes_a_record(desk: Desk) -> Break:  # P13: deletion only by tombstone and purge
    number = desk.h["moved"]
    home = desk.home(number)
    (desk.path / home / "record.yaml").unlink()
    commit = desk.sign("but01", "edit", subject=f"edit {number}", archive_no=number)
    return commit, "changes", f"{home}record.yaml: edit may not delete it"


@breaks("attach")
def attach_that_overwrites_the_original_scan(desk: Desk) -> Break:  # P6
    number = desk.h["live"]
    scan = desk.scan(number)
    desk.write(scan, forged_scan(desk, number))
    commit = desk.sign("clk01", "attach", subject=f"attach owner-id-copy v2 to {number}", archive_no=number)
    return commit, "attachment", f"{scan}: an original was changed by attach (P6)"


@breaks("attach")
def attach_that_drops_an_older_document(desk: Desk) -> Break:  # P6: originals stay listed
    number = desk.h["live"]
    name = f"attachments/owner-id-copy-{TODAY}-2.pdf.age"
    desk.write(desk.home(number) + name, forged_scan(desk, number))
    edited(desk, number, documents=[{"type": "owner-id-copy", "date": TODAY, "version": 2, "file": name}])
    commit = desk.sign("clk01", "attach", subject=f"attach owner-id-copy v2 to {number}", archive_no=number)
    return commit, "record", f"{number}: attach an attach may only add documents, never change or drop one (P6)"


@breaks("tombstone")
def tombstone_whose_block_names_another_approver(desk: Desk) -> Break:  # P13
    number = desk.h["live"]
    block = {"date": TODAY, "reason": "duplicate", "approver": "mgr02", "previous_status": "active"}
    edited(desk, number, status="tombstoned", tombstone=block)
    commit = desk.sign("but01", "tombstone", subject=f"tombstone {number}", approver="mgr01", archive_no=number)
    return commit, "record", f"{number}: tombstone the tombstone block must name the approver the commit names"


@breaks("restore")
def restore_of_a_household_that_is_not_tombstoned(desk: Desk) -> Break:  # P1: moved-out dossiers stay apart
    number = desk.h["moved"]
    edited(desk, number, status="active")
    commit = desk.sign("but01", "restore", subject=f"restore {number}", archive_no=number)
    return commit, "record", f"{number}: restore a restore returns a tombstoned household to its previous status"


@breaks("move-out")
def move_out_of_a_tombstoned_household(desk: Desk) -> Break:  # P13: it would escape the purge
    number = desk.h["tombstoned"]
    edited(desk, number, status="moved-out", tombstone=None, moved_out={"date": TODAY})
    commit = desk.sign("but01", "move-out", subject=f"move-out {number}", archive_no=number)
    return commit, "record", f"{number}: move-out changes tombstone, which move-out may not change"


@breaks("move-out")
def second_move_out_with_another_date(desk: Desk) -> Break:  # P18: the yearly catalogue goes by this date
    number = desk.h["moved"]
    edited(desk, number, moved_out={"date": "2020-01-01"})
    commit = desk.sign("but01", "move-out", subject=f"move-out {number}", archive_no=number)
    return commit, "record", f"{number}: move-out a move-out turns an active household into a moved-out one"


@breaks("review")
def review_that_changes_status(desk: Desk) -> Break:  # P11, P13
    number = desk.h["tombstoned"]
    edited(desk, number, status="active", tombstone=None, last_reviewed=TODAY)
    commit = desk.sign("but01", "review", subject=f"review {number}", archive_no=number)
    return commit, "record", f"{number}: review changes status, tombstone, which review may not change"


@breaks("review")
def review_that_changes_occupancy(desk: Desk) -> Break:  # P11, P12: a review records a date, an edit changes data
    number = desk.h["live"]
    edited(desk, number, occupancy="vacant", last_reviewed=TODAY)
    commit = desk.sign("but01", "review", subject=f"review {number}", archive_no=number)
    return commit, "record", f"{number}: review changes occupancy, which review may not change"


@breaks("fingerprint")
def fingerprint_migration_that_changes_occupancy(desk: Desk) -> Break:  # P12: it adds fingerprints, nothing else
    number = desk.h["live"]
    edited(desk, number, occupancy="vacant")
    commit = desk.sign("but01", "fingerprint", subject=f"fingerprint {number}", archive_no=number)
    return commit, "record", f"{number}: fingerprint changes occupancy, which fingerprint may not change"


@breaks("blind-index")
def blind_index_migration_that_changes_occupancy(desk: Desk) -> Break:  # P12: it adds the blind index, nothing else
    number = desk.h["live"]
    edited(desk, number, occupancy="vacant")
    commit = desk.sign("mgr01", "blind-index", subject=f"blind index of {number}", approver="gm01", archive_no=number)
    return commit, "record", f"{number}: blind-index changes occupancy, which blind-index may not change"


@breaks("rotate-index")
def index_rotation_that_changes_occupancy(desk: Desk) -> Break:  # P12: it re-fingerprints, nothing else
    number = desk.h["live"]
    edited(desk, number, occupancy="vacant")
    commit = desk.sign("mgr01", "rotate-index", subject="rotate the index key", approver="gm01", archive_no=number)
    return commit, "record", f"{number}: rotate-index changes occupancy, which blind-index may not change"


@breaks("purge")
def purge_of_a_live_never_tombstoned_household(desk: Desk) -> Break:  # P13
    number = desk.h["live"]
    shutil.rmtree(desk.path / desk.home(number))
    desk.append(desk.register("destruction"), destruction_entry("mgr01", number))
    commit = desk.sign("mgr01", "purge", subject=f"purge {number}", approver="gm01", archive_no=number)
    return commit, "purge", f"{number}: purged without a tombstone (P13)"


@breaks("rotate")
def rotate_that_overwrites_a_scan_without_rekeying(desk: Desk) -> Break:  # P6
    number = desk.h["live"]
    desk.write(desk.scan(number), forged_scan(desk, number))
    desk.append(desk.register("keys"), entry("mgr01", "rotate", households=1, approved_by="gm01"))
    commit = desk.sign(
        "mgr01", "rotate", subject="recipients sync: rotate 1 record keys", approver="gm01", archive_no=number
    )
    return commit, "changes", f"{number}: rotate changes the household's files but not its record"


@breaks("forget")
def forget_that_swaps_the_key_but_keeps_the_old_seals(desk: Desk) -> Break:  # P14, P17
    number = desk.h["live"]
    edited(desk, number, recipient=own_age_key())  # the old key would still open this version and the scan
    commit = desk.sign("but01", "forget", subject=f"edit {number}: forgetting previous versions", archive_no=number)
    return commit, "record", f"{number}: forget must seal the record and re-encrypt every attachment to a new"


@breaks("rewrap")
def rewrap_that_changes_a_record(desk: Desk) -> Break:
    number = desk.h["live"]
    edited(desk, number, recipient=own_age_key())
    desk.append(desk.register("keys"), entry("mgr01", "rewrap", households=3, approved_by="gm01"))
    commit = desk.sign("mgr01", "rewrap", subject="recipients sync: re-wrap 3 record keys", approver="gm01")
    return commit, "changes", f"{desk.home(number)}record.yaml: rewrap may not change it"


@breaks("grant")
def grant_that_also_edits_staff(desk: Desk) -> Break:  # P7
    staff = desk.path / "staff.yaml"
    text = staff.read_text()
    at = text.index("- id: clk01")
    staff.write_text(text[:at] + text[at:].replace("buildings: []", "buildings: [B03]", 1))
    until = (dt.date.today() + dt.timedelta(days=7)).isoformat()
    desk.append(desk.register("grants"), entry("mgr01", "grant", staff="clk01", building="B03", until=until))
    commit = desk.sign("mgr01", "grant", subject="grant clk01 read of B03", approver="gm01")
    return commit, "changes", "staff.yaml: grant may not change it"


@breaks("lend")
def lend_that_edits_the_record(desk: Desk) -> Break:  # P8
    number = desk.h["moved"]
    edited(desk, number, occupancy="rented")
    desk.append(desk.register("lending"), entry("clk01", "lend", number, to="but01", due=TODAY, approved_by="mgr01"))
    commit = desk.sign("clk01", "lend", subject=f"lend {number} to but01", archive_no=number)
    return commit, "changes", f"{desk.home(number)}record.yaml: lend may not change it"


@breaks("return")
def return_that_edits_the_record(desk: Desk) -> Break:  # P8, P12: a return needs no approval
    number = desk.h["live"]
    edited(desk, number, occupancy="rented")
    desk.append(desk.register("lending"), entry("but01", "return", number, **{"from": "but01"}))
    commit = desk.sign("but01", "return", subject=f"return {number}", approver=None, archive_no=number)
    return commit, "changes", f"{desk.home(number)}record.yaml: return may not change it"


@breaks("shred")
def shred_register_that_also_edits_a_record(desk: Desk) -> Break:  # P14: a shred only records what keys shred did
    number = desk.h["live"]
    edited(desk, number, occupancy="rented")
    desk.append(desk.register("destruction"), entry("aud01", "shred", number, keys=[f"{number} age1x (purge x)"]))
    commit = desk.sign("aud01", "shred", subject="keys shred: 1 record keys", approver=None, archive_no=number)
    return commit, "changes", f"{desk.home(number)}record.yaml: shred may not change it"


@breaks("export")
def export_registered_as_a_mere_lookup(desk: Desk) -> Break:  # P9: every transfer is registered
    number = desk.h["live"]
    path = desk.append(desk.register("access"), entry("but01", "export", number, approved_by="mgr01"))
    commit = desk.sign("but01", "export", subject=f"register export of {number}", archive_no=number)
    return commit, "changes", f"{path}: export may not add it"


def _request_event(desk: Desk, who: str, action: str, number: str, **more) -> None:
    desk.append(desk.register("requests"), entry(who, action, number, request="RQ-2026-00001", **more))


@breaks("request-open")
def request_open_that_also_edits_the_record(desk: Desk) -> Break:  # P17: a request changes no dossier
    number = desk.h["live"]
    edited(desk, number, occupancy="rented")
    _request_event(desk, "clk01", "request-open", number, kind="copy", received=TODAY, due=DUE, checked_by="clk01")
    commit = desk.sign("clk01", "request-open", subject="open request RQ-2026-00001", approver=None, archive_no=number)
    return commit, "changes", f"{desk.home(number)}record.yaml: request-open may not change it"


@breaks("request-answer")
def request_answer_that_also_edits_the_record(desk: Desk) -> Break:  # P12, P17: the answer itself is approved
    number = desk.h["live"]
    edited(desk, number, occupancy="rented")
    _request_event(desk, "clk01", "request-answer", number, answered=TODAY, commits=[])
    commit = desk.sign("clk01", "request-answer", subject="answer request", approver=None, archive_no=number)
    return commit, "changes", f"{desk.home(number)}record.yaml: request-answer may not change it"


@breaks("request-refuse")
def request_refuse_registered_as_a_lookup(desk: Desk) -> Break:  # P17: a refusal goes in the requests register
    number = desk.h["live"]
    path = desk.append(desk.register("access"), entry("clk01", "request-refuse", number, approved_by="mgr01"))
    commit = desk.sign("clk01", "request-refuse", subject="refuse request", archive_no=number)
    return commit, "changes", f"{path}: request-refuse may not add it"


@breaks("request-close")
def request_close_that_also_edits_the_record(desk: Desk) -> Break:  # P17
    number = desk.h["live"]
    edited(desk, number, occupancy="rented")
    _request_event(desk, "clk01", "request-close", number, approved_by="mgr01")
    commit = desk.sign("clk01", "request-close", subject="close request", archive_no=number)
    return commit, "changes", f"{desk.home(number)}record.yaml: request-close may not change it"


@breaks("hold")
def hold_that_also_tombstones(desk: Desk) -> Break:  # P13: a hold keeps, it never deletes
    number = desk.h["live"]
    edited(desk, number, occupancy="rented")
    desk.append(desk.register("holds"), entry("but01", "hold", number, approved_by="mgr01"))
    commit = desk.sign("but01", "hold", subject=f"hold {number}", archive_no=number)
    return commit, "changes", f"{desk.home(number)}record.yaml: hold may not change it"


@breaks("release")
def release_registered_in_the_lending_register(desk: Desk) -> Break:  # P13
    number = desk.h["live"]
    path = desk.append(desk.register("lending"), entry("but01", "release", number, approved_by="mgr01"))
    commit = desk.sign("but01", "release", subject=f"release hold on {number}", archive_no=number)
    return commit, "changes", f"{path}: release may not add it"


@breaks("reveal")
def reveal_that_also_edits_the_record(desk: Desk) -> Break:  # P8, P12: a look-up needs no approval
    number = desk.h["live"]
    edited(desk, number, occupancy="vacant")
    desk.append(desk.register("access"), entry("but01", "reveal", number))
    commit = desk.sign("but01", "reveal", subject=f"register reveal of {number}", approver=None, archive_no=number)
    return commit, "changes", f"{desk.home(number)}record.yaml: reveal may not change it"


@breaks("find")
def find_that_also_edits_the_record(desk: Desk) -> Break:  # P8, P12: a look-up needs no approval
    number = desk.h["live"]
    edited(desk, number, occupancy="vacant")
    desk.append(desk.register("access"), entry("but01", "find", number, searched="phone"))
    commit = desk.sign(
        "but01", "find", subject="register find by phone: 1 households", approver=None, archive_no=number
    )
    return commit, "changes", f"{desk.home(number)}record.yaml: find may not change it"


@breaks("open")
def open_that_plants_an_attachment(desk: Desk) -> Break:  # P6, P12
    number = desk.h["live"]
    planted = f"{desk.home(number)}attachments/correspondence-{TODAY}-1.pdf.age"
    desk.write(planted, forged_scan(desk, number))
    desk.append(desk.register("access"), entry("but01", "open", number))
    commit = desk.sign("but01", "open", subject=f"register open of {number}", approver=None, archive_no=number)
    return commit, "changes", f"{planted}: open may not add it"


@breaks("view")
def view_that_deletes_the_access_register(desk: Desk) -> Break:  # P8, P10
    register = desk.entry_files("access")[0]
    (desk.path / register).unlink()
    commit = desk.sign("mgr01", "view", subject="register view for approval", approver=None)
    return commit, "register", f"{register}: a register was deleted"


@breaks("staff")
def staff_change_that_also_edits_archive_settings(desk: Desk) -> Break:  # P12
    settings = desk.path / "archive.yaml"
    settings.write_text(settings.read_text().replace("four_eyes: true", "four_eyes: false"))
    staff = desk.path / "staff.yaml"
    staff.write_text(staff.read_text().replace("name: 客服庚", "name: 客服庚二"))
    commit = desk.sign("mgr01", "staff", subject="staff edit clk01", approver="gm01")
    return commit, "changes", "archive.yaml: staff may not change it"


@breaks("configure")
def configure_that_also_edits_staff(desk: Desk) -> Break:  # P7, P12
    settings = desk.path / "archive.yaml"
    settings.write_text(settings.read_text().replace("review_interval_days: 365", "review_interval_days: 300"))
    staff = desk.path / "staff.yaml"
    text = staff.read_text()
    at = text.index("- id: clk01")
    staff.write_text(text[:at] + text[at:].replace("role: clerk", "role: manager", 1))
    commit = desk.sign("mgr01", "configure", subject="configure archive.yaml", approver="gm01")
    return commit, "changes", "staff.yaml: configure may not change it"


@breaks("approve")
def approval_that_changes_a_file(desk: Desk) -> Break:  # P12: an approval binds to exact content
    number = desk.h["live"]
    desk.ok("but01", "edit", number, "--set", "occupancy=rented", "-r", "let out", "-a", "mgr01")
    proposal = desk.head()
    edited(desk, number, occupancy="vacant")
    commit = desk.approve_by_hand("mgr01", proposal)
    return commit, "changes", f"{desk.home(number)}record.yaml: approve may not change it"


def widened(rule: rules.ActionRule) -> rules.ActionRule:
    """The same row, but allowing every change to every path, with no record or register rules."""
    kinds = [kind for kind, _ in rules._PATHS if kind != "register"] + [f"register:{r}" for r in rules.REGISTERS]
    return dataclasses.replace(rule, changes=dict.fromkeys(kinds, "AMD"), record=None, registers=())


def test_every_row_of_the_table_has_a_breaking_commit():
    assert sorted(BREAKS) == sorted(rules.TABLE)


@pytest.mark.parametrize(
    ("action", "make"), [(a, fn) for a in sorted(BREAKS) for fn in BREAKS[a]], ids=lambda v: getattr(v, "__name__", v)
)
def test_breaking_a_row_is_flagged_by_that_row(desk: Desk, action: str, make, monkeypatch: pytest.MonkeyPatch):
    """The hand-made, staff-signed commit is flagged; with only this row loosened, that finding is gone."""
    commit, rule, words = make(desk)
    report = flagged(desk, rule, words, commit)
    assert not found(report, "signature", "", commit)  # a real signature by a staff key
    monkeypatch.setitem(rules.TABLE, action, widened(rules.TABLE[action]))
    _, report = desk.verify()
    assert not found(report, rule, words, commit), report["findings"]


# ---------------------------------------------------------------------------------------------- what says the action


def test_a_commit_without_an_action_is_flagged(desk: Desk):
    edited(desk, desk.h["live"], occupancy="rented")
    commit = desk.sign("but01", None, subject=f"edit {desk.h['live']}", archive_no=desk.h["live"])
    flagged(desk, "action", "Action trailer is missing", commit)


def test_a_commit_with_an_unknown_action_is_flagged(desk: Desk):
    edited(desk, desk.h["live"], occupancy="rented")
    commit = desk.sign("but01", "fix", subject=f"fix {desk.h['live']}", archive_no=desk.h["live"])
    flagged(desk, "action", "Action trailer names no archivectl action", commit)


def test_an_init_that_is_not_the_founding_commit_is_flagged(desk: Desk):
    commit = desk.sign("gm01", "init", subject="init archive Rules", reason="found the archive", approver="gm01")
    flagged(desk, "action", "only the founding commit is an init", commit)


# ---------------------------------------------------------------------------------------------- more per row


def test_add_reusing_an_archive_number_is_flagged(desk: Desk):  # P3
    reused = desk.h["live"]
    new_household(desk, "1206", number=reused)
    commit = desk.sign("clk01", "add", subject=f"add {reused} (B03/1206)", archive_no=reused)
    report = flagged(desk, "numbers", f"{reused} is used by two households")
    assert commit in {f["commit"] for f in report["findings"]}


def test_the_real_add_verifies_once_approved(desk: Desk):  # P3, P12
    path = desk.world.tmp / "r.yaml"
    path.write_text(RECORD.replace('unit: "1203"', 'unit: "1206"'))
    number = desk.ok("clk01", "add", "--file", str(path), "-r", "new customer", "-a", "mgr01").strip()
    assert number == f"HO-{dt.date.today().year}-00004"
    flagged(desk, "approval", "awaiting approval by mgr01")
    desk.ok("mgr01", "approve", "--yes", "-r", "checked")
    verifies(desk)


def test_edit_that_changes_status_is_flagged_and_the_real_edit_verifies(desk: Desk):  # P12, P13
    number = desk.h["tombstoned"]
    edited(desk, number, status="active", tombstone=None)
    commit = desk.sign("but01", "edit", subject=f"edit {number}", archive_no=number)
    flagged(desk, "record", f"{number}: edit changes status, tombstone, which edit may not change", commit)
    desk.branch("honest")
    desk.ok("but01", "edit", desk.h["live"], "--set", "occupancy=rented", "-r", "let out", "-a", "mgr01")
    desk.ok("mgr01", "approve", "--yes", "-r", "tenant confirmed")
    verifies(desk)


def test_the_real_attach_tombstone_restore_review_and_move_out_verify(desk: Desk):  # P1, P6, P11, P13
    """The honest counterparts of the record rows' breaks."""
    live, gone = desk.h["live"], desk.h["tombstoned"]
    scan = desk.world.tmp / "v2.pdf"
    scan.write_bytes(b"%PDF corrected copy")
    desk.ok("clk01", "attach", live, str(scan), "--type", "owner-id-copy", "-r", "corrected copy", "-a", "mgr01")
    desk.ok("but01", "restore", gone, "-r", "not a duplicate", "-a", "mgr01")
    desk.ok("but01", "review", live, "-r", "annual review", "-a", "mgr01")
    desk.ok("but01", "move-out", live, "--date", TODAY, "-r", "sold", "-a", "mgr01")
    desk.ok("but01", "tombstone", live, "-r", "customer asked", "-a", "mgr01")
    desk.ok("mgr01", "approve", "--yes", "-r", "checked")
    verifies(desk)


def test_a_lookup_entry_in_someone_elses_name_is_flagged(desk: Desk):  # P8, P10
    number = desk.h["live"]
    desk.append(desk.register("access"), entry("but02", "reveal", number))
    commit = desk.sign("but01", "reveal", subject=f"register reveal of {number}", approver=None, archive_no=number)
    flagged(desk, "register", "access register entry says who=but02 but but01 signed", commit)
    desk.branch("honest")
    desk.ok("but01", "show", number, "--reveal", "-r", "phone call")
    verifies(desk)


def test_a_lookup_entry_naming_another_household_is_flagged(desk: Desk):  # P8, P10
    live, moved = desk.h["live"], desk.h["moved"]
    desk.append(desk.register("access"), entry("but01", "reveal", f"{live}, {moved}"))
    commit = desk.sign("but01", "reveal", subject=f"register reveal of {live}", approver=None, archive_no=live)
    flagged(desk, "register", f"names {moved}, which the commit's Archive-No does not", commit)


def test_an_approval_shown_in_clear_for_two_households_verifies(desk: Desk):  # P8
    """The view register entry of `approve --reveal` names both households, as its Archive-No does."""
    desk.ok("but01", "edit", desk.h["live"], "--set", "occupancy=rented", "-r", "let out", "-a", "mgr01")
    desk.ok("but01", "edit", desk.h["moved"], "--set", "occupancy=vacant", "-r", "empty", "-a", "mgr01")
    desk.ok("mgr01", "approve", "--yes", "--reveal", "-r", "checked")
    verifies(desk)


def test_a_return_that_registers_a_lend_is_flagged(desk: Desk):  # P8: lending needs approval, a return does not
    number = desk.h["moved"]
    desk.append(desk.register("lending"), entry("but01", "lend", number, to="but01", due=TODAY))
    commit = desk.sign("but01", "return", subject=f"return {number}", approver=None, archive_no=number)
    flagged(desk, "register", "lending register entry is a lend, the commit a return", commit)


def test_a_register_entry_that_does_not_say_its_action_is_flagged(desk: Desk):  # P8
    number = desk.h["moved"]
    row = entry("but01", "lend", number, to="but01", due=TODAY)
    del row["action"]
    desk.append(desk.register("lending"), row)
    commit = desk.sign("but01", "return", subject=f"return {number}", approver=None, archive_no=number)
    flagged(desk, "register", "lending register entry does not say its action", commit)


def test_an_export_without_a_transfer_entry_is_flagged(desk: Desk):  # P9
    number = desk.h["live"]
    commit = desk.sign("but01", "export", subject=f"register export of {number}", archive_no=number)
    flagged(desk, "register", "export must append an entry to the transfer register", commit)


def test_a_changed_attachment_by_edit_is_flagged(desk: Desk):  # P6
    number = desk.h["live"]
    scan = desk.scan(number)
    (desk.path / scan).unlink()
    commit = desk.sign("but01", "edit", subject=f"edit {number}", archive_no=number)
    flagged(desk, "attachment", f"{scan}: an original was deleted by edit (P6)", commit)


# ---------------------------------------------------------------------------------------------- approvals (P12)


def edit_by_hand(desk: Desk, who: str = "but01", approver: str = "mgr01", occupancy: str = "rented") -> str:
    number = desk.h["live"]
    edited(desk, number, occupancy=occupancy)
    return desk.sign(who, "edit", subject=f"edit {number}", approver=approver, archive_no=number)


def test_a_change_without_its_signed_approval_awaits_it(desk: Desk):  # P12
    desk.ok("but01", "edit", desk.h["live"], "--set", "occupancy=rented", "-r", "let out", "-a", "mgr01")
    change = desk.head()
    report = flagged(desk, "approval", "awaiting approval by mgr01", change)
    assert [f["message"] for f in report["findings"]] == ["awaiting approval by mgr01"]
    desk.ok("mgr01", "approve", "--yes", "-r", "tenant confirmed")
    verifies(desk)


def test_an_approval_signed_by_someone_else_than_the_named_approver_is_flagged(desk: Desk):  # P12
    change = edit_by_hand(desk)
    approval = desk.approve_by_hand("mgr02", change)
    report = flagged(desk, "approval", f"approves {change[:12]}, which asks mgr01, not mgr02", approval)
    assert found(report, "approval", "awaiting approval by mgr01", change)


def test_an_approval_by_the_actor_is_flagged(desk: Desk):  # P12: four eyes
    change = edit_by_hand(desk, who="mgr01", approver="mgr01")
    desk.approve_by_hand("mgr01", change)
    flagged(desk, "approver", "mgr01 cannot approve their own change (four-eyes rule)", change)
    # the real command refuses before writing anything
    refused = desk.cli("mgr01", "edit", desk.h["live"], "--set", "occupancy=vacant", "-r", "mine", "-a", "mgr01")
    assert refused.exit_code == 1 and "four-eyes" in refused.stderr, refused


def test_an_approval_by_someone_who_is_not_the_actor_but_not_named_either_is_flagged(desk: Desk):  # P12
    change = edit_by_hand(desk)
    approval = desk.approve_by_hand("but01", change)
    flagged(desk, "approval", f"approves {change[:12]}, which asks mgr01, not but01", approval)


def test_an_approval_by_a_butler_is_flagged(desk: Desk):  # P12
    change = edit_by_hand(desk, approver="but02")
    desk.approve_by_hand("but02", change)
    flagged(desk, "approver", "approver but02 is a butler; approvals need a manager or gm", change)


def test_an_approval_by_an_inactive_manager_is_flagged(desk: Desk):  # P12
    desk.git("checkout", "-q", "-B", "main", "origin/main")
    desk.ok("mgr01", "staff", "deactivate", "mgr02", "-r", "left the company", "-a", "gm01")
    desk.ok("gm01", "approve", "--yes", "-r", "confirmed")
    desk.push_main()
    desk.branch("change")
    change = edit_by_hand(desk, approver="mgr02")
    approval = desk.approve_by_hand("mgr02", change)
    report = flagged(desk, "approver", "approver mgr02 is no longer active", change)
    assert found(report, "signature", "signed by mgr02, who is no longer active", approval)


def test_an_approval_by_a_manager_deactivated_on_main_after_the_branch_was_made_is_flagged(desk: Desk):  # P12
    """The pull request is judged by the main it will be merged into, as the server's pre-receive hook judges it."""
    change = edit_by_hand(desk, approver="mgr02")  # on `change`, made from main while mgr02 was active
    approval = desk.approve_by_hand("mgr02", change)
    verifies(desk)
    desk.git("checkout", "-q", "-B", "main", "origin/main")
    desk.ok("mgr01", "staff", "deactivate", "mgr02", "-r", "left the company", "-a", "gm01")
    desk.ok("gm01", "approve", "--yes", "-r", "confirmed")
    desk.push_main()
    desk.git("checkout", "-q", "change")
    report = flagged(desk, "approver", "approver mgr02 is no longer active", change)
    assert found(report, "signature", "signed by mgr02, who is no longer active", approval)


def test_an_approval_naming_a_commit_not_in_its_history_is_flagged(desk: Desk):  # P12
    desk.branch("elsewhere")
    elsewhere = edit_by_hand(desk)
    desk.branch("change")
    approval = desk.approve_by_hand("mgr01", elsewhere)
    flagged(desk, "approval", f"approves {elsewhere[:12]}, which is not in its history", approval)


def test_a_change_made_after_its_approval_is_not_covered(desk: Desk):  # P12
    number = desk.h["live"]
    desk.ok("but01", "edit", number, "--set", "occupancy=rented", "-r", "let out", "-a", "mgr01")
    desk.ok("mgr01", "approve", "--yes", "-r", "tenant confirmed")
    verifies(desk)
    desk.ok("but01", "edit", number, "--set", "occupancy=vacant", "-r", "tenant left", "-a", "mgr01")
    later = desk.head()
    flagged(desk, "approval", "awaiting approval by mgr01 (made after, or not named by, their approval)", later)


def governance_change(desk: Desk, what: str) -> str:
    """Change staff.yaml, archive.yaml or a schema the way its own action would; returns that action."""
    if what == "staff":
        path = desk.path / "staff.yaml"
        path.write_text(path.read_text().replace("name: 客服庚", "name: 客服庚二"))
        return "staff"
    if what == "settings":
        path = desk.path / "archive.yaml"
        path.write_text(path.read_text().replace("review_interval_days: 365", "review_interval_days: 300"))
        return "configure"
    path = desk.path / "schemas/household.schema.json"
    path.write_text(path.read_text().replace('"maxLength": 10000', '"maxLength": 20000'))
    return "configure"


@pytest.mark.parametrize("what", ["staff", "settings", "schema"])
def test_governance_approved_by_a_manager_instead_of_the_gm_is_flagged(desk: Desk, what: str):  # P7, P12
    action = governance_change(desk, what)
    change = desk.sign("mgr01", action, subject=f"{action} {what}", approver="mgr02")
    desk.approve_by_hand("mgr02", change)
    flagged(desk, "approver", "approver mgr02 is a manager; approvals need a gm", change)
    desk.branch("honest")
    governance_change(desk, what)
    desk.sign("mgr01", action, subject=f"{action} {what}", approver="gm01")
    desk.approve_by_hand("gm01", desk.head())
    verifies(desk)


# ---------------------------------------------------------------------------------------------- content decides


def delete_live_household(desk: Desk) -> None:
    shutil.rmtree(desk.path / desk.home(desk.h["live"]))


def swap_recipient_for_own_key(desk: Desk) -> None:
    """Every scan attached from now on would be encrypted to the actor alone, outside the keystore."""
    edited(desk, desk.h["live"], recipient=own_age_key())


def overwrite_original_scan(desk: Desk) -> None:  # P6
    number = desk.h["live"]
    desk.write(desk.scan(number), forged_scan(desk, number))


CONTENT = {"delete": delete_live_household, "swap": swap_recipient_for_own_key, "overwrite": overwrite_original_scan}
SUBJECT_CLAIMS = {
    ("purge", "delete"): ("purge", "purged without a tombstone (P13)"),
    ("purge", "swap"): ("record", "a purge deletes records, it does not change them"),
    ("purge", "overwrite"): ("attachment", "an original was changed by purge (P6)"),
    ("rotate", "delete"): ("changes", "record.yaml: rotate may not delete it"),
    ("rotate", "swap"): ("record", "rotate a rotation re-encrypts the sealed block and every attachment"),
    ("rotate", "overwrite"): ("changes", "rotate changes the household's files but not its record"),
    ("rewrap", "delete"): ("changes", "record.yaml: rewrap may not delete it"),
    ("rewrap", "swap"): ("changes", "record.yaml: rewrap may not change it"),
    ("rewrap", "overwrite"): ("attachment", "an original was changed by rewrap (P6)"),
    ("edit", "delete"): ("changes", "record.yaml: edit may not delete it"),
    ("edit", "swap"): ("record", "changes recipient, which edit may not change"),
    ("edit", "overwrite"): ("attachment", "an original was changed by edit (P6)"),
}


@pytest.mark.parametrize(("action", "what"), sorted(SUBJECT_CLAIMS))
def test_subjects_decide_nothing_content_does(desk: Desk, action: str, what: str):  # P6, P13
    """`purge ...` and `recipients sync ...` commits that do what those commands never do, under any Action."""
    number = desk.h["live"]
    CONTENT[what](desk)
    if action in ("purge", "edit"):
        subject = f"purge {number}"
        desk.append(desk.register("destruction"), destruction_entry("mgr01", number))
    else:
        subject = f"recipients sync: {'rotate' if action == 'rotate' else 're-wrap'} 3 record keys"
        desk.append(desk.register("keys"), entry("mgr01", action, households=3, approved_by="gm01"))
    commit = desk.sign("mgr01", action, subject=subject, approver="gm01", archive_no=number)
    rule, words = SUBJECT_CLAIMS[(action, what)]
    flagged(desk, rule, words, commit)


def test_the_real_rotation_verifies(desk: Desk):
    desk.ok("mgr01", "recipients", "sync", "--rotate", "-r", "laptop lost", "-a", "gm01")
    desk.ok("gm01", "approve", "--yes", "-r", "checked")
    verifies(desk)


# ---------------------------------------------------------------------------------------------- merges


def merge_side_branch(desk: Desk) -> None:
    """An approved edit on branch side, merged into change without committing yet."""
    desk.branch("side")
    desk.ok("but01", "edit", desk.h["live"], "--set", "occupancy=rented", "-r", "let out", "-a", "mgr01")
    desk.ok("mgr01", "approve", "--yes", "-r", "tenant confirmed")
    desk.branch("change")
    desk.git("merge", "-q", "--no-ff", "--no-commit", "side")


def zero_retention(desk: Desk) -> str:
    settings = desk.path / "archive.yaml"
    settings.write_text(settings.read_text().replace("retention_days: 30", "retention_days: 0"))
    return "changes", "archive.yaml: edit may not change it"


def drop_access_register(desk: Desk) -> str:
    first = desk.entry_files("access")[0]
    desk.git("rm", "-rq", "registers/access")
    return "register", f"{first}: a register was deleted"


def phone_in_clear(desk: Desk) -> str:  # P9
    edited(desk, desk.h["live"], notes="call 13812345678")
    return "personal-data", f"{desk.home(desk.h['live'])}record.yaml: a phone number in clear"


@pytest.mark.parametrize("tamper", [zero_retention, drop_access_register, phone_in_clear], ids=lambda f: f.__name__)
def test_a_merge_that_is_not_clean_is_judged_against_its_first_parent(desk: Desk, tamper):  # P8, P9, P13
    merge_side_branch(desk)
    rule, words = tamper(desk)
    merge = desk.sign(
        "but01", "edit", subject="Merge branch 'side' into change", reason="merge the let", archive_no=desk.h["live"]
    )
    assert len(desk.git("log", "-1", "--format=%P", merge).split()) == 2
    flagged(desk, rule, words, merge)


def test_a_clean_merge_adds_nothing_and_verifies(desk: Desk):
    merge_side_branch(desk)
    desk.git("commit", "-q", "--no-verify", "-m", "Merge branch 'side' into change")  # the forge's button
    verifies(desk)


def test_a_root_commit_naming_an_outsider_gm_merged_with_main_is_flagged(desk: Desk):
    """A history of its own, whose staff.yaml makes an outsider the gm, cannot vouch for itself."""
    people = desk.world.people
    settings, schemas = (desk.path / "archive.yaml").read_text(), desk.path / "schemas"
    kept = {p.name: p.read_text() for p in schemas.iterdir()}
    desk.git("checkout", "-q", "--orphan", "founding")
    desk.git("rm", "-rqf", ".")
    desk.write("archive.yaml", settings)
    for name, text in kept.items():
        desk.write(f"schemas/{name}", text)
    boss = f"  - id: boss\n    name: 新总\n    role: gm\n    buildings: []\n    key: {people['outsider'].pub}\n"
    desk.write("staff.yaml", staff_yaml(people) + boss + "    active: true\n")
    root = desk.sign("outsider", "init", subject="init archive Rules", approver="boss", acted_by="boss")
    desk.git("checkout", "-q", "change")
    desk.git("merge", "-q", "--allow-unrelated-histories", "-X", "theirs", "--no-commit", "founding")
    merge = desk.sign("but01", "staff", subject="Merge branch 'founding'", approver="gm01")
    assert "boss" in (desk.path / "staff.yaml").read_text()
    report = flagged(desk, "root", "a root commit inside the range", root)
    assert found(report, "approval", "awaiting approval by gm01", merge)
    flagged(desk, "root", "a root commit inside the range", root, range_spec=None)  # the whole history too


def test_two_branches_adding_the_same_archive_number_are_flagged_when_merged(desk: Desk):  # P3
    """Two desks, each with its own keystore copy, add a household from the same main: both get one number."""
    other_keys = desk.world.tmp / "other.keys"
    shutil.copytree(desk.world.keys, other_keys)
    numbers_added = []
    for branch, unit, keys in (("first", "1206", desk.world.keys), ("second", "1207", other_keys)):
        desk.branch(branch)
        path = desk.world.tmp / f"{unit}.yaml"
        path.write_text(RECORD.replace('unit: "1203"', f'unit: "{unit}"'))
        env = {"ARCHIVECTL_KEYSTORE": str(keys)}
        added = desk.world.cli(
            "clk01", "--archive", str(desk.path), "add", "--file", str(path), "-r", "new", "-a", "mgr01", env=env
        )
        assert added.exit_code == 0, added
        numbers_added.append(added.stdout.strip())
        desk.ok("mgr01", "approve", "--yes", "-r", "checked")
        verifies(desk)  # each branch on its own is fine
    assert numbers_added[0] == numbers_added[1]
    desk.branch("change")
    desk.git("merge", "-q", "--no-ff", "--no-edit", "first")
    desk.git("merge", "-q", "--no-ff", "--no-edit", "second")  # clean: the same numbers.yaml line on both sides
    flagged(desk, "numbers", f"{numbers_added[0]} is used by two households")


def test_a_symlink_in_the_tree_is_flagged(desk: Desk):
    """An attachment that is a link would make `open` read whatever it points at."""
    number = desk.h["live"]
    name = f"attachments/owner-id-copy-{TODAY}-2.pdf.age"
    link = desk.path / desk.home(number) / name
    link.symlink_to("../../../../../../../../etc/passwd")
    old = desk.record(number)
    documents = [{"type": "owner-id-copy", "date": TODAY, "version": 2, "file": name}, *old["documents"]]
    edited(desk, number, documents=documents)
    commit = desk.sign("clk01", "attach", subject=f"attach owner-id-copy v2 to {number}", archive_no=number)
    flagged(desk, "layout", f"{desk.home(number)}{name}: a symbolic link", commit)


def test_a_submodule_entry_in_the_tree_is_flagged(desk: Desk):
    """A gitlink listed as a scan: no content at all in any clone, an original that never was (P6)."""
    number = desk.h["live"]
    name = f"attachments/owner-id-copy-{TODAY}-2.pdf.age"
    desk.git("update-index", "--add", "--cacheinfo", f"160000,{desk.head()},{desk.home(number)}{name}")
    old = desk.record(number)
    documents = [{"type": "owner-id-copy", "date": TODAY, "version": 2, "file": name}, *old["documents"]]
    edited(desk, number, documents=documents)
    desk.git("add", f"{desk.home(number)}record.yaml")
    subject = f"attach owner-id-copy v2 to {number}"
    commit = desk.sign("clk01", "attach", subject=subject, archive_no=number, stage=False)
    assert desk.git("ls-tree", "HEAD", f"{desk.home(number)}{name}").startswith("160000 commit")
    desk.approve_by_hand("mgr01", commit)
    flagged(desk, "layout", f"{desk.home(number)}{name}: not a file (git mode 160000)", commit)


# ---------------------------------------------------------------------------------------------- judged by the base


def test_records_are_judged_by_the_schema_before_the_range(desk: Desk):  # P9
    """A pull request that stops sealing customers, then stores them in clear, is judged by main's schema."""
    schema = desk.path / "schemas/household.schema.json"
    text = schema.read_text()
    schema.write_text(
        text.replace('"type": "array", "x-sensitive": true, "maxItems": 50,', '"type": "array", "maxItems": 50,')
    )
    assert schema.read_text() != text
    configure = desk.sign("mgr01", "configure", subject="configure schemas/household.schema.json", approver="gm01")
    desk.approve_by_hand("gm01", configure)
    verifies(desk)  # the schema change itself is a proper, approved configure
    number = desk.h["live"]
    edited(desk, number, customers=[{"role": "owner", "name": "欧阳测试"}])
    edit = desk.sign("but01", "edit", subject=f"edit {number}", archive_no=number)
    desk.approve_by_hand("mgr01", edit)
    flagged(desk, "record", "customers: personal field must not be stored in clear", edit)


def test_approvals_are_judged_by_the_settings_before_the_range(desk: Desk):  # P12
    settings = desk.path / "archive.yaml"
    settings.write_text(settings.read_text().replace("four_eyes: true", "four_eyes: false"))
    configure = desk.sign("mgr01", "configure", subject="configure archive.yaml", approver="gm01")
    desk.approve_by_hand("gm01", configure)
    verifies(desk)
    edit = edit_by_hand(desk, who="mgr01", approver="mgr01")
    desk.approve_by_hand("mgr01", edit)
    flagged(desk, "approver", "mgr01 cannot approve their own change (four-eyes rule)", edit)


# ---------------------------------------------------------------------------------------------- registers


@pytest.mark.parametrize("how", ["in a look-up", "approved by a manager"])
def test_a_grant_to_a_clerk_appended_by_hand_is_flagged(desk: Desk, how: str):  # P7: grants need the gm
    until = (dt.date.today() + dt.timedelta(days=30)).isoformat()
    grant = entry("but01", "grant", staff="clk01", building="B03", until=until, approved_by="gm01")
    path = desk.append(desk.register("grants"), grant)
    if how == "in a look-up":
        commit = desk.sign("but01", "reveal", subject=f"register reveal of {desk.h['live']}", approver=None)
        flagged(desk, "changes", f"{path}: reveal may not add it", commit)
    else:
        commit = desk.sign("but01", "grant", subject="grant clk01 read of B03", approver="mgr01")
        desk.approve_by_hand("mgr01", commit)
        report = flagged(desk, "approver", "approver mgr01 is a manager; approvals need a gm", commit)
        assert found(report, "register", "grants register entry names approver gm01, not mgr01", commit)


def test_a_destruction_entry_for_a_live_household_is_flagged(desk: Desk):  # P14
    """A restore withholds every key the destruction register names: this would lose a live household."""
    number = desk.h["live"]
    desk.append(desk.register("destruction"), destruction_entry("mgr01", number))
    commit = desk.sign("mgr01", "purge", subject=f"purge {number}", approver="gm01", archive_no=number)
    desk.approve_by_hand("gm01", commit)
    flagged(desk, "register", f"destruction register entry names {number}, which the commit does not purge", commit)


# ---------------------------------------------------------------------------------------------- the 30-day clock (P13)

needs_faketime = pytest.mark.skipif(
    shutil.which("faketime") is None, reason="faketime missing: apt-get install faketime"
)


def verify_whole(world: World) -> tuple[int, dict]:
    result = world.cli("aud01", "verify", "--format", "json")
    return result.exit_code, json.loads(result.stdout)


@needs_faketime
def test_a_tombstone_brought_to_main_by_a_merge_dated_before_its_parent_is_flagged(old_world: World):  # P13
    """Tombstoned on a branch 35 days ago, merged today under a date that hides when it reached main."""
    w = old_world
    w.git("checkout", "-q", "-b", "side")
    ok_at(w, "-35d", "but01", "tombstone", w.live, "--reason", "customer asked", "--approver", "mgr01")
    ok_at(w, "-35d", "mgr01", "approve", "--yes", "--reason", "checked then")
    w.git("checkout", "-q", "main")
    w.ok("but01", "show", w.doomed, "--reveal", "--reason", "last look")
    backdated = (dt.datetime.now(dt.UTC) - dt.timedelta(days=34)).isoformat(timespec="seconds")
    env = {**process_env(w.people["mgr01"]), "GIT_COMMITTER_DATE": backdated}
    subprocess.run(
        ["git", "-C", str(w.root), "merge", "-q", "--no-ff", "-S", "-m", "Merge branch 'side'", "side"],
        check=True,
        env=env,
    )
    code, report = verify_whole(w)
    assert code == 1
    merge = w.git("rev-parse", "HEAD").strip()
    assert found(report, "dates", "before its parent", merge), report["findings"]
    before = w.snapshot()
    assert_refused(w.cli("mgr01", "purge", w.live, "-r", "retention passed", "-a", "gm01"), 1, "purge refused")
    assert_unchanged(w, before)


@needs_faketime
def test_a_purge_run_under_faketime_is_flagged_and_its_key_is_not_shredded(old_world: World):  # P13, P14
    w = old_world
    w.ok("but01", "tombstone", w.live, "-r", "customer asked", "-a", "mgr01")
    w.approve("mgr01")
    ok_at(w, "+31d", "mgr01", "purge", w.live, "--reason", "retention passed", "--approver", "gm01")
    purge = w.git("rev-parse", "HEAD").strip()
    ok_at(w, "+31d", "gm01", "approve", "--yes", "--reason", "confirmed again")
    code, report = verify_whole(w)
    assert code == 1
    assert found(report, "dates", "in the future", purge), report["findings"]
    rows = json.loads(w.ok("aud01", "keys", "shred", "--format", "json"))
    assert [(r["archive_no"], r["shredded"]) for r in rows] == [(w.live, False)]
    assert "in the future" in rows[0]["why"]
    assert (w.key_file(w.live)).exists()


def test_a_purge_after_a_local_zero_retention_is_refused_and_flagged(desk: Desk):  # P13
    w, gone = desk.world, desk.h["tombstoned"]  # tombstoned today, on main
    settings = w.root / "archive.yaml"
    settings.write_text(settings.read_text().replace("retention_days: 30", "retention_days: 0"))
    before = w.snapshot()
    assert_refused(w.cli("mgr01", "purge", gone, "-r", "confirmed", "-a", "gm01"), 1, "archive.yaml has uncommitted")
    assert_refused(w.cli("mgr01", "purge", "--eligible", "-r", "confirmed", "-a", "gm01"), 1, "uncommitted")
    assert_unchanged(w, before)
    # by hand, with the zero retention committed and approved first: judged by main's 30 days
    settings = desk.path / "archive.yaml"
    settings.write_text(settings.read_text().replace("retention_days: 30", "retention_days: 0"))
    configure = desk.sign("mgr01", "configure", subject="configure archive.yaml", approver="gm01")
    desk.approve_by_hand("gm01", configure)
    shutil.rmtree(desk.path / desk.home(gone))
    desk.append(desk.register("destruction"), destruction_entry("mgr01", gone))
    purge = desk.sign("mgr01", "purge", subject=f"purge {gone}", approver="gm01", archive_no=gone)
    desk.approve_by_hand("gm01", purge)
    flagged(desk, "purge", "days before its 30-day retention ended (P13)", purge)


def test_personal_data_in_a_commit_message_is_flagged(desk: Desk):  # P9, P14: a purge cannot shred history
    number = desk.h["live"]
    desk.append(desk.register("access"), entry("but01", "reveal", number))
    subject = f"register reveal of {number}"
    commit = desk.sign(
        "but01", "reveal", subject=subject, reason="owner 13812345678 called", approver=None, archive_no=number
    )
    report = flagged(desk, "personal-data", "the commit message holds a phone number", commit)
    assert "13812345678" not in json.dumps(report)
