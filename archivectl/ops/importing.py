"""import: many households at once, from a YAML stream or a CSV with dotted column names.

All or nothing: every row is validated first and the first bad one is reported
with its line and field; then one signed commit holds them all.
"""

from __future__ import annotations

import csv
import io
import multiprocessing
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from archivectl import gitio, records, yamlio
from archivectl.archive import Archive, Transaction
from archivectl.errors import ArchiveError, UsageError
from archivectl.ops.common import Approval, approved_writer, trailers, wrap_targets
from archivectl.ops.households import (
    Numbering,
    place_new,
    prepare_new,
    refuse_names_in_reason,
    seal_household,
)

MAX_IMPORT_BYTES = 512 * 1024 * 1024
MAX_IMPORT_ROWS = 250_000  # households in one import (one signed commit)
MAX_CSV_COLUMNS = 1000
MAX_CSV_CELL = 128 * 1024  # characters; the longest field (notes) has at most 10,000


def _read_text(path: Path) -> str:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    if size > MAX_IMPORT_BYTES:
        raise UsageError(f"{path}: larger than {MAX_IMPORT_BYTES // (1024 * 1024)} MB")
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory") from None


def yaml_rows(path: Path, text: str) -> Iterator[tuple[int, Any]]:
    """(line, record) for each document of a YAML stream, with the strict loader's refusals."""
    loader = yamlio.strict_loader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            line = node.start_mark.line + 1 if node is not None else 0
            yield line, loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}: {yamlio.describe(exc)}") from None
    finally:
        loader.dispose()


def csv_rows(path: Path, text: str, schema: Any) -> Iterator[tuple[int, Any]]:
    """(line, record) for each CSV row; headers are dotted field paths (customers.0.name)."""
    csv.field_size_limit(MAX_CSV_CELL)
    reader = csv.reader(io.StringIO(text, newline=""))

    def next_row() -> list[str] | None:
        try:
            return next(reader)
        except StopIteration:
            return None
        except csv.Error as exc:
            raise UsageError(f"{path} line {reader.line_num}: {_csv_problem(exc)}") from None

    header = next_row()
    if header is None:
        return
    if len(header) > MAX_CSV_COLUMNS:
        raise UsageError(f"{path} line 1: more than {MAX_CSV_COLUMNS} columns")
    paths = [records.parse_path(h.strip()) for h in header]
    while (row := next_row()) is not None:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise UsageError(f"{path} line {line}: {len(row)} cells, but the header has {len(header)}")
        record: dict[str, Any] = {}
        for parts, name, cell in zip(paths, header, row, strict=True):
            if cell == "":
                continue
            try:
                records.set_path(record, list(parts), records.convert_value(cell, schema.node_at(parts), name))
            except UsageError as exc:
                raise UsageError(f"{path} line {line}: {exc}") from None
        yield line, record


def _csv_problem(exc: csv.Error) -> str:
    """What is wrong with a CSV line, in words that never quote its content."""
    if "field larger than field limit" in str(exc):
        return f"a cell is longer than {MAX_CSV_CELL} characters"
    return "not valid CSV (check the quoting)"


def import_households(
    archive: Archive, path: Path, approval: Approval, progress: Callable[[int, int, str], None] | None = None
) -> list[str]:
    """Validate every household in the file, then add them all in one signed commit; return their numbers."""
    with archive.writing() as tx:  # schema, staff and numbers as they stand under the lock
        return _import(archive, tx, path, approval, progress)


def _import(
    archive: Archive,
    tx: Transaction,
    path: Path,
    approval: Approval,
    progress: Callable[[int, int, str], None] | None,
) -> list[str]:
    actor = approved_writer(archive, approval)
    schema = archive.household_schema
    text = _read_text(path)
    is_csv = path.suffix.lower() == ".csv"
    rows = csv_rows(path, text, schema) if is_csv else yaml_rows(path, text)
    prepared: list[dict] = []
    problems: list[str] = []
    with _Workers(archive, {}) as workers:
        for where, record, problem in workers.checked(_numbered_rows(path, rows)):
            if problem is not None:
                problems.append(f"{where}: {problem}")
                continue
            prepared.append(record)
            if progress and len(prepared) % 500 == 0:
                progress(len(prepared), 0, "checking")
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise UsageError(f"{problems[0]}{more}; nothing was imported")
    if not prepared:
        raise UsageError(f"{path}: holds no households")
    refuse_names_in_reason(approval.reason, schema, *prepared)
    targets: dict[str, list[str]] = {}
    for building in sorted({r["building"] for r in prepared}):
        targets[building] = wrap_targets(archive, building)
        if not targets[building]:
            raise ArchiveError(f"no active reader for building {building}: add a manager or gm to staff.yaml")
    numbering = Numbering(archive, tx)
    for category in sorted({r["category"] for r in prepared}):
        of_category = [r for r in prepared if r["category"] == category]
        for record, archive_no in zip(of_category, numbering.take(category, len(of_category)), strict=True):
            record["archive_no"] = archive_no
    tx.expect_new([place_new(archive, record, record["archive_no"]) for record in prepared])
    sealed = []
    with _Workers(archive, targets) as workers:
        for item in workers.sealed(prepared):
            sealed.append(item)
            if progress and (len(sealed) % 200 == 0 or len(sealed) == len(prepared)):
                progress(len(sealed), len(prepared), "sealing")
    tx.put_keys([(address, blob) for address, blob, _, _ in sealed])  # one round of requests, not one each
    tx.write_many([(relpath, text.encode("utf-8")) for _, _, relpath, text in sealed], progress)
    del sealed
    numbering.record()
    numbers_done = [str(r["archive_no"]) for r in prepared]
    first, last = numbers_done[0], numbers_done[-1]
    span = first if len(numbers_done) == 1 else f"{first} … {last}"
    tx.commit(
        f"import {len(numbers_done)} households ({span})",
        trailers("import", approval, actor, ", ".join(numbers_done)),
        actor,
    )
    return numbers_done


