"""The clerk's new-household form, generated from household.schema.json, and its answers as --set pairs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# How many rows a list of entries offers on a new household's form (more: add them later with edit).
ROWS = {"customers": 2}
DEFAULT_ROWS = 1
# Written by commands, never typed into a new household (add refuses the first five; review writes the last).
NOT_ON_THE_FORM = ("archive_no", "status", "documents", "tombstone", "moved_out", "last_reviewed")


@dataclass
class Field:
    """One input: its --set path, label, kind (text, number, date, select, list) and choices."""

    path: str
    label: str
    kind: str
    required: bool = False
    choices: tuple[str, ...] = ()
    personal: bool = False
    check: str = ""  # "id" or "phone": checked as typed (by the server's own functions)


@dataclass
class Group:
    """A heading and its fields: the household itself, one entry of a list, or a nested object."""

    title: str
    fields: list[Field] = field(default_factory=list)
    row_of: str | None = None  # the list a row belongs to: its required fields bind only when the row is used


def groups(schema: Any) -> list[Group]:
    """The form's groups, in the schema's order of properties."""
    root = schema.resolve(schema.doc)
    required = set(root.get("required", []))
    top = Group("household")
    found = [top]
    for name, raw in root.get("properties", {}).items():
        if name in NOT_ON_THE_FORM:
            continue
        node = schema.resolve(raw)
        personal = bool(node.get("x-sensitive"))
        if node.get("type") == "array" and schema.resolve(node.get("items", {})).get("type") == "object":
            for i in range(ROWS.get(name, DEFAULT_ROWS)):
                group = Group(f"{name}.{i}", row_of=f"{name}.{i}")
                _object_fields(schema, schema.resolve(node["items"]), f"{name}.{i}", personal, group)
                found.append(group)
        elif node.get("type") == "object":
            group = Group(name)
            _object_fields(schema, node, name, personal, group)
            found.append(group)
        else:
            top.fields.append(_field(schema, node, name, name in required, personal))
    return found


def _object_fields(schema: Any, node: dict, prefix: str, personal: bool, group: Group) -> None:
    required = set(node.get("required", []))
    for name, raw in node.get("properties", {}).items():
        sub = schema.resolve(raw)
        group.fields.append(
            _field(schema, sub, f"{prefix}.{name}", name in required, personal or bool(sub.get("x-sensitive")))
        )


def _field(schema: Any, node: dict, path: str, required: bool, personal: bool) -> Field:
    label = path.rsplit(".", 1)[-1]
    check = "id" if label == "id_number" else "phone" if node.get("format") == "cn-phone" else ""
    if "enum" in node:
        return Field(path, label, "select", required, tuple(str(v) for v in node["enum"]), personal, check)
    kind = node.get("type")
    if kind == "boolean":
        return Field(path, label, "select", required, ("true", "false"), personal)
    if kind in ("integer", "number"):
        return Field(path, label, "number", required, (), personal)
    if node.get("format") == "date":
        return Field(path, label, "date", required, (), personal)
    if kind == "array":
        return Field(path, label, "list", required, (), personal)
    return Field(path, label, "text", required, (), personal, check)


def set_pairs(form: Any, all_groups: list[Group]) -> list[str]:
    """The answers as `--set FIELD=VALUE` pairs, exactly as the CLI's add takes them (empty inputs left out).

    A list of words (hobbies) is one input, its items separated by commas; each becomes FIELD.N.
    Entries are numbered from 0 in the order they are filled in, so a skipped row leaves no gap.
    """
    pairs: list[str] = []
    used: dict[str, int] = {}
    for group in all_groups:
        filled = [(f, form.get(f.path, "").strip()) for f in group.fields]
        filled = [(f, v) for f, v in filled if v]
        if not filled:
            continue
        rename = None
        if group.row_of:
            name = group.row_of.rsplit(".", 1)[0]
            rename = (group.row_of, f"{name}.{used.get(name, 0)}")
            used[name] = used.get(name, 0) + 1
        for f, value in filled:
            path = f.path.replace(rename[0], rename[1], 1) if rename else f.path
            if f.kind == "list":
                items = [v.strip() for v in value.replace("，", ",").replace("、", ",").split(",") if v.strip()]
                pairs += [f"{path}.{i}={item}" for i, item in enumerate(items)]
            else:
                pairs.append(f"{path}={value}")
    return pairs
