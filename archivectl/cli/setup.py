"""init and demo."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from archivectl.cli.app import app, out


@app.command()
def init(
    path: Annotated[Path, typer.Argument(metavar="PATH", help="New archive directory.")],
    name: Annotated[str, typer.Option(help="The archive's name, e.g. the estate.")],
    staff_file: Annotated[Path, typer.Option("--staff-file", help="staff.yaml to start with.")],
) -> None:
    """Create a new archive; a gm from the staff file signs the founding commit."""
    from archivectl.ops.init import init as run_init

    archive, commit = run_init(path, name, staff_file)
    out(f"created archive {archive.root} (keystore {archive.keystore.path}) in commit {commit[:12]}")


@app.command()
def demo(
    directory: Annotated[
        Path | None, typer.Argument(metavar="[DIR]", help="Where to build it (default: a temp dir).")
    ] = None,
) -> None:
    """Build a throw-away archive from examples/archive with demo keys and walk the main job."""
    from archivectl.ops.demo import run_demo

    run_demo(directory, out)
