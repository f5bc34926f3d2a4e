"""A report's sections as table, json, csv, markdown or a self-contained HTML page."""

from __future__ import annotations

import contextlib
import html
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from archivectl.i18n import _
from archivectl.render import render_rows

# Column titles a manager reads in the HTML reports (the JSON key stays beneath each, for whoever scripts).
LABELS = {
    "archive_no": "档案编号",
    "building": "楼栋",
    "floor": "楼层",
    "unit": "房号",
    "category": "类别",
    "occupancy": "居住情况",
    "status": "状态",
    "complete": "资料齐全",
    "incomplete": "不齐全",
    "households": "户数",
    "rate": "齐全率 %",
    "missing_labels": "缺少的文件",
    "missing_documents": "缺少的文件",
    "missing_fields": "缺少的资料",
    "document": "文件类型",
    "label": "文件",
    "tombstoned": "删除标记日期",
    "clock_started": "保留期起算",
    "days_left": "剩余天数",
    "eligible": "可销毁",
    "problem": "问题",
    "moved_out": "迁出日期",
    "last_reviewed": "上次审核",
    "days_since": "距今天数",
    "to": "借阅人",
    "due": "归还期限",
    "overdue": "逾期",
    "dimension": "维度",
    "value": "值",
    "month": "月份",
    "changes": "修改",
    "reveals": "查阅",
    "opens": "调阅附件",
    "exports": "导出",
    "approvals": "审批",
    "file": "文件",
    "year": "年度",
}


def document_head(name: str, archive_name: str) -> dict[str, Any]:
    """What every report's JSON document starts with: which report, of which archive, when."""
    from archivectl import clock

    return {"report": name, "archive": archive_name, "generated": clock.now().isoformat(timespec="seconds")}


@dataclass
class Section:
    """A titled table of rows (dicts with the same keys)."""

    title: str
    rows: list[dict[str, Any]]
    columns: list[str] | None = None
    key: str | None = None  # its name in the CSV's section column (the JSON document's key); default the title

    def cells(self, shown: bool = False) -> list[dict[str, Any]]:
        """The rows as cells; shown: for people (table, markdown, html), a yes/no in the interface's language."""
        cols = self.columns or (list(self.rows[0]) if self.rows else [])
        return [{c: _flat(r.get(c), shown) for c in cols} for r in self.rows]


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
    csv_rows: Section | None = None  # what --format csv prints (default: every section, named in a column)


def _flat(value: Any, shown: bool = False) -> Any:
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    if isinstance(value, bool) and shown:
        return _("yes") if value else _("no")
    if isinstance(value, bool):  # csv keeps the same words in every language, for scripts
        return "yes" if value else "no"
    return value


class StoredReport(Report):
    """A report kept under a key (see data.cached_report): its text is reused; its rows are read only if needed.

    What the command line always uses (title, summary, act_on, chart) is given;
    document, sections and csv_rows come from build() on first use, and render()
    reuses the text made for the same key and format, with only `generated` new.
    """

    def __init__(self, key: str, texts: Any, build: Any, head: dict[str, Any], generated: str) -> None:
        self.name, self.title, self.summary = head["name"], head["title"], head["summary"]
        self.act_on, self.chart_title = head["act_on"], head["chart_title"]
        self.chart = [(str(label), float(rate)) for label, rate in head["chart"]]
        self.key, self.texts, self._build, self._full = key, texts, build, None
        self.generated = generated

    def full(self) -> Report:
        if self._full is None:
            self._full = self._build(self.generated)
        return self._full

    @property  # type: ignore[override]
    def document(self) -> dict[str, Any]:
        return self.full().document

    @property  # type: ignore[override]
    def sections(self) -> list[Section]:
        return self.full().sections

    @property  # type: ignore[override]
    def csv_rows(self) -> Section | None:
        return self.full().csv_rows


