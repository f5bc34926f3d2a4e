"""The schemas: what a valid record is, which fields are personal, how they are masked.

Which fields are sealed is declared in household.schema.json with
"x-sensitive": true; nothing here lists field names. Messages name the field
and the rule, never the value.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from archivectl import idcheck
from archivectl.errors import UsageError
from archivectl.i18n import N_, _
from archivectl.yamlio import MAX_DEPTH, field_name

PACKAGE_SCHEMAS = Path(__file__).resolve().parent / "schemas"
SOURCE_SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
SCHEMA_FILES = ("household.schema.json", "completeness.schema.json", "staff.schema.json")
MISSING: Any = object()


def shipped_dir() -> Path:
    """The schemas that ship with archivectl (copied into every new archive)."""
    return PACKAGE_SCHEMAS if PACKAGE_SCHEMAS.is_dir() else SOURCE_SCHEMAS


def _format_checker() -> Any:
    import jsonschema

    checker = jsonschema.FormatChecker(formats=())
    for name, problem in _FORMAT_PROBLEMS.items():
        checker.checks(name, raises=ValueError)(_raising(problem))
    return checker


def _raising(problem: Any) -> Any:
    """A format check that raises the problem (the message validate() shows) instead of returning it."""

    def check(value: object) -> bool:
        found = problem(value) if isinstance(value, str) else None
        if found:
            raise ValueError(found)
        return True

    return check


def validator_for(schema_doc: dict) -> Any:
    """A JSON Schema validator for a schema document, with archivectl's formats."""
    return _validator(schema_doc)


def _validator(schema_doc: dict) -> Any:
    import jsonschema

    cls = _whole_string_patterns(jsonschema.validators.validator_for(schema_doc))
    return cls(schema_doc, format_checker=_format_checker())


@functools.cache
def _whole_string_patterns(cls: Any) -> Any:
    """cls with `pattern` read as JSON Schema means it (ECMA-262): `$` is the end of the string.

    Python's `$` also matches before a final newline, so "1203\n" would pass
    "^[0-9]+$" and become a directory name with a newline in it.
    """
    import jsonschema

    def pattern(validator: Any, rule: str, instance: Any, schema_node: dict) -> Iterator[Any]:
        if validator.is_type(instance, "string") and not ecma_pattern(rule).search(instance):
            yield jsonschema.ValidationError("does not match the pattern")

    return jsonschema.validators.extend(cls, {"pattern": pattern})


# ------------------------------------------------------------ the compiled first pass
#
# jsonschema walks the schema in Python for every record: about 0.3-1 ms for a
# household, most of an import's checking. jsonschema-rs (compiled) says
# valid or not in some 15 us. It only ever answers "valid" for the records it
# is given; a record it refuses (or cannot take: a key that is not text, bytes)
# is judged by jsonschema, which writes the messages. So it must never accept
# what jsonschema refuses: it gets archivectl's own format checks, and it is used
# only for schemas where its reading cannot differ (tests/test_validate_fast.py
# runs both over many records and requires the same verdicts).

_LOCAL_REF = "#"
_SAME_ESCAPES = frozenset("ntrfv")  # control characters: one meaning in ECMA-262, Python's re and Rust's regex
_PORTABLE_ESCAPE = re.compile(r"\\(.)", re.DOTALL)


def fast_validator_for(schema_doc: dict) -> Any:
    """A jsonschema-rs validator for schema_doc with archivectl's formats, or None when it could differ."""
    if not _portable(schema_doc):
        return None
    try:
        import jsonschema_rs
    except ImportError:  # pragma: no cover - a dependency; without it jsonschema does everything
        return None
    formats = {name: _accepts(check) for name, check in _FORMAT_PROBLEMS.items()}
    try:
        return jsonschema_rs.validator_for(schema_doc, formats=formats, validate_formats=True)
    except Exception:  # a schema it cannot compile: jsonschema alone judges (and names the fault)
        return None


