"""report completeness (P5): which documents and fields each household still lacks.

The rules are schemas/completeness.schema.json (per category and occupancy, if/then):
an office changes what is required there, not here.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from archivectl import schema
from archivectl.archive import Archive
from archivectl.facts import (
    CACHE_VERSION,
    building_of,
    building_trees,
    cache_dir,
    households,
    place_key,
    read_json,
    write_json,
)
from archivectl.files import keep
from archivectl.i18n import _
from archivectl.reports.cache import cached_report, digest
from archivectl.reports.render import Report, Section, json_text, json_text_in


def _labels(node: Any, found: dict[str, str]) -> dict[str, str]:
    """const -> x-label for every requirement in the completeness schema."""
    if isinstance(node, dict):
        if "contains" in node and isinstance(node["contains"], dict) and "const" in node["contains"]:
            found.setdefault(str(node["contains"]["const"]), str(node.get("x-label", node["contains"]["const"])))
        for value in node.values():
            _labels(value, found)
    elif isinstance(node, list):
        for item in node:
            _labels(item, found)
    return found


def missing(validator: Any, facts: dict[str, Any], memo: dict | None = None) -> tuple[list[str], list[str]]:
    """(missing document types, missing fields) for one household's clear facts.

    Households with the same category, occupancy, documents and fields have the
    same answer, so memo (shared across a run) saves validating each one.
    """
    summary = {
        "category": facts.get("category"),
        "occupancy": facts.get("occupancy"),
        "renovation": bool(facts.get("renovation")),
        "documents": sorted({str(d[0]) for d in facts.get("documents") or []}),
        "fields": [str(f) for f in facts.get("fields") or []],
    }
    key = (
        str(summary["category"]),
        str(summary["occupancy"]),
        summary["renovation"],
        tuple(summary["documents"]),
        tuple(summary["fields"]),
    )
    if memo is not None and key in memo:
        return memo[key]
    docs, fields = set(), set()
    for err in validator.iter_errors(summary):
        for leaf in [err, *(err.context or [])]:
            if leaf.validator == "contains" and isinstance(leaf.validator_value, dict):
                target = docs if list(leaf.absolute_path)[:1] == ["documents"] else fields
                target.add(str(leaf.validator_value.get("const")))
    answer = (sorted(docs), sorted(fields))
    if memo is not None:
        memo[key] = answer
    return answer


PLACE = ["archive_no", "building", "floor", "unit", "category", "occupancy"]
Rule = tuple[dict[str, tuple[Any, ...]], dict[str, tuple[str, ...]]]


def compile_rules(doc: Any) -> list[Rule] | None:
    """The completeness schema as plain rules, when it uses only the usual shape.

    The usual shape is `allOf` of `if` (properties with const or enum) / `then`
    (properties.<list>.allOf of contains-const). Anything else returns None and
    the report falls back to full JSON Schema validation: same answers, slower.
    """
    if not isinstance(doc, dict) or set(doc) - {"$schema", "$id", "title", "description", "type", "allOf"}:
        return None
    rules: list[Rule] = []
    for item in doc.get("allOf", []):
        if not isinstance(item, dict) or set(item) - {"if", "then", "description"}:
            return None
        cond = item.get("if", {})
        if not isinstance(cond, dict) or set(cond) - {"properties", "required"}:
            return None
        when: dict[str, tuple[Any, ...]] = {}
        for name, test in cond.get("properties", {}).items():
            if not isinstance(test, dict) or set(test) - {"const", "enum"}:
                return None
            when[name] = (test["const"],) if "const" in test else tuple(test.get("enum", ()))
        if set(cond.get("required", [])) - set(when):
            return None
        needs: dict[str, tuple[str, ...]] = {}
        then = item.get("then", {})
        if not isinstance(then, dict) or set(then) - {"properties"}:
            return None
        for target, spec in then.get("properties", {}).items():
            if not isinstance(spec, dict) or set(spec) - {"allOf"}:
                return None
            consts = []
            for req in spec["allOf"]:
                contains = req.get("contains") if isinstance(req, dict) else None
                if not isinstance(contains, dict) or set(contains) != {"const"} or set(req) - {"contains", "x-label"}:
                    return None
                consts.append(str(contains["const"]))
            needs[target] = tuple(consts)
        rules.append((when, needs))
    return rules


def missing_by_rules(rules: list[Rule], facts: dict[str, Any]) -> tuple[list[str], list[str]]:
    """missing() for a compiled schema: the same answer without a JSON Schema validator."""
    summary = {
        "category": facts.get("category"),
        "occupancy": facts.get("occupancy"),
        "renovation": bool(facts.get("renovation")),
    }
    present = {
        "documents": {str(d[0]) for d in facts.get("documents") or []},
        "fields": {str(f) for f in facts.get("fields") or []},
    }
    lacking: dict[str, set[str]] = {"documents": set(), "fields": set()}
    for when, needs in rules:
        if all(name in summary and summary[name] in allowed for name, allowed in when.items()):
            for target, consts in needs.items():
                lacking.setdefault(target, set()).update(c for c in consts if c not in present.get(target, set()))
    return sorted(lacking["documents"]), sorted(lacking["fields"])


def _missing_by_rules_memo(rules: list[Rule], facts: dict[str, Any], memo: dict) -> tuple[list[str], list[str]]:
    """missing_by_rules(), once per distinct (category, occupancy, renovation, documents, fields) in a run."""
    try:
        key = (
            facts.get("category"),
            facts.get("occupancy"),
            bool(facts.get("renovation")),
            frozenset(str(d[0]) for d in facts.get("documents") or []),
            frozenset(str(f) for f in facts.get("fields") or []),
        )
        found = memo.get(key)
    except TypeError:  # an unhashable category or occupancy (a hand-made record): no memo
        return missing_by_rules(rules, facts)
    if found is None:
        found = memo[key] = missing_by_rules(rules, facts)
    return found


def completeness(archive: Archive, progress: Callable[[int, int], None] | None = None) -> Report:
    """Per active household: what is missing; per building and overall: how complete."""
    rules_file = archive.schemas_dir / "completeness.schema.json"
    return cached_report(
        archive,
        "completeness",
        [digest(rules_file), archive.settings.name],
        lambda: _find(archive, progress),
        lambda found, generated: _report(archive, found, generated),
        lambda: _by_building(archive, progress),
    )


def _summary(overall: dict[str, Any], invalid: list[Any]) -> str:
    total, done = overall["households"], overall["complete"]
    text = _("{done} of {total} active households complete ({rate}%); {incomplete} incomplete.").format(
        done=done, total=total, rate=overall["rate"], incomplete=total - done
    )
    return text + (" " + _("{count} record files are invalid.").format(count=len(invalid)) if invalid else "")


def _report(archive: Archive, found: dict[str, Any], generated: str) -> Report:
    """The report of what _find found."""
    overall, buildings, rows, by_type, invalid = (
        found["overall"],
        found["buildings"],
        found["households"],
        found["missing_by_type"],
        found["invalid"],
    )
    incomplete = [r for r in rows if not r["complete"]]
    document = {
        "report": "completeness",
        "archive": archive.settings.name,
        "generated": generated,
        "overall": overall,
        "buildings": buildings,
        "households": rows,
        "missing_by_type": by_type,  # what the office should chase first
        **({"invalid": invalid} if invalid else {}),  # record files that cannot be read at all
    }
    return Report(
        name="completeness",
        title=_("Completeness (P5) — {name}").format(name=archive.settings.name),
        document=document,
        sections=[
            Section(_("Missing documents by type (chase these first)"), by_type, ["label", "document", "households"]),
            Section(_("By building"), buildings, ["building", "households", "complete", "incomplete", "rate"]),
            Section(_("Incomplete households"), incomplete, [*PLACE, "missing_labels", "missing_fields"]),
            *([Section(_("Invalid record files"), invalid, ["file", "problem"])] if invalid else []),
        ],
        chart=[(b["building"], b["rate"]) for b in buildings],
        chart_title=_("Complete dossiers per building (%)"),
        summary=_summary(overall, invalid),
        act_on=bool(incomplete or invalid),
        csv_rows=Section(_("Households"), rows, [*PLACE, "complete", "missing_documents", "missing_fields"]),
    )


class _Rules:
    """The completeness schema as this report applies it: compiled rules (or a validator) and labels."""

    def __init__(self, archive: Archive) -> None:
        doc = schema.load_json(archive.schemas_dir / "completeness.schema.json")
        self.rules = compile_rules(doc)
        self.validator = schema.validator_for(doc) if self.rules is None else None
        self.labels = _labels(doc, {})
        self.memo: dict = {}

    def missing(self, facts: dict[str, Any]) -> tuple[list[str], list[str]]:
        if self.rules is not None:
            return _missing_by_rules_memo(self.rules, facts, self.memo)
        return missing(self.validator, facts, self.memo)


def _rows(rules: _Rules, households: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """(a row per active household, sorted by place; the unreadable record files) of these households."""
    rows, invalid = [], []
    for facts in households:
        if facts.get("invalid"):  # unreadable (hostile or damaged): named, never fatal to the report
            invalid.append({"file": facts["path"], "problem": "not a readable record (see archivectl validate)"})
            continue
        if facts.get("status") != "active":
            continue
        docs, fields = rules.missing(facts)
        rows.append(
            {
                "archive_no": facts["archive_no"],
                "building": str(facts.get("building")),
                "floor": facts.get("floor"),
                "unit": facts.get("unit"),
                "category": facts.get("category"),
                "occupancy": facts.get("occupancy"),
                "complete": not docs and not fields,
                "missing_documents": docs,
                "missing_fields": fields,
                "missing_labels": [rules.labels.get(d, d) for d in docs],
            }
        )
    rows.sort(key=place_key)
    return rows, invalid


def _counts(rows: list[dict[str, Any]]) -> tuple[dict[str, list[int]], Counter]:
    """(building -> [households, complete], missing document -> incomplete households) of rows."""
    per_building: dict[str, list[int]] = {}
    for row in rows:
        stats = per_building.setdefault(row["building"], [0, 0])
        stats[0] += 1
        stats[1] += int(row["complete"])
    chase = Counter(d for r in rows if not r["complete"] for d in r["missing_documents"])
    return per_building, chase


def _totals(
    per_building: dict[str, list[int]], chase: Counter, labels: dict[str, str]
) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """(overall, buildings, missing_by_type) from the counts."""
    buildings = [
        {"building": b, "households": n, "complete": done, "incomplete": n - done, "rate": _rate(done, n)}
        for b, (n, done) in sorted(per_building.items())
    ]
    total = sum(b["households"] for b in buildings)
    done = sum(b["complete"] for b in buildings)
    overall = {"households": total, "complete": done, "incomplete": total - done, "rate": _rate(done, total)}
    by_type = [
        {"document": d, "label": labels.get(d, d), "households": n}
        for d, n in sorted(chase.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    return overall, buildings, by_type


def _find(archive: Archive, progress: Callable[[int, int], None] | None) -> dict[str, Any]:
    """What the report shows, from the records and the completeness schema (cached by the tree read)."""
    rules = _Rules(archive)
    rows, invalid = _rows(rules, households(archive, progress))
    overall, buildings, by_type = _totals(*_counts(rows), rules.labels)
    return {
        "overall": overall,
        "buildings": buildings,
        "households": rows,
        "missing_by_type": by_type,
        "invalid": invalid,
    }


# ------------------------------------------------------------------ kept per building


_PLACEHOLDER = "households-at-assembly-5d2a1"  # stands for the households array in the document's text
_ITEM = "\n    "  # where json_text puts each household of the document's households array


class _Assembled:
    """The report's head and JSON text from the parts kept per building (see _by_building)."""

    def __init__(self, archive: Archive, labels: dict[str, str], parts: list[dict[str, Any]]) -> None:
        per_building: dict[str, list[int]] = {}
        chase: Counter = Counter()
        for part in parts:
            for b, (n, done) in part["stats"].items():
                per_building[b] = [n, done]
            chase.update(part["chase"])
        self.overall, self.buildings, self.by_type = _totals(per_building, chase, labels)
        self.invalid = [item for part in parts for item in part["invalid"]]
        self.with_rows = [part for part in sorted(parts, key=lambda p: p["place"]) if part["size"]]
        self.archive_name = archive.settings.name
        self.head = {
            "name": "completeness",
            "title": _("Completeness (P5) — {name}").format(name=self.archive_name),
            "summary": _summary(self.overall, self.invalid),
            "act_on": bool(self.overall["incomplete"] or self.invalid),
            "chart_title": _("Complete dossiers per building (%)"),
            "chart": [[b["building"], b["rate"]] for b in self.buildings],
        }

    def text(self, fmt: str, stand_in: str) -> str | None:
        """The JSON document as json_text writes it for the full report; None for other formats."""
        pieces = self._pieces(fmt, stand_in)
        if pieces is None:
            return None
        before, after = pieces
        rows_texts = []
        for part in self.with_rows:
            data = _part_rows(part)
            try:
                rows_texts.append(data.decode("utf-8") if data is not None else "")
            except UnicodeDecodeError:
                data = None
            if data is None:
                return None
        households = "[" + _ITEM + ("," + _ITEM).join(rows_texts) + _ITEM[:-2] + "]" if rows_texts else "[]"
        return before + households + after

    def chunks(self, fmt: str, stand_in: str, generated: str) -> Iterator[bytes | BinaryIO] | None:
        """text() with stand_in made generated, in pieces: the head, each building's rows as kept, the tail.

        Every building's kept rows are checked (size, CRC, no stand_in) before the first
        piece is given, a block at a time, and their files are left open at their start:
        a building's piece is that open file (what was checked is what is copied, even if
        the file is replaced meanwhile), never read whole into memory nor checked twice.
        None where text() is None.
        """
        pieces = self._pieces(fmt, stand_in)
        if pieces is None:
            return None
        files: list[BinaryIO] = []
        for part in self.with_rows:
            checked = _checked_rows(part, stand_in)
            if checked is None:
                for f in files:
                    f.close()
                return None
            files.append(checked)
        before, after = pieces
        return self._stream(before.replace(stand_in, generated, 1).encode(), after.encode(), files)

    def _stream(self, before: bytes, after: bytes, files: list[BinaryIO]) -> Iterator[bytes | BinaryIO]:
        try:
            yield before
            item = _ITEM.encode()
            for n, f in enumerate(files):
                yield (b"[" if n == 0 else b",") + item
                yield f
            yield (item[:-2] + b"]") if files else b"[]"
            yield after
        finally:
            for f in files:
                f.close()

    def _pieces(self, fmt: str, stand_in: str) -> tuple[str, str] | None:
        """The JSON document's text before and after its households array (stand_in once, in before)."""
        if fmt != "json":
            return None
        document = {
            "report": "completeness",
            "archive": self.archive_name,
            "generated": stand_in,
            "overall": self.overall,
            "buildings": self.buildings,
            "households": _PLACEHOLDER,
            "missing_by_type": self.by_type,
            **({"invalid": self.invalid} if self.invalid else {}),
        }
        text = json_text(document)
        placeholder = json.dumps(_PLACEHOLDER)
        if text.count(placeholder) != 1:
            return None
        before, after = text.split(placeholder)
        return (before, after) if before.count(stand_in) == 1 and stand_in not in after else None


