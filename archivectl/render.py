"""Turning rows and records into table, json, yaml, csv or markdown text."""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any

from archivectl.errors import UsageError
from archivectl.i18n import N_, _, language
from archivectl.layout import ARCHIVE_NO_PATTERN
from archivectl.screen import inert, inert_json

# Column headings people read (table and markdown); json, yaml and csv keep the keys, for scripts.
HEADINGS = {
    "acted_by": N_("acted by"),
    "action": N_("action"),
    "active": N_("active"),
    "approvals": N_("approvals"),
    "approved_by": N_("approved by"),
    "approver": N_("approver"),
    "archive_no": N_("archive no"),
    "awaiting": N_("awaiting"),
    "building": N_("building"),
    "buildings": N_("buildings"),
    "category": N_("category"),
    "change": N_("change"),
    "changes": N_("changes"),
    "clock_started": N_("clock started"),
    "commit": N_("commit"),
    "complete": N_("complete"),
    "date": N_("date"),
    "days_left": N_("days left"),
    "days_since": N_("days since"),
    "day": N_("day"),
    "decrypts": N_("decrypts"),
    "destroyed": N_("destroyed"),
    "dimension": N_("dimension"),
    "document": N_("document"),
    "documents": N_("documents"),
    "due": N_("due"),
    "eligible": N_("eligible"),
    "expires": N_("expires"),
    "exports": N_("exports"),
    "field": N_("field"),
    "file": N_("file"),
    "floor": N_("floor"),
    "from": N_("from"),
    "handle": N_("handle"),
    "households": N_("households"),
    "id": N_("id"),
    "incomplete": N_("incomplete"),
    "label": N_("label"),
    "last_reviewed": N_("last reviewed"),
    "message": N_("message"),
    "missing_documents": N_("missing documents"),
    "missing_fields": N_("missing fields"),
    "missing_labels": N_("missing labels"),
    "month": N_("month"),
    "more_from": N_("more from"),
    "moved_out": N_("moved out"),
    "name": N_("name"),
    "occupancy": N_("occupancy"),
    "opens": N_("opens"),
    "overdue": N_("overdue"),
    "problem": N_("problem"),
    "rate": N_("rate"),
    "readers": N_("readers"),
    "reason": N_("reason"),
    "reveals": N_("reveals"),
    "role": N_("role"),
    "rule": N_("rule"),
    "signed": N_("signed"),
    "status": N_("status"),
    "subject": N_("subject"),
    "to": N_("to"),
    "tombstoned": N_("tombstoned"),
    "type": N_("type"),
    "unit": N_("unit"),
    "value": N_("value"),
    "when": N_("when"),
    "who": N_("who"),
    "why": N_("why"),
    "year": N_("year"),
}


def heading(column: str) -> str:
    """A column's heading in the interface's language (a key without one: the key, spaced)."""
    known = HEADINGS.get(column)
    return _(known) if known else column.replace("_", " ")


FORMATS = ("table", "json", "yaml", "csv", "markdown")  # rows and records (list, history, pending, ...)
REPORT_FORMATS = ("table", "json", "csv", "markdown", "html")  # reports (reports/render.py)
ANY_FORMAT = tuple(dict.fromkeys(FORMATS + REPORT_FORMATS))  # what the global --format accepts
# A table is read on an 80-column terminal: a moment to the minute; json, yaml and csv keep full ISO.
_MOMENT = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})T([0-9]{2}:[0-9]{2}):[0-9]{2}(?:\.[0-9]+)?(?:Z|[+-][0-9]{2}:[0-9]{2})"
)


def flatten(record: Any, prefix: str = "") -> list[dict[str, Any]]:
    """A nested record as (field, value) rows: customers[0].name, ..."""
    rows: list[dict[str, Any]] = []
    if isinstance(record, dict):
        for key, value in record.items():
            rows += flatten(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(record, list) and record and any(isinstance(v, (dict, list)) for v in record):
        for i, value in enumerate(record):
            rows += flatten(value, f"{prefix}[{i}]")
    else:
        if isinstance(record, list):
            record = ", ".join(str(v) for v in record)
        rows.append({"field": prefix, "value": record})
    return rows


def render_rows(rows: list[dict[str, Any]], fmt: str, title: str | None = None) -> str:
    """Rows of equal keys as text in the chosen format (table is for terminals)."""
    if fmt not in FORMATS:
        raise UsageError(
            _("--format {format} is not available for this command; use one of {choices}").format(
                format=fmt, choices=", ".join(FORMATS)
            )
        )
    if fmt == "json":
        return inert_json(json.dumps(rows, ensure_ascii=False, indent=2))
    if fmt == "yaml":
        from archivectl import yamlio

        return yamlio.dumps(rows).rstrip("\n")
    columns = list(rows[0]) if rows else []
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: inert(_cell(v)) for k, v in row.items()} for row in rows)
        return buf.getvalue().rstrip("\n")
    if fmt == "markdown":
        names = columns if language() == "en" else [heading(c) for c in columns]  # English: the keys, as before
        lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(_cell(r.get(c)).replace("|", "\\|") for c in columns) + " |" for r in rows]
        return "\n".join(lines)
    return _rich_table(rows, columns, title)


def render_record(record: dict[str, Any], fmt: str, title: str | None = None) -> str:
    """One record: yaml/json keep its shape; table, csv and markdown list field and value."""
    if fmt == "json":
        return inert_json(json.dumps(record, ensure_ascii=False, indent=2))
    if fmt == "yaml":
        from archivectl import yamlio

        return yamlio.dumps(record).rstrip("\n")
    return render_rows(flatten(record), fmt, title)


_MOMENT_SHOWN = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}")


def _cell(value: Any) -> str:
    """A value as a table, markdown or csv cell shows it: inert (screen.py), whoever typed it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    return inert(str(value))


def _rich_table(rows: list[dict[str, Any]], columns: list[str], title: str | None) -> str:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_lines=False, header_style="bold")
    cells = [[_MOMENT.sub(r"\1 \2", _cell(row.get(c))) for c in columns] for row in rows]
    longest = [max((len(r[i]) for r in cells), default=0) for i in range(len(columns))]
    for i, col in enumerate(columns):
        whole = i in _kept_whole(cells, longest)
        table.add_column(heading(col), overflow="fold", no_wrap=whole, min_width=longest[i] if whole else None)
    for row_cells in cells:
        table.add_row(*row_cells)
    buf = io.StringIO()
    console = Console(file=buf, width=_width(), force_terminal=False, no_color=True)
    console.print(table)
    return buf.getvalue().rstrip("\n")


_WHOLE = re.compile(
    rf"[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}( [0-9]{{2}}:[0-9]{{2}})?|[0-9a-f]{{7,12}}|{ARCHIVE_NO_PATTERN}|"
)


def _kept_whole(cells: list[list[str]], longest: list[int]) -> set[int]:
    """Columns that must not break across lines: the first (what the row is about) when short, and
    every column of dates, commits or archive numbers, as long as the rest keeps room to wrap."""
    wanted = [
        i for i in range(len(longest)) if longest[i] <= 16 and (i == 0 or all(_WHOLE.fullmatch(r[i]) for r in cells))
    ]
    kept: set[int] = set()
    for i in wanted:
        if sum(longest[k] + 3 for k in kept | {i}) + 8 * (len(longest) - len(kept) - 1) <= _width():
            kept.add(i)
    return kept


def _width() -> int:
    import shutil

    return max(80, shutil.get_terminal_size((120, 40)).columns)
