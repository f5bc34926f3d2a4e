"""The command line: typer definitions only. Each command parses, calls one operation, renders.

No module of this package says `from __future__ import annotations`: typer reads every command's
signature at each start, and annotations kept as strings are each evaluated (compiled) there, about
0.09 s of CPU on every command (tests/test_structure.py keeps it so).
"""

import sys

from archivectl import i18n

# Help texts are translated as the command modules are read: the language is decided first.
i18n.choose_at_start(sys.argv[1:])

from archivectl.cli.app import app  # noqa: E402


def main() -> None:
    """Entry point of the `archivectl` script and `python -m archivectl` (errors: cli.app._Group)."""
    from typer.main import get_command

    if len(sys.argv) == 1:
        sys.argv.append("--help")
    get_command(app).main(prog_name="archivectl")


__all__ = ["app", "main"]