def _by_building(archive: Archive, progress: Callable[[int, int], None] | None) -> _Assembled | None:
    """The report's head and JSON text from results kept per building subtree: one edit remakes one building.

    None (the report is made from all rows) without a households tree, or when
    the buildings' rows do not sort building by building (a record whose
    building field names another folder's building, say).
    """
    trees = building_trees(archive)
    if trees is None:
        return None
    rules_digest = digest(archive.schemas_dir / "completeness.schema.json")
    cache = cache_dir(archive)
    parts: dict[str, dict[str, Any]] = {}
    keys = {name: _part_key(subtree, rules_digest) for name, subtree in trees.items()}
    for name in trees:
        part = _read_part(cache, name)
        if part is not None and part["key"] == keys[name]:
            parts[name] = part
    missing_parts = set(trees) - set(parts)
    if missing_parts:
        rules = _Rules(archive)
        by_name: dict[str, list[dict[str, Any]]] = {name: [] for name in missing_parts}
        for facts in households(archive, progress, only=missing_parts):
            by_name[building_of(facts["path"])].append(facts)
        for name, found in by_name.items():
            part = _part(rules, found, keys[name])
            if part is None:
                return None
            parts[name] = _write_part(cache, name, part)
    ordered = [parts[name] for name in sorted(parts, key=lambda n: (n + "/").encode("utf-8", "surrogateescape"))]
    places = [p["place"] for p in ordered if p["size"]]
    if any(p["place"] is None for p in ordered) or len(set(places)) != len(places):
        return None
    return _Assembled(archive, _Rules(archive).labels, ordered)


