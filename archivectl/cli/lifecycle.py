"""tombstone, restore, purge, move-out, review, backup."""

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


@app.command(help=_("Mark a household deleted-pending, or with --due all past their keeping period (保管期限)."))
def tombstone(
    ctx: typer.Context,
    archive_no: Annotated[str | None, typer.Argument(metavar="[ARCHIVE_NO]")] = None,
    due: Annotated[
        bool, typer.Option("--due", help=_("Every household past its keeping period (archive.yaml keeping:)."))
    ] = False,
    reason: ReasonOpt = None,
    approver: ApproverOpt = None,
    request: RequestOpt = None,
) -> None:
    from archivectl.errors import UsageError
    from archivectl.ops import lifecycle
    from archivectl.ops.common import Approval

    if bool(archive_no) == due:
        raise UsageError(_("name one household to tombstone, or give --due (not both)"))
    if due:
        rows, commit = lifecycle.tombstone_due(open_archive(ctx), Approval(reason, approver))
        out(
            _("tombstoned {n_rows} households past their keeping period in commit {commit}").format(
                n_rows=len(rows), commit=commit[:12]
            )
        )
        return
    assert archive_no is not None
    commit = lifecycle.tombstone(open_archive(ctx), archive_no, Approval(reason, approver, request))
    out(_("tombstoned {archive_no} in commit {commit}").format(archive_no=archive_no, commit=commit[:12]))


@app.command(help=_("`restore ARCHIVE_NO` undoes a tombstone; `restore FILE DIR` rebuilds an archive from a backup."))
def restore(
    ctx: typer.Context,
    what: Annotated[str, typer.Argument(metavar="ARCHIVE_NO | FILE", help=_("A tombstoned household, or a backup."))],
    directory: Annotated[Path | None, typer.Argument(metavar="[DIR]", help=_("With a backup FILE: where to."))] = None,
    replay_from: Annotated[
        list[str] | None,
        typer.Option(
            "--replay-from",
            metavar="ARCHIVE|URL",
            help=_("Another copy whose destruction register must be honoured (repeatable)."),
        ),
    ] = None,
    reason: ReasonOpt = None,
    approver: ApproverOpt = None,
) -> None:
    from archivectl.ops import lifecycle
    from archivectl.ops.common import Approval

    if directory is None:
        commit = lifecycle.restore(open_archive(ctx), what, Approval(reason, approver))
        out(_("restored {what} in commit {commit}").format(what=what, commit=commit[:12]))
        return
    result = lifecycle.restore_backup(Path(what), directory, list(replay_from or []), globals_of(ctx).archive)
    if result["warning"]:
        out(_("archivectl: warning: {warning}").format(warning=result["warning"]), err=True)
    out(
        _("restored archive {archive} with {n_restored_keys} record keys (keystore {keystore})").format(
            archive=result["archive"], n_restored_keys=len(result["restored_keys"]), keystore=result["keystore"]
        )
    )
    if result["withheld"]:
        named = ", ".join(f"{w['archive_no']} ({w['why']})" for w in result["withheld"])
        out(
            _("withheld {n_withheld} record keys a destruction register names: {named}").format(
                n_withheld=len(result["withheld"]), named=named
            )
        )
    for aside in result["set_aside"]:
        out(
            _("archivectl: warning: a destruction entry that is no fact on main withholds nothing: {aside}").format(
                aside=aside
            ),
            err=True,
        )
    if result["unmatched"]:
        out(
            _("left out {unmatched} record keys no household of the restored archive names").format(
                unmatched=result["unmatched"]
            )
        )
    if result["keystore_setting"]:
        out(
            _(
                "archive.yaml names the keystore {keystore_setting}; to use the restored keys set "
                "ARCHIVECTL_KEYSTORE={keystore}"
            ).format(keystore_setting=result["keystore_setting"], keystore=result["keystore"])
        )


@app.command(
    help=_(
        "Propose destroying households tombstoned more than the retention period ago.\n\n"
        "The proposal awaits the approver's signed approval; once it is on main, `keys shred` destroys their "
        "record keys."
    )
)
def purge(
    ctx: typer.Context,
    archive_nos: Annotated[list[str] | None, typer.Argument(metavar="[ARCHIVE_NO]...")] = None,
    eligible: Annotated[bool, typer.Option("--eligible", help=_("Every household past its retention period."))] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help=_("Show what would be proposed for purge; change nothing."))
    ] = False,
    reason: ReasonOpt = None,
    approver: ApproverOpt = None,
    fmt: FormatOpt = None,
) -> None:
    from archivectl.ops import lifecycle
    from archivectl.ops.common import Approval
    from archivectl.render import render_rows

    rows = lifecycle.purge(open_archive(ctx), archive_nos or [], eligible, dry_run, Approval(reason, approver))
    if rows:
        chosen = fmt_of(ctx, fmt)
        out(render_rows(rows, chosen, title=_("would be proposed for purge") if dry_run else _("proposed for purge")))
        if not dry_run and chosen == "table":
            out(_("a proposal: nothing is destroyed until it is approved on main and `archivectl keys shred` runs"))
    elif dry_run:
        out(_("no tombstoned households"))