def _numbered_rows(path: Path, rows: Iterator[tuple[int, Any]]) -> Iterator[tuple[str, Any]]:
    """(where, raw record) for each row, refusing a file with too many."""
    for count, (line, raw) in enumerate(rows, start=1):
        where = f"{path.name} line {line}"
        if count > MAX_IMPORT_ROWS:
            raise UsageError(f"{where}: more than {MAX_IMPORT_ROWS} households in one file; split it")
        yield where, raw


# ------------------------------------------------------------ using every core
#
# Checking a row against the schema and sealing a household (a new record key,
# the sealed block, the key wrapped to each reader) are pure computation on one
# record, and pyrage holds the GIL: threads do not help, processes do. Workers
# are forked with the archive, schema and reader keys already loaded, and get
# chunks of rows over a pipe; the record keys they make never leave them (only
# the wrapped key comes back). They drop their copy of the archive lock, so a
# worker that outlives a killed archivectl never holds the archive.

CHUNK = 100  # households per task: large enough to hide the pipe, small enough to spread evenly
MIN_PARALLEL = 1000  # below this the workers' start costs more than they save
_state: dict[str, Any] = {}


def _start_worker() -> None:
    for fd in gitio._INHERITED_FDS:  # the archive lock: only the parent holds it
        try:
            os.close(fd)
        except OSError:
            pass


def _check_rows(rows: list[tuple[str, Any]]) -> list[tuple[str, dict | None, str | None]]:
    schema = _state["archive"].household_schema
    out: list[tuple[str, dict | None, str | None]] = []
    for where, raw in rows:
        if not isinstance(raw, dict):
            out.append((where, None, "a record must be a YAML mapping"))
            continue
        try:
            out.append((where, prepare_new(raw, schema), None))
        except UsageError as exc:
            out.append((where, None, str(exc).removeprefix("record: ")))
    return out


def _seal_records(chunk: list[dict]) -> list[tuple[Any, bytes, str, str]]:
    archive, targets = _state["archive"], _state["targets"]
    return [seal_household(archive, record, targets[record["building"]]) for record in chunk]


def _chunks(items: Any, size: int = CHUNK) -> Iterator[list]:
    chunk: list = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class _Workers:
    """A pool of forked processes (one per core) for checking and sealing, or this process alone."""

    def __init__(self, archive: Archive, targets: dict[str, list[str]]):
        self.archive, self.targets = archive, targets
        self.pool: Any = None

    def __enter__(self) -> _Workers:
        _state.update(archive=self.archive, targets=self.targets)
        self.archive.household_schema.validator  # noqa: B018 - compiled once, before the fork
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
            self.pool = None
        _state.clear()

    def _map(self, work: Any, chunks: Iterator[list], count_hint: int | None) -> Iterator[Any]:
        cores = os.cpu_count() or 1
        methods = multiprocessing.get_all_start_methods()
        if cores < 2 or "fork" not in methods or (count_hint is not None and count_hint < MIN_PARALLEL):
            for chunk in chunks:
                yield from work(chunk)
            return
        first: list[list] = []
        if count_hint is None:  # a stream: start workers only once it proves long enough
            for chunk in chunks:
                first.append(chunk)
                if len(first) * CHUNK >= MIN_PARALLEL:
                    break
            if len(first) * CHUNK < MIN_PARALLEL:
                for chunk in first:
                    yield from work(chunk)
                return
        if self.pool is None:
            self.pool = multiprocessing.get_context("fork").Pool(cores, initializer=_start_worker)

        def all_chunks() -> Iterator[list]:
            yield from first
            yield from chunks

        for done in self.pool.imap(work, all_chunks()):
            yield from done

    def checked(self, rows: Iterator[tuple[str, Any]]) -> Iterator[tuple[str, dict | None, str | None]]:
        return self._map(_check_rows, _chunks(rows), None)

    def sealed(self, prepared: list[dict]) -> Iterator[tuple[Any, bytes, str, str]]:
        return self._map(_seal_records, _chunks(prepared), len(prepared))
