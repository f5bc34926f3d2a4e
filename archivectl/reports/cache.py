"""Report results kept under the households tree they were computed from (see facts.py).

A run where nothing changed reads no record and lists no file: the result, or
the report's head and its json/csv text, is read back instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

from archivectl import clock
from archivectl.archive import Archive
from archivectl.facts import CACHE_VERSION, cache_dir, collector_paused, households_tree, read_json, write_json
from archivectl.files import keep
from archivectl.reports.render import Report


def cached_result(archive: Archive, name: str, parts: list[Any], compute: Callable[[], Any]) -> Any:
    """compute()'s JSON-able answer, kept under the households tree read plus parts (what else it depends on).

    Without a households tree (see households_tree) nothing is kept: compute() runs.
    """
    tree = households_tree(archive)
    if tree is None:
        return compute()
    key = hashlib.sha256(json.dumps([CACHE_VERSION, name, tree, *parts]).encode()).hexdigest()
    path = cache_dir(archive) / f"{name}.json"
    stored = read_json(path)
    if isinstance(stored, dict) and stored.get("key") == key and "value" in stored:
        return stored["value"]
    value = compute()
    write_json(path, {"key": key, "value": value})
    return value


class Quick(Protocol):
    """A report's head and texts made without its rows (see cached_report's quick)."""

    head: dict[str, Any]

    def text(self, fmt: str, stand_in: str) -> str | None:
        """The text in fmt with stand_in for the time generated, or None when only the rows can make it."""


def cached_report(
    archive: Archive,
    name: str,
    parts: list[Any],
    compute: Callable[[], Any],
    build: Callable[[Any, str], Report],
    quick: Callable[[], Quick | None] | None = None,
) -> Report:
    """The report build(compute(), generated) makes, kept under the households tree read plus parts.

    A run where nothing changed reads only the report's head (title, summary...);
    its json or csv text is reused with only the time it was generated put in
    anew. Its rows are made again if something else asks for them (a table):
    compute() reads each building's kept facts, quicker than reading back the
    rows of 100,000 households, so they are not kept.

    quick, if given, makes the head and some texts without the rows (from
    results kept per building, say): used when it answers, else compute().
    """
    from archivectl.i18n import language
    from archivectl.reports.render import StoredReport, head_of

    generated = clock.now().isoformat(timespec="seconds")
    tree = households_tree(archive)
    if tree is None:
        return build(compute(), generated)
    # the head (title, summary) is in the interface's language: kept per language
    key = hashlib.sha256(json.dumps([CACHE_VERSION, name, tree, language(), *parts]).encode()).hexdigest()
    cache = cache_dir(archive)
    made: list[Quick | None] = []

    def quick_text(fmt: str, stand_in: str) -> str | None:
        if quick is None:
            return None
        if not made:
            made.append(quick())
        return made[0].text(fmt, stand_in) if made[0] is not None else None

    def quick_chunks(fmt: str, stand_in: str, generated: str) -> Iterator[bytes] | None:
        if quick is None:
            return None
        if not made:
            made.append(quick())
        stream = getattr(made[0], "chunks", None)
        return stream(fmt, stand_in, generated) if stream is not None else None

    def rebuild(generated: str) -> Report:
        with collector_paused():
            return build(compute(), generated)

    texts = _Texts(cache, name, quick_text, quick_chunks)
    stored = read_json(cache / f"{name}.head.json")
    if isinstance(stored, dict) and stored.get("key") == key and isinstance(stored.get("head"), dict):
        with contextlib.suppress(KeyError, TypeError, ValueError):
            return StoredReport(key, texts, rebuild, stored["head"], generated)
    if quick is not None:
        made.append(quick())
        if made[0] is not None:
            write_json(cache / f"{name}.head.json", {"key": key, "head": made[0].head})
            return StoredReport(key, texts, rebuild, made[0].head, generated)
    with collector_paused():
        report = build(compute(), generated)
    write_json(cache / f"{name}.head.json", {"key": key, "head": head_of(report)})
    return StoredReport(key, texts, lambda _: report, head_of(report), generated)


class _Texts:
    """Rendered texts of one report by key and format: a file each, checked by length and CRC before use."""

    def __init__(
        self,
        cache: Path,
        name: str,
        make: Callable[[str, str], str | None] | None = None,
        stream: Callable[[str, str, str], Iterator[bytes] | None] | None = None,
    ) -> None:
        self.cache, self.name, self.make, self.stream = cache, name, make, stream

    def _path(self, fmt: str) -> Path:
        return self.cache / f"{self.name}.{fmt}.txt"

    def get(self, key: str, fmt: str, stand_in: str, generated: str) -> str | None:
        """The text kept (or made by make) for key and fmt, stand_in (at most once in it) replaced by generated.

        None when neither has it: the caller renders the report's rows.
        """
        text = self._kept(key, fmt, stand_in, generated)
        if text is not None or self.make is None:
            return text
        made = self.make(fmt, stand_in)
        if made is None or made.count(stand_in) != 1:
            return None
        self.put(key, fmt, made)
        return made.replace(stand_in, generated)

    def chunks(self, key: str, fmt: str, stand_in: str, generated: str) -> Iterator[bytes] | None:
        """get()'s text as pieces of bytes, never whole in memory: the kept file's, else the maker's pieces.

        None when neither can give them (the caller renders the text whole). The kept
        file is checked whole before its first piece is given; the maker's pieces are
        not kept as one file (what they are made from is kept already).
        """
        kept = self._kept_chunks(key, fmt, stand_in, generated)
        if kept is not None:
            return kept
        return self.stream(fmt, stand_in, generated) if self.stream is not None else None

    def _kept_chunks(self, key: str, fmt: str, stand_in: str, generated: str) -> Iterator[bytes] | None:
        path = self._path(fmt)
        try:
            with path.open("rb") as f:
                header = f.readline(200)
                kept_key, size, crc = header.decode("ascii").split()
                if kept_key != key:
                    return None
                found, length, first = 0, 0, None
                while block := f.read(_BLOCK):
                    found, length = zlib.crc32(block, found), length + len(block)
                    first = block if first is None else first
                if length != int(size) or found != int(crc) or first is None or stand_in.encode() not in first:
                    return None  # (the time generated stands in the document's head: in its first block)
        except (OSError, ValueError):
            return None
        return _kept_pieces(path, len(header), stand_in.encode(), generated.encode())

    def _kept(self, key: str, fmt: str, stand_in: str, generated: str) -> str | None:
        try:
            with self._path(fmt).open("rb") as f:
                data = bytearray(os.fstat(f.fileno()).st_size)
                if f.readinto(data) != len(data):
                    return None
            start = data.index(b"\n") + 1
            kept_key, size, crc = bytes(data[: start - 1]).decode("ascii").split()
            view = memoryview(data)
            if kept_key != key or int(size) != len(data) - start or int(crc) != zlib.crc32(view[start:]):
                return None
            old, new = stand_in.encode(), generated.encode()
            at = data.find(old, start)
            if at >= 0 and len(old) == len(new):  # in place: the text is copied once, when decoded
                data[at : at + len(old)] = new
            elif at >= 0:
                view.release()
                data[at : at + len(old)] = new
                view = memoryview(data)
            return str(view[start:], "utf-8")
        except (OSError, ValueError):  # missing or damaged: made anew
            return None

    def put(self, key: str, fmt: str, text: str) -> None:
        data = text.encode("utf-8")
        header = f"{key} {len(data)} {zlib.crc32(data)}\n".encode("ascii")
        keep(self._path(fmt), header + data)


_BLOCK = 1 << 20  # bytes read and written at a time when a kept text is streamed


def _kept_pieces(path: Path, start: int, stand_in: bytes, generated: bytes) -> Iterator[bytes]:
    """A kept text checked already, in blocks, with the first stand_in (found in its first block) made generated."""
    with path.open("rb") as f:
        f.seek(start)
        first = True
        while block := f.read(_BLOCK):
            if first:
                block, first = block.replace(stand_in, generated, 1), False
            yield block


def digest(path: Path) -> str:
    """sha256 of a file's bytes ("" when it cannot be read): for cache keys over files a result depends on."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""
