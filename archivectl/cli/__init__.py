"""The command line: typer definitions only. Each command parses, calls one operation, renders.

No module here takes `from __future__ import annotations`: typer reads every command's annotations
when it builds the command tree, on each run; as strings, each would be compiled and evaluated
there (twice per command), 50-95 ms of CPU per run on a loaded machine, against 45 ms once as objects.
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