def fast_accepts(fast: Any, record: Any) -> bool:
    """True when the compiled pass finds record valid; False when it refuses it or cannot read it."""
    if fast is None:
        return False
    try:
        return bool(fast.is_valid(record))
    except Exception:  # a value JSON has no place for (bytes, a number key): jsonschema will say
        return False


def _accepts(problem: Any) -> Any:
    return lambda value: not isinstance(value, str) or problem(value) is None


def _date_time_problem(value: str) -> str | None:
    try:
        dt.datetime.fromisoformat(value)
    except ValueError:
        return _("is not an ISO date and time")
    return None


# archivectl's formats: what is wrong with a text, or None; both validators use these.
_FORMAT_PROBLEMS = {
    "date": idcheck.date_problem,
    "date-time": _date_time_problem,
    "cn-phone": idcheck.phone_problem,
    "cn-resident-id": idcheck.resident_id_problem,
}


def _portable(node: Any) -> bool:
    """True when jsonschema-rs reads the schema as jsonschema does here.

    References are local; patterns use only what ECMA-262 and Python's re read
    alike once `$` means the very end (ecma_pattern): literal characters,
    classes, groups, alternation, quantifiers, escapes of punctuation and of
    control characters (\\n, \\t...; no \\d, \\w, \\b, (?...) whose meanings differ).
    """
    if isinstance(node, list):
        return all(_portable(item) for item in node)
    if not isinstance(node, dict):
        return True
    for key, value in node.items():
        if key in ("$ref", "$dynamicRef") and not (isinstance(value, str) and value.startswith(_LOCAL_REF)):
            return False
        if key == "pattern" and not (isinstance(value, str) and _portable_pattern(value)):
            return False
        if key == "patternProperties" and not all(_portable_pattern(p) for p in value):
            return False
        if key not in ("enum", "const") and not _portable(value):
            return False
    return True


def _portable_pattern(rule: str) -> bool:
    escaped = [m.group(1) for m in _PORTABLE_ESCAPE.finditer(rule)]
    return "(?" not in rule and all(c in _SAME_ESCAPES or (c.isascii() and not c.isalnum()) for c in escaped)


@functools.lru_cache(maxsize=256)
def ecma_pattern(rule: str) -> re.Pattern[str]:
    """A JSON Schema pattern compiled so that `$` (outside a [...] class) matches only at the very end."""
    out: list[str] = []
    escaped, class_start = False, -1  # class_start: where the open [...] began, or -1
    for char in rule:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif class_start < 0 and char == "[":
            class_start = len(out)
        elif class_start >= 0 and char == "]" and "".join(out[class_start:]) not in ("[", "[^"):
            class_start = -1  # a ] right after [ or [^ is a literal
        elif class_start < 0 and char == "$":
            char = r"\Z"
        out.append(char)
    return re.compile("".join(out))


def error_messages(validator: Any, instance: Any, prefix: str = "") -> list[str]:
    """Every violation as 'field.path: what is wrong', sorted, without values."""
    messages = set()
    for err in validator.iter_errors(instance):
        for leaf in _leaves(err):
            messages.add(_describe(leaf))
    return sorted(f"{prefix}{m}" for m in messages)


def _leaves(err: Any) -> Iterator[Any]:
    if err.context and err.validator in ("anyOf", "oneOf"):
        for sub in err.context:
            yield from _leaves(sub)
    else:
        yield err


def _nearest(name: Any, known: Any) -> str:
    """' (did you mean phone?)' for a mistyped field name, or ''."""
    import difflib

    near = difflib.get_close_matches(str(name), sorted(map(str, known)), n=1, cutoff=0.6)
    return _(" (did you mean {name}?)").format(name=near[0]) if near else ""


