"""Reading and writing YAML the way the archive needs it.

Loading is deliberately strict: hostile input (alias bombs, python tags, duplicate
keys, non-UTF-8, oversized files) is refused with one line naming the problem.
Dates stay ISO strings, so what a person wrote is what JSON Schema checks and
what is written back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from archivectl.errors import UsageError

try:  # libyaml is several times faster on large archives
    _BaseLoader = yaml.CSafeLoader
    _BaseDumper = yaml.CSafeDumper
except AttributeError:  # pragma: no cover - depends on the build of PyYAML
    _BaseLoader = yaml.SafeLoader  # type: ignore[misc]
    _BaseDumper = yaml.SafeDumper  # type: ignore[misc]

MAX_YAML_BYTES = 4 * 1024 * 1024
_TIMESTAMP = "tag:yaml.org,2002:timestamp"


def _without_timestamps(resolvers: dict) -> dict:
    return {first: [(tag, rx) for tag, rx in entries if tag != _TIMESTAMP] for first, entries in resolvers.items()}


class _Loader(_BaseLoader):  # type: ignore[misc,valid-type]
    """Safe loader: no aliases, no duplicate keys, dates kept as strings.

    The checks walk the composed node tree once before construction, so the
    C parser and the stock constructor do the rest at full speed.
    """

    yaml_implicit_resolvers = _without_timestamps(_BaseLoader.yaml_implicit_resolvers)

    def construct_document(self, node: yaml.Node) -> Any:
        _check_nodes(node)
        return super().construct_document(node)


def _check_nodes(root: yaml.Node) -> None:
    """Refuse aliases (a node reached twice) and duplicate or non-scalar mapping keys."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            raise yaml.constructor.ConstructorError(None, None, "aliases (*name) are not allowed", node.start_mark)
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys: set[tuple[str, str]] = set()
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    raise yaml.constructor.ConstructorError(
                        None, None, "mapping keys must be plain values", key_node.start_mark
                    )
                key = (key_node.tag, key_node.value)
                if key in keys:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key_node.value!r}", key_node.start_mark
                    )
                keys.add(key)
                stack.append(value_node)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


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
            raise UsageError(f"{source}: file is larger than {MAX_YAML_BYTES // 1024} KiB")
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UsageError(f"{source}: not UTF-8 text (byte {exc.start})") from None
    if len(text) > MAX_YAML_BYTES:
        raise UsageError(f"{source}: file is larger than {MAX_YAML_BYTES // 1024} KiB")
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.YAMLError as exc:
        raise UsageError(f"{source}: {describe(exc)}") from None


def load_file(path: Path, max_bytes: int = MAX_YAML_BYTES) -> Any:
    """Read and parse a YAML file, refusing oversized or unreadable files."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise UsageError(f"{path}: file is larger than {max_bytes // 1024} KiB")
        data = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory, not a YAML file") from None
    except PermissionError:
        raise UsageError(f"{path}: permission denied") from None
    return loads(data, source=str(path))


def strict_loader(text: str) -> Any:
    """A loader over text with the same refusals as loads(), for reading a stream document by document."""
    return _Loader(text)


def dumps(data: Any) -> str:
    """Serialise data as block-style, UTF-8, key-ordered-as-given YAML."""
    return yaml.dump(
        data,
        Dumper=_Dumper,
        allow_unicode=True,
        sort_keys=False,
        default_flow_style=False,
        width=100,
    )


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


def describe(exc: yaml.YAMLError) -> str:
    """One line for a YAML error: where and what."""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is not None:
        return f"line {mark.line + 1}: {problem}"
    return problem
