"""Reading and writing YAML the way the archive needs it.

Loading is deliberately strict: hostile input (alias bombs, python tags, duplicate
keys, deep nesting, non-UTF-8, oversized files) is refused with one line naming
the problem and where, never a value.
Dates stay ISO strings, so what a person wrote is what JSON Schema checks and
what is written back.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from archivectl.errors import UsageError
from archivectl.i18n import _

try:  # libyaml is several times faster on large archives
    _BaseLoader = yaml.CSafeLoader
    _BaseDumper = yaml.CSafeDumper
except AttributeError:  # pragma: no cover - depends on the build of PyYAML
    _BaseLoader = yaml.SafeLoader  # type: ignore[misc]
    _BaseDumper = yaml.SafeDumper  # type: ignore[misc]

MAX_YAML_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 64  # a record nests five levels; deeper is hostile or a mistake
_TIMESTAMP = "tag:yaml.org,2002:timestamp"


def _without_timestamps(resolvers: dict) -> dict:
    return {first: [(tag, rx) for tag, rx in entries if tag != _TIMESTAMP] for first, entries in resolvers.items()}


class _Loader(_BaseLoader):  # type: ignore[misc,valid-type]
    """Safe loader: no aliases, no duplicate keys, bounded nesting, dates kept as strings.

    Nodes are composed here, without recursion, from the parser's events: the
    nesting limit holds before libyaml's recursive composer (a C stack overflow
    on a hundred thousand `[`) or Python's recursion limit could be reached, and
    the checks cost one pass. The stock constructor then runs at full speed.
    """

    yaml_implicit_resolvers = _without_timestamps(_BaseLoader.yaml_implicit_resolvers)

    def check_node(self) -> bool:
        if self.check_event(yaml.StreamStartEvent):
            self.get_event()
        return not self.check_event(yaml.StreamEndEvent)

    def get_node(self) -> yaml.Node | None:
        if not self.check_event(yaml.StreamEndEvent):
            return _compose_document(self)
        return None

    def get_single_node(self) -> yaml.Node | None:
        self.get_event()  # stream start
        document = None
        if not self.check_event(yaml.StreamEndEvent):
            document = _compose_document(self)
        if not self.check_event(yaml.StreamEndEvent):
            event = self.get_event()
            raise yaml.composer.ComposerError(
                "expected a single document in the stream",
                document.start_mark if document else None,
                "but found another document",
                event.start_mark,
            )
        self.get_event()
        return document


# libyaml's own composer (C) is a third of a record's parse, but lets aliases through,
# recurses once per nesting level and keeps duplicate keys. It is used only on text
# that cannot hold an alias (no "*" or "&" anywhere) nor nest deep enough to matter
# (each collection needs one of these characters), and its result only when the
# checks below find nothing: else the parse starts again the checking way, which
# says what is wrong exactly as it always has.
_NESTING_CHARS = "[{-:?"
_C_NESTING_LIMIT = 2000


_UNDECIDED = object()


def _load_in_libyaml(text: str) -> Any:
    """The document as loads() gives it, composed by libyaml, or _UNDECIDED where the checking composer must decide."""
    if _BaseLoader is yaml.SafeLoader or "*" in text or "&" in text:
        return _UNDECIDED
    if sum(text.count(c) for c in _NESTING_CHARS) > _C_NESTING_LIMIT:
        return _UNDECIDED
    loader = _Loader(text)
    try:
        node = _BaseLoader.get_single_node(loader)  # libyaml's CParser
        if node is not None and not _well_formed(node):
            return _UNDECIDED
        return loader.construct_document(node) if node is not None else None
    except yaml.YAMLError:
        return _UNDECIDED
    finally:
        loader.dispose()


def _well_formed(root: yaml.Node) -> bool:
    """No duplicate or non-scalar keys, nesting within MAX_DEPTH: what _compose_document refuses."""
    todo: list[tuple[yaml.Node, int]] = [(root, 0)]
    while todo:
        node, depth = todo.pop()
        if node.tag not in _PLAIN_TAGS:  # given (refused) or resolved to another (`<<`, `=`)
            return False
        kind = type(node)
        if kind is yaml.ScalarNode:
            continue
        if depth >= MAX_DEPTH:
            return False
        if kind is yaml.SequenceNode:
            todo.extend((item, depth + 1) for item in node.value)
            continue
        seen = set()
        for key, value in node.value:
            if type(key) is not yaml.ScalarNode or (key.tag, key.value) in seen:
                return False
            seen.add((key.tag, key.value))
            todo.append((value, depth + 1))
    return True


def _compose_document(loader: Any) -> yaml.Node:
    """One document's node tree from the event stream, refusing aliases, duplicate keys and deep nesting."""
    loader.get_event()  # document start
    resolve, get_event = loader.resolve, loader.get_event
    # One entry per open collection: [node, keys seen (mappings only), key awaiting its value].
    stack: list[list[Any]] = []
    root: yaml.Node | None = None
    while True:
        event = get_event()
        kind = type(event)
        tag = event.tag if kind is not yaml.AliasEvent and kind not in _END_EVENTS else None
        if tag is not None and tag != "!" and tag not in _PLAIN_TAGS:
            raise yaml.composer.ComposerError(None, None, _TAG_REFUSED, event.start_mark)
        if kind is yaml.ScalarEvent:
            if tag is None or tag == "!":
                tag = resolve(yaml.ScalarNode, event.value, event.implicit)
            node: yaml.Node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, style=event.style)
        elif kind is yaml.SequenceStartEvent:
            if tag is None or tag == "!":
                tag = resolve(yaml.SequenceNode, None, event.implicit)
            node = yaml.SequenceNode(tag, [], event.start_mark, None, flow_style=event.flow_style)
        elif kind is yaml.MappingStartEvent:
            if tag is None or tag == "!":
                tag = resolve(yaml.MappingNode, None, event.implicit)
            node = yaml.MappingNode(tag, [], event.start_mark, None, flow_style=event.flow_style)
        elif kind in _END_EVENTS:
            stack.pop()[0].end_mark = event.end_mark
            if not stack:
                break
            continue
        else:  # an alias: the one way to make a small file expand into a huge one
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed", event.start_mark)
        if stack:
            _attach(stack[-1], node)
        else:
            root = node
        if kind is not yaml.ScalarEvent:
            if len(stack) >= MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"nested deeper than {MAX_DEPTH} levels", event.start_mark
                )
            stack.append([node, set() if kind is yaml.MappingStartEvent else None, None])
        elif not stack:
            break
    loader.get_event()  # document end
    assert root is not None
    return root


