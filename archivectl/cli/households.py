"""add, edit, show, list, history, validate."""

import sys
from pathlib import Path
from typing import Annotated, Any

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

SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        "-s",
        metavar="FIELD=VALUE",
        help=_(
            "Set a field, e.g. renovation.started=2024-03-15. FIELD=- reads the value from stdin: use it "
            "(or --set-from) for personal data, which on the command line shows in `ps` and shell history."
        ),
    ),
]
SetFromOpt = Annotated[
    Path | None,
    typer.Option(
        "--set-from",
        metavar="FILE",
        help=_("FIELD=VALUE lines (or a YAML mapping of field paths) to set, kept off the command line."),
    ),
]
FileOpt = Annotated[
    Path | None,
    typer.Option("--file", metavar="YAML", help=_("Record fields as show --reveal --format yaml prints them.")),
]


@app.command(help=_("Add a household (one dossier) and print its new archive number."))
def add(
    ctx: typer.Context,
    building: Annotated[str | None, typer.Option(help=_("Building code, e.g. B03."))] = None,
    floor: Annotated[int | None, typer.Option(help=_("Floor number."))] = None,
    unit: Annotated[str | None, typer.Option(help=_("Unit, e.g. 1203."))] = None,
    category: Annotated[str | None, typer.Option(help=_("handed-over | not-handed-over | special"))] = None,
    occupancy: Annotated[str | None, typer.Option(help=_("owner-occupied | rented | vacant"))] = None,
    sets: SetOpt = None,
    set_from: SetFromOpt = None,
    file: FileOpt = None,
    also_active: Annotated[
        bool, typer.Option("--also-active", help=_("The unit already has an active household, deliberately."))
    ] = False,
    reason: ReasonOpt = None,
    approver: ApproverOpt = None,
) -> None:
    from archivectl.ops import households
    from archivectl.ops.common import Approval

    given = households.RecordInput(
        file=file,
        sets=sets or [],
        set_from=set_from,
        read_stdin=read_value,
        flags={"building": building, "floor": floor, "unit": unit, "category": category, "occupancy": occupancy},
    )
    archive = open_archive(ctx)
    warn_personal_on_command_line(archive, given.sets)
    out(households.add(archive, given, Approval(reason, approver), also_active))


@app.command(help=_("Change a household's fields with a manager's approval."))
def edit(
    ctx: typer.Context,
    archive_no: Annotated[str, typer.Argument(metavar="ARCHIVE_NO")],
    sets: SetOpt = None,
    set_from: SetFromOpt = None,
    unsets: Annotated[list[str] | None, typer.Option("--unset", metavar="FIELD", help=_("Remove a field."))] = None,
    file: Annotated[Path | None, typer.Option("--file", metavar="YAML", help=_("Fields to change (merged)."))] = None,
    reason: ReasonOpt = None,
    approver: ApproverOpt = None,
    request: RequestOpt = None,
    forget_previous: Annotated[
        bool,
        typer.Option(
            "--forget-previous",
            help=_(
                "Seal the corrected record to a new record key; once approved on main, `keys shred` destroys "
                "the old one and no earlier version opens again."
            ),
        ),
    ] = False,
) -> None:
    from archivectl.ops import households
    from archivectl.ops.common import Approval

    given = households.RecordInput(
        file=file, sets=sets or [], unsets=unsets or [], set_from=set_from, read_stdin=read_value
    )
    archive = open_archive(ctx)
    warn_personal_on_command_line(archive, given.sets)
    approval = Approval(reason, approver, request)
    commit = households.edit(archive, archive_no, given, approval, globals_of(ctx).identity, forget_previous)
    out(_("edited {archive_no} in commit {commit}").format(archive_no=archive_no, commit=commit[:12]))
    if forget_previous:
        out(
            _(
                "{archive_no} has a new record key; the old one goes with `keys shred {archive_no}` "
                "once this is approved on main and the retention days are over"
            ).format(archive_no=archive_no)
        )


MAX_STDIN_VALUE = 1024 * 1024


def read_value(field: str) -> str:
    """The value for `--set FIELD=-`: asked without echo on a terminal, else stdin less one final newline."""
    from archivectl.errors import UsageError

    if sys.stdin is None:
        raise UsageError(_("--set {field}=-: no standard input to read the value from").format(field=field))
    if sys.stdin.isatty():
        import getpass

        return getpass.getpass(f"{field}: ")
    text = sys.stdin.read(MAX_STDIN_VALUE + 1)
    if len(text) > MAX_STDIN_VALUE:
        raise UsageError(
            _("--set {field}=-: the value on stdin is longer than {limit} characters").format(
                field=field, limit=MAX_STDIN_VALUE
            )
        )
    return text.removesuffix("\n").removesuffix("\r")


