"""keys: the record keys in the keystore."""

from __future__ import annotations

from typing import Annotated

import typer

from archivectl.cli.app import FormatOpt, app, fmt_of, open_archive, out

keys_app = typer.Typer(help="Record keys in the keystore (outside git).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("shred")
def shred(
    ctx: typer.Context,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would be shredded; destroy nothing.")] = False,
    fmt: FormatOpt = None,
) -> None:
    """Destroy the record keys of purges approved on main, after re-checking the 30-day rule (P13, P14)."""
    from archivectl.ops import keys
    from archivectl.render import render_rows

    rows = keys.shred(open_archive(ctx), dry_run)
    if rows:
        out(render_rows(rows, fmt_of(ctx, fmt), title="record keys"))
    else:
        out("no record key to shred")
