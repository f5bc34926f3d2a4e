"""The four-eyes flow: verify, pending, approve, review-start, sync; codeowners, install-hooks, the push check."""

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
from archivectl.i18n import _

RangeArg = Annotated[
    str | None,
    typer.Argument(metavar="[RANGE]", help=_("Commits, e.g. origin/main..HEAD (default: this branch's proposals).")),
]


@app.command(
    help=_(
        "Judge every commit by its Action: signature, approval, what it changes, registers, dates; exit 1 on findings."
    )
)
def verify(
    ctx: typer.Context,
    range_spec: Annotated[
        str | None, typer.Option("--range", metavar="A..B", help=_("Commits to check, e.g. origin/main..HEAD."))
    ] = None,
    allow_pending: Annotated[
        bool,
        typer.Option(
            "--allow-pending", help=_("List changes awaiting approval instead of failing (proposal branches).")
        ),
    ] = False,
    open_sealed: Annotated[
        bool,
        typer.Option(
            "--open",
            help=_(
                "As a reader: open every record version the range writes, in memory, and check its sealed block "
                "against its fingerprints (paths only are shown; nothing is registered)."
            ),
        ),
    ] = False,
    fmt: FormatOpt = None,
    identity: IdentityOpt = None,
) -> None:
    from archivectl.ops import verify as ops
    from archivectl.render import render_rows

    archive = open_archive(ctx)
    reader = ops.reader_check(archive, identity or globals_of(ctx).identity) if open_sealed else None
    report = ops.verify(
        archive,
        range_spec,
        progress=progress_bar(_("verifying commits"), min_total=50),
        allow_pending=allow_pending,
        reader=reader,
    )
    chosen = fmt_of(ctx, fmt)
    if chosen == "json":
        import json

        out(json.dumps(report, ensure_ascii=False, indent=2))
    elif report["findings"]:
        rows = [{"commit": f["commit"][:12], "rule": f["rule"], "message": f["message"]} for f in report["findings"]]
        out(render_rows(rows, chosen, title=_("verify {range}").format(range=report["range"])))
    else:
        out(
            _("{commits} commits verified: all signed by entitled staff, approved, valid").format(
                commits=report["commits"]
            )
        )
    if "opened" in report and chosen != "json":
        out(
            _("{n} record versions opened: their sealed blocks checked against their fingerprints").format(
                n=report["opened"]["checked"]
            )
        )
        for note in report["opened"]["unchecked"]:
            out(_("not opened: {note}").format(note=note))
    if report["pending"] and chosen != "json":
        waiting = sorted({p["awaiting"] for p in report["pending"]})
        out(
            _("{n_pending} changes await approval by {waiting} (see `archivectl pending`)").format(
                n_pending=len(report["pending"]), waiting=", ".join(waiting)
            )
        )
    if not report["ok"]:
        raise typer.Exit(1)


@app.command(help=_("List the changes that await a signed approval, and whose."))
def pending(
    ctx: typer.Context,
    range_spec: RangeArg = None,
    every_branch: Annotated[bool, typer.Option("--all", help=_("Every branch not yet on main."))] = False,
    fmt: FormatOpt = None,
) -> None:
    from archivectl.ops import approvals
    from archivectl.render import render_rows

    rows = approvals.pending(open_archive(ctx), range_spec, every_branch)
    chosen = fmt_of(ctx, fmt)
    if chosen == "table":
        rows = [{**r, "commit": r["commit"][:12]} for r in rows]
        for r in rows:
            r.pop("subject", None)
    if rows or chosen != "table":
        out(render_rows(rows, chosen, title=_("awaiting approval")))
    else:
        out(_("nothing awaits approval"))