def warn_personal_on_command_line(archive: Any, sets: list[str]) -> None:
    """On a terminal, say once that personal values given with --set are visible to others (P9)."""
    if not sets or not sys.stderr.isatty():
        return
    from archivectl.ops.households import PERSONAL_ON_ARGV, personal_on_command_line

    fields = personal_on_command_line(sets, archive.household_schema)
    if fields:
        warning = _(PERSONAL_ON_ARGV).format(fields=", ".join(fields))
        out(_("archivectl: warning: {warning}").format(warning="--set " + warning), err=True)


@app.command(help=_("Show a household: personal data masked (张*, 138****5678) unless --reveal."))
def show(
    ctx: typer.Context,
    archive_no: Annotated[str, typer.Argument(metavar="ARCHIVE_NO")],
    reveal: Annotated[bool, typer.Option("--reveal", help=_("Decrypt in clear; the look-up is registered."))] = False,
    reason: Annotated[
        str | None, typer.Option("--reason", "-r", help=_("Why you look (needed with --reveal)."))
    ] = None,
    fmt: FormatOpt = None,
) -> None:
    from archivectl.ops import reading
    from archivectl.render import render_record

    archive = open_archive(ctx)
    identity = globals_of(ctx).identity
    if reveal:
        record = reading.reveal(archive, archive_no, reason, identity)
    else:
        record = reading.show(archive, archive_no, identity)
    out(render_record(record, fmt_of(ctx, fmt), title=archive_no))


@app.command("list", help=_("List households (clear fields only; no key needed)."))
def list_(
    ctx: typer.Context,
    building: Annotated[str | None, typer.Option(help=_("Only this building."))] = None,
    category: Annotated[str | None, typer.Option(help=_("A category of the schema: handed-over, ..."))] = None,
    status: Annotated[str | None, typer.Option(help=_("A status of the schema: active, moved-out, tombstoned"))] = None,
    fmt: FormatOpt = None,
) -> None:
    from archivectl.ops import reading
    from archivectl.render import render_rows

    rows = reading.list_households(open_archive(ctx), building, category, status)
    out(render_rows(rows, fmt_of(ctx, fmt), title=_("households")))


@app.command(help=_("Every change to a household: when, what, who acted, who approved, why."))
def history(
    ctx: typer.Context,
    archive_no: Annotated[str, typer.Argument(metavar="ARCHIVE_NO")],
    fmt: FormatOpt = None,
) -> None:
    from archivectl.ops import reading
    from archivectl.render import render_rows

    out(render_rows(reading.history(open_archive(ctx), archive_no), fmt_of(ctx, fmt), title=archive_no))


@app.command(help=_("Check records against the schema; exit 1 naming file and field if any is invalid."))
def validate(
    ctx: typer.Context,
    paths: Annotated[list[str] | None, typer.Argument(metavar="[PATHS]...", help=_("Records or folders."))] = None,
    fmt: FormatOpt = None,
) -> None:
    from archivectl.ops.validate import validate as run_validate
    from archivectl.render import render_rows

    problems = run_validate(open_archive(ctx), paths or None)
    chosen = fmt_of(ctx, fmt)
    if problems:
        if chosen == "table":
            out("\n".join(f"{p['file']}: {p['problem']}" for p in problems))
        else:
            out(render_rows(problems, chosen))
        raise typer.Exit(1)
    if chosen == "json":
        out("[]")
    elif chosen == "table":
        out(_("all records valid"))


@app.command("import", help=_("Add many households in one signed commit; every row is checked first (all or nothing)."))
def import_(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(metavar="FILE", help=_("A YAML stream (---) of records, or a .csv."))],
    reason: ReasonOpt = None,
    approver: ApproverOpt = None,
) -> None:
    from archivectl.ops.common import Approval
    from archivectl.ops.importing import import_households

    progress = progress_bar(_("importing"))
    numbers = import_households(open_archive(ctx), file, Approval(reason, approver), progress)
    out(f"{file.name}: {numbers.read_as()}")
    out(
        _("imported {n_numbers} households: {first} … {last}").format(
            n_numbers=len(numbers), first=numbers[0], last=numbers[-1]
        )
        if len(numbers) > 1
        else _("imported 1 household: {first}").format(first=numbers[0])
    )
