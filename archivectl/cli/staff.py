"""staff add | edit | deactivate | list."""

from typing import Annotated

import typer

from archivectl.cli.app import ApproverOpt, FormatOpt, ReasonOpt, app, fmt_of, open_archive, out
from archivectl.i18n import _

staff_app = typer.Typer(
    help=_("Staff on staff.yaml: roles, buildings, keys (approved, signed changes)."), no_args_is_help=True
)
app.add_typer(staff_app, name="staff")


def _key(value: str | None) -> str | None:
    """A key given inline, or a path (or @path) to a .pub file; a private key is refused, never echoed."""
    from pathlib import Path

    from archivectl.errors import UsageError

    if value is None:
        return None
    if "PRIVATE KEY" in value:
        raise UsageError(_("--key was given a private key: give the public half (the .pub file); keep the private one"))
    if value.startswith("ssh-"):
        return value
    path = Path(value.removeprefix("@")).expanduser()
    try:
        text = path.read_text(errors="replace")[:16384]
    except OSError:
        raise UsageError(
            _("--key {path}: no readable key file there (give 'ssh-ed25519 AAAA...' or a .pub file)").format(path=path)
        ) from None
    if "PRIVATE KEY" in text:
        raise UsageError(
            _("--key {path} is a private key: give the public half ({name}.pub); keep this one").format(
                path=path, name=path.name
            )
        )
    return text.strip()


def _buildings(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    return tuple(b.strip() for b in value.split(",") if b.strip())


KeyOpt = Annotated[str | None, typer.Option("--key", help=_("'ssh-ed25519 AAAA...' or path/to/key.pub"))]
BuildingsOpt = Annotated[str | None, typer.Option("--buildings", help=_("Comma-separated, e.g. B03,B05."))]


@staff_app.command("add", help=_("Add a staff member."))
def staff_add(
    ctx: typer.Context,
    staff_id: Annotated[str, typer.Argument(metavar="STAFF_ID")],
    name: Annotated[str, typer.Option(help=_("Full name."))],
    role: Annotated[str, typer.Option(help=_("butler | cashier | clerk | manager | gm | auditor"))],
    key: KeyOpt = None,
    buildings: BuildingsOpt = None,
    handle: Annotated[str | None, typer.Option(help=_("Git-host user name, for CODEOWNERS."))] = None,
    reason: ReasonOpt = None,
    approver: ApproverOpt = None,
) -> None:
    from archivectl.errors import UsageError
    from archivectl.ops import staffops
    from archivectl.ops.common import Approval
    from archivectl.staff import StaffMember

    if not key:
        raise UsageError(_("--key is required: their ssh-ed25519 public key, or the path to their .pub file"))
    member = StaffMember(
        id=staff_id, name=name, role=role, key=_key(key) or "", buildings=_buildings(buildings) or (), handle=handle
    )
    commit = staffops.add(open_archive(ctx), member, Approval(reason, approver))
    out(_("added {staff_id} in commit {commit}").format(staff_id=staff_id, commit=commit[:12]))


@staff_app.command("edit", help=_("Change a staff member's name, role, buildings, key or handle."))
def staff_edit(
    ctx: typer.Context,
    staff_id: Annotated[str, typer.Argument(metavar="STAFF_ID")],
    name: Annotated[str | None, typer.Option(help=_("Full name."))] = None,
    role: Annotated[str | None, typer.Option(help=_("New role."))] = None,
    key: KeyOpt = None,
    buildings: BuildingsOpt = None,
    handle: Annotated[str | None, typer.Option(help=_("Git-host user name."))] = None,
    reason: ReasonOpt = None,
    approver: ApproverOpt = None,
) -> None:
    from archivectl.ops import staffops
    from archivectl.ops.common import Approval

    changes = {"name": name, "role": role, "key": _key(key), "buildings": _buildings(buildings), "handle": handle}
    commit = staffops.edit(open_archive(ctx), staff_id, changes, Approval(reason, approver))
    out(_("edited {staff_id} in commit {commit}").format(staff_id=staff_id, commit=commit[:12]))


@staff_app.command("deactivate", help=_("Mark a staff member as departed (their old signatures keep verifying)."))
def staff_deactivate(
    ctx: typer.Context,
    staff_id: Annotated[str, typer.Argument(metavar="STAFF_ID")],
    reason: ReasonOpt = None,
    approver: ApproverOpt = None,
) -> None:
    from archivectl.ops import staffops
    from archivectl.ops.common import Approval

    commit = staffops.deactivate(open_archive(ctx), staff_id, Approval(reason, approver))
    out(_("deactivated {staff_id} in commit {commit}").format(staff_id=staff_id, commit=commit[:12]))


@staff_app.command("list", help=_("List staff."))
def staff_list(ctx: typer.Context, fmt: FormatOpt = None) -> None:
    from archivectl.ops import staffops
    from archivectl.render import render_rows

    out(render_rows(staffops.list_staff(open_archive(ctx)), fmt_of(ctx, fmt), title=_("staff")))
