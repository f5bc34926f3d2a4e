"""The typer application, its global options, and the one place errors become exit codes."""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from archivectl.errors import ArchiveError


def _click_error_types() -> tuple[type, type]:
    """(ClickException, Abort) from whichever click typer bundles or depends on."""
    click_exception = next(c for c in type.mro(typer.BadParameter) if c.__name__ == "ClickException")
    return click_exception, typer.Abort


class _Group(TyperGroup):
    """The one error handler: every failure is one line on stderr and its exit code; no tracebacks, no boxes.

    Usage errors (click's) exit 2, ArchiveError its own code (errors.py), an
    interrupt 130; cron mails and log lines stay readable.
    """

    def main(self, *args: Any, **kwargs: Any) -> Any:
        click_exception, abort = _click_error_types()
        try:
            result = super().main(*args, **{**kwargs, "standalone_mode": False})
        except click_exception as exc:
            sys.stderr.write(f"archivectl: error: {exc.format_message()}\n")
            sys.exit(exc.exit_code)
        except abort:
            sys.stderr.write("archivectl: interrupted; nothing was written\n")
            sys.exit(130)
        sys.exit(result if isinstance(result, int) else 0)

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, hoist_global_options(args))

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ArchiveError as exc:
            typer.echo(f"archivectl: error: {exc}", err=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            typer.echo("archivectl: interrupted; nothing was written", err=True)
            raise typer.Exit(130) from None
        except BrokenPipeError:
            sys.stderr.close()
            raise typer.Exit(0) from None


GLOBAL_VALUE_OPTIONS = ("--archive", "--identity", "-i")


def hoist_global_options(args: list[str]) -> list[str]:
    """Let --archive and --identity stand anywhere, as users type them after the command."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest += args[i:]
            break
        if arg in GLOBAL_VALUE_OPTIONS and i + 1 < len(args):
            front += [arg, args[i + 1]]
            i += 2
            continue
        if arg.startswith(("--archive=", "--identity=")):
            front.append(arg)
        else:
            rest.append(arg)
        i += 1
    return front + rest


app = typer.Typer(
    cls=_Group,
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    help="Household customer dossiers kept as a signed git archive with sealed personal data.",
    context_settings={"help_option_names": ["-h", "--help"]},
)


@dataclass
class Globals:
    archive: str | None
    fmt: str
    identity: str | None


def check_format(value: str | None) -> str | None:
    from archivectl.render import ANY_FORMAT

    if value is not None and value not in ANY_FORMAT:
        raise typer.BadParameter(f"must be one of {', '.join(ANY_FORMAT)}")
    return value


ArchiveOpt = Annotated[
    str | None,
    typer.Option(
        "--archive", metavar="PATH", help="The archive (default: found upward from here, or ARCHIVECTL_ARCHIVE)."
    ),
]
FormatOpt = Annotated[
    str | None,
    typer.Option("--format", "-f", callback=check_format, help="table | json | yaml | csv | markdown"),
]
IdentityOpt = Annotated[
    str | None,
    typer.Option(
        "--identity",
        "-i",
        metavar="PATH",
        help="SSH private key to decrypt with (default: ARCHIVECTL_IDENTITY, else your signing key).",
    ),
]
ReasonOpt = Annotated[str | None, typer.Option("--reason", "-r", help="Why (kept in the commit, P12).")]
ApproverOpt = Annotated[
    str | None, typer.Option("--approver", "-a", metavar="STAFF_ID", help="The manager or gm who approved it.")
]


@app.callback()
def _globals(
    ctx: typer.Context,
    archive: ArchiveOpt = None,
    fmt: FormatOpt = None,
    identity: IdentityOpt = None,
) -> None:
    ctx.obj = Globals(archive=archive, fmt=fmt or "table", identity=identity)


def globals_of(ctx: typer.Context) -> Globals:
    """The global options, from the root context."""
    obj = ctx.find_root().obj
    return obj if isinstance(obj, Globals) else Globals(None, "table", None)


def open_archive(ctx: typer.Context) -> Any:
    from archivectl.archive import Archive

    return Archive.find(globals_of(ctx).archive)


def fmt_of(ctx: typer.Context, local: str | None) -> str:
    return local or globals_of(ctx).fmt


def progress_bar(label: str, min_total: int = 0) -> Any:
    """A rich progress bar on stderr for long runs on a terminal (None when stderr is not one).

    The returned update(done, total, stage=None) starts the bar lazily, so short runs print nothing.
    """
    if not sys.stderr.isatty():
        return None
    state: dict[str, Any] = {}

    def update(done: int, total: int, stage: str | None = None) -> None:
        if total and total < min_total:
            return
        if "bar" not in state:
            from rich.progress import Progress

            state["bar"] = Progress(transient=True)
            state["bar"].start()
            state["task"] = state["bar"].add_task(stage or label, total=total or None)
        state["bar"].update(state["task"], completed=done, total=total or None, description=stage or label)
        if total and done >= total:
            state["bar"].stop()

    return update


def out(text: str, err: bool = False) -> None:
    """Write command output to stdout (or stderr, where stdout carries data).

    Written as it is: click.echo searches the text for terminal colour codes
    (archivectl writes none) and copies it once more, 0.09 s of a warm report
    of 100,000 households (about 60 MB of JSON).
    """
    stream = sys.stderr if err else sys.stdout
    stream.write(text)
    stream.write("\n")
    stream.flush()


# Register the command modules; they add themselves to app, in this --help order.
for _module in ("setup", "staff", "households", "access", "lifecycle", "approvals", "keys", "reports", "desk"):
    importlib.import_module(f"archivectl.cli.{_module}")
