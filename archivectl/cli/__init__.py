"""The command line: typer definitions only. Each command parses, calls one operation, renders.

No module of this package says `from __future__ import annotations`: typer reads every command's
signature at each start, and annotations kept as strings are each evaluated (compiled) there, about
0.09 s of CPU on every command (tests/test_structure.py keeps it so).
"""

import sys

from archivectl import i18n

# Help texts are translated as the command modules are read: the language is decided first.
i18n.choose_at_start(sys.argv[1:])

import typer  # noqa: E402

from archivectl.cli.app import GLOBAL_VALUE_OPTIONS, app, hoist_global_options  # noqa: E402


def main() -> None:
    """Entry point of the `archivectl` script and `python -m archivectl` (errors: cli.app._Group)."""
    from typer.main import get_command

    if len(sys.argv) == 1:
        sys.argv.append("--help")
    get_command(only_invoked(sys.argv[1:])).main(prog_name="archivectl")


def only_invoked(argv: list[str]) -> typer.Typer:
    """The app with just the command argv names, when it names one: typer builds a command's options from
    its signature at every start, about 15 ms of CPU for all 60 where a process runs one (git's hooks run
    verify hundreds of times a day). The whole app for the list of commands, a mistyped name, completion.
    """
    import copy

    from typer.main import get_command_name

    words = iter(hoist_global_options(argv))
    for word in words:
        if word in (*GLOBAL_VALUE_OPTIONS, "--format", "-f"):
            next(words, None)
        elif not word.startswith(("--archive=", "--identity=", "--format=")):
            break
    else:
        return app
    if word.startswith("-"):
        return app
    lean = copy.copy(app)
    lean.registered_commands = [
        c
        for c in app.registered_commands
        if (c.name or get_command_name(c.callback.__name__)) == word  # type: ignore[union-attr]
    ]
    lean.registered_groups = [g for g in app.registered_groups if g.name == word]
    return lean if len(lean.registered_commands) + len(lean.registered_groups) == 1 else app


__all__ = ["app", "main"]
