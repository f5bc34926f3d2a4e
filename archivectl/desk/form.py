"""The clerk's new-household form, generated from household.schema.json, and its answers as --set pairs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from archivectl.i18n import N_, _

# What a person reads for a field or list of the household schema (its JSON name stays the input's name).
# A field the schema adds later without a label here is shown by its name; a schema `title` is shown too.
LABELS = {
    "household": N_("household"),
    "building": N_("building"),
    "floor": N_("floor"),
    "unit": N_("unit"),
    "category": N_("category"),
    "occupancy": N_("occupancy"),
    "customers": N_("customer"),
    "role": N_("role"),
    "name": N_("name"),
    "birth_date": N_("birth date"),
    "phone": N_("phone"),
    "id_type": N_("ID document type"),
    "id_number": N_("ID number"),
    "mailing_address": N_("mailing address"),
    "employer": N_("employer"),
    "hobbies": N_("hobbies"),
    "family": N_("family situation"),
    "emergency_contacts": N_("emergency contact"),
    "relation": N_("relation"),
    "vehicles": N_("vehicle"),
    "plate": N_("licence plate"),
    "parking_space": N_("parking space"),
    "handover_date": N_("hand-over date"),
    "move_in_date": N_("move-in date"),
    "renovation": N_("renovation"),
    "started": N_("started"),
    "finished": N_("finished"),
    "permit_no": N_("permit number"),
    "special_requests": N_("special requests"),
    "notes": N_("notes"),
    "violations": N_("violation"),
    "arrears": N_("arrears"),
    "repairs": N_("repair"),
    "date": N_("date"),
    "summary": N_("summary"),
    "amount": N_("amount"),
    "settled": N_("settled"),
}
# The words for the schema's choices (the value sent stays the schema's).
CHOICES = {
    "handed-over": N_("handed over"),
    "not-handed-over": N_("not handed over"),
    "special": N_("special"),
    "owner-occupied": N_("owner-occupied"),
    "rented": N_("rented"),
    "vacant": N_("vacant"),
    "owner": N_("owner"),
    "co-owner": N_("co-owner"),
    "tenant": N_("tenant"),
    "resident": N_("resident"),
    "resident-id": N_("resident ID card"),
    "passport": N_("passport"),
    "hk-macao-permit": N_("Hong Kong and Macao permit"),
    "taiwan-permit": N_("Taiwan permit"),
    "other": N_("other"),
    "true": N_("yes"),
    "false": N_("no"),
}


def label(name: str) -> str:
    """A field's or list's name as a person reads it, in the interface's language."""
    known = LABELS.get(name)
    return _(known) if known else name.replace("_", " ")


def choice(value: str) -> str:
    """A schema choice as a person reads it (the value itself when it has no words)."""
    known = CHOICES.get(value)
    return _(known) if known else value


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
    title: str = ""  # the schema's title for the field, shown beside the label when it says more

    def choice_labels(self) -> list[tuple[str, str]]:
        """(value, words) of each choice."""
        return [(c, choice(c)) for c in self.choices]


@dataclass
class Group:
    """A heading and its fields: the household itself, one entry of a list, or a nested object."""

    title: str
    fields: list[Field] = field(default_factory=list)
    row_of: str | None = None  # the list a row belongs to: its required fields bind only when the row is used
    heading: str = ""  # what a person reads: the list's or object's label (a row's number after it), its title

    def __post_init__(self) -> None:
        if not self.heading:
            name, _sep, index = self.title.partition(".")
            self.heading = f"{label(name)} {int(index) + 1}" if index.isdigit() else label(name)


def groups(schema: Any, rows: dict[str, int] | None = None) -> list[Group]:
    """The form's groups, in the schema's order of properties.

    rows: how many entries of each list to offer (an edit: those the household has and one more);
    by default a new household's (ROWS).
    """
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
            for i in range((rows or ROWS).get(name, DEFAULT_ROWS)):
                group = Group(f"{name}.{i}", row_of=f"{name}.{i}")
                group.heading += _titled(node)
                _object_fields(schema, schema.resolve(node["items"]), f"{name}.{i}", personal, group)
                found.append(group)
        elif node.get("type") == "object":
            group = Group(name)
            group.heading += _titled(node)
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


