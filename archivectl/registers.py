"""The registers (登记): one YAML file per event under registers/<kind>/<yyyy-mm>/.

Entries say who, when, which dossier and why; they never hold personal data.
One file per event (named by time, action, who and a random part) makes them
append-only by construction, and two branches that register look-ups in the
same month merge without a conflict. Month files (registers/<kind>/<yyyy-mm>.yaml,
a list each) written by earlier versions are still read.
"""

from __future__ import annotations

import datetime as dt
import secrets
from pathlib import Path
from typing import Any

from archivectl import clock, gitio, yamlio

HEADERS = {
    "access": "# Access register (查阅登记, P8): every reveal or open of personal data. Append only.\n",
    "lending": "# Lending register (借阅登记, P8): paper dossier bags lent and returned. Append only.\n",
    "transfer": "# Transfer register (资料传递登记, P9): every export. Append only.\n",
    "destruction": "# Destruction register (销毁登记, P14): purged households. Append only.\n",
    "grants": "# Grants (P7): time-limited reads approved by the general manager. Append only.\n",
    "keys": "# Record-key changes: re-wraps for current readers and rotations. Append only.\n",
    "requests": "# Customers' requests (P17): access, correction, deletion, copy; requester sealed. Append only.\n",
    "holds": "# Legal holds: households that must not be tombstoned, purged or shredded. Append only.\n",
}


def event_path(kind: str, entry: dict[str, Any]) -> str:
    """registers/<kind>/<yyyy-mm>/<utc time>-<action>-<who>-<random>.yaml: a new file for one event."""
    if kind not in HEADERS:
        raise ValueError(f"unknown register {kind}")
    now = clock.now().astimezone(dt.UTC)
    action, who = entry.get("action", kind), entry.get("who", "unknown")
    return f"registers/{kind}/{now:%Y-%m}/{now:%Y%m%dT%H%M%S}-{action}-{who}-{secrets.token_hex(4)}.yaml"


def append(tx: Any, kind: str, entry: dict[str, Any]) -> str:
    """Register one event inside a write transaction, in a file of its own; return its path."""
    path = event_path(kind, entry)
    tx.write_text(path, HEADERS[kind] + yamlio.dumps(entry))
    return path


def register(
    tx: Any,
    kind: str,
    action: str,
    who: str,
    fields: dict[str, Any] | None = None,
    *,
    approval: Any = None,
    reason: str | None = None,
) -> dict[str, Any]:
    """Register one event: when, who, what, the event's own fields, then who approved it and why.

    approval (an ops.common.Approval) gives approved_by and reason; without one,
    reason alone (a look-up's, a return's). The one place an entry is built.
    """
    entry = {"when": clock.now_iso(), "who": who, "action": action, **(fields or {})}
    if approval is not None:
        entry |= {"approved_by": approval.approver, "reason": approval.reason}
    elif reason is not None:
        entry["reason"] = reason
    append(tx, kind, entry)
    return entry


def entries(root: Path, kind: str) -> list[dict[str, Any]]:
    """Every entry of a register, oldest first (month files of earlier versions, then events by time)."""
    folder = root / "registers" / kind
    if not folder.is_dir():
        return []
    rows: list[dict[str, Any]] = []
    for path in sorted(folder.glob("*.yaml")):  # month files: a list each
        data = yamlio.load_file(path)
        rows.extend(e for e in data or [] if isinstance(e, dict))
    events = sorted(folder.glob("*/*.yaml"), key=lambda p: p.name)  # the name starts with the time
    rows.extend(e for e in (yamlio.load_file(p) for p in events) if isinstance(e, dict))
    return rows


def entries_at(root: Path, rev: str, kind: str) -> list[dict[str, Any]]:
    """A register's entries as committed at rev, oldest first (event files are named by time)."""
    paths = gitio.tree_paths(root, rev, f"registers/{kind}")
    paths.sort(key=lambda p: (p.count("/"), p.rsplit("/", 1)[-1]))  # month files first, then events by time
    rows: list[dict[str, Any]] = []
    if not paths:
        return rows
    with gitio.BlobReader(root) as blobs:
        for path, data in zip(paths, blobs.read_many([f"{rev}:{p}" for p in paths]), strict=True):
            parsed = yamlio.loads(data or b"", path)
            rows.extend(e for e in (parsed if isinstance(parsed, list) else [parsed]) if isinstance(e, dict))
    return rows


def load_entry(path: Path) -> dict[str, Any] | None:
    """One event file's entry, or None if it is not a mapping."""
    data = yamlio.load_file(path)
    return data if isinstance(data, dict) else None


def active_grants(root: Any, today: str | None = None) -> list[dict[str, Any]]:
    """Grants whose `until` date has not passed (P7: time-limited reads)."""
    return _unexpired(entries(root, "grants"), today)


def _unexpired(grants: list[dict[str, Any]], today: str | None) -> list[dict[str, Any]]:
    day = today or clock.today().isoformat()
    return [g for g in grants if str(g.get("until", "")) >= day]


def active_grants_at(root: Path, rev: str | None, today: str | None = None) -> list[dict[str, Any]] | None:
    """Unexpired grants as committed at rev (main's, for wrapping keys); None without a commit to read."""
    from archivectl import gitio

    if not rev:
        return None
    paths = sorted(gitio.tree_paths(root, rev, "registers/grants"), key=lambda p: (p.count("/"), p.rsplit("/", 1)[-1]))
    rows: list[dict[str, Any]] = []
    with gitio.BlobReader(root) as blobs:
        for path, data in zip(paths, blobs.read_many([f"{rev}:{p}" for p in paths]), strict=True):
            parsed = yamlio.loads(data or b"", path)
            rows.extend(e for e in (parsed if isinstance(parsed, list) else [parsed]) if isinstance(e, dict))
    return _unexpired(rows, today)


def lent_out(root: Any) -> dict[str, dict[str, Any]]:
    """Paper dossiers currently lent: archive number -> the lending entry (P8)."""
    state: dict[str, dict[str, Any]] = {}
    for entry in entries(root, "lending"):
        number = entry.get("archive_no")
        if entry.get("action") == "lend":
            state[number] = entry
        elif entry.get("action") == "return":
            state.pop(number, None)
    return state
