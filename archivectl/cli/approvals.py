"""The four-eyes flow: verify, pending, approve, review-start, sync; codeowners, install-hooks, the push check."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from archivectl.cli.app import (
    FormatOpt,
    IdentityOpt,
    ReasonOpt,
    app,
    fmt_of,
    globals_of,
    open_archive,
    out,
    progress_bar,
)

RangeArg = Annotated[
    str | None,
    typer.Argument(metavar="[RANGE]", help="Commits, e.g. origin/main..HEAD (default: this branch's proposals)."),
]


@app.command()
def verify(
    ctx: typer.Context,
    range_spec: Annotated[
        str | None, typer.Option("--range", metavar="A..B", help="Commits to check, e.g. origin/main..HEAD.")
    ] = None,
    allow_pending: Annotated[
        bool,
        typer.Option("--allow-pending", help="List changes awaiting approval instead of failing (proposal branches)."),
    ] = False,
    fmt: FormatOpt = None,
) -> None:
    """Judge every commit by its Action: signature, approval, what it changes, registers, dates; exit 1 on findings."""
    from archivectl.ops import verify as ops
    from archivectl.render import render_rows

    archive = open_archive(ctx)
    report = ops.verify(
        archive, range_spec, progress=progress_bar("verifying commits", min_total=50), allow_pending=allow_pending
    )
    chosen = fmt_of(ctx, fmt)
    if chosen == "json":
        import json

        out(json.dumps(report, ensure_ascii=False, indent=2))
    elif report["findings"]:
        rows = [{"commit": f["commit"][:12], "rule": f["rule"], "message": f["message"]} for f in report["findings"]]
        out(render_rows(rows, chosen, title=f"verify {report['range']}"))
    else:
        out(f"{report['commits']} commits verified: all signed by entitled staff, approved, valid")
    if report["pending"] and chosen != "json":
        waiting = sorted({p["awaiting"] for p in report["pending"]})
        out(f"{len(report['pending'])} changes await approval by {', '.join(waiting)} (see `archivectl pending`)")
    if not report["ok"]:
        raise typer.Exit(1)


@app.command()
def pending(
    ctx: typer.Context,
    range_spec: RangeArg = None,
    every_branch: Annotated[bool, typer.Option("--all", help="Every branch not yet on main.")] = False,
    fmt: FormatOpt = None,
) -> None:
    """List the changes that await a signed approval, and whose."""
    from archivectl.ops import approvals
    from archivectl.render import render_rows

    rows = approvals.pending(open_archive(ctx), range_spec, every_branch)
    chosen = fmt_of(ctx, fmt)
    if chosen == "table":
        rows = [{**r, "commit": r["commit"][:12]} for r in rows]
        for r in rows:
            r.pop("subject", None)
    if rows or chosen != "table":
        out(render_rows(rows, chosen, title="awaiting approval"))
    else:
        out("nothing awaits approval")


@app.command()
def approve(
    ctx: typer.Context,
    range_spec: RangeArg = None,
    reason: ReasonOpt = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Sign without asking (scripts).")] = False,
    reveal: Annotated[
        bool, typer.Option("--reveal", help="Show personal fields in clear, not masked (registered).")
    ] = False,
    identity: IdentityOpt = None,
) -> None:
    """Sign an approval of the changes that name you as approver, after showing what they change."""
    import sys

    from archivectl.errors import UsageError
    from archivectl.ops import approvals

    if not yes and not sys.stdin.isatty():
        raise UsageError("approve asks before signing: run it on a terminal, or give --yes")

    def confirm(plan: approvals.ApprovalPlan) -> bool:
        out(f"{len(plan.commits)} change(s) in {plan.range} await your approval:", err=True)
        for line in plan.lines:
            out(line, err=True)
        return yes or typer.confirm("Approve exactly these changes?", default=False, err=True)

    plan, commit = approvals.approve(
        open_archive(ctx), range_spec, reason, confirm, reveal, identity or globals_of(ctx).identity
    )
    out(f"approved {len(plan.commits)} change(s) in commit {commit[:12]}")


@app.command("review-start")
def review_start(
    ctx: typer.Context,
    range_spec: Annotated[str, typer.Argument(metavar="RANGE", help="The commits to review, e.g. origin/main..HEAD.")],
    reason: ReasonOpt = None,
) -> None:
    """Register a review: git diff and git log -p then show you the range's sealed fields in clear."""
    from archivectl.ops.reading import review_start as run

    result = run(open_archive(ctx), range_spec, reason)
    out(
        f"registered your review of {len(result['households'])} households ({', '.join(result['households'])}); "
        f"git diff and git log -p now open their {result['versions']} record versions in {result['range'][:40]}"
    )


@app.command("sync")
def sync_lookups(ctx: typer.Context) -> None:
    """Bring your look-ups registered on branches (reveals, opens, reviews) to main and push them."""
    from archivectl.ops.lookups import sync

    result = sync(open_archive(ctx))
    if not result["brought"]:
        out("every look-up of yours is on main already")
        return
    where = "pushed to the server's main" if result["pushed"] else "on main"
    out(f"brought {result['brought']} look-up register entries to main in {result['commit'][:12]} ({where})")


@app.command("verify-push", hidden=True)
def verify_push(
    ctx: typer.Context,
    main: Annotated[str, typer.Option("--main", help="The branch that takes only approved history.")] = "main",
) -> None:
    """The server's pre-receive check: reads `old new ref` lines; exit 1 refuses the push."""
    import sys

    from archivectl.ops import hooks

    updates = [tuple(line.split()[:3]) for line in sys.stdin.read().splitlines() if len(line.split()) >= 3]
    problems = hooks.check_push(open_archive(ctx), updates, main)  # type: ignore[arg-type]
    for problem in problems:
        out(f"archivectl: refused: {problem}", err=True)
    if problems:
        raise typer.Exit(1)


@app.command()
def codeowners(
    ctx: typer.Context,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here (default: stdout).")] = None,
) -> None:
    """A CODEOWNERS file from staff.yaml: a building's changes ask its butlers and the managers (handle: needed)."""
    from archivectl.ops import hooks

    text = hooks.codeowners(open_archive(ctx))
    if output:
        output.write_text(text)
        out(f"wrote {output}", err=True)
    else:
        out(text.rstrip("\n"))


@app.command("install-hooks")
def install_hooks(
    ctx: typer.Context,
    server: Annotated[
        bool, typer.Option("--server", help="In the bare server repository: refuse unapproved pushes to main.")
    ] = False,
) -> None:
    """Install git hooks: in a clone (no hand-made commits, verify on push), or with --server a pre-receive check."""
    from archivectl.ops import hooks

    for path in hooks.install_hooks(open_archive(ctx), server=server):
        out(f"installed {path}")
