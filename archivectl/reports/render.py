"""A report's sections as table, json, csv, markdown or a self-contained HTML page."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from typing import Any

from archivectl.render import render_rows

FORMATS = ("table", "json", "csv", "markdown", "html")


@dataclass
class Section:
    """A titled table of rows (dicts with the same keys)."""

    title: str
    rows: list[dict[str, Any]]
    columns: list[str] | None = None

    def cells(self) -> list[dict[str, Any]]:
        cols = self.columns or (list(self.rows[0]) if self.rows else [])
        return [{c: _flat(r.get(c)) for c in cols} for r in self.rows]


@dataclass
class Report:
    """What a report found: its JSON document, the sections people read, an optional chart."""

    name: str
    title: str
    document: dict[str, Any]
    sections: list[Section]
    chart: list[tuple[str, float]] = field(default_factory=list)
    chart_title: str = ""
    summary: str = ""
    act_on: bool = False  # something to act on, for --fail-on-...
    csv_rows: Section | None = None  # what --format csv prints (default: the first section)


def _flat(value: Any) -> Any:
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return value


def render(report: Report, fmt: str) -> str:
    """The report in one of FORMATS; csv holds its main rows (one table, for spreadsheets and cron)."""
    if fmt == "json":
        return json.dumps(report.document, ensure_ascii=False, indent=2)
    if fmt == "csv":
        section = report.csv_rows or report.sections[0]
        return render_rows(section.cells(), "csv") if section.rows else ",".join(section.columns or [])
    if fmt == "html":
        return _html(report)
    parts = [report.title, report.summary] if fmt == "table" else [f"# {report.title}", "", report.summary]
    for section in report.sections:
        if fmt == "table":
            body = render_rows(section.cells(), fmt, title=section.title) if section.rows else None
            parts.append(body or f"{section.title}: none")
        else:
            parts += ["", f"## {section.title}", "", render_rows(section.cells(), fmt) if section.rows else "(none)"]
    return "\n".join(p for p in parts if p is not None).rstrip("\n")


def _html(report: Report) -> str:
    esc = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="zh-CN"><head><meta charset="utf-8">',
        f"<title>{esc(report.title)}</title>",
        "<style>body{font-family:system-ui,sans-serif;margin:2em;color:#222}"
        "table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:4px 8px;text-align:left}"
        "th{background:#f3f3f3}caption{font-weight:bold;text-align:left;padding:4px 0}</style>",
        "</head><body>",
        f"<h1>{esc(report.title)}</h1>",
        f"<p>{esc(report.summary)}</p>",
    ]
    if report.chart:
        out.append(_svg_bars(report.chart, report.chart_title))
    for section in report.sections:
        cells = section.cells()
        out.append(f"<h2>{esc(section.title)}</h2>")
        if not cells:
            out.append("<p>(none)</p>")
            continue
        cols = list(cells[0])
        out.append("<table><thead><tr>" + "".join(f"<th>{esc(c)}</th>" for c in cols) + "</tr></thead><tbody>")
        for row in cells:
            out.append(
                "<tr>" + "".join(f"<td>{esc(str(row[c]) if row[c] is not None else '')}</td>" for c in cols) + "</tr>"
            )
        out.append("</tbody></table>")
    out.append("</body></html>")
    return "\n".join(out)


def _svg_bars(bars: list[tuple[str, float]], title: str) -> str:
    """An inline SVG bar chart of percentages (0-100), one bar per label."""
    esc = html.escape
    width, bar_h, gap, label_w = 520, 22, 8, 90
    height = 30 + len(bars) * (bar_h + gap)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="{esc(title)}">',
        f'<text x="0" y="16" font-size="14">{esc(title)}</text>',
    ]
    for i, (label, value) in enumerate(bars):
        y = 28 + i * (bar_h + gap)
        w = max(0.0, min(100.0, value)) / 100 * (width - label_w - 60)
        parts.append(f'<text x="0" y="{y + 16}" font-size="13">{esc(label)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="#3b7dd8"/>')
        parts.append(f'<text x="{label_w + w + 6:.1f}" y="{y + 16}" font-size="13">{value:.0f}%</text>')
    parts.append("</svg>")
    return "\n".join(parts)
