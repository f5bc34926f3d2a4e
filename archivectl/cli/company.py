"""company report | staff: one view over many estates' archives (company.yaml)."""

from pathlib import Path
from typing import Annotated

import typer

from archivectl.cli.app import app, out, progress_bar
from archivectl.i18n import _

company_app = typer.Typer(
    help=_("A company of many estates: reports over every estate's archive, one staff directory (company.yaml)."),
    no_args_is_help=True,
)
app.add_typer(company_app, name="company")

CompanyOpt = Annotated[
    str | None,
    typer.Option(
        "--company",
        metavar="DIR",
        help=_("The folder holding company.yaml (default: ARCHIVECTL_COMPANY, else here)."),
    ),
]
COMPANY_FORMATS = ("table", "json", "yaml", "csv", "markdown", "html")


@company_app.command(
    "report",
    help=_(
        "Each estate's own report (clear parts only, fetched into the company folder's .cache, in parallel) "
        "and the totals."
    ),
)
def company_report(
    ctx: typer.Context,
    kind: Annotated[str, typer.Argument(metavar="KIND", help=_("completeness | retention | requests | stats"))],
    company: CompanyOpt = None,
    fmt: Annotated[
        str | None, typer.Option("--format", "-f", help=_("table | json | yaml | csv | markdown | html"))
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help=_("Write the report to this file."))] = None,
    fail: Annotated[
        bool,
        typer.Option(
            "--fail-on-action",
            help=_("Exit 1 if any estate has incomplete households, invalid records, purges or requests due."),
        ),
    ] = False,
) -> None:
    from archivectl import company as companies
    from archivectl.cli.reports import chosen_format, emit

    chosen = chosen_format(ctx, fmt, COMPANY_FORMATS)  # refused before any estate is fetched
    emit(
        companies.report(companies.load(companies.find(company)), kind, progress_bar(_("estates"))),
        chosen,
        output,
        fail,
    )


@company_app.command(
    "staff",
    help=_(
        "Check that each person's key, role and active flag agree across every estate (and the head office). "
        "One line per problem; exit 1 if there is any."
    ),
)
def company_staff(company: CompanyOpt = None) -> None:
    from archivectl import company as companies

    found = companies.load(companies.find(company))
    problems = companies.staff_problems(found)
    for line in problems:
        out(line)
    if problems:
        raise typer.Exit(1)
    out(_("staff agree across {n} estates and the head office.").format(n=len(found.estates)), err=True)
