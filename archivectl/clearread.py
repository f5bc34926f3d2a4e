"""A fast reader of a record's clear part, for the plain block YAML that records are written in.

Reports read the clear part of every record (facts.py); libyaml and PyYAML's
constructor spend most of a cold report there. What yamlio.dumps writes for a
clear part is a small subset of YAML: block mappings and sequences, one entry a
line, keys that are plain words, plain or one-line quoted scalars. mapping()
reads exactly that subset and answers None for anything else (a comment, a
continued or block scalar, a flow collection, an anchor, a tag, a duplicate key,
a tab, an odd character...), so the caller parses with the strict loader as
ever. Where it answers, it answers what yamlio.loads answers: the same
resolvers (dates stay strings) and the same constructors make each scalar;
tests compare the two on many awkward texts.
"""

from __future__ import annotations

import re
from typing import Any

from archivectl import yamlio

MAX_DEPTH = 16  # deeper is unusual in a clear part: the strict loader decides


class _Unsure(Exception):
    """The text is outside the subset read here."""


_SINGLE = re.compile(r"'((?:[^']|'')*)'\Z")
_DOUBLE = re.compile(r'"([^"\\]*)"\Z')
# What may not start a plain scalar here: YAML's indicators, a space, and `-` but before a digit.
_PLAIN_START = frozenset("?:,[]{}#&*!|>'\"%@` \t") | {"-"}
# What a plain scalar here may not hold: a comment, a `: ` (a mapping the line cannot have), a tab.
_PLAIN_BAD = re.compile(r"#|: |:\Z|\t|\s\Z")
# Characters libyaml refuses or reads as line breaks (NEL, LS, PS, CR), a BOM, and tabs: all left to it.
_ODD = re.compile("[^\n\x20-\x7e\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]|[\u2028\u2029\ufeff]")
_ODD_ASCII = re.compile("[^\n\x20-\x7e]")  # the same for ASCII text, several times quicker

_MADE_HERE = {f"tag:yaml.org,2002:{name}" for name in ("null", "bool", "int", "float")}
_loader: Any = None
_candidates: dict[str, tuple[Any, ...]] = {}  # a scalar's first character -> (tag, pattern) the loader tries


def _resolve(value: str) -> Any:
    """A plain scalar's value, as the strict loader's resolvers and constructors make it."""
    global _loader
    if _loader is None:
        _loader = yamlio.strict_loader("")
    candidates = _candidates.get(value[0])
    if candidates is None:  # the resolvers the loader tries for a scalar starting so, in its order, once
        resolvers = _loader.yaml_implicit_resolvers
        candidates = _candidates[value[0]] = tuple(resolvers.get(value[0], []) + resolvers.get(None, []))
    tag = None
    for t, rx in candidates:
        if rx.match(value):
            tag = t
            break
    if tag is None:
        return value
    if tag not in _MADE_HERE:
        raise _Unsure
    import yaml

    try:
        return _loader.yaml_constructors[tag](_loader, yaml.ScalarNode(tag, value))
    except Exception:  # what the constructor cannot make (0b_): the strict loader says how it fails
        raise _Unsure from None


def _scalar(text: str) -> Any:
    """The value of a scalar written on one line (the rest of a line after `key: ` or `- `)."""
    known = _known.get(text, _known)
    if known is not _known:
        return known
    if not text:  # `key: ` with a trailing space
        raise _Unsure
    first = text[0]
    if first not in _PLAIN_START or (first == "-" and text[1:2].isdigit() and text[1:2].isascii()):
        if _PLAIN_BAD.search(text):
            raise _Unsure
        value = _resolve(text)
    elif first == "'":
        found = _SINGLE.match(text)
        if found is None:
            raise _Unsure
        value = found.group(1).replace("''", "'")
    elif first == '"':
        found = _DOUBLE.match(text)
        if found is None:
            raise _Unsure
        value = found.group(1)
    elif text in ("[]", "{}"):
        return [] if text == "[]" else {}  # a new one each time: the caller may change it
    else:
        raise _Unsure
    if len(_known) < _KNOWN_MAX:  # field names, categories, dates... recur from record to record
        _known[text] = value
    return value


_known: dict[str, Any] = {}
_KNOWN_MAX = 50_000