def _part(rules: _Rules, households: list[dict[str, Any]], key: str) -> dict[str, Any] | None:
    """One building's rows as JSON text, with what the totals need; place: the one building value its rows name."""
    rows, invalid = _rows(rules, households)
    texts = [json_text_in(row, _ITEM) for row in rows]
    if any(t is None for t in texts):
        return None
    per_building, chase = _counts(rows)
    place = next(iter(per_building)) if len(per_building) == 1 else ("" if not rows else None)
    return {
        "key": key,
        "place": place,
        "rows": ("," + _ITEM).join(texts),  # type: ignore[arg-type]
        "stats": per_building,
        "chase": dict(chase),
        "invalid": invalid,
    }


def _read_part(cache: Path, name: str) -> dict[str, Any] | None:
    """A building's part as _write_part kept it, without its rows (see _part_rows), or None (made again)."""
    part = read_json(cache / f"{_part_file(name)}.json")
    if not _part_ok(part):
        return None
    part["file"] = str(cache / f"{_part_file(name)}.txt")
    return part if part["size"] == 0 or os.path.getsize(part["file"]) == part["size"] else None


def _part_rows(part: dict[str, Any], stand_in: str | None = None) -> bytes | None:
    """A part's rows as kept (UTF-8 JSON text), or None when the file is not what its size and CRC say.

    stand_in: None too when the rows hold it (the time generated is put in its place once, in the head).
    """
    data = part.get("data")  # made by this run: in memory (its file may not have been writable)
    if data is None:
        try:
            with open(part["file"], "rb") as f:
                data = f.read()
        except OSError:
            return None
    # not decoded here: what the CRC vouches for was written as UTF-8 (decoding twice is 1 s at 297,000)
    if len(data) != part["size"] or zlib.crc32(data) != part["crc"]:
        return None
    return None if stand_in is not None and stand_in.encode() in data else data


