"""report completeness (P5): which documents and fields each household still lacks.

The rules are schemas/completeness.schema.json (per category and occupancy, if/then):
an office changes what is required there, not here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from archivectl import schema
from archivectl.archive import Archive
from archivectl.facts import households, place_key
from archivectl.reports.cache import cached_report, digest
from archivectl.reports.render import Report, Section


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
    )


def _report(archive: Archive, found: dict[str, Any], generated: str) -> Report:
    """The report of what _find found."""
    overall, buildings, rows, by_type, invalid = (
        found["overall"],
        found["buildings"],
        found["households"],
        found["missing_by_type"],
        found["invalid"],
    )
    total, done = overall["households"], overall["complete"]
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
        title=f"Completeness (P5) — {archive.settings.name}",
        document=document,
        sections=[
            Section("Missing documents by type (chase these first)", by_type, ["label", "document", "households"]),
            Section("By building", buildings, ["building", "households", "complete", "incomplete", "rate"]),
            Section("Incomplete households", incomplete, [*PLACE, "missing_labels", "missing_fields"]),
            *([Section("Invalid record files", invalid, ["file", "problem"])] if invalid else []),
        ],
        chart=[(b["building"], b["rate"]) for b in buildings],
        chart_title="Complete dossiers per building (%)",
        summary=f"{done} of {total} active households complete ({overall['rate']}%); {total - done} incomplete."
        + (f" {len(invalid)} record files are invalid." if invalid else ""),
        act_on=bool(incomplete or invalid),
        csv_rows=Section("Households", rows, [*PLACE, "complete", "missing_documents", "missing_fields"]),
    )


def _find(archive: Archive, progress: Callable[[int, int], None] | None) -> dict[str, Any]:
    """What the report shows, from the records and the completeness schema (cached by the tree read)."""
    doc = schema.load_json(archive.schemas_dir / "completeness.schema.json")
    rules = compile_rules(doc)
    validator = schema.validator_for(doc) if rules is None else None
    labels = _labels(doc, {})
    rows, per_building, memo, invalid = [], {}, {}, []
    for facts in households(archive, progress):
        if facts.get("invalid"):  # unreadable (hostile or damaged): named, never fatal to the report
            invalid.append({"file": facts["path"], "problem": "not a readable record (see archivectl validate)"})
            continue
        if facts.get("status") != "active":
            continue
        docs, fields = (
            _missing_by_rules_memo(rules, facts, memo) if rules is not None else missing(validator, facts, memo)
        )
        complete = not docs and not fields
        building = str(facts.get("building"))
        stats = per_building.setdefault(building, {"building": building, "households": 0, "complete": 0})
        stats["households"] += 1
        stats["complete"] += int(complete)
        rows.append(
            {
                "archive_no": facts["archive_no"],
                "building": building,
                "floor": facts.get("floor"),
                "unit": facts.get("unit"),
                "category": facts.get("category"),
                "occupancy": facts.get("occupancy"),
                "complete": complete,
                "missing_documents": docs,
                "missing_fields": fields,
                "missing_labels": [labels.get(d, d) for d in docs],
            }
        )
    rows.sort(key=place_key)
    buildings = []
    for b in sorted(per_building.values(), key=lambda s: s["building"]):
        buildings.append(
            {**b, "incomplete": b["households"] - b["complete"], "rate": _rate(b["complete"], b["households"])}
        )
    total = sum(b["households"] for b in buildings)
    done = sum(b["complete"] for b in buildings)
    overall = {"households": total, "complete": done, "incomplete": total - done, "rate": _rate(done, total)}
    chase = Counter(d for r in rows if not r["complete"] for d in r["missing_documents"])
    by_type = [
        {"document": d, "label": labels.get(d, d), "households": n}
        for d, n in sorted(chase.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    return {
        "overall": overall,
        "buildings": buildings,
        "households": rows,
        "missing_by_type": by_type,
        "invalid": invalid,
    }


def _rate(part: int, whole: int) -> float:
    return round(100 * part / whole, 1) if whole else 100.0
