"""keys: the record keys in the keystore."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from archivectl.cli.app import (
    ApproverOpt,
    FormatOpt,
    ReasonOpt,
    app,
    fmt_of,
    globals_of,
    open_archive,
    out,
    progress_bar,
)

keys_app = typer.Typer(help="Record keys in the keystore (outside git).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("fsck")
def fsck(
    ctx: typer.Context,
    remove_orphans: Annotated[
        bool,
        typer.Option(
            "--remove-orphans", help="Destroy keys of abandoned proposals (no branch names them, a week old)."
        ),
    ] = False,
    deep: Annotated[
        bool, typer.Option("--deep", help="Also open every key and sealed block (needs a reader of every building).")
    ] = False,
    fmt: FormatOpt = None,
) -> None:
    """Check the keystore against main: a key per household, wrapped to exactly main's readers; exit 1 if not."""
    from archivectl.errors import ArchiveError
    from archivectl.ops import keys
    from archivectl.ops.common import identity_for
    from archivectl.render import render_rows

    archive = open_archive(ctx)
    identity = identity_for(archive, globals_of(ctx).identity) if deep else None
    rows = keys.fsck(archive, identity, remove_orphans, progress_bar("checking", min_total=500))
    problems = [r for r in rows if "problem" in r]
    if rows or fmt_of(ctx, fmt) == "json":
        out(render_rows(rows, fmt_of(ctx, fmt), title="keystore"))
    if problems:
        raise ArchiveError(
            f"keystore: {len(problems)} problem(s); the first: {problems[0]['archive_no']}: {problems[0]['problem']}"
        )
    if fmt_of(ctx, fmt) != "json":
        out(f"keystore {archive.keystore.url}: every household on main has its key, wrapped as main says")


@keys_app.command("shred")
def shred(
    ctx: typer.Context,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would be shredded; destroy nothing.")] = False,
    fmt: FormatOpt = None,
) -> None:
    """Destroy the keys main no longer uses (approved purges, after 30 days; approved rotations) and register it.

    Run on an up-to-date main in a clone (cron: git pull --ff-only && archivectl
    keys shred && git push); idempotent.
    """
    from archivectl.ops import keys
    from archivectl.render import render_rows

    rows = keys.shred(open_archive(ctx), dry_run)
    if rows or fmt_of(ctx, fmt) == "json":
        out(render_rows(rows, fmt_of(ctx, fmt), title="record keys"))
    else:
        out("no record key to shred")


@keys_app.command("migrate")
def migrate(
    ctx: typer.Context,
    to: Annotated[str, typer.Option("--to", metavar="URL", help="The new keystore: sftp://host/path or a directory.")],
    reason: ReasonOpt = None,
    approver: ApproverOpt = None,
) -> None:
    """Copy every key to a new keystore, check each copy, and propose archive.yaml's switch (the gm approves)."""
    from archivectl.ops import keys
    from archivectl.ops.common import Approval

    result = keys.migrate(open_archive(ctx), to, Approval(reason, approver))
    out(
        f"copied {result['keys']} record keys and {result['numbers']} numbers to {result['to']} "
        f"({result['copied']} new); proposed the switch in commit {result['commit'][:12]}: "
        "once approved and merged, every clone uses it (check with `archivectl keys fsck`)"
    )


@keys_app.command("policy")
def policy(
    ctx: typer.Context,
    fmt: Annotated[str, typer.Option("--format", "-f", help="hcl | json")] = "hcl",
    mount: Annotated[
        str | None, typer.Option("--mount", help="The KV mount, when the keystore is not openbao:// (e.g. estate).")
    ] = None,
    output_dir: Annotated[
        Path | None, typer.Option("--output-dir", help="Write one file per policy here (<name>.hcl or .json).")
    ] = None,
) -> None:
    """OpenBao policies from main's staff.yaml, grants and households: one per staff member, plus the shredder.

    For the IT person's cron after merges: write each with `bao policy write NAME FILE`.
    """
    import json

    from archivectl import openbao
    from archivectl.errors import UsageError
    from archivectl.files import write_output
    from archivectl.ops import keys

    if fmt not in ("hcl", "json"):
        raise UsageError("--format must be hcl or json")
    found = keys.bao_policies(open_archive(ctx), mount)
    if output_dir is not None:
        output_dir.mkdir(parents=True, exist_ok=True)
        for name, document in found.items():
            text = openbao.to_hcl(document) if fmt == "hcl" else json.dumps(document, indent=2) + "\n"
            target = output_dir / f"{name}.{fmt}"
            write_output(target, text.encode("utf-8"))
        out(f"{len(found)} policies written to {output_dir}")
    elif fmt == "json":
        out(json.dumps(found, indent=2))
    else:
        out("\n".join(f"# policy {name}\n{openbao.to_hcl(document)}" for name, document in found.items()).rstrip())
