"""add, edit, show, list, history, validate."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

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

SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        "-s",
        metavar="FIELD=VALUE",
        help="Set a field, e.g. renovation.started=2024-03-15. FIELD=- reads the value from stdin: use it "
        "(or --set-from) for personal data, which on the command line shows in `ps` and shell history.",
    ),
]
SetFromOpt = Annotated[
    Path | None,
    typer.Option(
        "--set-from",
        metavar="FILE",
        help="FIELD=VALUE lines (or a YAML mapping of field paths) to set, kept off the command line.",
    ),
]
FileOpt = Annotated[
    Path | None,
    typer.Option("--file", metavar="YAML", help="Record fields as show --reveal --format yaml prints them."),
]


@app.command()
def add(
    ctx: typer.Context,
    building: Annotated[str | None, typer.Option(help="Building code, e.g. B03.")] = None,
    floor: Annotated[int | None, typer.Option(help="Floor number.")] = None,
    unit: Annotated[str | None, typer.Option(help="Unit, e.g. 1203.")] = None,
    category: Annotated[str | None, typer.Option(help="handed-over | not-handed-over | special")] = None,
    occupancy: Annotated[str | None, typer.Option(help="owner-occupied | rented | vacant")] = None,
    sets: SetOpt = None,
    set_from: SetFromOpt = None,
    file: FileOpt = None,
    also_active: Annotated[
        bool, typer.Option("--also-active", help="The unit already has an active household, deliberately.")
    ] = False,
    reason: ReasonOpt = None,
    approver: ApproverOpt = None,
) -> None:
    """Add a household (one dossier) and print its new archive number."""
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


@app.command()
def edit(
    ctx: typer.Context,
    archive_no: Annotated[str, typer.Argument(metavar="ARCHIVE_NO")],
    sets: SetOpt = None,
    set_from: SetFromOpt = None,
    unsets: Annotated[list[str] | None, typer.Option("--unset", metavar="FIELD", help="Remove a field.")] = None,
    file: Annotated[Path | None, typer.Option("--file", metavar="YAML", help="Fields to change (merged).")] = None,
    reason: ReasonOpt = None,
    approver: ApproverOpt = None,
) -> None:
    """Change a household's fields with a manager's approval."""
    from archivectl.ops import households
    from archivectl.ops.common import Approval

    given = households.RecordInput(
        file=file, sets=sets or [], unsets=unsets or [], set_from=set_from, read_stdin=read_value
    )
    archive = open_archive(ctx)
    warn_personal_on_command_line(archive, given.sets)
    commit = households.edit(archive, archive_no, given, Approval(reason, approver), globals_of(ctx).identity)
    out(f"edited {archive_no} in commit {commit[:12]}")


MAX_STDIN_VALUE = 1024 * 1024


def read_value(field: str) -> str:
    """The value for `--set FIELD=-`: asked without echo on a terminal, else stdin less one final newline."""
    from archivectl.errors import UsageError

    if sys.stdin is None:
        raise UsageError(f"--set {field}=-: no standard input to read the value from")
    if sys.stdin.isatty():
        import getpass

        return getpass.getpass(f"{field}: ")
    text = sys.stdin.read(MAX_STDIN_VALUE + 1)
    if len(text) > MAX_STDIN_VALUE:
        raise UsageError(f"--set {field}=-: the value on stdin is longer than {MAX_STDIN_VALUE} characters")
    return text.removesuffix("\n").removesuffix("\r")


def warn_personal_on_command_line(archive: Any, sets: list[str]) -> None:
    """On a terminal, say once that personal values given with --set are visible to others (P9)."""
    if not sets or not sys.stderr.isatty():
        return
    from archivectl.ops.households import PERSONAL_ON_ARGV, personal_on_command_line

    fields = personal_on_command_line(sets, archive.household_schema)
    if fields:
        out("archivectl: warning: --set " + PERSONAL_ON_ARGV.format(fields=", ".join(fields)), err=True)


@app.command()
def show(
    ctx: typer.Context,
    archive_no: Annotated[str, typer.Argument(metavar="ARCHIVE_NO")],
    reveal: Annotated[bool, typer.Option("--reveal", help="Decrypt in clear; the look-up is registered.")] = False,
    reason: Annotated[str | None, typer.Option("--reason", "-r", help="Why you look (needed with --reveal).")] = None,
    fmt: FormatOpt = None,
) -> None:
    """Show a household: personal data masked (张*, 138****5678) unless --reveal."""
    from archivectl.ops import reading
    from archivectl.render import render_record

    archive = open_archive(ctx)
    identity = globals_of(ctx).identity
    if reveal:
        record = reading.reveal(archive, archive_no, reason, identity)
    else:
        record = reading.show(archive, archive_no, identity)
    out(render_record(record, fmt_of(ctx, fmt), title=archive_no))


@app.command("list")
def list_(
    ctx: typer.Context,
    building: Annotated[str | None, typer.Option(help="Only this building.")] = None,
    category: Annotated[str | None, typer.Option(help="A category of the schema: handed-over, ...")] = None,
    status: Annotated[str | None, typer.Option(help="A status of the schema: active, moved-out, tombstoned")] = None,
    fmt: FormatOpt = None,
) -> None:
    """List households (clear fields only; no key needed)."""
    from archivectl.ops import reading
    from archivectl.render import render_rows

    rows = reading.list_households(open_archive(ctx), building, category, status)
    out(render_rows(rows, fmt_of(ctx, fmt), title="households"))


@app.command()
def history(
    ctx: typer.Context,
    archive_no: Annotated[str, typer.Argument(metavar="ARCHIVE_NO")],
    fmt: FormatOpt = None,
) -> None:
    """Every change to a household: when, what, who acted, who approved, why."""
    from archivectl.ops import reading
    from archivectl.render import render_rows

    out(render_rows(reading.history(open_archive(ctx), archive_no), fmt_of(ctx, fmt), title=archive_no))


@app.command()
def validate(
    ctx: typer.Context,
    paths: Annotated[list[str] | None, typer.Argument(metavar="[PATHS]...", help="Records or folders.")] = None,
    fmt: FormatOpt = None,
) -> None:
    """Check records against the schema; exit 1 naming file and field if any is invalid."""
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
        out("all records valid")


@app.command("import")
def import_(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(metavar="FILE", help="A YAML stream (---) of records, or a .csv.")],
    reason: ReasonOpt = None,
    approver: ApproverOpt = None,
) -> None:
    """Add many households in one signed commit; every row is checked first (all or nothing)."""
    from archivectl.ops.common import Approval
    from archivectl.ops.importing import import_households

    progress = progress_bar("importing")
    numbers = import_households(open_archive(ctx), file, Approval(reason, approver), progress)
    out(f"{file.name}: {numbers.read_as()}")
    out(
        f"imported {len(numbers)} households: {numbers[0]} … {numbers[-1]}"
        if len(numbers) > 1
        else f"imported 1 household: {numbers[0]}"
    )
