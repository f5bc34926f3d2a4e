"""attach, open, export, recipients sync, grant, lend, return, textconv, merge-driver."""

import sys
from pathlib import Path
from typing import Annotated

import typer

from archivectl.cli.app import (
    ApproverOpt,
    FormatOpt,
    ReasonOpt,
    RequestOpt,
    app,
    fmt_of,
    globals_of,
    open_archive,
    out,
    progress_bar,
)
from archivectl.i18n import _

ArchiveNo = Annotated[str, typer.Argument(metavar="ARCHIVE_NO")]


@app.command(help=_("Encrypt a document to the household's record key and list it (a new version never overwrites)."))
def attach(
    ctx: typer.Context,
    archive_no: ArchiveNo,
    file: Annotated[Path, typer.Argument(metavar="FILE", help=_("The scan or document."))],
    doc_type: Annotated[str, typer.Option("--type", help=_("Document type, e.g. purchase-contract-copy."))],
    date: Annotated[str | None, typer.Option("--date", help=_("Document date YYYY-MM-DD (default today)."))] = None,
    reason: ReasonOpt = None,
    approver: ApproverOpt = None,
) -> None:
    from archivectl.ops import access
    from archivectl.ops.common import Approval

    name = access.attach(open_archive(ctx), archive_no, file, doc_type, date, Approval(reason, approver))
    out(_("attached {name} to {archive_no}").format(name=name, archive_no=archive_no))


@app.command("open", help=_("Decrypt one attachment for a reader; the opening is registered like a reveal."))
def open_(
    ctx: typer.Context,
    archive_no: ArchiveNo,
    doc: Annotated[str, typer.Argument(metavar="DOC", help=_("File name from `show`, or a type for its latest."))],
    output: Annotated[Path | None, typer.Option("--output", "-o", help=_("Write here (default: stdout)."))] = None,
    reason: Annotated[str | None, typer.Option("--reason", "-r", help=_("Why you open it (registered)."))] = None,
) -> None:
    from archivectl.errors import UsageError
    from archivectl.files import private_output
    from archivectl.ops import access

    archive = open_archive(ctx)
    identity = globals_of(ctx).identity
    if output is None:
        if sys.stdout.isatty():
            raise UsageError(_("refusing to write a document to the terminal; use --output FILE"))
        access.open_document(archive, archive_no, doc, reason, sys.stdout.buffer, identity)
        return
    if output.exists():
        raise UsageError(_("{output} already exists").format(output=output))
    with private_output(output) as sink:
        entry = access.open_document(archive, archive_no, doc, reason, sink, identity)
    out(_("opened {file} into {output}").format(file=entry["file"], output=output), err=True)


@app.command(help=_("A customer's own data, record and scans, in one zip; registered as a transfer."))
def export(
    ctx: typer.Context,
    archive_no: ArchiveNo,
    output: Annotated[Path, typer.Option("--output", "-o", help=_("The zip to write (outside the archive)."))],
    reason: ReasonOpt = None,
    approver: ApproverOpt = None,
    request: RequestOpt = None,
) -> None:
    from archivectl.ops import access
    from archivectl.ops.common import Approval

    approval = Approval(reason, approver, request)
    path = access.export(open_archive(ctx), archive_no, output, approval, globals_of(ctx).identity)
    out(_("exported {archive_no} to {path}").format(archive_no=archive_no, path=path))


recipients_app = typer.Typer(help=_("Who can open the record keys."), no_args_is_help=True)
app.add_typer(recipients_app, name="recipients")