_END_EVENTS = (yaml.SequenceEndEvent, yaml.MappingEndEvent)
# What a record holds is JSON: a tag naming another kind (!!binary, !!timestamp, !!set) would
# bring bytes, dates or sets that no schema check or report expects.
_PLAIN_TAGS = frozenset(f"tag:yaml.org,2002:{kind}" for kind in ("str", "int", "float", "bool", "null", "seq", "map"))
_TAG_REFUSED = "tags other than !!str, !!int, !!float, !!bool, !!null, !!seq and !!map are not allowed"


def _attach(parent: list[Any], node: yaml.Node) -> None:
    """Add node to an open collection: as an item, as a mapping key, or as the value of the waiting key."""
    collection, seen, waiting = parent
    if seen is None:
        collection.value.append(node)
    elif waiting is not None:
        collection.value.append((waiting, node))
        parent[2] = None
    elif type(node) is not yaml.ScalarNode:
        raise yaml.constructor.ConstructorError(None, None, "mapping keys must be plain values", node.start_mark)
    elif (node.tag, node.value) in seen:
        raise yaml.constructor.ConstructorError(None, None, f"duplicate key{_key_name(node.value)}", node.start_mark)
    else:
        seen.add((node.tag, node.value))
        parent[2] = node


_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")


def field_name(key: Any) -> str:
    """key as an error message may show it: itself if it looks like a field name, else <key>.

    A key in a hand-written file may be a value typed in the wrong place (a
    phone number, a name), and errors never repeat personal data.
    """
    return key if isinstance(key, str) and _FIELD_NAME.fullmatch(key) else "<key>"