_BLOCK = 1 << 20  # bytes of a part's rows checked at a time


def _checked_rows(part: dict[str, Any], stand_in: str) -> BinaryIO | None:
    """A part's rows as kept, open at their start once checked (size, CRC, no stand_in) a block at a time; else None."""
    data = part.get("data")  # made by this run: in memory (its file may not have been writable)
    if data is not None:
        return io.BytesIO(data) if _part_rows(part, stand_in) is not None else None
    try:
        f = open(part["file"], "rb")  # given to the caller open: closed by _Assembled._stream
    except OSError:
        return None
    needle = stand_in.encode()
    crc, length, tail = 0, 0, b""
    try:
        while block := f.read(_BLOCK):
            crc, length = zlib.crc32(block, crc), length + len(block)
            if needle in block or needle in tail + block[: len(needle) - 1]:
                length = -1
                break
            tail = block[-(len(needle) - 1) :] if len(needle) > 1 else b""
        if length == part["size"] and crc == part["crc"]:
            f.seek(0)
            return f
    except OSError:
        pass
    f.close()
    return None


def _write_part(cache: Path, name: str, part: dict[str, Any]) -> dict[str, Any]:
    """The rows' text in a file of its own (JSON would escape every quote and line break), checked by size and CRC.

    Returns the part as _read_part gives it (the rows left to their file).
    """
    data = part["rows"].encode("utf-8")
    kept = {**part, "rows": "", "size": len(data), "crc": zlib.crc32(data)}
    keep(cache / f"{_part_file(name)}.txt", data)
    write_json(cache / f"{_part_file(name)}.json", kept)
    return {**kept, "file": str(cache / f"{_part_file(name)}.txt"), "data": data}


def _part_ok(part: Any) -> bool:
    """Whether a part read back has the shape _part() gives it (a damaged file is made again)."""
    return (
        isinstance(part, dict)
        and isinstance(part.get("key"), str)
        and (part.get("place") is None or isinstance(part.get("place"), str))
        and type(part.get("size")) is int
        and type(part.get("crc")) is int
        and isinstance(part.get("stats"), dict)
        and all(isinstance(v, list) and len(v) == 2 and all(type(x) is int for x in v) for v in part["stats"].values())
        and isinstance(part.get("chase"), dict)
        and all(type(n) is int for n in part["chase"].values())
        and isinstance(part.get("invalid"), list)
        and all(isinstance(item, dict) for item in part["invalid"])
    )


def _part_key(subtree: str, rules_digest: str) -> str:
    return hashlib.sha256(json.dumps([CACHE_VERSION, "completeness-part", subtree, rules_digest]).encode()).hexdigest()


def _part_file(name: str) -> str:
    return "completeness-" + hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def _rate(part: int, whole: int) -> float:
    return round(100 * part / whole, 1) if whole else 100.0
