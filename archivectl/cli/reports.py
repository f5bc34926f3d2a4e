"""report completeness | retention | stats | catalog | access: for people and for cron."""

from pathlib import Path
from typing import Annotated, Any

import typer

from archivectl.cli.app import app, globals_of, open_archive, out, progress_bar
from archivectl.i18n import _

report_app = typer.Typer(
    help=_("Reports from the clear parts of records: no key, no git identity needed; cron-friendly."),
    no_args_is_help=True,
)
app.add_typer(report_app, name="report")

ReportFormat = Annotated[str | None, typer.Option("--format", "-f", help=_("table | json | csv | markdown | html"))]
OutputOpt = Annotated[Path | None, typer.Option("--output", "-o", help=_("Write the report to this file."))]


def chosen_format(ctx: typer.Context, fmt: str | None, formats: tuple[str, ...]) -> str:
    """The report's format: --format, else the global one where the report has it, else table (UsageError)."""
    from archivectl.errors import UsageError

    chosen = fmt or (globals_of(ctx).fmt if globals_of(ctx).fmt in formats else "table")
    if chosen not in formats:
        raise UsageError(_("--format must be one of {choices}").format(choices=", ".join(formats)))
    return chosen


def emit(report: Any, chosen: str, output: Path | None, fail: bool) -> None:
    """Print or write a report in a chosen format (yaml: its document); exit 1 for cron when it asks for action."""
    from archivectl.files import write_output
    from archivectl.reports.render import render, streamed

    if chosen != "yaml" and streamed(report, chosen, output):  # a kept text, in pieces: flat memory
        if output:
            out(_("{summary} Written to {output}.").format(summary=report.summary, output=output), err=True)
        if fail and report.act_on:
            raise typer.Exit(1)
        return
    if chosen == "yaml":
        from archivectl import yamlio

        text = yamlio.dumps(report.document).rstrip("\n")
    else:
        text = render(report, chosen)
    if output:
        write_output(output, (text + "\n").encode("utf-8"))
        out(_("{summary} Written to {output}.").format(summary=report.summary, output=output), err=True)
    else:
        out(text)
    if fail and report.act_on:
        raise typer.Exit(1)


def _emit(ctx: typer.Context, report: Any, fmt: str | None, output: Path | None, fail: bool) -> None:
    from archivectl.render import REPORT_FORMATS

    emit(report, chosen_format(ctx, fmt, REPORT_FORMATS), output, fail)


def _progress():  # type: ignore[no-untyped-def]
    return progress_bar(_("reading records"), min_total=500)


@report_app.command(
    "completeness", help=_("Which required documents and fields each household lacks, per building and overall.")
)
def report_completeness(
    ctx: typer.Context,
    fmt: ReportFormat = None,
    output: OutputOpt = None,
    fail_on_incomplete: Annotated[
        bool, typer.Option("--fail-on-incomplete", help=_("Exit 1 if any active household is incomplete."))
    ] = False,
) -> None:
    from archivectl.reports.completeness import completeness

    _emit(ctx, completeness(open_archive(ctx), _progress()), fmt, output, fail_on_incomplete)


@report_app.command(
    "retention",
    help=_("Tombstones with days left and purge eligibility, moved-out households, reviews due, lent dossiers."),
)
def report_retention(
    ctx: typer.Context,
    fmt: ReportFormat = None,
    output: OutputOpt = None,
    fail_on_eligible: Annotated[
        bool, typer.Option("--fail-on-eligible", help=_("Exit 1 if any household is eligible for purge."))
    ] = False,
) -> None:
    from archivectl.reports.retention import retention

    _emit(ctx, retention(open_archive(ctx), _progress()), fmt, output, fail_on_eligible)


@report_app.command("stats", help=_("Counts, completeness rate, and changes, reveals and exports per month."))
def report_stats(ctx: typer.Context, fmt: ReportFormat = None, output: OutputOpt = None) -> None:
    from archivectl.reports.stats import stats

    _emit(ctx, stats(open_archive(ctx), _progress()), fmt, output, False)


@report_app.command("catalog", help=_("The catalogue by building and floor (the yearly list of moved-out households)."))
def report_catalog(
    ctx: typer.Context,
    year: Annotated[
        int | None, typer.Option(help=_("Moved out that year (with --status moved-out), else numbered."))
    ] = None,
    status: Annotated[str | None, typer.Option(help=_("active | moved-out | tombstoned"))] = None,
    fmt: ReportFormat = None,
    output: OutputOpt = None,
) -> None:
    from archivectl.reports.catalog import catalog

    _emit(ctx, catalog(open_archive(ctx), year, status, _progress()), fmt, output, False)


@report_app.command(
    "access",
    help=_("Every record key opened on the key server against the access register: what is missing from either."),
)
def report_access(
    ctx: typer.Context,
    from_audit: Annotated[
        Path, typer.Option("--from-audit", metavar="FILE", help=_("The OpenBao/Vault file audit log (JSON lines)."))
    ],
    window: Annotated[
        int,
        typer.Option("--window", metavar="MINUTES", help=_("How far apart a decrypt and its register entry may be.")),
    ] = 5,
    fmt: ReportFormat = None,
    output: OutputOpt = None,
    fail_on_missing: Annotated[
        bool, typer.Option("--fail-on-missing", help=_("Exit 1 if a look-up is in one log and not the other."))
    ] = False,
) -> None:
    import datetime as dt

    from archivectl.reports.access import access

    _emit(ctx, access(open_archive(ctx), from_audit, dt.timedelta(minutes=window)), fmt, output, fail_on_missing)
