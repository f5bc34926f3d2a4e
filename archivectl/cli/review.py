"""verify, codeowners, install-hooks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from archivectl.cli.app import FormatOpt, app, fmt_of, open_archive, out, progress_bar


@app.command()
def verify(
    ctx: typer.Context,
    range_spec: Annotated[
        str | None, typer.Option("--range", metavar="A..B", help="Commits to check, e.g. origin/main..HEAD.")
    ] = None,
    fmt: FormatOpt = None,
) -> None:
    """Check every commit's signature, trailers, approver, records and dates; exit 1 on any finding."""
    from archivectl.ops import verify as ops
    from archivectl.render import render_rows

    archive = open_archive(ctx)
    report = ops.verify(archive, range_spec, progress=progress_bar("verifying commits", min_total=50))
    chosen = fmt_of(ctx, fmt)
    if chosen == "json":
        import json

        out(json.dumps(report, ensure_ascii=False, indent=2))
    elif report["findings"]:
        rows = [{"commit": f["commit"][:12], "rule": f["rule"], "message": f["message"]} for f in report["findings"]]
        out(render_rows(rows, chosen, title=f"verify {report['range']}"))
    else:
        out(f"{report['commits']} commits verified: all signed by entitled staff, approved, valid")
    if not report["ok"]:
        raise typer.Exit(1)


@app.command()
def codeowners(
    ctx: typer.Context,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here (default: stdout).")] = None,
) -> None:
    """A CODEOWNERS file from staff.yaml: a building's changes ask its butlers and the managers (handle: needed)."""
    from archivectl.ops import review

    text = review.codeowners(open_archive(ctx))
    if output:
        output.write_text(text)
        out(f"wrote {output}", err=True)
    else:
        out(text.rstrip("\n"))


@app.command("install-hooks")
def install_hooks(ctx: typer.Context) -> None:
    """Install git hooks (validate, trailers, verify on push) and local settings in an archive clone."""
    from archivectl.ops import review

    for path in review.install_hooks(open_archive(ctx)):
        out(f"installed {path}")
