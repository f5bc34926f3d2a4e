"""find: every household that holds an ID or phone number (blind index, #27); migrate blind-index; keys rotate-index."""

import sys
from typing import Annotated

import typer

from archivectl.cli.app import ApproverOpt, FormatOpt, ReasonOpt, app, fmt_of, globals_of, open_archive, out
from archivectl.cli.keys import keys_app
from archivectl.cli.lifecycle import migrate_app
from archivectl.i18n import _


def _read_number(what: str) -> str:
    """A number given as '-': read from standard input, or asked for without echo on a terminal."""
    if sys.stdin.isatty():
        import getpass

        return getpass.getpass(f"{what}: ")  # what is translated by the caller
    return sys.stdin.readline().strip()


@app.command(
    help=_(
        "Every household that holds an ID or phone number (active, moved-out, tombstoned) in the buildings you "
        "read, found by the blind index without decrypting; registered as a look-up. Give '-' to type the number "
        "unseen."
    )
)
def find(
    ctx: typer.Context,
    phone: Annotated[str | None, typer.Option("--phone", metavar="PHONE", help=_("A phone number, or '-'."))] = None,
    id_number: Annotated[
        str | None, typer.Option("--id-number", metavar="ID", help=_("An ID document number, or '-'."))
    ] = None,
    reason: Annotated[str | None, typer.Option("--reason", "-r", help=_("Why you look (registered)."))] = None,
    fmt: FormatOpt = None,
) -> None:
    from archivectl.errors import UsageError
    from archivectl.ops import finding
    from archivectl.render import render_rows

    if (phone is None) == (id_number is None):
        raise UsageError(_("give exactly one of --phone and --id-number"))
    kind, number = ("phone", phone) if phone is not None else ("id", id_number)
    if number == "-":
        number = _read_number("--phone" if kind == "phone" else "--id-number")
    found = finding.find(open_archive(ctx), kind, str(number), reason, globals_of(ctx).identity)
    out(render_rows(found["households"], fmt_of(ctx, fmt), title=_("households found")))
    if found["households"]:
        households = " ".join(f"--household {r['archive_no']}" for r in found["households"])
        out(
            _("for the customer's request: archivectl request open {households} ...").format(households=households),
            err=True,
        )
    if found["limited"]:
        out(_("only the buildings you read are searched (P7); a manager or the gm finds across all"), err=True)
    if found["opened"]:
        out(
            _(
                "{n} households have no blind index yet: opened on this machine and searched "
                "(`archivectl migrate blind-index` spares that)"
            ).format(n=found["opened"]),
            err=True,
        )
    if found["unindexed"]:
        out(
            _("{n} households have no blind index yet and were not searched: `archivectl migrate blind-index`").format(
                n=found["unindexed"]
            ),
            err=True,
        )


@migrate_app.command(
    "blind-index",
    help=_(
        "Give every sealed record its blind index (keyed fingerprints of its ID and phone numbers, for `find`); "
        "makes the office's index key the first time (a manager or gm; approved)."
    ),
)
def migrate_blind_index(ctx: typer.Context, reason: ReasonOpt = None, approver: ApproverOpt = None) -> None:
    from archivectl.ops import finding
    from archivectl.ops.common import Approval

    done = finding.migrate_blind_index(open_archive(ctx), Approval(reason, approver), globals_of(ctx).identity)
    out(
        _("blind index of {n} households (index key {key}) in commit {commit}").format(
            n=len(done["households"]), key=done["key"], commit=done["commit"][:12]
        )
    )


@keys_app.command(
    "rotate-index",
    help=_(
        "A new index key, every record's blind index re-fingerprinted with it in one commit awaiting approval; "
        "`keys shred` destroys the old key once that is approved on main (a manager or gm)."
    ),
)
def rotate_index(ctx: typer.Context, reason: ReasonOpt = None, approver: ApproverOpt = None) -> None:
    from archivectl.ops import finding
    from archivectl.ops.common import Approval

    done = finding.rotate_index(open_archive(ctx), Approval(reason, approver), globals_of(ctx).identity)
    out(
        _("index key {key} replaces {previous}: {n} households re-fingerprinted in commit {commit}").format(
            key=done["key"], previous=done["previous"], n=len(done["households"]), commit=done["commit"][:12]
        )
    )
