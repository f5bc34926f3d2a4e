"""The registers (登记): append-only YAML lists in registers/, one file per month.

Entries say who, when, which dossier and why; they never hold personal data.
"""

from __future__ import annotations

from typing import Any

from archivectl import clock, yamlio

HEADERS = {
    "access": "# Access register (查阅登记, P8): every reveal or open of personal data. Append only.\n",
    "lending": "# Lending register (借阅登记, P8): paper dossier bags lent and returned. Append only.\n",
    "transfer": "# Transfer register (资料传递登记, P9): every export. Append only.\n",
    "destruction": "# Destruction register (销毁登记, P14): purged households. Append only.\n",
    "grants": "# Grants (P7): time-limited reads approved by the general manager. Append only.\n",
    "keys": "# Record-key changes: re-wraps for current readers and rotations. Append only.\n",
}


def register_path(kind: str, month: str | None = None) -> str:
    """registers/<kind>/<yyyy-mm>.yaml for the given or current month."""
    if kind not in HEADERS:
        raise ValueError(f"unknown register {kind}")
    return f"registers/{kind}/{month or clock.now().strftime('%Y-%m')}.yaml"


def append(tx: Any, kind: str, entry: dict[str, Any]) -> str:
    """Append one entry to a register inside a write transaction; return its path."""
    path = register_path(kind)
    existing = tx.read(path)
    text = existing.decode("utf-8") if existing else HEADERS[kind]
    if not text.endswith("\n"):
        text += "\n"
    tx.write_text(path, text + "- " + yamlio.dump_flow(entry) + "\n")
    return path


def entries(root: Any, kind: str) -> list[dict[str, Any]]:
    """Every entry of a register, oldest first."""
    folder = root / "registers" / kind
    rows: list[dict[str, Any]] = []
    for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
        data = yamlio.load_file(path)
        rows.extend(e for e in data or [] if isinstance(e, dict))
    return rows


def active_grants(root: Any, today: str | None = None) -> list[dict[str, Any]]:
    """Grants whose `until` date has not passed (P7: time-limited reads)."""
    day = today or clock.today().isoformat()
    return [g for g in entries(root, "grants") if str(g.get("until", "")) >= day]


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
