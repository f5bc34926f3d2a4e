"""tombstone, restore, purge, move-out, review, backup."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from archivectl.cli.app import ApproverOpt, FormatOpt, ReasonOpt, app, fmt_of, open_archive, out

ArchiveNo = Annotated[str, typer.Argument(metavar="ARCHIVE_NO")]


@app.command()
def tombstone(
    ctx: typer.Context,
    archive_no: Annotated[str | None, typer.Argument(metavar="[ARCHIVE_NO]")] = None,
    due: Annotated[
        bool, typer.Option("--due", help="Every household past its keeping period (archive.yaml keeping:).")
    ] = False,
    reason: ReasonOpt = None,
    approver: ApproverOpt = None,
) -> None:
    """Mark a household deleted-pending (P13), or with --due all past their keeping period (保管期限)."""
    from archivectl.errors import UsageError
    from archivectl.ops import lifecycle
    from archivectl.ops.common import Approval

    if bool(archive_no) == due:
        raise UsageError("name one household to tombstone, or give --due (not both)")
    if due:
        rows, commit = lifecycle.tombstone_due(open_archive(ctx), Approval(reason, approver))
        out(f"tombstoned {len(rows)} households past their keeping period in commit {commit[:12]}")
        return
    assert archive_no is not None
    commit = lifecycle.tombstone(open_archive(ctx), archive_no, Approval(reason, approver))
    out(f"tombstoned {archive_no} in commit {commit[:12]}")


@app.command()
def restore(
    ctx: typer.Context,
    what: Annotated[str, typer.Argument(metavar="ARCHIVE_NO | FILE", help="A tombstoned household, or a backup.")],
    directory: Annotated[Path | None, typer.Argument(metavar="[DIR]", help="With a backup FILE: where to.")] = None,
    replay_from: Annotated[
        list[str] | None,
        typer.Option(
            "--replay-from",
            metavar="ARCHIVE|URL",
            help="Another copy whose destruction register must be honoured (repeatable).",
        ),
    ] = None,
    reason: ReasonOpt = None,
    approver: ApproverOpt = None,
) -> None:
    """`restore ARCHIVE_NO` undoes a tombstone; `restore FILE DIR` rebuilds an archive from a backup (P16)."""
    from archivectl.ops import lifecycle
    from archivectl.ops.common import Approval

    if directory is None:
        commit = lifecycle.restore(open_archive(ctx), what, Approval(reason, approver))
        out(f"restored {what} in commit {commit[:12]}")
        return
    sources = list(replay_from or [])
    current = _current_archive(ctx)
    if current:
        sources.append(current)
    result = lifecycle.restore_backup(Path(what), directory, sources)
    out(
        f"restored archive {result['archive']} with {len(result['restored_keys'])} record keys "
        f"(keystore {result['keystore']})"
    )
    if result["withheld"]:
        out(f"withheld {len(result['withheld'])} purged record keys: {', '.join(result['withheld'])}")


def _current_archive(ctx: typer.Context) -> str | None:
    """The archive we are in (or --archive names), whose destruction register a restore must honour."""
    from archivectl.errors import ArchiveError

    try:
        return str(open_archive(ctx).root)
    except ArchiveError:
        return None


@app.command()
def purge(
    ctx: typer.Context,
    archive_nos: Annotated[list[str] | None, typer.Argument(metavar="[ARCHIVE_NO]...")] = None,
    eligible: Annotated[bool, typer.Option("--eligible", help="Every household past its retention period.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be purged; change nothing.")] = False,
    reason: ReasonOpt = None,
    approver: ApproverOpt = None,
    fmt: FormatOpt = None,
) -> None:
    """Destroy households tombstoned more than the retention period ago (P13, P14): crypto-shredding."""
    from archivectl.ops import lifecycle
    from archivectl.ops.common import Approval
    from archivectl.render import render_rows

    rows = lifecycle.purge(open_archive(ctx), archive_nos or [], eligible, dry_run, Approval(reason, approver))
    if rows:
        out(render_rows(rows, fmt_of(ctx, fmt), title="would purge" if dry_run else "purged"))
    elif dry_run:
        out("no tombstoned households")


@app.command("move-out")
def move_out(
    ctx: typer.Context,
    archive_no: ArchiveNo,
    date: Annotated[str, typer.Option("--date", help="Move-out date YYYY-MM-DD.")],
    reason: ReasonOpt = None,
    approver: ApproverOpt = None,
) -> None:
    """The household has moved out (P1, P18): kept apart, not thrown away."""
    from archivectl.ops import lifecycle
    from archivectl.ops.common import Approval

    commit = lifecycle.move_out(open_archive(ctx), archive_no, date, Approval(reason, approver))
    out(f"moved out {archive_no} in commit {commit[:12]}")


@app.command()
def review(ctx: typer.Context, archive_no: ArchiveNo, reason: ReasonOpt = None, approver: ApproverOpt = None) -> None:
    """Record a periodic review of the dossier (P11)."""
    from archivectl.ops import lifecycle
    from archivectl.ops.common import Approval

    commit = lifecycle.review(open_archive(ctx), archive_no, Approval(reason, approver))
    out(f"reviewed {archive_no} in commit {commit[:12]}")


@app.command()
def backup(
    ctx: typer.Context,
    output: Annotated[Path, typer.Option("--output", "-o", help="The backup file to write.")],
) -> None:
    """Git bundle of the archive plus its keystore, in one file (P16)."""
    from archivectl.ops import lifecycle

    result = lifecycle.backup(open_archive(ctx), output)
    out(f"backed up {result['head'][:12]} with {result['keys']} record keys to {result['output']}")
