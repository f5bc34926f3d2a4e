"""The customers' requests register (P17) as plain data: request ids, the register folded into each
request's state, and whether a request is open to be answered (for --request on any write).

Below the commands: ops/common checks --request here; ops/requests opens, answers and lists.
"""

from __future__ import annotations

import re
from typing import Any

from archivectl import registers
from archivectl.archive import Archive
from archivectl.errors import ArchiveError, UsageError
from archivectl.i18n import _

REQUEST_ID = re.compile(r"RQ-[0-9]{4}-[0-9]{5}\Z")


def check_request_id(value: str) -> str:
    """value if it is a request id like RQ-2026-00001, else UsageError (the value is not repeated)."""
    if not isinstance(value, str) or not REQUEST_ID.match(value):
        raise UsageError(_("not a request id like RQ-2026-00001"))
    return value


# ---------------------------------------------------------------------- the register, folded


def fold(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Request id -> its state (kind, households, dates, status, who), from the register's entries.

    Independent of the entries' order: event files written in the same second
    sort by name, not by time. A request only moves forward (open, then answered
    or refused, then closed), so the furthest event it has decides its status.
    """
    state: dict[str, dict[str, Any]] = {}
    for entry in entries:
        if entry.get("action") == "request-open":
            rid = str(entry.get("request", ""))
            state[rid] = {
                "request": rid,
                "kind": entry.get("kind"),
                "archive_no": str(entry.get("archive_no", "")),
                "received": str(entry.get("received", "")),
                "due": str(entry.get("due", "")),
                "checked_by": entry.get("checked_by"),
                "opened_by": entry.get("who"),
                "status": "open",
                "answered": "",
                "commits": [],
            }
    for entry in entries:
        row = state.get(str(entry.get("request", "")))
        status = _ENDS.get(str(entry.get("action")))
        if row is None or status is None:
            continue
        if status != "closed":
            row["answered"] = str(entry.get("answered") or str(entry.get("when", ""))[:10])
            row["commits"] = list(entry.get("commits") or [])
        if _RANK[status] >= _RANK[row["status"]]:
            row["status"] = status
    return state


_ENDS = {"request-answer": "answered", "request-refuse": "refused", "request-close": "closed"}
_RANK = {"open": 0, "answered": 1, "refused": 1, "closed": 2}


def requests(archive: Archive) -> dict[str, dict[str, Any]]:
    """Every request on this branch, by id."""
    return fold(registers.entries(archive.root, "requests"))


def require_open(archive: Archive, request_id: str) -> dict[str, Any]:
    """The open request of that id, or UsageError/ArchiveError naming what is wrong (for --request)."""
    check_request_id(request_id)
    found = requests(archive).get(request_id)
    if found is None:
        raise ArchiveError(_("no request {rid} here (see `archivectl request list`)").format(rid=request_id))
    if found["status"] != "open":
        raise ArchiveError(
            _("request {rid} is {status}; only an open request is answered").format(
                rid=request_id, status=found["status"]
            )
        )
    return found