def head_of(report: Report) -> dict[str, Any]:
    """What a StoredReport is given without reading its rows."""
    return {
        "name": report.name,
        "title": report.title,
        "summary": report.summary,
        "act_on": report.act_on,
        "chart_title": report.chart_title,
        "chart": [list(bar) for bar in report.chart],
    }


KEPT_FORMATS = ("json", "csv")  # texts that depend on nothing but the report (tables follow the terminal's width)
_GENERATED = "generated-at-render-0f3c9"  # stands for the time in a kept text; needs no escaping, as the time


def render(report: Report, fmt: str) -> str:
    """The report in one of render.REPORT_FORMATS; csv is one table (for spreadsheets and cron): the report's
    csv_rows, or else every section's rows, each named in a first column `section`."""
    from archivectl.facts import collector_paused

    with collector_paused():  # rows of every household: many objects, no cycles
        return _render_kept(report, fmt)


def _render_kept(report: Report, fmt: str) -> str:
    """render(), reusing the text kept for a StoredReport's key and format."""
    if not isinstance(report, StoredReport) or fmt not in KEPT_FORMATS:
        return _render(report, fmt)
    kept = report.texts.get(report.key, fmt, _GENERATED, report.generated)
    if kept is None:
        full = report.full()
        stand_in = Report(**{**full.__dict__, "document": {**full.document, "generated": _GENERATED}})
        kept = _render(stand_in, fmt)
        if kept.count(_GENERATED) > 1:
            return _render(full, fmt)
        report.texts.put(report.key, fmt, kept)
        kept = kept.replace(_GENERATED, report.generated)
    return kept


def streamed(report: Report, fmt: str, output: Path | None) -> bool:
    """Write a kept report's text and a final newline to output (else stdout) piece by piece; False if it cannot.

    What render() would return, byte for byte, without the whole text in memory at
    once: a report of 300,000 households is 180 MB of JSON (and 2 to 4 bytes a
    character as a Python string). Only a StoredReport whose kept pieces can be
    streamed in fmt is; anything else is rendered whole by the caller.
    A regular file appears complete or not at all, as write_output writes it.
    """
    if not isinstance(report, StoredReport) or fmt not in KEPT_FORMATS:
        return False
    stream = getattr(report.texts, "chunks", None)
    chunks = stream(report.key, fmt, _GENERATED, report.generated) if stream else None
    if chunks is None:
        return False
    from archivectl.facts import collector_paused

    with collector_paused(), _sink(output) as sink:
        for chunk in chunks:
            if isinstance(chunk, bytes):
                sink.write(chunk)
            else:  # an open file, checked already: copied by the kernel where it can be
                _copy(chunk, sink)
        sink.write(b"\n")
    return True


def _copy(source: BinaryIO, sink: BinaryIO) -> None:
    """The rest of source into sink: os.sendfile between their descriptors, else read and written in blocks."""
    import io
    import os
    import shutil

    sink.flush()
    try:
        into, out_of = sink.fileno(), source.fileno()
        while os.sendfile(into, out_of, None, 1 << 24):
            pass
        return
    except (AttributeError, io.UnsupportedOperation, OSError):
        pass  # no descriptor, or one sendfile cannot write to: what is left is copied from where it stopped
    shutil.copyfileobj(source, sink, 1 << 20)


@contextlib.contextmanager
def _sink(output: Path | None) -> Iterator[BinaryIO]:
    """A binary file to write output through (atomically when it is a regular file), or stdout's."""
    import os
    import stat
    import sys
    import tempfile

    from archivectl.errors import ArchiveError

    if output is None:
        sys.stdout.flush()
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    try:
        regular = stat.S_ISREG(output.stat().st_mode)
    except FileNotFoundError:
        regular = True
    except OSError as exc:
        raise ArchiveError(_("cannot write {path}: {strerror}").format(path=output, strerror=exc.strerror)) from None
    if output.is_dir():
        raise ArchiveError(_("cannot write {path}: it is a directory").format(path=output))
    try:
        if not regular:
            with open(output, "wb") as fh:
                yield fh
            return
        fd, tmp = tempfile.mkstemp(prefix=f".{output.name}.", dir=output.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                yield fh
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o644 & ~_umask())
            os.replace(tmp, output)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as exc:
        raise ArchiveError(_("cannot write {path}: {strerror}").format(path=output, strerror=exc.strerror)) from None


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


