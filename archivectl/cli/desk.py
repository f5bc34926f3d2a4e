"""desk: the same operations as a page on 127.0.0.1, for clerks, butlers and approvers."""

from typing import Annotated

import typer

from archivectl.cli.app import app, globals_of, open_archive, out
from archivectl.i18n import _


@app.command(
    help=_(
        "Serve a page on 127.0.0.1 only (add, edit, approve, find, reveal, open), signed with your key; "
        "Ctrl-C stops it."
    )
)
def desk(
    ctx: typer.Context,
    no_browser: Annotated[
        bool, typer.Option("--no-browser", help=_("Print the address only; open no browser."))
    ] = False,
) -> None:
    import importlib.util

    from archivectl.errors import UsageError

    if importlib.util.find_spec("flask") is None:
        raise UsageError(_("the desk needs Flask: pip install 'archivectl[desk]'"))
    from archivectl.desk.server import serve

    archive = open_archive(ctx)

    def announce(url: str) -> None:
        out(url)  # alone on stdout, for a script or a person to copy
        out(_("(the address works once, in one browser; Ctrl-C stops the desk)"), err=True)

    serve(archive.root, globals_of(ctx).identity, not no_browser, announce)
    out(_("desk stopped"), err=True)