@recipients_app.command(
    "sync",
    help=_(
        "Wrap every record key for the readers main approves (cron-ready); --rotate re-keys, as a "
        "change.\n\nWithout --rotate nothing is committed: whom a key opens for follows from staff.yaml "
        "and the grants as approved on main, so a staff change proposed on a branch gives nobody a key. "
        "Run by a manager or gm who reads every building (their key opens the keys it re-wraps); exit 1 "
        "if one could not be."
    ),
)
def recipients_sync(
    ctx: typer.Context,
    rotate: Annotated[
        bool, typer.Option("--rotate", help=_("New record keys and re-encrypted data (a reader may have kept keys)."))
    ] = False,
    reason: ReasonOpt = None,
    approver: ApproverOpt = None,
    fmt: FormatOpt = None,
) -> None:
    from archivectl.errors import ArchiveError, UsageError
    from archivectl.ops import access, keys
    from archivectl.ops.common import Approval, identity_for
    from archivectl.render import render_rows

    archive = open_archive(ctx)
    if rotate:
        bar = progress_bar(_("re-keying"), min_total=50)
        result = access.rotate(archive, Approval(reason, approver), globals_of(ctx).identity, bar)
        out(
            _("rotated {households} record keys (the old ones go with `keys shred` once this is on main)").format(
                households=result["households"]
            )
        )
        rows = [{"building": b, "readers": ", ".join(r)} for b, r in sorted(result["readers"].items())]
        if rows:
            out(render_rows(rows, fmt_of(ctx, fmt)))
        return
    if reason or approver:
        raise UsageError(_("re-wrapping follows main and needs no approval: --reason/--approver go with --rotate"))
    result = keys.sync(archive, identity_for(archive, globals_of(ctx).identity), progress_bar(_("re-wrapping"), 500))
    out(
        _("{n_rewrapped} record keys re-wrapped, {unchanged} already right ({households} households)").format(
            n_rewrapped=len(result["rewrapped"]), unchanged=result["unchanged"], households=result["households"]
        )
    )
    rows = [{"building": b, "readers": ", ".join(r)} for b, r in sorted(result["readers"].items())]
    if rows:
        out(render_rows(rows, fmt_of(ctx, fmt)))
    if result["failed"]:
        first = result["failed"][0]
        more = f" (and {len(result['failed']) - 1} more)" if len(result["failed"]) > 1 else ""
        raise ArchiveError(f"{first['archive_no']}: {first['problem']}{more}")


@app.command(help=_("Give someone outside a building a time-limited read (approver: the general manager)."))
def grant(
    ctx: typer.Context,
    staff_id: Annotated[str, typer.Argument(metavar="STAFF")],
    building: Annotated[str, typer.Option(help=_("The building they may read."))],
    until: Annotated[str, typer.Option(help=_("Last day of access, YYYY-MM-DD."))],
    reason: ReasonOpt = None,
    approver: ApproverOpt = None,
) -> None:
    from archivectl.ops import access
    from archivectl.ops.common import Approval

    result = access.grant(
        open_archive(ctx), staff_id, building, until, Approval(reason, approver), globals_of(ctx).identity
    )
    out(
        _(
            "granted {staff_id} read of {building} until {until} ({households} households); once approved on "
            "main, `archivectl recipients sync` gives them the keys"
        ).format(staff_id=staff_id, building=building, until=until, households=result["households"])
    )


@app.command(help=_("Register lending the paper dossier bag."))
def lend(
    ctx: typer.Context,
    archive_no: ArchiveNo,
    to: Annotated[str, typer.Option("--to", help=_("Staff id of the borrower."))],
    due: Annotated[str, typer.Option("--due", help=_("Return date YYYY-MM-DD."))],
    reason: ReasonOpt = None,
    approver: ApproverOpt = None,
) -> None:
    from archivectl.ops import access
    from archivectl.ops.common import Approval

    commit = access.lend(open_archive(ctx), archive_no, to, due, Approval(reason, approver))
    out(
        _("lent {archive_no} to {to} until {due} (commit {commit})").format(
            archive_no=archive_no, to=to, due=due, commit=commit[:12]
        )
    )


@app.command("return", help=_("Register the paper dossier bag's return."))
def return_(
    ctx: typer.Context,
    archive_no: ArchiveNo,
    reason: Annotated[str, typer.Option("--reason", "-r", help=_("Note on the return."))] = "returned",
) -> None:
    from archivectl.ops import access

    commit = access.return_dossier(open_archive(ctx), archive_no, reason)
    out(_("returned {archive_no} (commit {commit})").format(archive_no=archive_no, commit=commit[:12]))


@app.command(
    hidden=False, help=_("git's diff driver: a record with its sealed block opened for readers (set up by init).")
)
def textconv(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(metavar="FILE")],
) -> None:
    from archivectl.ops.textconv import textconv as run

    sys.stdout.buffer.write(run(file, globals_of(ctx).identity))
    sys.stdout.buffer.flush()


@app.command(
    "merge-driver",
    hidden=True,
    help=_("git's merge driver for records (%O %A %B %P): field by field, sealed fields for readers (set up by init)."),
)
def merge_driver(
    ancestor: Annotated[Path, typer.Argument(metavar="ANCESTOR")],
    ours: Annotated[Path, typer.Argument(metavar="OURS")],
    theirs: Annotated[Path, typer.Argument(metavar="THEIRS")],
    path: Annotated[str, typer.Argument(metavar="PATH")],
) -> None:
    from archivectl.ops.merging import merge_driver as run

    code, lines = run(ancestor, ours, theirs, path)
    for line in lines:
        print(line, file=sys.stderr)
    raise typer.Exit(code)
