"""init and demo."""

from pathlib import Path
from typing import Annotated

import typer

from archivectl.cli.app import app, out
from archivectl.i18n import _


@app.command(help=_("Create a new archive; a gm from the staff file signs the founding commit."))
def init(
    path: Annotated[Path, typer.Argument(metavar="PATH", help=_("New archive directory."))],
    name: Annotated[str, typer.Option(help=_("The archive's name, e.g. the estate."))],
    staff_file: Annotated[Path, typer.Option("--staff-file", help=_("staff.yaml to start with."))],
    keystore: Annotated[
        str | None,
        typer.Option(
            "--keystore",
            metavar="URL",
            help=_(
                "Where record keys live: sftp://host/srv/estate.keys on the office's server "
                "(default: the directory <PATH>.keys on this machine)."
            ),
        ),
    ] = None,
    recovery_key: Annotated[
        str | None,
        typer.Option(
            "--recovery-key",
            metavar="AGE1...",
            help=_("The company's offline recovery recipient (age-keygen); every record key opens for it too."),
        ),
    ] = None,
) -> None:
    from archivectl.ops.init import init as run_init

    archive, commit = run_init(path, name, staff_file, keystore=keystore, recovery=recovery_key)
    out(
        _("created archive {root} (keystore {url}) in commit {commit}").format(
            root=archive.root, url=archive.keystore.url, commit=commit[:12]
        )
    )


@app.command(help=_("Build a throw-away archive from examples/archive with demo keys and walk the main job."))
def demo(
    directory: Annotated[
        Path | None, typer.Argument(metavar="[DIR]", help=_("Where to build it (default: a temp dir)."))
    ] = None,
) -> None:
    from archivectl.demo import run_demo

    run_demo(directory, out)


@app.command(
    help=_("Commit your edits of archive.yaml, schemas/ or CODEOWNERS as a proposal for the gm's signed approval.")
)
def configure(
    ctx: typer.Context,
    paths: Annotated[
        list[str] | None, typer.Argument(metavar="[PATH]...", help=_("Files to commit (default: every one changed)."))
    ] = None,
    reason: Annotated[str | None, typer.Option("--reason", "-r", help=_("Why (kept in the commit)."))] = None,
    approver: Annotated[
        str | None, typer.Option("--approver", "-a", metavar="STAFF_ID", help=_("The gm who approves it."))
    ] = None,
    add_building: Annotated[
        list[str] | None,
        typer.Option(
            "--add-building",
            metavar="BUILDING",
            help=_("Declare a building of the estate in archive.yaml (repeatable)."),
        ),
    ] = None,
) -> None:
    from archivectl.cli.app import open_archive
    from archivectl.ops.common import Approval
    from archivectl.ops.configure import configure as run_configure

    commit = run_configure(open_archive(ctx), list(paths or []), Approval(reason, approver), add_building)
    out(
        _("committed the settings change in {commit}; it awaits approval by {approver}").format(
            commit=commit[:12], approver=approver
        )
    )