# One line: its indentation, `- ` if a sequence entry, then `key:` with what follows it, or a scalar.
# A key may hold dots after its first character: sealed_fingerprints is keyed by field paths (customers.0.phone).
_LINE = re.compile(r"^( *)(- )?(?:([A-Za-z_][A-Za-z0-9_.-]{0,63}):( .*)?|(.*))$", re.M)


class _Reader:
    """The lines of a text as (column, entry, key, after the key, scalar), read one block at a time.

    column is where a mapping's key (or a sequence's `-`) starts; for `- key: v`
    the mapping inside the entry starts two columns in, as YAML reads it.
    """

    def __init__(self, text: str) -> None:
        self.lines = _LINE.findall(text)
        self.columns = [len(line[0]) for line in self.lines]
        self.columns.append(-1)  # the end: below every column
        self.at = 0

    def mapping(self, column: int, depth: int, first_in_entry: bool = False) -> dict[str, Any]:
        """The block mapping whose keys start at column, from the next line on."""
        if depth > MAX_DEPTH:
            raise _Unsure
        out: dict[str, Any] = {}
        lines, columns, at = self.lines, self.columns, self.at
        while True:
            if first_in_entry:  # `- key: ...`: this mapping's first key, two columns after the dash
                first_in_entry = False
            elif columns[at] != column:
                if columns[at] < column:
                    break
                raise _Unsure
            elif lines[at][1]:  # `- ` where a key should be
                raise _Unsure
            _, _, key, after, _ = lines[at]
            if not key or key in out or type(_scalar(key)) is not str:  # a duplicate, or a key such as `on`
                raise _Unsure
            at += 1
            if after:
                out[key] = _scalar(after[1:])
                if columns[at] > column:  # a continued scalar or a nested block after a value
                    raise _Unsure
            else:
                self.at = at
                out[key] = self.below(column, depth)
                at = self.at
        self.at = at
        return out

    def below(self, column: int, depth: int) -> Any:
        """The value of a `key:` at column: a nested block, or null when none follows."""
        here = self.columns[self.at]
        if here > column:
            if self.lines[self.at][1]:
                return self.sequence(here, depth + 1)
            return self.mapping(here, depth + 1)
        if here == column and self.lines[self.at][1]:
            return self.sequence(here, depth + 1)  # a sequence at the key's own column (as PyYAML writes)
        return None

    def sequence(self, column: int, depth: int) -> list[Any]:
        """The block sequence whose `- ` start at column."""
        if depth > MAX_DEPTH:
            raise _Unsure
        out: list[Any] = []
        lines, columns, at = self.lines, self.columns, self.at
        while columns[at] == column:
            _, dash, key, _, scalar = lines[at]
            if not dash:
                break
            if key:
                self.at = at
                out.append(self.mapping(column + 2, depth + 1, first_in_entry=True))
                at = self.at
            else:
                at += 1
                out.append(_scalar(scalar))
                if columns[at] > column:
                    raise _Unsure
        self.at = at
        return out


def mapping(text: str) -> dict[str, Any] | None:
    """yamlio.loads(text) for a clear part in the subset read here (a mapping at column 0); None otherwise."""
    if not text.endswith("\n") or (_ODD_ASCII if text.isascii() else _ODD).search(text) or "\n\n" in text:
        return None
    reader = _Reader(text[:-1])
    try:
        found = reader.mapping(0, 1)
    except _Unsure:
        return None
    return found if reader.at == len(reader.lines) and found else None


def document(data: bytes, source: str) -> Any:
    """yamlio.loads(data, source), read by mapping() where it can: a mapping at column 0 after any whole-line
    comments (a `#` at column 0, as register entries start), in the same subset; else the strict loader."""
    if len(data) <= yamlio.MAX_YAML_BYTES and data[:1] in (b"#", *(bytes([c]) for c in _KEY_START)):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = ""
        at = 0
        while text.startswith("#", at):
            at = text.find("\n", at) + 1
            if at == 0:
                break
        if at > 0 or text[:1] != "#":
            comments = text[:at]
            if text and not (_ODD_ASCII if comments.isascii() else _ODD).search(comments):
                found = mapping(text[at:])
                if found is not None:
                    return found
    return yamlio.loads(data, source)


_KEY_START = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_"
