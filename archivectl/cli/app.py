"""The typer application, its global options, and the one place errors become exit codes."""

import contextlib
import importlib
import sys
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from archivectl.errors import ArchiveError
from archivectl.i18n import N_, _


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
        from archivectl.harden import no_core_dumps

        no_core_dumps()  # before anything is opened or decrypted
        click_exception, abort = _click_error_types()
        argv = kwargs.get("args") or (args[0] if args else None) or sys.argv[1:]
        if not argv or any(a in ("--help", "-h") for a in argv):
            speak_toolkit(self)
        try:
            result = super().main(*args, **{**kwargs, "standalone_mode": False})
        except click_exception as exc:
            sys.stderr.write(error_line(parser_message(exc.format_message())) + "\n")
            sys.exit(exc.exit_code)
        except (abort, KeyboardInterrupt):
            sys.stderr.write(interrupted_line() + "\n")
            sys.exit(130)
        sys.exit(result if isinstance(result, int) else 0)

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, hoist_global_options(args))

    def invoke(self, ctx: typer.Context) -> Any:
        from archivectl.archive import Archive
        from archivectl.judge.state import approved_commit

        # What decides sealing, masking and wrapping is main's judged state (archive.judged_blob).
        Archive.approved_at = staticmethod(approved_commit)
        try:
            return super().invoke(ctx)
        except ArchiveError as exc:
            from archivectl.screen import inert

            typer.echo(error_line(inert(str(exc))), err=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            typer.echo(interrupted_line(), err=True)
            raise typer.Exit(130) from None
        except BrokenPipeError:
            sys.stderr.close()
            raise typer.Exit(0) from None
        finally:
            from archivectl.crypto import forget_keys
            from archivectl.keystore import close_remote

            close_remote()
            forget_keys()


def interrupted_line() -> str:
    """What Ctrl-C did, in one true line: a write it stopped was undone (settled), or had committed already.

    The bar of a long run is taken off the terminal first, so that the line is not drawn over.
    """
    for bar in _BARS:
        with contextlib.suppress(Exception):
            bar.stop()
    _BARS.clear()
    journal = sys.modules.get("archivectl.journal")  # not imported: this command began no write
    if journal is not None and journal.settled_as == "committed":
        return _("archivectl: interrupted after the change was committed; it is written")
    return _("archivectl: interrupted; nothing was written")


def speak_toolkit(group: Any = None) -> None:
    """typer's own words on help pages (panel titles, the help option) in the interface's language.

    typer writes them in English as module settings; they are set here, for help pages only,
    so that other commands do not pay for importing typer's help renderer.
    """
    from archivectl.i18n import language

    _help_renderer_without_markdown()
    if language() == "en":
        return
    from typer import rich_utils
    from typer.core import TyperCommand

    for name, text in (
        ("OPTIONS_PANEL_TITLE", _("Options")),
        ("ARGUMENTS_PANEL_TITLE", _("Arguments")),
        ("COMMANDS_PANEL_TITLE", _("Commands")),
        ("REQUIRED_LONG_STRING", _("[required]")),
        ("DEFAULT_STRING", _("[default: {}]")),
    ):
        if hasattr(rich_utils, name):
            setattr(rich_utils, name, text)
    # Chinese has no spaces to wrap at: long runs are folded, not cut off with an ellipsis
    make_text = getattr(rich_utils, "_make_rich_text", None)
    if make_text is not None and not getattr(make_text, "folds", False):

        def folded_text(*args: Any, **kwargs: Any) -> Any:
            text = make_text(*args, **kwargs)
            if hasattr(text, "overflow"):
                text.overflow = "fold"
            return text

        folded_text.folds = True  # type: ignore[attr-defined]
        rich_utils._make_rich_text = folded_text
    completion = {
        "--install-completion": _("Install completion for the current shell."),
        "--show-completion": _("Show completion for the current shell, to copy it or customize the installation."),
    }
    for param in getattr(group, "params", []):
        for opt in getattr(param, "opts", []):
            if opt in completion:
                param.help = completion[opt]
    base = next((c for c in TyperCommand.__mro__ if "get_help_option" in vars(c)), None)
    if base is None or getattr(base.get_help_option, "translated", False):
        return
    original_help_option = base.get_help_option

    def get_help_option(self: Any, ctx: Any) -> Any:
        option = original_help_option(self, ctx)
        if option is not None:
            option.help = _("Show this message and exit.")
        return option

    def format_usage(self: Any, ctx: Any, formatter: Any) -> None:
        formatter.write_usage(ctx.command_path, " ".join(self.collect_usage_pieces(ctx)), prefix=_("Usage: "))

    get_help_option.translated = True  # type: ignore[attr-defined]
    base.get_help_option = get_help_option
    if "format_usage" in vars(base) and hasattr(base, "collect_usage_pieces"):
        base.format_usage = format_usage


def _help_renderer_without_markdown() -> None:
    """Import typer's help renderer without rich's Markdown parser (markdown-it: 40-50 ms of every help page).

    typer renders Markdown only in its "markdown" markup mode; archivectl uses "rich", so its
    `Markdown` name stays unused. It is handed a stand-in that imports the real parser if ever
    called; the stand-in is seen by typer.rich_utils only (sys.modules gets it back at once).
    """
    if "typer.rich_utils" in sys.modules or "rich.markdown" in sys.modules:
        return
    import types

    class Markdown:
        def __new__(cls, *args: Any, **kwargs: Any) -> Any:
            from rich.markdown import Markdown as parsed

            return parsed(*args, **kwargs)

    stand_in = types.ModuleType("rich.markdown")
    stand_in.Markdown = Markdown  # type: ignore[attr-defined]
    sys.modules["rich.markdown"] = stand_in
    try:
        import typer.rich_utils  # noqa: F401
    finally:
        if sys.modules.get("rich.markdown") is stand_in:
            del sys.modules["rich.markdown"]


# The option parser's own refusals (typer's click writes them in English), as patterns of its words.
PARSER_MESSAGES = (
    (r"No such command '(?P<name>[^']*)'\.", N_("no such command {name}")),
    (r"Missing option '(?P<name>[^']*)'\.(?P<more>.*)", N_("missing option {name}{more}")),
    (r"Missing argument '(?P<name>[^']*)'\.(?P<more>.*)", N_("missing argument {name}{more}")),
    (r"Missing parameter: (?P<name>.*)", N_("missing {name}")),
    (r"Option '(?P<name>[^']*)' requires an argument\.", N_("option {name} needs a value")),
    (r"Option '(?P<name>[^']*)' requires (?P<count>\d+) arguments\.", N_("option {name} needs {count} values")),
    (r"Option '(?P<name>[^']*)' does not take a value\.", N_("option {name} takes no value")),
    (
        r"No such option: (?P<name>\S+) \(Possible options: (?P<choices>.*)\)",
        N_("no such option: {name} (did you mean {choices}?)"),
    ),
    (r"No such option: (?P<name>\S+)", N_("no such option: {name}")),
    (r"Got unexpected extra arguments?(\(s\))? \((?P<extra>.*)\)", N_("unexpected extra argument(s) ({extra})")),
    (r"Invalid value for (?P<name>'[^']*'(?: / '[^']*')*): (?P<problem>.*)", N_("invalid value for {name}: {problem}")),
    (r"Invalid value: (?P<problem>.*)", N_("invalid value: {problem}")),
    (r"(?P<value>'.*') is not a valid int(eger)?\.", N_("{value} is not a whole number")),
    (r"(?P<value>'.*') is not a valid float\.", N_("{value} is not a number")),
    (r"(?P<value>'.*') is not a valid boolean\..*", N_("{value} is not yes or no")),
)


def parser_message(text: str) -> str:
    """One of the option parser's messages in the interface's language (English: as it is)."""
    import re

    from archivectl.i18n import language

    if language() == "en":
        return text
    for pattern, msgid in PARSER_MESSAGES:
        found = re.fullmatch(pattern, text.strip(), re.S)
        if found:
            parts = {k: parser_message(v) if k == "problem" else v for k, v in found.groupdict(default="").items()}
            parts["name"] = parts.get("name", "").replace("'", "")
            return _(msgid).format(**parts)
    return text


def error_line(problem: str) -> str:
    """The one line a failure prints: the problem in the interface's language, behind the program's name."""
    return _("archivectl: error: {problem}").format(problem=problem)


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
    help=_("Household customer dossiers kept as a signed git archive with sealed personal data."),
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
        raise typer.BadParameter(_("must be one of {choices}").format(choices=", ".join(ANY_FORMAT)))
    return value


ArchiveOpt = Annotated[
    str | None,
    typer.Option(
        "--archive", metavar="PATH", help=_("The archive (default: found upward from here, or ARCHIVECTL_ARCHIVE).")
    ),
]
FormatOpt = Annotated[
    str | None,
    typer.Option("--format", "-f", callback=check_format, help=_("table | json | yaml | csv | markdown")),
]
IdentityOpt = Annotated[
    str | None,
    typer.Option(
        "--identity",
        "-i",
        metavar="PATH",
        help=_("SSH private key to decrypt with (default: ARCHIVECTL_IDENTITY, else your signing key)."),
    ),
]
ReasonOpt = Annotated[str | None, typer.Option("--reason", "-r", help=_("Why (kept in the commit)."))]
ApproverOpt = Annotated[
    str | None, typer.Option("--approver", "-a", metavar="STAFF_ID", help=_("The manager or gm who approved it."))
]
RequestOpt = Annotated[
    str | None,
    typer.Option("--request", metavar="REQUEST_ID", help=_("The customer's request this answers (`request list`).")),
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
    """The archive the command works on; from here on messages are in its archive.yaml `language:`."""
    from archivectl import i18n
    from archivectl.archive import Archive

    archive = Archive.find(globals_of(ctx).archive)
    i18n.use_archive_language(archive.declared_language())
    return archive


def fmt_of(ctx: typer.Context, local: str | None) -> str:
    return local or globals_of(ctx).fmt


_BARS: list[Any] = []  # progress bars started in this process


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
            _BARS.append(state["bar"])  # stopped by interrupted_line() if Ctrl-C comes first
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
for _module in (
    "setup",
    "staff",
    "households",
    "access",
    "lifecycle",
    "approvals",
    "keys",
    "finding",
    "reports",
    "requests",
    "company",
    "desk",
):
    importlib.import_module(f"archivectl.cli.{_module}")
