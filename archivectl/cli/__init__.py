"""The command line: typer definitions only. Each command parses, calls one operation, renders."""

from __future__ import annotations

import sys

from archivectl.cli.app import app


def main() -> None:
    """Entry point of the `archivectl` script and `python -m archivectl` (errors: cli.app._Group)."""
    from typer.main import get_command

    if len(sys.argv) == 1:
        sys.argv.append("--help")
    get_command(app).main(prog_name="archivectl")


__all__ = ["app", "main"]