@app.command(
    help=_(
        "Sign an approval of the changes that await you, after showing their story as `review --open` tells it "
        "and every commit id it binds; refused if the range moved since."
    )
)
def approve(
    ctx: typer.Context,
    range_spec: RangeArg = None,
    reason: ReasonOpt = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help=_("Sign without asking (scripts)."))] = False,
    reveal: Annotated[
        bool, typer.Option("--reveal", help=_("Show personal fields in clear, not masked (registered)."))
    ] = False,
    expect: Annotated[
        str | None,
        typer.Option(
            "--expect",
            metavar="COMMIT",
            help=_(
                "Sign only if the range still ends at this full commit id (the head `review --format json` "
                "or approve showed); for scripts with --yes."
            ),
        ),
    ] = None,
    identity: IdentityOpt = None,
) -> None:
    import sys

    from archivectl.errors import UsageError
    from archivectl.ops import approvals

    if not yes and not sys.stdin.isatty():
        raise UsageError(_("approve asks before signing: run it on a terminal, or give --yes"))

    def confirm(plan: approvals.ApprovalPlan) -> bool:
        out(
            _("{n_commits} change(s) in {range} await your approval:").format(
                n_commits=len(plan.commits), range=plan.range
            ),
            err=True,
        )
        if plan.lines:  # in one write: an import's story is some 19 lines a household (380,000 for 20,000)
            out("\n".join(plan.lines), err=True)
        return yes or typer.confirm(_("Approve exactly these changes?"), default=False, err=True)

    plan, commit = approvals.approve(
        open_archive(ctx), range_spec, reason, confirm, reveal, identity or globals_of(ctx).identity, expect
    )
    out(_("approved {n_commits} change(s) in commit {commit}").format(n_commits=len(plan.commits), commit=commit[:12]))


@app.command(
    "review-start",
    help=_("Register a review: git diff and git log -p then show you the range's sealed fields in clear."),
)
def review_start(
    ctx: typer.Context,
    range_spec: Annotated[
        str, typer.Argument(metavar="RANGE", help=_("The commits to review, e.g. origin/main..HEAD."))
    ],
    reason: ReasonOpt = None,
) -> None:
    from archivectl.ops.reading import review_start as run

    result = run(open_archive(ctx), range_spec, reason)
    out(
        _(
            "registered your review of {n_households} households ({households}); git diff and git log -p now "
            "open their {versions} record versions in {range}"
        ).format(
            n_households=len(result["households"]),
            households=", ".join(result["households"]),
            versions=result["versions"],
            range=result["range"][:40],
        )
    )


@app.command(
    "sync", help=_("Bring your look-ups registered on branches (reveals, opens, reviews) to main and push them.")
)
def sync_lookups(ctx: typer.Context) -> None:
    from archivectl.ops.lookups import sync

    result = sync(open_archive(ctx))
    if not result["brought"]:
        out(_("every look-up of yours is on main already"))
        return
    where = _("pushed to the server's main") if result["pushed"] else _("on main")
    out(
        _("brought {brought} look-up register entries to main in {commit} ({where})").format(
            brought=result["brought"], commit=result["commit"][:12], where=where
        )
    )


@app.command(
    "verify-push",
    hidden=True,
    help=_("The server's pre-receive check: reads `old new ref` lines; exit 1 refuses the push."),
)
def verify_push(
    ctx: typer.Context,
    main: Annotated[str, typer.Option("--main", help=_("The branch that takes only approved history."))] = "main",
) -> None:
    import sys

    from archivectl.ops import hooks

    updates = [tuple(line.split()[:3]) for line in sys.stdin.read().splitlines() if len(line.split()) >= 3]
    problems = hooks.check_push(open_archive(ctx), updates, main)  # type: ignore[arg-type]
    for problem in problems:
        out(_("archivectl: refused: {problem}").format(problem=problem), err=True)
    if problems:
        raise typer.Exit(1)


@app.command(
    help=_("A CODEOWNERS file from staff.yaml: a building's changes ask its butlers and the managers (handle: needed).")
)
def codeowners(
    ctx: typer.Context,
    output: Annotated[Path | None, typer.Option("--output", "-o", help=_("Write here (default: stdout)."))] = None,
) -> None:
    from archivectl.ops import hooks

    text = hooks.codeowners(open_archive(ctx))
    if output:
        output.write_text(text)
        out(_("wrote {output}").format(output=output), err=True)
    else:
        out(text.rstrip("\n"))


@app.command(
    "install-hooks",
    help=_(
        "Install git hooks: in a clone (no hand-made commits, verify on push), or with --server a pre-receive check."
    ),
)
def install_hooks(
    ctx: typer.Context,
    server: Annotated[
        bool, typer.Option("--server", help=_("In the bare server repository: refuse unapproved pushes to main."))
    ] = False,
) -> None:
    from archivectl.ops import hooks

    for path in hooks.install_hooks(open_archive(ctx), server=server):
        out(_("installed {path}").format(path=path))