def path_text(parts: Any) -> str:
    """customers[0].phone from ('customers', 0, 'phone'); a key that is no field name shows as <key>."""
    text = ""
    for part in parts:
        name = field_name(part)
        text += f"[{part}]" if isinstance(part, int) else (f".{name}" if text else name)
    return text or "(record)"


def _describe(err: Any) -> str:
    where = path_text(err.absolute_path)
    kind, rule, inst = err.validator, err.validator_value, err.instance
    if kind == "required":
        missing = [r for r in rule if isinstance(inst, dict) and r not in inst]
        field = ".".join(p for p in [path_text(err.absolute_path), missing[0]] if p != "(record)")
        return _("{field}: required field is missing").format(field=field)
    if kind == "additionalProperties":
        known = set(err.schema.get("properties", {}))
        extra = sorted(k for k in inst if k not in known) if isinstance(inst, dict) else []
        name = extra[0] if extra else "?"
        field = ".".join(p for p in [path_text(err.absolute_path), field_name(name)] if p != "(record)")
        return _("{field}: unknown field").format(field=field) + _nearest(name, known)
    if kind in ("enum", "const"):
        allowed = rule if kind == "enum" else [rule]
        return _("{field}: must be one of {choices}").format(field=where, choices=", ".join(map(str, allowed)))
    if kind == "type":
        kinds = rule if isinstance(rule, str) else " or ".join(rule)
        return _("{field}: must be of type {kinds}").format(field=where, kinds=kinds)
    if kind == "format":
        reason = str(err.cause) if err.cause else _("is not a valid {format}").format(format=rule)
        return f"{where}: {reason}"
    if kind == "pattern":  # the schema's x-hint says it in words; a regular expression helps nobody at a desk
        return f"{where}: {err.schema.get('x-hint') or _('is not in the expected form (see the schema)')}"
    if kind in ("minLength", "maxLength", "minItems", "maxItems", "minimum", "maximum"):
        words = {
            "minLength": N_("must be at least {} characters"),
            "maxLength": N_("must be at most {} characters"),
            "minItems": N_("must have at least {} entries"),
            "maxItems": N_("must have at most {} entries"),
            "minimum": N_("must be at least {}"),
            "maximum": N_("must be at most {}"),
        }
        return f"{where}: {_(words[kind]).format(rule)}"
    if kind == "not" and isinstance(err.schema, dict) and err.schema.get("x-personal-in-clear"):
        return _("{field}: personal field must not be stored in clear (it belongs in the sealed block)").format(
            field=where
        )
    if kind == "uniqueItems":
        return _("{field}: entries must be unique").format(field=where)
    return _("{field}: fails the schema rule '{rule}'").format(field=where, rule=kind)


_ITEM = object()  # a list's item, as a step of a place in a record (mask)
_MASK_RULES_KEPT = 1000  # places kept under one place (a record's fields are some tens)


class _MaskRule:
    """How the values at one place of a record are masked: its schema node (resolved), whether it is personal
    (x-sensitive there or above), how (x-mask), and the rules of the places under it, as they are asked for."""

    __slots__ = ("how", "node", "sensitive", "under")

    def __init__(self, node: dict, sensitive: bool, how: str):
        self.node, self.sensitive, self.how = node, sensitive, how
        self.under: dict[Any, _MaskRule] = {}


