"""The command line: typer definitions only. Each command parses, calls one operation, renders."""

from __future__ import annotations

import sys

from archivectl.cli.app import app


def _click_error_types() -> tuple[type, type]:
    """(ClickException, Abort) from whichever click typer bundles or depends on."""
    click_exception = next(c for c in type.mro(__import__("typer").BadParameter) if c.__name__ == "ClickException")
    return click_exception, __import__("typer").Abort


def main() -> None:
    """Entry point of the `archivectl` script and `python -m archivectl`.

    Usage errors are printed as one line (exit 2) rather than a framed box, so
    cron mails and log lines stay readable.
    """
    from typer.main import get_command

    command = get_command(app)
    click_exception, abort = _click_error_types()
    if len(sys.argv) == 1:
        sys.argv.append("--help")
    try:
        result = command.main(prog_name="archivectl", standalone_mode=False)
    except click_exception as exc:
        sys.stderr.write(f"archivectl: error: {exc.format_message()}\n")
        sys.exit(exc.exit_code)
    except abort:
        sys.stderr.write("archivectl: interrupted; nothing was written\n")
        sys.exit(130)
    sys.exit(result if isinstance(result, int) else 0)


__all__ = ["app", "main"]
