"""demo: a throw-away archive built from examples/archive, walking the main job.

Each step acts as one demo staff member by pointing git at that person's own
config (GIT_CONFIG_GLOBAL), exactly as separate people on separate machines would.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from archivectl import clock, yamlio
from archivectl.archive import Archive
from archivectl.errors import ArchiveError
from archivectl.i18n import _

_HERE = Path(__file__).resolve().parent.parent


def examples_dir() -> Path:
    """examples/archive, from the installed package or the source tree."""
    for candidate in (_HERE / "examples" / "archive", _HERE.parent / "examples" / "archive"):
        if (candidate / "staff.yaml").is_file():
            return candidate
    raise ArchiveError(_("examples/archive is not installed with this archivectl"))


def prepare_people(source: Path, target: Path) -> dict[str, Path]:
    """Copy the demo keys (private ones 0600, as ssh requires) and write one git config per person."""
    target.mkdir(parents=True, exist_ok=True)
    configs = {}
    for pub in sorted((source / "keys").glob("*.pub")):
        person = pub.stem
        private = target / person
        shutil.copyfile(source / "keys" / person, private)
        private.chmod(0o600)
        shutil.copyfile(pub, target / pub.name)
        config = target / f"{person}.gitconfig"
        config.write_text(
            f"[user]\n\tname = {person}\n\temail = {person}@demo.invalid\n\tsigningkey = {private}\n"
            "[gpg]\n\tformat = ssh\n[init]\n\tdefaultBranch = main\n"
        )
        configs[person] = config
    return configs


@contextlib.contextmanager
def acting_as(config: Path) -> Iterator[None]:
    """Run git (and so signing) as the person whose config this is."""
    saved = {k: os.environ.get(k) for k in ("GIT_CONFIG_GLOBAL", "GIT_CONFIG_NOSYSTEM", "ARCHIVECTL_IDENTITY")}
    os.environ["GIT_CONFIG_GLOBAL"] = str(config)
    os.environ["GIT_CONFIG_NOSYSTEM"] = "1"
    os.environ.pop("ARCHIVECTL_IDENTITY", None)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_demo(directory: Path | None, say: Callable[[str], None]) -> Path:
    """Build the demo archive and walk add, approve, edit, show, reveal, history, validate, verify."""
    from archivectl.ops import access, approvals, households, lifecycle, reading
    from archivectl.ops.common import Approval
    from archivectl.ops.configure import configure
    from archivectl.ops.init import init
    from archivectl.ops.validate import validate
    from archivectl.ops.verify import verify
    from archivectl.render import render_record, render_rows
    from archivectl.reports.completeness import completeness

    source = examples_dir()
    base = Path(directory) if directory else Path(tempfile.mkdtemp(prefix="archivectl-demo-"))
    if base.exists() and any(base.iterdir()):
        raise ArchiveError(_("{base} is not empty; give an empty or new directory").format(base=base))
    people = prepare_people(source, base / "demo-keys")
    path = base / "archive"

    def step(text: str, note: str | None = None) -> None:
        say(f"\n$ {text}" + (f"    # {note}" if note else ""))

    step(f"archivectl init {path} --name 'Demo Estate' --staff-file staff.yaml", _("as {who}").format(who="gm01"))
    with acting_as(people["gm01"]):
        archive, _commit = init(path, "Demo Estate", source / "staff.yaml")
    archive = Archive(archive.root)

    estate = source / "archive.yaml"
    if estate.is_file():  # the estate's buildings and unit numbering, declared once with the gm's approval
        declare, as_built = _("declare the estate"), _("the estate as built")
        step(
            f"archivectl configure --reason '{declare}' --approver gm01",
            _("as {who}, archive.yaml edited").format(who="mgr01"),
        )
        settings = archive.root / "archive.yaml"
        settings.write_text(settings.read_text(encoding="utf-8") + estate.read_text(encoding="utf-8"), "utf-8")
        with acting_as(people["mgr01"]):
            commit = configure(archive, [], Approval(declare, "gm01"))
            say(_("committed in {commit}").format(commit=commit[:12]))
        step(f"archivectl approve --yes --reason '{as_built}'", _("as {who}").format(who="gm01"))
        with acting_as(people["gm01"]):
            _plan, commit = approvals.approve(archive, None, as_built, lambda plan: True)
            say(_("approved in commit {commit}").format(commit=commit[:12]))
        archive = Archive(archive.root)

    numbers = []
    with acting_as(people["clk01"]):
        for record_file in sorted((source / "households").glob("*.yaml")):
            given = households.RecordInput(file=record_file)
            no = households.add(archive, given, Approval(_("new household from paper dossier"), "mgr01"))
            numbers.append(no)
            step(
                f"archivectl add --file {record_file.name} --reason '...' --approver mgr01",
                _("as {who}").format(who="clk01"),
            )
            say(no)
    first = numbers[0]

    def approve_as_manager(reason: str) -> None:
        step("archivectl pending", _("as mgr01: what awaits whose signed approval"))
        with acting_as(people["mgr01"]):
            rows = approvals.pending(archive)
            say(render_rows([{**r, "commit": r["commit"][:12], "subject": None} for r in rows], "table"))
            step(f"archivectl approve --yes --reason '{reason}'", _("as mgr01: one signed approval of exactly these"))
            shown, commit = approvals.approve(archive, None, reason, lambda plan: True)
            say("\n".join(shown.lines[:12] + (["    ..."] if len(shown.lines) > 12 else [])))
            say(
                _("approved {n_commits} change(s) in commit {commit}").format(
                    n_commits=len(shown.commits), commit=commit[:12]
                )
            )

    approve_as_manager(_("checked against the paper dossiers"))

    edit = yamlio.load_file(source / "demo-edit.yaml")
    sets = [f"{field}={value}" for field, value in edit.items()]
    step(
        f"archivectl edit {first} --set {' --set '.join(sets)} --reason '...' --approver mgr01",
        _("as {who}").format(who="but01"),
    )
    with acting_as(people["but01"]):
        commit = households.edit(
            archive,
            first,
            households.RecordInput(sets=sets),
            Approval(_("owner called with a new phone number"), "mgr01"),
            None,
        )
    say(_("edited {archive_no} in commit {commit}").format(archive_no=first, commit=commit[:12]))

    step("archivectl list --building B03")
    say(render_rows(reading.list_households(archive, building="B03"), "table"))

    step(f"archivectl show {first}", _("as but01: masked"))
    with acting_as(people["but01"]):
        say(render_record(reading.show(archive, first), "yaml"))

    front_desk, curious = _("verify identity at front desk"), _("curious")
    step(f"archivectl show {first} --reveal --reason '{front_desk}'", _("as but01: registered"))
    with acting_as(people["but01"]):
        say(render_record(reading.reveal(archive, first, front_desk), "yaml"))

    step(f"archivectl show {first} --reveal --reason '{curious}'", _("as but02, butler of B05: refused"))
    with acting_as(people["but02"]):
        try:
            reading.reveal(archive, first, curious)
            say(_("(unexpectedly allowed)"))
        except ArchiveError as exc:
            say(_("archivectl: error: {problem}").format(problem=exc))

    step(f"archivectl history {first}")
    say(render_rows(reading.history(archive, first), "table"))

    scan = base / "fire-safety-pledge.pdf"
    scan.write_bytes(b"%PDF-1.4 demo scan: fire-safety pledge (fictitious)\n")
    step(
        f"archivectl attach {first} {scan.name} --type fire-safety-pledge --reason '...' --approver mgr01",
        _("as {who}").format(who="clk01"),
    )
    with acting_as(people["clk01"]):
        say(
            _("attached {name}").format(
                name=access.attach(archive, first, scan, "fire-safety-pledge", None, Approval(_("scanned"), "mgr01"))
            )
        )

    step("archivectl attach ... --type ...", _("as clk01: the remaining scans of three dossiers (P5)"))
    with acting_as(people["clk01"]):
        say(_complete_some(archive, base, 3))
    last = numbers[-1]
    step(f"archivectl move-out {last} --date {clock.today()} --reason '...' --approver mgr01", _("as but02 (P1)"))
    with acting_as(people["but02"]):
        lifecycle.move_out(archive, last, clock.today().isoformat(), Approval(_("tenant left, keys returned"), "mgr01"))
    due = (clock.today() + dt.timedelta(days=14)).isoformat()
    step(f"archivectl lend {numbers[1]} --to but01 --due {due} --reason '...' --approver mgr01", _("as clk01 (P8)"))
    with acting_as(people["clk01"]):
        access.lend(archive, numbers[1], "but01", due, Approval(_("home visit about the renovation"), "mgr01"))

    approve_as_manager(_("checked the phone call note and the scans"))

    step("archivectl validate")
    problems = validate(archive)
    say(_("all records valid") if not problems else "\n".join(f"{p['file']}: {p['problem']}" for p in problems))

    step("archivectl report completeness", _("needs no key: reads the clear parts only"))
    say(completeness(archive).summary)

    step("archivectl verify", _("every commit judged by its Action: signed, approved by the approver's own key"))
    report = verify(archive)
    say(
        _("{commits} commits verified").format(commits=report["commits"])
        if report["ok"]
        else _("{n_findings} findings").format(n_findings=len(report["findings"]))
    )

    say(
        _(
            "\nDemo archive: {root}\nKeystore:     {url}\nTry: cd {root} && git log --show-signature -1   "
            "(allowed signers are configured)"
        ).format(root=archive.root, url=archive.keystore.url)
    )
    if problems or not report["ok"]:
        raise ArchiveError(_("the demo archive did not validate or verify"))
    return archive.root


def _complete_some(archive: Archive, base: Path, how_many: int) -> str:
    """Attach a fictitious scan for every document the nearest-to-complete dossiers still lack."""
    from archivectl.ops import access
    from archivectl.ops.common import Approval
    from archivectl.reports.completeness import completeness

    rows = [r for r in completeness(archive).document["households"] if r["missing_documents"]]
    chosen = sorted((r for r in rows if not r["missing_fields"]), key=lambda r: len(r["missing_documents"]))
    attached = 0
    for row in chosen[:how_many]:
        for doc in row["missing_documents"]:
            scan = base / f"{doc}.pdf"
            scan.write_bytes(f"%PDF-1.4 demo scan: {doc} (fictitious)\n".encode())
            access.attach(
                archive, row["archive_no"], scan, doc, None, Approval(_("scanned from the paper dossier"), "mgr01")
            )
            attached += 1
    return _("attached {count} scans to {households}").format(
        count=attached, households=", ".join(r["archive_no"] for r in chosen[:how_many])
    )