def _titled(node: dict) -> str:
    """The schema's title of a list or object, to follow its heading (a separator before it), or nothing."""
    title = str(node.get("title") or "").strip()
    return f" · {title}" if title else ""


def _field(schema: Any, node: dict, path: str, required: bool, personal: bool) -> Field:
    name = path.rsplit(".", 1)[-1]
    check = "id" if name == "id_number" else "phone" if node.get("format") == "cn-phone" else ""
    words = label(name)
    title = str(node.get("title") or "").strip()
    title = "" if title == words else title
    kind = node.get("type")
    if "enum" in node:
        kind_shown, choices = "select", tuple(str(v) for v in node["enum"])
    elif kind == "boolean":
        kind_shown, choices, check = "select", ("true", "false"), ""
    elif kind in ("integer", "number"):
        kind_shown, choices, check = "number", (), ""
    elif node.get("format") == "date":
        kind_shown, choices, check = "date", (), ""
    elif kind == "array":
        kind_shown, choices, check = "list", (), ""
    else:
        kind_shown, choices = "text", ()
    return Field(path, words, kind_shown, required, choices, personal, check, title)


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


# ---------------------------------------------------------------------- an existing household's form


def rows_for(record: dict) -> dict[str, int]:
    """Rows to offer for each list of entries: the household's own, and one more for a new entry."""
    return {k: len(v) + 1 for k, v in record.items() if isinstance(v, list) and all(isinstance(e, dict) for e in v)}


def as_typed(value: Any) -> str:
    """A stored value as its input shows it (and as the answer is compared with, to see what changed)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def values_of(record: dict, all_groups: list[Group]) -> dict[str, str]:
    """Each field's current value as its input shows it (fields the record does not hold are left out)."""
    shown = {}
    for group in all_groups:
        for f in group.fields:
            node: Any = record
            for part in f.path.split("."):
                if isinstance(node, dict):
                    node = node.get(part)
                elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                    node = node[int(part)]
                else:
                    node = None
                if node is None:
                    break
            if node is not None and node != [] and node != {}:
                shown[f.path] = as_typed(node)
    return shown


def _items(value: str) -> list[str]:
    return [v.strip() for v in value.replace("，", ",").replace("、", ",").split(",") if v.strip()]


def edit_changes(form: Any, all_groups: list[Group], shown: dict[str, str]) -> tuple[list[str], list[str]]:
    """What the answers change, as `archivectl edit` takes it: (--set FIELD=VALUE pairs, --unset FIELD paths).

    An input the form did not send (a field only commands change) changes nothing; an input left as it
    was shown changes nothing; one emptied is unset; an entry whose every shown value was emptied is
    removed whole. Unsets come last in edit, so they go from the highest index down (nothing moves
    under a later one).
    """
    sets: list[str] = []
    unsets: list[str] = []
    for group in all_groups:
        answered = [(f, form.get(f.path)) for f in group.fields]
        answered = [(f, v.strip()) for f, v in answered if v is not None]
        emptied = [f for f, v in answered if not v and f.path in shown]
        had = [f for f in group.fields if f.path in shown]
        whole = len(answered) == len(group.fields)  # an entry with a field not on the page (sealed) is kept
        if group.row_of and whole and had and len(emptied) == len(had) and not any(v for _f, v in answered):
            unsets.append(group.row_of)  # the whole entry
            continue
        for f, value in answered:
            before = shown.get(f.path, "")
            if value == before or (f.kind == "list" and _items(value) == _items(before)):
                continue
            if not value:
                unsets.append(f.path)
            elif f.kind == "list":
                new, old = _items(value), _items(before)
                sets += [f"{f.path}.{i}={item}" for i, item in enumerate(new)]
                unsets += [f"{f.path}.{i}" for i in range(len(new), len(old))]
            else:
                sets.append(f"{f.path}={value}")
    return sets, sorted(unsets, key=_from_the_end)


def _from_the_end(path: str) -> tuple:
    """Sort key: a later index of the same list first (removing it moves none of the earlier ones)."""
    return tuple((-int(p), "") if p.isdigit() else (0, p) for p in path.split("."))
