"""tombstone, restore, purge, move-out, review, backup."""

from __future__ import annotations

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
    result = lifecycle.restore_backup(Path(what), directory, list(replay_from or []), globals_of(ctx).archive)
    if result["warning"]:
        out(f"archivectl: warning: {result['warning']}", err=True)
    out(
        f"restored archive {result['archive']} with {len(result['restored_keys'])} record keys "
        f"(keystore {result['keystore']})"
    )
    if result["withheld"]:
        named = ", ".join(f"{w['archive_no']} ({w['why']})" for w in result["withheld"])
        out(f"withheld {len(result['withheld'])} record keys a destruction register names: {named}")
    if result["unmatched"]:
        out(f"left out {result['unmatched']} record keys no household of the restored archive names")
    if result["keystore_setting"]:
        out(
            f"archive.yaml names the keystore {result['keystore_setting']}; "
            f"to use the restored keys set ARCHIVECTL_KEYSTORE={result['keystore']}"
        )


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


REVIEW_FORMATS = ("markdown", "json", "table")


@app.command()
def review(
    ctx: typer.Context,
    target: Annotated[
        str | None,
        typer.Argument(
            metavar="[ARCHIVE_NO | RANGE]",
            help="An archive number: record its periodic review (P11). Anything else: the commits whose story "
            "to tell, A..B or A (meaning A..HEAD); default: this branch's proposals (origin/main..HEAD).",
        ),
    ] = None,
    reason: ReasonOpt = None,
    approver: ApproverOpt = None,
    fmt: FormatOpt = None,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 unless every change is approved and nothing is broken (for CI).")
    ] = False,
    open_sealed: Annotated[
        bool,
        typer.Option(
            "--open",
            help="As a reader: open each changed record in memory and check its sealed-field fingerprints "
            "(only field paths are shown; nothing is registered).",
        ),
    ] = False,
) -> None:
    """Record a periodic review of a dossier (P11), or tell a pull request's story without personal data.

    `review ARCHIVE_NO -r R -a MGR` records that the dossier was checked (P11).

    `review [RANGE] --format markdown|json|table`: each change, whom it awaits, findings (README "Review on the forge").
    """
    from archivectl.errors import UsageError
    from archivectl.i18n import _
    from archivectl.layout import ARCHIVE_NO

    if target is not None and ARCHIVE_NO.fullmatch(target):
        from archivectl.ops import lifecycle
        from archivectl.ops.common import Approval

        if check or open_sealed:
            raise UsageError(
                _("--check and --open are for the story of a range, not the periodic review of one household")
            )
        commit = lifecycle.review(open_archive(ctx), target, Approval(reason, approver))
        out(f"reviewed {target} in commit {commit[:12]}")
        return
    from archivectl.ops import review as ops

    if reason is not None or approver is not None:
        raise UsageError(
            _("--reason and --approver record a periodic review: give an archive number (review ARCHIVE_NO)")
        )
    chosen = fmt_of(ctx, fmt)
    if chosen not in REVIEW_FORMATS:
        raise UsageError(_("review --format: must be one of {formats}").format(formats=", ".join(REVIEW_FORMATS)))
    archive = open_archive(ctx)
    checker = ops.reader_check(archive, globals_of(ctx).identity) if open_sealed else None
    story = ops.review(archive, target, checker)
    if chosen == "json":
        import json

        out(json.dumps(story, ensure_ascii=False, indent=2, sort_keys=True))
    elif chosen == "markdown":
        out(ops.markdown(story).rstrip("\n"))
    else:
        from archivectl.render import render_rows

        rows = ops.table_rows(story)
        out(
            render_rows(rows, "table", title=f"review {story['range']}: {story['summary']}")
            if rows
            else story["summary"]
        )
    if check and story["state"] != "approved":
        raise typer.Exit(1)


@app.command()
def backup(
    ctx: typer.Context,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="The backup file to write.")] = None,
    into: Annotated[
        Path | None,
        typer.Option(
            "--into",
            metavar="DIR",
            help="Write DIR/<archive>-<UTC time>.tar and remove the expired backups in DIR (for cron).",
        ),
    ] = None,
) -> None:
    """Git bundle of the archive plus the record keys it still needs, in one file that expires (P14, P16)."""
    from archivectl.errors import ArchiveError, UsageError
    from archivectl.ops import lifecycle

    if (output is None) == (into is None):
        raise UsageError("give --output FILE or --into DIR (one of the two)")
    result = lifecycle.backup(open_archive(ctx), output=output, into=into, progress=progress_bar("backing up"))
    out(f"backed up {result['head'][:12]} with {result['keys']} record keys to {result['output']}")
    out(f"expires {result['expires']} (retention_days {result['retention_days']}); restore refuses it after that")
    left = result["left_out"]
    out(
        f"left out {sum(left.values())} record keys: {left['tombstoned']} of tombstoned households, "
        f"{left['not_in_head']} of households not in HEAD, {left['superseded']} superseded by a rotation"
    )
    for row in result["pruned"]:
        out(f"pruned {row['file']} (expired {row['expired']})")
    if result["undated"]:
        out(f"kept {result['undated']} older backups in {into} that record no expiry; remove them by hand")
    if result["unpruned"]:
        first = result["unpruned"][0]
        raise ArchiveError(
            f"could not remove {len(result['unpruned'])} expired backups: {first['file']} ({first['problem']})"
        )


migrate_app = typer.Typer(help="One-off migrations of a whole archive, each one approved commit.", no_args_is_help=True)
app.add_typer(migrate_app, name="migrate")


@migrate_app.command("fingerprints")
def migrate_fingerprints(ctx: typer.Context, reason: ReasonOpt = None, approver: ApproverOpt = None) -> None:
    """Give every sealed record written before fingerprints its sealed_fingerprints (a manager or gm; approved)."""
    from archivectl.i18n import _
    from archivectl.ops.common import Approval
    from archivectl.ops.migrating import migrate_fingerprints as run

    done = run(open_archive(ctx), Approval(reason, approver), globals_of(ctx).identity)
    out(
        _("fingerprinted {n} households in commit {commit}").format(
            n=len(done["households"]), commit=done["commit"][:12]
        )
    )