@app.command("move-out", help=_("The household has moved out: kept apart, not thrown away."))
def move_out(
    ctx: typer.Context,
    archive_no: ArchiveNo,
    date: Annotated[str, typer.Option("--date", help=_("Move-out date YYYY-MM-DD."))],
    reason: ReasonOpt = None,
    approver: ApproverOpt = None,
) -> None:
    from archivectl.ops import lifecycle
    from archivectl.ops.common import Approval

    commit = lifecycle.move_out(open_archive(ctx), archive_no, date, Approval(reason, approver))
    out(_("moved out {archive_no} in commit {commit}").format(archive_no=archive_no, commit=commit[:12]))


REVIEW_FORMATS = ("markdown", "json", "table")


@app.command(
    help=_(
        "Record a periodic review of a dossier, or tell a pull request's story without personal data.\n\n"
        "`review ARCHIVE_NO -r R -a MGR` records that the dossier was checked.\n\n"
        "`review [RANGE] --format markdown|json|table`: each change, whom it awaits, findings "
        '(README "Review on the forge").'
    )
)
def review(
    ctx: typer.Context,
    target: Annotated[
        str | None,
        typer.Argument(
            metavar="[ARCHIVE_NO | RANGE]",
            help=_(
                "An archive number: record its periodic review. Anything else: the commits whose story "
                "to tell, A..B or A (meaning A..HEAD); default: this branch's proposals (origin/main..HEAD)."
            ),
        ),
    ] = None,
    reason: ReasonOpt = None,
    approver: ApproverOpt = None,
    fmt: FormatOpt = None,
    check: Annotated[
        bool, typer.Option("--check", help=_("Exit 1 unless every change is approved and nothing is broken (for CI)."))
    ] = False,
    open_sealed: Annotated[
        bool,
        typer.Option(
            "--open",
            help=_(
                "As a reader: open each changed record in memory, check its sealed-field fingerprints and show "
                "the changed sealed fields masked (nothing is registered)."
            ),
        ),
    ] = False,
) -> None:
    from archivectl.errors import UsageError
    from archivectl.layout import ARCHIVE_NO

    if target is not None and ARCHIVE_NO.fullmatch(target):
        from archivectl.ops import lifecycle
        from archivectl.ops.common import Approval

        if check or open_sealed:
            raise UsageError(
                _("--check and --open are for the story of a range, not the periodic review of one household")
            )
        commit = lifecycle.review(open_archive(ctx), target, Approval(reason, approver))
        out(_("reviewed {archive_no} in commit {commit}").format(archive_no=target, commit=commit[:12]))
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
            render_rows(
                rows,
                "table",
                title=_("review {range}: {summary}").format(range=story["range"], summary=story["summary"]),
            )
            if rows
            else story["summary"]
        )
    if check and story["state"] != "approved":
        raise typer.Exit(1)


@app.command(help=_("Git bundle of the archive plus the record keys it still needs, in one file that expires."))
def backup(
    ctx: typer.Context,
    output: Annotated[Path | None, typer.Option("--output", "-o", help=_("The backup file to write."))] = None,
    into: Annotated[
        Path | None,
        typer.Option(
            "--into",
            metavar="DIR",
            help=_("Write DIR/<archive>-<UTC time>.tar and remove the expired backups in DIR (for cron)."),
        ),
    ] = None,
) -> None:
    from archivectl.errors import ArchiveError, UsageError
    from archivectl.ops import lifecycle

    if (output is None) == (into is None):
        raise UsageError(_("give --output FILE or --into DIR (one of the two)"))
    result = lifecycle.backup(open_archive(ctx), output=output, into=into, progress=progress_bar(_("backing up")))
    out(
        _("backed up {head} with {keys} record keys to {output}").format(
            head=result["head"][:12], keys=result["keys"], output=result["output"]
        )
    )
    out(
        _("expires {expires} (retention_days {retention_days}); restore refuses it after that").format(
            expires=result["expires"], retention_days=result["retention_days"]
        )
    )
    left = result["left_out"]
    out(
        _(
            "left out {total} record keys: {tombstoned} of tombstoned households, {not_in_head} of households "
            "not in HEAD, {superseded} superseded by a rotation"
        ).format(
            total=sum(left.values()),
            tombstoned=left["tombstoned"],
            not_in_head=left["not_in_head"],
            superseded=left["superseded"],
        )
    )
    for row in result["pruned"]:
        out(_("pruned {file} (expired {expired})").format(file=row["file"], expired=row["expired"]))
    if result["undated"]:
        out(
            _("kept {undated} older backups in {into} that record no expiry; remove them by hand").format(
                undated=result["undated"], into=into
            )
        )
    if result["unpruned"]:
        first = result["unpruned"][0]
        raise ArchiveError(
            _("could not remove {n_unpruned} expired backups: {file} ({problem})").format(
                n_unpruned=len(result["unpruned"]), file=first["file"], problem=first["problem"]
            )
        )


migrate_app = typer.Typer(
    help=_("One-off migrations of a whole archive, each one approved commit."), no_args_is_help=True
)
app.add_typer(migrate_app, name="migrate")


@migrate_app.command(
    "fingerprints",
    help=_("Give every sealed record written before fingerprints its sealed_fingerprints (a manager or gm; approved)."),
)
def migrate_fingerprints(ctx: typer.Context, reason: ReasonOpt = None, approver: ApproverOpt = None) -> None:
    from archivectl.ops.common import Approval
    from archivectl.ops.migrating import migrate_fingerprints as run

    done = run(open_archive(ctx), Approval(reason, approver), globals_of(ctx).identity)
    out(
        _("fingerprinted {n} households in commit {commit}").format(
            n=len(done["households"]), commit=done["commit"][:12]
        )
    )