def _render(report: Report, fmt: str) -> str:
    if fmt == "json":
        return json_text(report.document)
    if fmt == "csv":
        if report.csv_rows is None:
            return sections_csv(report.sections)
        section = report.csv_rows
        return render_rows(section.cells(), "csv") if section.rows else ",".join(section.columns or [])
    if fmt == "html":
        return _html(report)
    parts = [report.title, report.summary] if fmt == "table" else [f"# {report.title}", "", report.summary]
    for section in report.sections:
        if fmt == "table":
            body = render_rows(section.cells(shown=True), fmt, title=section.title) if section.rows else None
            parts.append(body or _("{title}: none").format(title=section.title))
        else:
            shown = render_rows(section.cells(shown=True), fmt) if section.rows else _("(none)")
            parts += ["", f"## {section.title}", "", shown]
    return "\n".join(p for p in parts if p is not None).rstrip("\n")


def sections_csv(sections: list[Section]) -> str:
    """Every section's rows in one CSV: a first column `section` (its key), then every section's columns."""
    columns: dict[str, None] = {"section": None}
    tables = []
    for section in sections:
        cells = section.cells()
        for column in section.columns or (list(cells[0]) if cells else []):
            columns.setdefault(column)
        tables.append((section.key or section.title, cells))
    rows = [{"section": name, **cell} for name, cells in tables for cell in cells]
    if not rows:
        return ",".join(columns)
    return render_rows([{c: row.get(c, "") for c in columns} for row in rows], "csv")


def json_text(document: Any) -> str:
    """json.dumps(document, ensure_ascii=False, indent=2), character for character, several times faster.

    The standard library indents with its pure-Python encoder (seconds for
    100,000 rows); this walks the same way with the C string encoder. Anything
    it does not know (a type json would refuse or convert) goes to json.dumps.
    """
    out: list[str] = []
    try:
        _encode(document, "\n", out)
    except _Unknown:
        return json.dumps(document, ensure_ascii=False, indent=2)
    return "".join(out)


def json_text_in(value: Any, newline: str) -> str | None:
    """value as json_text writes it after newline (a line break and the indentation there); None if it cannot."""
    out: list[str] = []
    try:
        _encode(value, newline, out)
    except _Unknown:
        return None
    return "".join(out)


class _Unknown(Exception):
    pass


def _float(value: float) -> str:
    if value != value:
        return "NaN"
    if value == float("inf"):
        return "Infinity"
    if value == float("-inf"):
        return "-Infinity"
    return float.__repr__(value)


