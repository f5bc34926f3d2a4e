"""request open|answer|refuse|close|list, hold, release, report requests: customers' rights on the clock (P17)."""

from typing import Annotated

import typer

from archivectl.cli.app import ApproverOpt, FormatOpt, ReasonOpt, app, fmt_of, open_archive, out
from archivectl.cli.reports import OutputOpt, ReportFormat, _emit, report_app
from archivectl.i18n import _

request_app = typer.Typer(
    help=_("Customers' requests (access, correction, deletion, copy), due in five Chinese working days."),
    no_args_is_help=True,
)
app.add_typer(request_app, name="request")

RequestId = Annotated[str, typer.Argument(metavar="REQUEST_ID", help=_("Like RQ-2026-00001."))]
ArchiveNo = Annotated[str, typer.Argument(metavar="ARCHIVE_NO")]


def _value(given: str, what: str) -> str:
    """A requester's detail: as given, or with '-' asked without echo on a terminal / read from stdin."""
    if given != "-":
        return given
    from archivectl.cli.households import read_value

    return read_value(what)


@request_app.command(
    "open",
    help=_(
        "Register a request; prints its id and due date (five working days after receipt, holidays "
        "and 调休 counted).\n\nThe requester's name and contact are sealed to the managers, the gm "
        "and the recovery key. No approval is needed: the clock starts at once."
    ),
)
def request_open(
    ctx: typer.Context,
    kind: Annotated[str, typer.Option("--kind", help=_("access | correction | deletion | copy"))],
    households: Annotated[
        list[str], typer.Option("--household", metavar="ARCHIVE_NO", help=_("A household concerned (repeat)."))
    ],
    checked_by: Annotated[
        str, typer.Option("--checked-by", metavar="STAFF_ID", help=_("Who checked the requester's identity."))
    ],
    requester: Annotated[
        str, typer.Option("--requester", metavar="NAME", help=_("The requester's name, sealed ('-': ask for it)."))
    ],
    contact: Annotated[
        str, typer.Option("--contact", metavar="TEXT", help=_("How to reach them, sealed ('-': ask for it)."))
    ],
    received: Annotated[
        str | None, typer.Option("--received", metavar="DATE", help=_("Day received, YYYY-MM-DD (default today)."))
    ] = None,
    reason: ReasonOpt = None,
) -> None:
    from archivectl.ops import requests

    name = _value(requester, "requester")
    reach = _value(contact, "contact")
    row = requests.open_request(open_archive(ctx), kind, households, checked_by, name, reach, reason, received)
    said = _("{rid} opened, received {received}, due {due}").format(
        rid=row["request"], received=row["received"], due=row["due"]
    )
    if row.get("due_provisional"):
        said += _(" (provisional: the official calendar for that year is not known yet)")
    out(said)


@request_app.command(
    "answer",
    help=_("Register the answer to an open request, with the commits made with --request REQUEST_ID (no approval)."),
)
def request_answer(
    ctx: typer.Context,
    request_id: RequestId,
    reason: Annotated[str | None, typer.Option("--reason", "-r", help=_("How it was answered."))] = None,
) -> None:
    from archivectl.ops import requests

    row = requests.answer(open_archive(ctx), request_id, reason)
    commits = ", ".join(c[:12] for c in row["commits"]) or _("none")
    said = _("{rid} answered {answered}, due {due}; answering commits: {commits}")
    if row["late"]:
        said = _("{rid} answered {answered}, due {due} (late); answering commits: {commits}")
    out(said.format(rid=request_id, answered=row["answered"], due=row["due"], commits=commits))


@request_app.command("refuse", help=_("Refuse an open request, saying why, with a manager's approval."))
def request_refuse(
    ctx: typer.Context, request_id: RequestId, reason: ReasonOpt = None, approver: ApproverOpt = None
) -> None:
    from archivectl.ops import requests
    from archivectl.ops.common import Approval

    requests.refuse(open_archive(ctx), request_id, Approval(reason, approver))
    out(_("{rid} refused").format(rid=request_id))


@request_app.command(
    "close", help=_("Close a request (withdrawn, or done), with a manager's approval: it leaves the clock.")
)
def request_close(
    ctx: typer.Context, request_id: RequestId, reason: ReasonOpt = None, approver: ApproverOpt = None
) -> None:
    from archivectl.ops import requests
    from archivectl.ops.common import Approval

    requests.close(open_archive(ctx), request_id, Approval(reason, approver))
    out(_("{rid} closed").format(rid=request_id))


@request_app.command(
    "list", help=_("Every request with its due date, working days left, and the commits that answer it.")
)
def request_list(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(help=_("open | answered | refused | closed"))] = None,
    fmt: FormatOpt = None,
) -> None:
    from archivectl.ops import requests
    from archivectl.render import render_rows

    chosen = fmt_of(ctx, fmt)
    rows = requests.listing(open_archive(ctx), status)
    if chosen not in ("json", "yaml"):  # one cell per value where a list cannot be shown as one
        rows = [{**r, "commits": ", ".join(r["commits"])} for r in rows]
    out(render_rows(rows, chosen) if rows else _("no requests"))


@request_app.command(
    "show", help=_("One request; --reveal opens the requester's details for a manager or gm and registers the look-up.")
)
def request_show(
    ctx: typer.Context,
    request_id: RequestId,
    reveal: Annotated[
        bool, typer.Option("--reveal", help=_("Open the requester's name and contact (registered)."))
    ] = False,
    reason: Annotated[str | None, typer.Option("--reason", "-r", help=_("Why you open it (registered)."))] = None,
    fmt: FormatOpt = None,
) -> None:
    from archivectl.errors import ArchiveError
    from archivectl.ops import requests
    from archivectl.render import render_rows

    archive = open_archive(ctx)
    rows = [r for r in requests.listing(archive) if r["request"] == request_id]
    if not rows:
        requests.check_request_id(request_id)
        raise ArchiveError(_("no request {rid} here (see `archivectl request list`)").format(rid=request_id))
    row = rows[0]
    if reveal:
        from archivectl.cli.app import globals_of

        details = requests.reveal_requester(archive, request_id, reason, globals_of(ctx).identity)
        row = {**row, "requester": details["name"], "contact": details["contact"]}
    out(render_rows([row], fmt_of(ctx, fmt)))


@app.command(
    help=_("Put a household under legal hold: no tombstone, purge or keys shred until it is released (approved).")
)
def hold(ctx: typer.Context, archive_no: ArchiveNo, reason: ReasonOpt = None, approver: ApproverOpt = None) -> None:
    from archivectl.ops import holds
    from archivectl.ops.common import Approval

    commit = holds.hold(open_archive(ctx), archive_no, Approval(reason, approver))
    out(_("{no} is under legal hold (commit {commit})").format(no=archive_no, commit=commit[:12]))


@app.command(help=_("Lift a household's legal hold (approved)."))
def release(ctx: typer.Context, archive_no: ArchiveNo, reason: ReasonOpt = None, approver: ApproverOpt = None) -> None:
    from archivectl.ops import holds
    from archivectl.ops.common import Approval

    commit = holds.release(open_archive(ctx), archive_no, Approval(reason, approver))
    out(_("{no} is no longer under legal hold (commit {commit})").format(no=archive_no, commit=commit[:12]))


@report_app.command(
    "requests",
    help=_("Open customers' requests with due dates, overdue and due soon, and legal holds; exit 1 if any is overdue."),
)
def report_requests(ctx: typer.Context, fmt: ReportFormat = None, output: OutputOpt = None) -> None:
    from archivectl.reports.requests import requests

    _emit(ctx, requests(open_archive(ctx)), fmt, output, True)
