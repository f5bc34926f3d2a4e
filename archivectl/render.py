"""Turning rows and records into table, json, yaml, csv or markdown text."""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any

from archivectl.errors import UsageError

FORMATS = ("table", "json", "yaml", "csv", "markdown")
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
        raise UsageError(f"--format {fmt} is not available for this command; use one of {', '.join(FORMATS)}")
    if fmt == "json":
        return json.dumps(rows, ensure_ascii=False, indent=2)
    if fmt == "yaml":
        from archivectl import yamlio

        return yamlio.dumps(rows).rstrip("\n")
    columns = list(rows[0]) if rows else []
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buf.getvalue().rstrip("\n")
    if fmt == "markdown":
        lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(_cell(r.get(c)).replace("|", "\\|") for c in columns) + " |" for r in rows]
        return "\n".join(lines)
    return _rich_table(rows, columns, title)


def render_record(record: dict[str, Any], fmt: str, title: str | None = None) -> str:
    """One record: yaml/json keep its shape; table, csv and markdown list field and value."""
    if fmt == "json":
        return json.dumps(record, ensure_ascii=False, indent=2)
    if fmt == "yaml":
        from archivectl import yamlio

        return yamlio.dumps(record).rstrip("\n")
    return render_rows(flatten(record), fmt, title)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _rich_table(rows: list[dict[str, Any]], columns: list[str], title: str | None) -> str:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_lines=False, header_style="bold")
    for col in columns:
        table.add_column(col.replace("_", " "), overflow="fold")
    for row in rows:
        table.add_row(*(_MOMENT.sub(r"\1 \2", _cell(row.get(c))) for c in columns))
    buf = io.StringIO()
    console = Console(file=buf, width=_width(), force_terminal=False, no_color=True)
    console.print(table)
    return buf.getvalue().rstrip("\n")


def _width() -> int:
    import shutil

    return max(80, shutil.get_terminal_size((120, 40)).columns)