def _encode(value: Any, newline: str, out: list[str]) -> None:
    """Append value as json.dumps(indent=2) writes it at the indentation newline ends with (json's order of checks)."""
    if isinstance(value, str):
        out.append(_quote(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(int.__repr__(value))
    elif isinstance(value, float):
        out.append(_float(value))
    elif isinstance(value, (list, tuple)):
        if not value:
            out.append("[]")
            return
        inner = newline + "  "
        out.append("[")
        for i, item in enumerate(value):
            out.append(inner if i == 0 else "," + inner)
            _encode(item, inner, out)
        out.append(newline + "]")
    elif isinstance(value, dict):
        if not value:
            out.append("{}")
            return
        inner = newline + "  "
        flat = _flat_dict(value, inner)
        if flat is not None:
            out.append(flat)
            return
        out.append("{")
        first = True
        for key, item in value.items():
            if isinstance(key, str):
                name = key
            elif isinstance(key, float):
                name = _float(key)
            elif key is True:
                name = "true"
            elif key is False:
                name = "false"
            elif key is None:
                name = "null"
            elif isinstance(key, int):
                name = int.__repr__(key)
            else:
                raise _Unknown
            out.append(inner if first else "," + inner)
            first = False
            out.append(_quote(name) + ": ")
            _encode(item, inner, out)
        out.append(newline + "}")
    else:
        raise _Unknown


def _flat_dict(value: dict, inner: str) -> str | None:
    """A dict of strings, numbers, booleans, None and lists of strings (a report's row) in one go, or None."""
    pieces = []
    deeper = inner + "  "
    for key, item in value.items():
        kind = type(item)
        if type(key) is not str:
            return None
        if kind is str:
            text = _quote(item)
        elif kind is list:
            if not item:
                text = "[]"
            elif all(type(x) is str for x in item):
                text = "[" + deeper + ("," + deeper).join(map(_quote, item)) + inner + "]"
            else:
                return None
        elif item is None:
            text = "null"
        elif item is True:
            text = "true"
        elif item is False:
            text = "false"
        elif kind is int:
            text = int.__repr__(item)
        else:
            return None
        pieces.append(_quote(key) + ": " + text)
    return "{" + inner + ("," + inner).join(pieces) + inner[:-2] + "}"


_quote = json.encoder.encode_basestring  # type: ignore[attr-defined]  # ensure_ascii=False's string encoder


_STYLE = (
    "body{font-family:system-ui,'Noto Sans CJK SC',sans-serif;margin:2em;color:#222;max-width:1100px}"
    ".meta{color:#555;margin-top:-0.5em}"
    "table{border-collapse:collapse;margin:0.5em 0 1.5em;width:100%}"
    "th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}"
    "th{background:#f3f3f3;font-weight:600}th small{display:block;font-weight:normal;color:#777}"
    "@page{size:A4;margin:15mm}"
    "@media print{body{margin:0;font-size:10pt;max-width:none}h2{break-after:avoid}tr{break-inside:avoid}"
    "th{background:#eee !important;-webkit-print-color-adjust:exact;print-color-adjust:exact}}"
)


def _header(column: str) -> str:
    label = LABELS.get(column)
    if label is None:
        return html.escape(column.replace("_", " "))
    return f"{html.escape(label)}<small>{html.escape(column)}</small>"


def _html(report: Report) -> str:
    esc = html.escape
    generated = str(report.document.get("generated", ""))[:16].replace("T", " ")
    out = [
        "<!DOCTYPE html>",
        '<html lang="zh-CN"><head><meta charset="utf-8">',
        f"<title>{esc(report.title)}</title>",
        f"<style>{_STYLE}</style>",
        "</head><body>",
        f"<h1>{esc(report.title)}</h1>",
        f'<p class="meta">{esc(str(report.document.get("archive", "")))} · {esc(generated)}</p>',
        f"<p>{esc(report.summary)}</p>",
    ]
    if report.chart:
        out.append(_svg_bars(report.chart, report.chart_title))
    for section in report.sections:
        cells = section.cells(shown=True)
        out.append(f"<h2>{esc(section.title)}</h2>")
        if not cells:
            out.append(f"<p>{esc(_('(none)'))}</p>")
            continue
        cols = list(cells[0])
        out.append("<table><thead><tr>" + "".join(f"<th>{_header(c)}</th>" for c in cols) + "</tr></thead><tbody>")
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
        track = width - label_w - 60
        w = max(0.0, min(100.0, value)) / 100 * track
        parts.append(f'<text x="0" y="{y + 16}" font-size="13">{esc(label)}</text>')
        # the track shows every building, even one at 0 %
        parts.append(f'<rect x="{label_w}" y="{y}" width="{track}" height="{bar_h}" fill="#e6e6e6"/>')
        parts.append(f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="#3b7dd8"/>')
        parts.append(f'<text x="{label_w + track + 6}" y="{y + 16}" font-size="13">{value:.0f}%</text>')
    parts.append("</svg>")
    return "\n".join(parts)
