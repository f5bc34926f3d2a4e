"""keys: the record keys in the keystore."""

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
from archivectl.i18n import _

keys_app = typer.Typer(help=_("Record keys in the keystore (outside git)."), no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command(
    "fsck",
    help=_("Check the keystore against main: a key per household, wrapped to exactly main's readers; exit 1 if not."),
)
def fsck(
    ctx: typer.Context,
    remove_orphans: Annotated[
        bool,
        typer.Option(
            "--remove-orphans", help=_("Destroy keys of abandoned proposals (no branch names them, a week old).")
        ),
    ] = False,
    deep: Annotated[
        bool, typer.Option("--deep", help=_("Also open every key and sealed block (needs a reader of every building)."))
    ] = False,
    fmt: FormatOpt = None,
) -> None:
    from archivectl.errors import ArchiveError
    from archivectl.ops import keys
    from archivectl.ops.common import identity_for
    from archivectl.render import render_rows

    archive = open_archive(ctx)
    identity = identity_for(archive, globals_of(ctx).identity) if deep else None
    rows = keys.fsck(archive, identity, remove_orphans, progress_bar(_("checking"), min_total=500))
    problems = [r for r in rows if "problem" in r]
    if rows or fmt_of(ctx, fmt) == "json":
        out(render_rows(rows, fmt_of(ctx, fmt), title=_("keystore")))
    if problems:
        raise ArchiveError(
            _("keystore: {n_problems} problem(s); the first: {archive_no}: {problem}").format(
                n_problems=len(problems), archive_no=problems[0]["archive_no"], problem=problems[0]["problem"]
            )
        )
    if fmt_of(ctx, fmt) != "json":
        out(
            _("keystore {url}: every household on main has its key, wrapped as main says").format(
                url=archive.keystore.url
            )
        )


@keys_app.command(
    "shred",
    help=_(
        "Destroy the keys main no longer uses (approved purges and corrections that forget, after 30 days; "
        "approved rotations) and register it.\n\nRun on an up-to-date main in a clone (cron: git pull "
        "--ff-only && archivectl keys shred && git push); idempotent. With ARCHIVE_NO, only those "
        "households, refused when one has no key to shred yet."
    ),
)
def shred(
    ctx: typer.Context,
    numbers: Annotated[
        list[str] | None, typer.Argument(metavar="[ARCHIVE_NO]...", help=_("Only these households' keys."))
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help=_("Say what would be shredded; destroy nothing."))] = False,
    fmt: FormatOpt = None,
) -> None:
    from archivectl.ops import keys
    from archivectl.render import render_rows

    rows = keys.shred(open_archive(ctx), dry_run, numbers or None)
    if rows or fmt_of(ctx, fmt) == "json":
        out(render_rows(rows, fmt_of(ctx, fmt), title=_("record keys")))
    else:
        out(_("no record key to shred"))


@keys_app.command(
    "migrate",
    help=_("Copy every key to a new keystore, check each copy, and propose archive.yaml's switch (the gm approves)."),
)
def migrate(
    ctx: typer.Context,
    to: Annotated[
        str, typer.Option("--to", metavar="URL", help=_("The new keystore: sftp://host/path or a directory."))
    ],
    reason: ReasonOpt = None,
    approver: ApproverOpt = None,
) -> None:
    from archivectl.ops import keys
    from archivectl.ops.common import Approval

    result = keys.migrate(open_archive(ctx), to, Approval(reason, approver))
    out(
        _(
            "copied {keys} record keys and {numbers} numbers to {to} ({copied} new); proposed the switch in "
            "commit {commit}: once approved and merged, every clone uses it (check with `archivectl keys fsck`)"
        ).format(
            keys=result["keys"],
            numbers=result["numbers"],
            to=result["to"],
            copied=result["copied"],
            commit=result["commit"][:12],
        )
    )


@keys_app.command(
    "policy",
    help=_(
        "OpenBao policies from main's staff.yaml, grants and households: one per staff member, plus the "
        "shredder.\n\nFor the IT person's cron after merges: write each with `bao policy write NAME FILE`."
    ),
)
def policy(
    ctx: typer.Context,
    fmt: Annotated[str, typer.Option("--format", "-f", help=_("hcl | json"))] = "hcl",
    mount: Annotated[
        str | None, typer.Option("--mount", help=_("The KV mount, when the keystore is not openbao:// (e.g. estate)."))
    ] = None,
    output_dir: Annotated[
        Path | None, typer.Option("--output-dir", help=_("Write one file per policy here (<name>.hcl or .json)."))
    ] = None,
) -> None:
    import json

    from archivectl import openbao
    from archivectl.errors import UsageError
    from archivectl.files import write_output
    from archivectl.ops import keys

    if fmt not in ("hcl", "json"):
        raise UsageError(_("--format must be hcl or json"))
    found = keys.bao_policies(open_archive(ctx), mount)
    if output_dir is not None:
        output_dir.mkdir(parents=True, exist_ok=True)
        for name, document in found.items():
            text = openbao.to_hcl(document) if fmt == "hcl" else json.dumps(document, indent=2) + "\n"
            target = output_dir / f"{name}.{fmt}"
            write_output(target, text.encode("utf-8"))
        out(_("{n_found} policies written to {output_dir}").format(n_found=len(found), output_dir=output_dir))
    elif fmt == "json":
        out(json.dumps(found, indent=2))
    else:
        out("\n".join(f"# policy {name}\n{openbao.to_hcl(document)}" for name, document in found.items()).rstrip())