class HouseholdSchema:
    """household.schema.json with the operations records need from it."""

    def __init__(self, doc: dict):
        self.doc = doc
        self._defs = doc.get("$defs", {})
        self._personal: dict[str, bool] = {}  # holds_personal, by top-level field: verify asks it of every record
        self._mask_root: _MaskRule | None = None

    @functools.cached_property
    def validator(self) -> Any:
        return _validator(self.doc)

    @functools.cached_property
    def stored_validator(self) -> Any:
        """Validates the clear part of a stored record: personal fields forbidden in clear."""
        return _validator(self._stored_doc())

    def resolve(self, node: Any) -> dict:
        """A schema node with its local $ref followed (sibling keywords win)."""
        if not isinstance(node, dict):
            return {}
        seen = 0
        while "$ref" in node and seen < 20:
            ref = node["$ref"]
            if not ref.startswith("#/$defs/"):
                raise UsageError(_("schema: only local $defs references are supported, not {ref}").format(ref=ref))
            target = self._defs.get(ref.removeprefix("#/$defs/"), {})
            node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
            seen += 1
        return node

    def child(self, node: dict, key: Any) -> dict:
        """The schema of a property or array item under node."""
        node = self.resolve(node)
        if isinstance(key, int):
            return self.resolve(node.get("items", {}))
        return self.resolve(node.get("properties", {}).get(key, {}))

    def unknown_field(self, path: list[Any]) -> str | None:
        """'customers[0].phnoe: unknown field (did you mean phone?)' when path names no field, else None."""
        node = self.resolve(self.doc)
        for i, key in enumerate(path):
            if isinstance(key, int):
                node = self.resolve(node.get("items", {}))
                continue
            props = node.get("properties")
            if props is not None and key not in props and node.get("additionalProperties") is False:
                return _("{field}: unknown field").format(field=path_text(path[: i + 1])) + _nearest(key, props)
            node = self.resolve((props or {}).get(key, {}))
        return None

    def node_at(self, path: list[Any]) -> dict:
        """The schema node at a path like ['customers', 0, 'phone']."""
        node = self.resolve(self.doc)
        for key in path:
            node = self.child(node, key)
        return node

    def choices(self, name: str) -> tuple[str, ...]:
        """The values a top-level field may take (its enum), e.g. status and category; () for a free field."""
        return tuple(str(v) for v in self.resolve(self.doc.get("properties", {}).get(name, {})).get("enum", ()))

    def holds_personal(self, name: str) -> bool:
        """True when the top-level field is personal or has a personal field inside."""
        if name not in self._personal:
            self._personal[name] = self._holds_personal(self.child(self.doc, name), 0)
        return self._personal[name]

    def _holds_personal(self, node: dict, depth: int) -> bool:
        node = self.resolve(node)
        if node.get("x-sensitive"):
            return True
        if depth > 10:
            return False
        subs = list(node.get("properties", {}).values()) + ([node["items"]] if "items" in node else [])
        return any(self._holds_personal(sub, depth + 1) for sub in subs)

    def path_holds_personal(self, path: list[Any]) -> bool:
        """True when the field at path (customers.0.phone) is personal, lies inside one, or holds one."""
        node = self.resolve(self.doc)
        for key in path:
            if node.get("x-sensitive"):
                return True
            node = self.child(node, key)
        return self._holds_personal(node, 0)

    def names_in(self, record: Any) -> list[str]:
        """Every value the schema masks as a name (x-mask: name): customers, emergency contacts.

        Looked up where the schema says names are (_name_paths, worked out
        once), not by walking the whole record with it: an import asks this
        of every row (15 us a record against about 1 us).
        """
        found: list[str] = []
        if self._name_paths is None:  # a schema that refers to itself: walk the record
            self._names(record, self.resolve(self.doc), found)
            return found
        for path in self._name_paths:
            _collect(record, path, 0, found)
        return found

    @functools.cached_property
    def _name_paths(self) -> list[tuple[str | None, ...]] | None:
        """Where x-mask: name values can be: property names, None for a list's items; None if the schema recurses."""
        paths: list[tuple[str | None, ...]] = []

        def walk(node: Any, path: tuple[str | None, ...]) -> None:
            if len(path) > _MAX_NAME_DEPTH:
                raise RecursionError
            node = self.resolve(node)
            if node.get("x-mask") == "name":
                paths.append(path)
            for key, sub in (node.get("properties") or {}).items():
                walk(sub, (*path, key))
            if "items" in node:
                walk(node["items"], (*path, None))

        try:
            walk(self.doc, ())
        except RecursionError:
            return None
        return paths

    def _names(self, value: Any, node: dict, found: list[str]) -> None:
        node = self.resolve(node)
        if isinstance(value, dict):
            for key, sub in value.items():
                self._names(sub, self.child(node, key), found)
        elif isinstance(value, list):
            for item in value:
                self._names(item, node.get("items", {}), found)
        elif isinstance(value, str) and node.get("x-mask") == "name":
            found.append(value)

    @functools.cached_property
    def fast_validator(self) -> Any:
        """A compiled first pass for validate(), or None where it cannot stand in for the validator."""
        return fast_validator_for(self.doc)

    def validate(self, record: Any) -> list[str]:
        """Problems with a record as a person writes it (personal fields in clear).

        A record the compiled first pass accepts has no schema problem (it never
        accepts what the validator refuses); every other record is judged by the
        validator itself, so every message is its own.
        """
        problems = [] if fast_accepts(self.fast_validator, record) else error_messages(self.validator, record)
        problems += _cross_checks(record) + control_characters(record)
        return sorted(set(problems))

    def validate_stored(self, clear: Any, valid_before: Any = None) -> list[str]:
        """Problems with the clear part of a record as stored in git.

        valid_before: an earlier version of the record in which this schema found no
        problem (verify has just checked it). Then only the top-level fields that
        differ from it are checked, with the required ones: the same answer, as long
        as the schema judges each top-level field on its own (_fields_judged_alone).
        """
        if isinstance(clear, dict) and isinstance(valid_before, dict) and self._fields_judged_alone:
            required = self._stored_required
            clear = {
                k: v for k, v in clear.items() if k in required or k not in valid_before or not same(v, valid_before[k])
            }
        if fast_accepts(self.fast_stored_validator, clear):
            return control_characters(clear)
        return error_messages(self.stored_validator, clear) + control_characters(clear)

    @functools.cached_property
    def fast_stored_validator(self) -> Any:
        """A compiled first pass for validate_stored(), or None where it cannot stand in for stored_validator."""
        return fast_validator_for(self._stored_doc())

    @functools.cached_property
    def _stored_required(self) -> frozenset[str]:
        return frozenset(self._stored_doc().get("required", []))

    @functools.cached_property
    def _fields_judged_alone(self) -> bool:
        """True when the stored schema's top level only types the record and judges each field by itself.

        Then a field's problems depend on its own value alone, and a record whose other
        fields are unchanged from a valid version can have problems only in the changed ones
        (or a required field gone, or an unknown one added: both changes too).
        """
        doc = self._stored_doc()
        known = {"$schema", "$id", "$comment", "title", "description", "type", "required", "properties", "$defs"}
        keywords = {k for k in doc if not k.startswith("x-")}
        return (
            doc.get("type") == "object"
            and isinstance(doc.get("additionalProperties", True), bool | dict)
            and keywords <= known | {"additionalProperties"}
        )

    def split(self, record: dict) -> tuple[dict, dict, list[str]]:
        """(clear part, sealed part, sealed field names) of a record, by x-sensitive."""
        fields: set[str] = set()
        clear, sealed = self._split(record, self.resolve(self.doc), [], fields)
        return clear, (sealed if sealed is not MISSING else {}), sorted(fields)

    def _split(self, value: Any, node: dict, path: list[str], fields: set[str]) -> tuple[Any, Any]:
        node = self.resolve(node)
        if node.get("x-sensitive"):
            _note_fields(value, path, fields)
            return MISSING, value
        if isinstance(value, dict):
            clear, sealed = {}, {}
            for key, sub in value.items():
                c, s = self._split(sub, self.child(node, key), [*path, str(key)], fields)
                if c is not MISSING:
                    clear[key] = c
                if s is not MISSING:
                    sealed[key] = s
            return clear, (sealed or MISSING)
        if isinstance(value, list):
            items = self.resolve(node.get("items", {}))
            pairs = [self._split(item, items, path, fields) for item in value]
            clear_list = [({} if c is MISSING else c) for c, _ in pairs]
            if all(s is MISSING for _, s in pairs):
                return clear_list, MISSING
            return clear_list, [(None if s is MISSING else s) for _, s in pairs]
        return value, MISSING

    def mask(self, record: Any) -> Any:
        """The record with every personal value masked (张*, 138****5678)."""
        if self._mask_root is None:
            node = self.resolve(self.doc)
            self._mask_root = _MaskRule(node, bool(node.get("x-sensitive")), node.get("x-mask", "text"))
        return self._mask(record, self._mask_root)

    def _mask(self, value: Any, rule: _MaskRule) -> Any:
        """value masked by the rule of its place (whether personal, and how to mask it: x-mask)."""
        if isinstance(value, dict):
            return {k: self._mask(v, self._mask_rule(rule, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self._mask(v, self._mask_rule(rule, _ITEM)) for v in value]
        return mask_value(value, rule.how) if rule.sensitive else value

    def _mask_rule(self, rule: _MaskRule, key: Any) -> _MaskRule:
        """The rule of a field (key) or item (_ITEM) under rule, worked out from the schema once per place:
        an import masks 20,000 records of the same shape. A dict key keeps its type (1 and 1.0 are equal keys,
        but the schema reads an int as an item index)."""
        step = key if key is _ITEM else (type(key), key)
        found = rule.under.get(step)
        if found is None:
            if key is _ITEM:  # an item of a list: the list's x-mask carries on
                node, how = self.resolve(self.resolve(rule.node.get("items", {}))), rule.how
            else:
                node, how = self.resolve(self.child(rule.node, key)), "text"
            found = _MaskRule(node, rule.sensitive or bool(node.get("x-sensitive")), node.get("x-mask", how))
            if len(rule.under) < _MASK_RULES_KEPT:
                rule.under[step] = found
        return found

    def sealed_placeholder(self, clear: dict, sealed_fields: list[str]) -> dict:
        """The clear part with '(sealed)' where personal top-level fields are present."""
        shown = dict(clear)
        for name in sealed_fields:
            if "." not in name and name not in shown:
                shown[name] = "(sealed)"
        return shown

    def _stored_doc(self) -> dict:
        doc = json.loads(json.dumps(self.doc))
        _forbid_sensitive(doc, doc.get("$defs", {}))
        props = doc.setdefault("properties", {})
        props["recipient"] = {"type": "string", "pattern": "^age1[02-9ac-hj-np-z]{58}$"}
        doc["required"] = [*doc.get("required", []), "recipient"]
        props["sealed_fields"] = {
            "type": "array",
            "items": {"type": "string", "pattern": "^[a-z_]+(\\.[a-z_]+)*$"},
            "uniqueItems": True,
        }
        props["sealed_fingerprints"] = {  # fingerprints.py: sealed field path -> keyed fingerprint
            "type": "object",
            "propertyNames": {"pattern": "^[a-z_]+(\\.([a-z_]+|[0-9]{1,6}))*$", "maxLength": 200},
            "additionalProperties": {"type": "string", "pattern": "^[0-9a-f]{16}$"},
        }
        from archivectl.blindindex import STORED_SCHEMA

        props["blind_index"] = STORED_SCHEMA  # blindindex.py: keyed fingerprints of ID and phone numbers (#27)
        props["sealed"] = {
            "type": "string",
            "pattern": "^-----BEGIN AGE ENCRYPTED FILE-----\\n[A-Za-z0-9+/=\\n]+-----END AGE ENCRYPTED FILE-----\\n?$",
        }
        return doc


def same(a: Any, b: Any) -> bool:
    """Equal values of the same types all the way down (1, 1.0 and True are not the same to a schema)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(v, b[k]) for k, v in a.items())
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _forbid_sensitive(node: Any, defs: dict) -> None:
    """Rewrite a schema in place so any x-sensitive property must be absent."""
    if isinstance(node, dict):
        props = node.get("properties")
        if isinstance(props, dict):
            for name, sub in list(props.items()):
                target = sub
                if isinstance(sub, dict) and "$ref" in sub and not sub.get("x-sensitive"):
                    target = defs.get(sub["$ref"].removeprefix("#/$defs/"), {})
                if isinstance(sub, dict) and (
                    sub.get("x-sensitive") or (isinstance(target, dict) and target.get("x-sensitive"))
                ):
                    props[name] = {"not": {}, "x-personal-in-clear": True}
                    if "required" in node:
                        node["required"] = [r for r in node["required"] if r != name]
        for key, value in node.items():
            if key != "properties":
                _forbid_sensitive(value, defs)
        if isinstance(props, dict):
            for sub in props.values():
                _forbid_sensitive(sub, defs)
    elif isinstance(node, list):
        for item in node:
            _forbid_sensitive(item, defs)


def _note_fields(value: Any, path: list[str], fields: set[str]) -> None:
    if value is None or value == [] or value == {}:
        return
    name = ".".join(path)
    fields.add(name)
    items = value if isinstance(value, list) else [value]
    for item in items:
        if isinstance(item, dict):
            for key, sub in item.items():
                if sub not in (None, "", [], {}):
                    fields.add(f"{name}.{key}")


def mask_value(value: Any, how: str) -> Any:
    """One personal value masked according to its schema's x-mask hint."""
    if how == "none" or value is None:
        return value
    text = str(value)
    if how == "name":
        return text[:1] + "*" * max(1, len(text) - 1)
    if how == "phone":
        return text[:3] + "****" + text[-4:] if len(text) >= 11 else text[:2] + "*" * max(1, len(text) - 2)
    if how == "id":
        return text[:4] + "*" * max(1, len(text) - 8) + text[-4:] if len(text) > 8 else "*" * len(text)
    if how == "date":
        return "****-**-**"
    if how == "plate":
        return text[:2] + "***" + text[-1:] if len(text) > 3 else "***"
    return text[:1] + "***"


def _cross_checks(record: Any) -> list[str]:
    """Rules JSON Schema cannot say: a resident ID's birth date agrees with birth_date."""
    problems = []
    if not isinstance(record, dict):
        return problems
    for i, customer in enumerate(record.get("customers") or []):
        if not isinstance(customer, dict):
            continue
        number, born = customer.get("id_number"), customer.get("birth_date")
        if (
            customer.get("id_type") == "resident-id"
            and isinstance(number, str)
            and isinstance(born, str)
            and idcheck.resident_id_problem(number) is None
            and idcheck.birth_date_of(number) != born
        ):
            problems.append(_("customers[{i}].birth_date: does not match the birth date in id_number").format(i=i))
    return problems


MAX_JSON_BYTES = 1024 * 1024
MAX_JSON_DEPTH = 64
_JSON_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"')
_JSON_BRACKET = re.compile(r"[\[\]{}]")


def parse_json(data: str | bytes, source: str, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """Parse a JSON file someone could have edited, refusing huge or deeply nested ones with one line."""
    if len(data) > max_bytes:
        raise UsageError(
            _("{source}: file is larger than {max_bytes} KiB").format(source=source, max_bytes=max_bytes // 1024)
        )
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UsageError(
                _("{source}: not UTF-8 text (byte {start})").format(source=source, start=exc.start)
            ) from None
    depth = 0
    bare = _JSON_STRING.sub('""', data)  # strings hold no raw newline, so line numbers stay true
    for match in _JSON_BRACKET.finditer(bare):
        depth += 1 if match.group() in "[{" else -1
        if depth > MAX_JSON_DEPTH:
            line = bare.count("\n", 0, match.start()) + 1
            raise UsageError(
                _("{source}: line {line}: nested deeper than {limit} levels").format(
                    source=source, line=line, limit=MAX_JSON_DEPTH
                )
            )
    try:
        return json.loads(data)
    except json.JSONDecodeError as exc:
        raise UsageError(
            _("{source}: line {lineno}: not valid JSON ({msg})").format(source=source, lineno=exc.lineno, msg=exc.msg)
        ) from None
    except (ValueError, RecursionError):
        raise UsageError(_("{source}: not valid JSON").format(source=source)) from None


@functools.lru_cache(maxsize=8)
def _load_json(path: str, mtime: float) -> dict:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(
            _("{path}: cannot read schema ({strerror})").format(path=path, strerror=exc.strerror)
        ) from None
    doc = parse_json(data, path)
    if not isinstance(doc, dict):
        raise UsageError(_("{path}: a schema must be a JSON object").format(path=path))
    return doc


def load_json(path: Path) -> dict:
    """A JSON schema file, parsed once per process."""
    try:
        mtime = path.stat().st_mtime
    except OSError:
        raise UsageError(_("{path}: schema file is missing").format(path=path)) from None
    return _load_json(str(path), mtime)


_TEXT_BREAKS = re.compile("[\t\n]")


def control_characters(value: Any, path: str = "") -> list[str]:
    """Clear text that could act on the screen of whoever reads it (screen.UNSAFE; tabs and newlines kept)."""
    if not path and not _any_control_character(value):  # nearly every record: no path worked out for any field
        return []
    from archivectl.screen import unsafe_in

    if isinstance(value, str):
        shown = unsafe_in(_TEXT_BREAKS.sub("", value)) if value.isprintable() is False else None
        return [f"{path or 'value'}: holds a control character ({shown}); clear text is plain text"] if shown else []
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in control_characters(v, f"{path}.{k}" if path else str(k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in control_characters(v, f"{path}.{i}")]
    return []


def _any_control_character(value: Any) -> bool:
    """Whether control_characters(value) finds anything: the same test of each text, without the paths."""
    from archivectl.screen import unsafe_in

    todo = [value]
    while todo:
        item = todo.pop()
        kind = type(item)
        if kind is str:
            if not item.isprintable() and unsafe_in(_TEXT_BREAKS.sub("", item)):
                return True
        elif kind is dict:
            todo.extend(item.values())
        elif kind is list:
            todo.extend(item)
        elif isinstance(item, str | dict | list):  # a subclass: as control_characters takes it
            return True
    return False


def household(schemas_dir: Path) -> HouseholdSchema:
    """The archive's household schema."""
    return HouseholdSchema(load_json(schemas_dir / "household.schema.json"))


@functools.cache
def _staff_fast_validator() -> Any:
    return fast_validator_for(load_json(shipped_dir() / "staff.schema.json"))


def check_staff(data: Any, source: str) -> None:
    """Raise UsageError naming the first problem in a parsed staff.yaml.

    Every command reads staff.yaml: the compiled pass says "valid" without
    importing jsonschema (76 ms of start-up against 28 ms); jsonschema names
    the problems of a file it refuses.
    """
    if fast_accepts(_staff_fast_validator(), data):
        return
    problems = error_messages(_validator(load_json(shipped_dir() / "staff.schema.json")), data)
    if problems:
        raise UsageError(f"{source}: {problems[0]}")


_MAX_NAME_DEPTH = MAX_DEPTH  # no record nests deeper, so a schema that does refers to itself


def _collect(value: Any, path: tuple[str | None, ...], at: int, found: list[str]) -> None:
    """The strings at path in value (None: each item of a list), as HouseholdSchema._names finds them."""
    if at == len(path):
        if isinstance(value, str):
            found.append(value)
        return
    key = path[at]
    if key is None:
        if isinstance(value, list):
            for item in value:
                _collect(item, path, at + 1, found)
    elif isinstance(value, dict) and key in value:
        _collect(value[key], path, at + 1, found)