def _key_name(key: str) -> str:
    name = field_name(key)
    return f" {name!r}" if name == key else ""


class _Dumper(_BaseDumper):  # type: ignore[misc,valid-type]
    """Dumper whose date-like strings stay unquoted, mirroring _Loader."""

    yaml_implicit_resolvers = _without_timestamps(_BaseDumper.yaml_implicit_resolvers)


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def loads(text: str | bytes, source: str = "input") -> Any:
    """Parse one YAML document, refusing anything unsafe with a one-line UsageError."""
    if isinstance(text, bytes):
        if len(text) > MAX_YAML_BYTES:
            raise UsageError(
                _("{source}: file is larger than {max_bytes} KiB").format(
                    source=source, max_bytes=MAX_YAML_BYTES // 1024
                )
            )
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UsageError(
                _("{source}: not UTF-8 text (byte {start})").format(source=source, start=exc.start)
            ) from None
    if len(text) > MAX_YAML_BYTES:
        raise UsageError(
            _("{source}: file is larger than {max_bytes} KiB").format(source=source, max_bytes=MAX_YAML_BYTES // 1024)
        )
    try:
        found = _load_in_libyaml(text)
        return found if found is not _UNDECIDED else yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as exc:
        raise UsageError(f"{source}: {describe(exc)}") from None


def load_file(path: Path, max_bytes: int = MAX_YAML_BYTES) -> Any:
    """Read and parse a YAML file, refusing oversized or unreadable files."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise UsageError(
                _("{path}: file is larger than {max_bytes} KiB").format(path=path, max_bytes=max_bytes // 1024)
            )
        data = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(_("{path}: no such file").format(path=path)) from None
    except IsADirectoryError:
        raise UsageError(_("{path}: is a directory, not a YAML file").format(path=path)) from None
    except PermissionError:
        raise UsageError(_("{path}: permission denied").format(path=path)) from None
    return loads(data, source=str(path))


def strict_loader(text: str) -> Any:
    """A loader over text with the same refusals as loads(), for reading a stream document by document."""
    return _Loader(text)


def dumps(data: Any) -> str:
    """Serialise data as block-style, UTF-8, key-ordered-as-given YAML."""
    simple = _simple_block(data)
    if simple is not None:
        return simple
    return yaml.dump(
        data,
        Dumper=_Dumper,
        allow_unicode=True,
        sort_keys=False,
        default_flow_style=False,
        width=100,
    )


# ------------------------------------------------------------ the common records, written directly
#
# yaml.dump spends some 100 us on a record (the representer is Python even with
# libyaml): two a household in an import, a fifth of a worker's time. Most records
# hold only mappings, lists, whole numbers, and short texts of letters, digits and
# Chinese: _simple_block writes those exactly as yaml.dump does (the same bytes;
# tests/test_yamlio_dump.py compares the two over many documents) and gives up,
# returning None, on anything else: a float, a text with a space, a quote or a
# colon, a key that is not a plain name, a list in a list. yaml.dump writes those.

_WORD = "0-9A-Za-z\u3400-\u4dbf\u4e00-\u9fff"
_PLAIN_TEXT = re.compile(f"[{_WORD}][{_WORD}_./+@-]*")  # never quoted by the emitter, unless it reads as another type
_BLOCK_TEXT = re.compile(r"(?:[!-~](?:[ -~]*[!-~])?\n)+")  # lines of printable ASCII, no space at either end
_PLAIN_KEYS: set[str] = set()  # field names found to be written as they are (a record has a few dozen)


def _simple_block(data: Any) -> str | None:
    if not isinstance(data, dict) or not data:
        return None
    lines: list[str] = []
    if not _mapping(data, 0, "", lines, {id(data)}):
        return None
    return "\n".join(lines) + "\n"


def _mapping(data: dict, indent: int, first: str, lines: list[str], seen: set[int]) -> bool:
    """Lines of a non-empty block mapping whose first key follows `first` (a list's "- ") or the indent.

    seen: the lists and mappings met so far; one met twice is written once with an anchor by yaml.dump.
    """
    pad = " " * indent
    for key, value in data.items():
        if key not in _PLAIN_KEYS and not _plain_key(key):
            return False
        if isinstance(value, (dict, list)) and not _first_time(value, seen):
            return False
        head = f"{first or pad}{key}:"
        first = ""
        if isinstance(value, dict) and value:
            lines.append(head)
            if not _mapping(value, indent + 2, "", lines, seen):
                return False
        elif isinstance(value, list) and value:
            lines.append(head)
            if not _sequence(value, indent, lines, seen):  # a list in a mapping is not indented
                return False
        elif isinstance(value, str) and "\n" in value:
            block = _literal(value, indent + 2)
            if block is None:
                return False
            lines.append(f"{head} |")
            lines += block
        else:
            text = _scalar(value)
            if text is None:
                return False
            lines.append(f"{head} {text}")
    return True


def _sequence(items: list, indent: int, lines: list[str], seen: set[int]) -> bool:
    dash = " " * indent + "- "
    for item in items:
        if isinstance(item, (dict, list)) and not _first_time(item, seen):
            return False
        if isinstance(item, dict) and item:
            if not _mapping(item, indent + 2, dash, lines, seen):
                return False
        else:
            text = None if isinstance(item, (list, dict)) and item else _scalar(item)
            if text is None:
                return False
            lines.append(dash + text)
    return True


def _plain_key(key: Any) -> bool:
    """True for a key written as it is: not one the emitter quotes, nor a complex key (over 128 bytes)."""
    if not isinstance(key, str) or len(key) > 64 or not key.isascii() or _scalar(key) != key:
        return False
    if len(_PLAIN_KEYS) < 4096:
        _PLAIN_KEYS.add(key)
    return True


def _first_time(container: Any, seen: set[int]) -> bool:
    if id(container) in seen:
        return False
    seen.add(id(container))
    return True


def _scalar(value: Any) -> str | None:
    """A value on the line of its key or dash, as yaml.dump writes it; None: not one written here."""
    if value is None:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if value == [] or value == {}:
        return "[]" if isinstance(value, list) else "{}"
    if not isinstance(value, str):
        return None  # a float, a date: yaml.dump knows how
    if value == "":
        return "''"
    if not _PLAIN_TEXT.fullmatch(value):
        return None
    return f"'{value}'" if _reads_as_other(value) else value


def _reads_as_other(text: str) -> bool:
    """True when a plain text would be read back as a number, a boolean or null (the emitter quotes it)."""
    resolvers = _Dumper.yaml_implicit_resolvers
    return any(rx.match(text) for _, rx in resolvers.get(text[0], []) + resolvers.get(None, []))


def _literal(text: str, indent: int) -> list[str] | None:
    """The lines of a `|` block (an armored sealed block), or None when its text needs more than plain lines."""
    if not _BLOCK_TEXT.fullmatch(text):
        return None
    pad = " " * indent
    return [pad + text[:-1].replace("\n", "\n" + pad)]


def dump_flow(data: Any) -> str:
    """One-line flow-style YAML, used for append-only register entries."""
    return yaml.dump(
        data,
        Dumper=_Dumper,
        allow_unicode=True,
        sort_keys=False,
        default_flow_style=True,
        width=1_000_000,
    ).strip()


_QUOTED = re.compile(r"'[^'\n]*'|\"[^\"\n]*\"")


def describe(exc: yaml.YAMLError) -> str:
    """One line for a YAML error: where and what, with anything quoted from the input left out."""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if "maximum nesting depth" in problem:  # PyYAML 6.0.4's own limit, met before archivectl's
        problem = f"nested deeper than {MAX_DEPTH} levels"
    problem = _QUOTED.sub(lambda m: m.group() if field_name(m.group()[1:-1]) != "<key>" else "(…)", problem)
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is not None:
        return f"line {mark.line + 1}: {problem}"
    return problem
