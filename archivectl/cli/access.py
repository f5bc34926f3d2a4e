"""attach, open, export, recipients sync, grant, lend, return, textconv, merge-driver."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from archivectl.cli.app import (
    ApproverOpt,
    FormatOpt,
    ReasonOpt,
    app,
    fmt_of,
    globals_of,
    open_archive,
    out,
    progress_bar,
)

ArchiveNo = Annotated[str, typer.Argument(metavar="ARCHIVE_NO")]


@app.command()
def attach(
    ctx: typer.Context,
    archive_no: ArchiveNo,
    file: Annotated[Path, typer.Argument(metavar="FILE", help="The scan or document.")],
    doc_type: Annotated[str, typer.Option("--type", help="Document type, e.g. purchase-contract-copy.")],
    date: Annotated[str | None, typer.Option("--date", help="Document date YYYY-MM-DD (default today).")] = None,
    reason: ReasonOpt = None,
    approver: ApproverOpt = None,
) -> None:
    """Encrypt a document to the household's record key and list it (a new version never overwrites)."""
    from archivectl.ops import access
    from archivectl.ops.common import Approval

    name = access.attach(open_archive(ctx), archive_no, file, doc_type, date, Approval(reason, approver))
    out(f"attached {name} to {archive_no}")


@app.command("open")
def open_(
    ctx: typer.Context,
    archive_no: ArchiveNo,
    doc: Annotated[str, typer.Argument(metavar="DOC", help="File name from `show`, or a type for its latest.")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here (default: stdout).")] = None,
    reason: Annotated[str | None, typer.Option("--reason", "-r", help="Why you open it (registered).")] = None,
) -> None:
    """Decrypt one attachment for a reader; the opening is registered like a reveal."""
    from archivectl.errors import UsageError
    from archivectl.files import private_output
    from archivectl.ops import access

    archive = open_archive(ctx)
    identity = globals_of(ctx).identity
    if output is None:
        if sys.stdout.isatty():
            raise UsageError("refusing to write a document to the terminal; use --output FILE")
        access.open_document(archive, archive_no, doc, reason, sys.stdout.buffer, identity)
        return
    if output.exists():
        raise UsageError(f"{output} already exists")
    with private_output(output) as sink:
        entry = access.open_document(archive, archive_no, doc, reason, sink, identity)
    out(f"opened {entry['file']} into {output}", err=True)


@app.command()
def export(
    ctx: typer.Context,
    archive_no: ArchiveNo,
    output: Annotated[Path, typer.Option("--output", "-o", help="The zip to write (outside the archive).")],
    reason: ReasonOpt = None,
    approver: ApproverOpt = None,
) -> None:
    """A customer's own data, record and scans, in one zip; registered as a transfer."""
    from archivectl.ops import access
    from archivectl.ops.common import Approval

    path = access.export(open_archive(ctx), archive_no, output, Approval(reason, approver), globals_of(ctx).identity)
    out(f"exported {archive_no} to {path}")


recipients_app = typer.Typer(help="Who can open the record keys.", no_args_is_help=True)
app.add_typer(recipients_app, name="recipients")


@recipients_app.command("sync")
def recipients_sync(
    ctx: typer.Context,
    rotate: Annotated[
        bool, typer.Option("--rotate", help="New record keys and re-encrypted data (a reader may have kept keys).")
    ] = False,
    reason: ReasonOpt = None,
    approver: ApproverOpt = None,
    fmt: FormatOpt = None,
) -> None:
    """Wrap every record key for the readers main approves (cron-ready); --rotate re-keys, as a change.

    Without --rotate nothing is committed: whom a key opens for follows from
    staff.yaml and the grants as approved on main, so a staff change proposed
    on a branch gives nobody a key. Run by a manager or gm who reads every
    building (their key opens the keys it re-wraps); exit 1 if one could not be.
    """
    from archivectl.errors import ArchiveError, UsageError
    from archivectl.ops import access, keys
    from archivectl.ops.common import Approval, identity_for
    from archivectl.render import render_rows

    archive = open_archive(ctx)
    if rotate:
        bar = progress_bar("re-keying", min_total=50)
        result = access.rotate(archive, Approval(reason, approver), globals_of(ctx).identity, bar)
        out(f"rotated {result['households']} record keys (the old ones go with `keys shred` once this is on main)")
        rows = [{"building": b, "readers": ", ".join(r)} for b, r in sorted(result["readers"].items())]
        if rows:
            out(render_rows(rows, fmt_of(ctx, fmt)))
        return
    if reason or approver:
        raise UsageError("re-wrapping follows main and needs no approval: --reason/--approver go with --rotate")
    result = keys.sync(archive, identity_for(archive, globals_of(ctx).identity), progress_bar("re-wrapping", 500))
    out(
        f"{len(result['rewrapped'])} record keys re-wrapped, {result['unchanged']} already right "
        f"({result['households']} households)"
    )
    rows = [{"building": b, "readers": ", ".join(r)} for b, r in sorted(result["readers"].items())]
    if rows:
        out(render_rows(rows, fmt_of(ctx, fmt)))
    if result["failed"]:
        first = result["failed"][0]
        more = f" (and {len(result['failed']) - 1} more)" if len(result["failed"]) > 1 else ""
        raise ArchiveError(f"{first['archive_no']}: {first['problem']}{more}")


@app.command()
def grant(
    ctx: typer.Context,
    staff_id: Annotated[str, typer.Argument(metavar="STAFF")],
    building: Annotated[str, typer.Option(help="The building they may read.")],
    until: Annotated[str, typer.Option(help="Last day of access, YYYY-MM-DD.")],
    reason: ReasonOpt = None,
    approver: ApproverOpt = None,
) -> None:
    """Give someone outside a building a time-limited read (approver: the general manager)."""
    from archivectl.ops import access
    from archivectl.ops.common import Approval

    result = access.grant(
        open_archive(ctx), staff_id, building, until, Approval(reason, approver), globals_of(ctx).identity
    )
    out(
        f"granted {staff_id} read of {building} until {until} ({result['households']} households); "
        "once approved on main, `archivectl recipients sync` gives them the keys"
    )


@app.command()
def lend(
    ctx: typer.Context,
    archive_no: ArchiveNo,
    to: Annotated[str, typer.Option("--to", help="Staff id of the borrower.")],
    due: Annotated[str, typer.Option("--due", help="Return date YYYY-MM-DD.")],
    reason: ReasonOpt = None,
    approver: ApproverOpt = None,
) -> None:
    """Register lending the paper dossier bag."""
    from archivectl.ops import access
    from archivectl.ops.common import Approval

    commit = access.lend(open_archive(ctx), archive_no, to, due, Approval(reason, approver))
    out(f"lent {archive_no} to {to} until {due} (commit {commit[:12]})")


@app.command("return")
def return_(
    ctx: typer.Context,
    archive_no: ArchiveNo,
    reason: Annotated[str, typer.Option("--reason", "-r", help="Note on the return.")] = "returned",
) -> None:
    """Register the paper dossier bag's return."""
    from archivectl.ops import access

    commit = access.return_dossier(open_archive(ctx), archive_no, reason)
    out(f"returned {archive_no} (commit {commit[:12]})")


@app.command(hidden=False)
def textconv(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(metavar="FILE")],
) -> None:
    """git's diff driver: a record with its sealed block opened for readers (set up by init)."""
    from archivectl.ops.textconv import textconv as run

    sys.stdout.buffer.write(run(file, globals_of(ctx).identity))
    sys.stdout.buffer.flush()


@app.command("merge-driver", hidden=True)
def merge_driver(
    ancestor: Annotated[Path, typer.Argument(metavar="ANCESTOR")],
    ours: Annotated[Path, typer.Argument(metavar="OURS")],
    theirs: Annotated[Path, typer.Argument(metavar="THEIRS")],
    path: Annotated[str, typer.Argument(metavar="PATH")],
) -> None:
    """git's merge driver for records (%O %A %B %P): field by field, sealed fields for readers (set up by init)."""
    from archivectl.ops.merging import merge_driver as run

    code, lines = run(ancestor, ours, theirs, path)
    for line in lines:
        print(line, file=sys.stderr)
    raise typer.Exit(code)
