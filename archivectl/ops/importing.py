"""import: many households at once, from a YAML stream or a CSV with dotted column names.

All or nothing: every row is validated first and the first bad one is reported
with its line and field; then one signed commit holds them all.
"""

from __future__ import annotations

import csv
import itertools
import multiprocessing
import os
import pickle
import queue
import re
import signal
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from archivectl import gitio, records, yamlio
from archivectl.archive import Archive, Transaction
from archivectl.errors import ArchiveError, UsageError
from archivectl.i18n import _
from archivectl.journal import ctrl_c_deferred
from archivectl.keystore import KeyAddress
from archivectl.layout import HouseholdPath
from archivectl.ops.common import Approval, approved_writer, trailers, wrap_targets_of
from archivectl.ops.finding import writer_index
from archivectl.ops.households import (
    Numbering,
    _names_in,
    active_on_unit,
    numbered,
    personal_data_in_reason,
    place_many,
    prepare_new,
    refuse_reason_holding,
    seal_unnumbered,
)
from archivectl.streams import batches

MAX_IMPORT_BYTES = 512 * 1024 * 1024
MAX_IMPORT_ROWS = 250_000  # households in one import (one signed commit)
MAX_CSV_COLUMNS = 1000
MAX_CSV_CELL = 128 * 1024  # characters; the longest field (notes) has at most 10,000


def _read_text(path: Path) -> tuple[str, str]:
    """The file's text and the encoding it was read as: UTF-8 with BOM, UTF-8, or GB18030.

    What offices' spreadsheets are saved as: UTF-8 (with Excel's BOM or
    without), or GB18030, which holds GBK and GB2312 (Excel's "CSV" on Chinese
    Windows). A file whose text reads as UTF-8 but for a bad byte or two is a
    damaged UTF-8 file, not GBK: it is refused, never read as something else.
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise UsageError(_("{path}: no such file").format(path=path)) from None
    if size > MAX_IMPORT_BYTES:
        raise UsageError(_("{path}: larger than {mb} MB").format(path=path, mb=MAX_IMPORT_BYTES // (1024 * 1024)))
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise UsageError(_("{path}: is a directory").format(path=path)) from None
    bom = data.startswith(b"\xef\xbb\xbf")
    try:
        return data[3:].decode("utf-8") if bom else data.decode("utf-8"), _("UTF-8 with BOM") if bom else "UTF-8"
    except UnicodeDecodeError as exc:
        bad = exc.start + (3 if bom else 0)
        if bom or _mostly_utf8(data):
            raise UsageError(_("{path}: not UTF-8 text (byte {at})").format(path=path, at=bad)) from None
    try:
        return data.decode("gb18030"), "GB18030"
    except UnicodeDecodeError:
        raise UsageError(
            _("{path}: neither UTF-8 nor GB18030/GBK text (byte {at})").format(path=path, at=bad)
        ) from None


def _mostly_utf8(data: bytes) -> bool:
    """Whether most of the non-ASCII text reads as UTF-8: a UTF-8 file with a damaged byte, not GBK.

    Some GBK pairs happen to be valid UTF-8 too (欧 is C5 B7), but only about
    one in ten: in GBK text the bytes that do not read as UTF-8 are the many.
    """
    text = data.decode("utf-8", errors="replace")
    bad = text.count("\ufffd")
    good = sum(1 for ch in text if ch > "\x7f") - bad
    return good > bad


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


ALSO_ACTIVE = "also_active"  # a row's column (CSV) or key (YAML) saying the unit's other household lives there too
SEPARATORS = {",": "','", ";": "';'", "\t": "tab"}  # what Excel writes, by locale and by "Save as"


class CsvColumns:
    """What each column of a CSV import is: its field's path and type, looked up once, not once a cell.

    The column also_active is no field: it says the row's unit deliberately has
    another active household (P1), and is never stored.
    """

    def __init__(self, header: list[str], schema: Any, where: str = "header"):
        self.header = header
        names = [h.strip() for h in header]
        self.also = names.index(ALSO_ACTIVE) if ALSO_ACTIVE in names else None
        self.paths: list[list[Any]] = []
        for i, name in enumerate(header):
            if i == self.also:
                self.paths.append([])
                continue
            try:
                parts = records.parse_path(name.strip())
            except UsageError as exc:
                raise UsageError(f"{where}: {exc}") from None
            problem = schema.unknown_field(parts)
            if problem:
                raise UsageError(_("{where}: column {column}").format(where=where, column=problem))
            self.paths.append(parts)
        self.nodes = [schema.node_at(parts) if parts else {} for parts in self.paths]

    def record(self, row: list[str]) -> dict[str, Any]:
        """The record a row of cells holds (empty cells left out), or UsageError naming the field."""
        record: dict[str, Any] = {}
        for i, (parts, node, name, cell) in enumerate(zip(self.paths, self.nodes, self.header, row, strict=True)):
            if i == self.also:
                record[ALSO_ACTIVE] = _yes_no(cell)
            elif cell != "":
                records.set_path(record, list(parts), records.convert_value(cell, node, name))
        return record


def _yes_no(cell: str) -> bool:
    value = cell.strip().lower()
    if value in ("", "false", "no", "0"):
        return False
    if value in ("true", "yes", "1"):
        return True
    raise UsageError(_("{column}: must be true or false").format(column=ALSO_ACTIVE))


def separator_of(text: str) -> str:
    """The separator of a CSV: whichever of comma, semicolon and tab its header line holds most of."""
    header = text[: text.find("\n")] if "\n" in text else text
    counts = {sep: header.count(sep) for sep in SEPARATORS}
    best = max(counts, key=lambda sep: counts[sep])
    return best if counts[best] else ","


def csv_cells(
    path: Path, text: str, schema: Any, separator: str = ","
) -> tuple[Iterator[tuple[int, list[str]]], CsvColumns]:
    """(line, cells) for each CSV row that is not blank, and what its columns are (the header, read now).

    Turning cells into a record (CsvColumns.record) is left to whoever checks
    the rows: an import does it on every core.
    """
    csv.field_size_limit(MAX_CSV_CELL)
    reader = csv.reader(csv_lines(text), delimiter=separator)

    def next_row() -> list[str] | None:
        try:
            return next(reader)
        except StopIteration:
            return None
        except csv.Error as exc:
            raise UsageError(
                _("{name} line {line_num}: {csv_problem}").format(
                    name=path.name, line_num=reader.line_num, csv_problem=_csv_problem(exc)
                )
            ) from None

    header = next_row() or []
    if len(header) > MAX_CSV_COLUMNS:
        raise UsageError(
            _("{name} line 1: more than {MAX_CSV_COLUMNS} columns").format(
                name=path.name, MAX_CSV_COLUMNS=MAX_CSV_COLUMNS
            )
        )
    columns = CsvColumns(header, schema, f"{path.name} line 1")

    def rows() -> Iterator[tuple[int, list[str]]]:
        while (row := next_row()) is not None:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise UsageError(
                    _("{file} line {line}: {cells} cells, but the header has {columns}").format(
                        file=path.name, line=line, cells=len(row), columns=len(header)
                    )
                )
            yield line, row

    return rows(), columns


# A line as a file opened with newline="" gives it: ended by \r\n, \r or \n, kept as it is; the last may have none.
_LINE = re.compile(r"[^\r\n]*(?:\r\n?|\n)|[^\r\n]+")


def csv_lines(text: str) -> Iterator[str]:
    """The lines of text for csv.reader, each made as it is read.

    io.StringIO(text, newline="") gives the same lines, but first copies the
    text at four bytes a character: 28 MB for a 50,000-household CSV, the
    largest thing an import held.
    """
    return (match.group() for match in _LINE.finditer(text))


def _csv_problem(exc: csv.Error) -> str:
    """What is wrong with a CSV line, in words that never quote its content."""
    if "field larger than field limit" in str(exc):
        return f"a cell is longer than {MAX_CSV_CELL} characters"
    return "not valid CSV (check the quoting)"


class Imported(list):
    """The archive numbers an import gave, in the file's order, and how the file was read."""

    encoding: str = "UTF-8"
    separator: str | None = None  # a CSV's: ",", ";" or "\t"

    def read_as(self) -> str:
        """How the file was read, in words: its encoding and, for a CSV, its separator."""
        if self.separator is None:
            return _("read as {encoding}").format(encoding=self.encoding)
        return _("read as {encoding}, cells separated by {separator}").format(
            encoding=self.encoding, separator=_(SEPARATORS[self.separator])
        )


def import_households(
    archive: Archive, path: Path, approval: Approval, progress: Callable[[int, int, str], None] | None = None
) -> Imported:
    """Validate every household in the file, then add them all in one signed commit; return their numbers."""
    with archive.writing() as tx:  # schema, staff and numbers as they stand under the lock
        return _import(archive, tx, path, approval, progress)


def _import(
    archive: Archive,
    tx: Transaction,
    path: Path,
    approval: Approval,
    progress: Callable[[int, int, str], None] | None,
) -> Imported:
    actor = approved_writer(archive, approval)
    schema = archive.household_schema
    text, encoding = _read_text(path)
    columns: CsvColumns | None = None
    rows: Iterator[tuple[int, Any]]
    separator = None
    if path.suffix.lower() == ".csv":
        separator = separator_of(text)
        rows, columns = csv_cells(path, text, schema, separator)  # each row made a record by the worker that checks it
    else:
        rows = yaml_rows(path, text)
    # Every row is checked before anything is numbered (all or nothing), but what
    # is kept of the checked records meanwhile is one compressed chunk per CHUNK
    # rows, let go of as it is sealed, plus (building, unit, category) each.
    checked: list[_Checked] = []
    problems: list[str] = []
    kind: str | None = None
    good = 0
    with _Workers(archive, {}, approval.reason, columns) as workers:
        for chunk in workers.checked(_numbered_rows(path, rows)):
            problems += chunk.problems
            kind = kind or chunk.reason_holds
            if chunk.places:
                checked.append(chunk)
                good += len(chunk.places)
            if progress:
                progress(good, 0, "checking")
    del rows, text
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise UsageError(_("{problem}{more}; nothing was imported").format(problem=problems[0], more=more))
    places = [place for chunk in checked for place in chunk.places]
    if not places:
        raise UsageError(_("{file}: holds no households").format(file=path.name))
    refuse_second_active(archive, checked)
    also = [shared for chunk in checked for shared in chunk.also]
    for chunk in checked:
        chunk.places, chunk.wheres, chunk.also = [], [], []  # held once, in places, until the numbers are placed
    refuse_reason_holding(kind)
    targets = wrap_targets_of(archive, sorted({building for building, _, _ in places}))
    for building, readers in targets.items():
        if not readers:
            raise ArchiveError(
                _("no active reader for building {building}: add a manager or gm to staff.yaml").format(
                    building=building
                )
            )
    with _Workers(archive, targets, None, index=writer_index(archive, actor)) as workers:
        # The workers seal from here on, while the numbers are taken: a number is in no sealed part and
        # no key, so each record's text is given its number as it comes back (numbered).
        sealed = workers.sealed(checked, len(places))
        numbering = Numbering(archive, tx)
        numbers: list[str] = [""] * len(places)
        with archive.keystore.one_flush():  # one flush of every series' numbers
            for category in sorted({category for _, _, category in places}):
                of_category = [i for i, (_, _, c) in enumerate(places) if c == category]
                for i, archive_no in zip(of_category, numbering.take(category, len(of_category)), strict=True):
                    numbers[i] = archive_no
        relpaths = place_many(archive, [(b, u, no) for (b, u, _), no in zip(places, numbers, strict=True)])
        tx.expect_new(relpaths)
        del places
        with _KeyStorer(tx) as keys:  # every key stored (or the first failure raised) before the commit
            tx.write_many(_numbered_files(keys, sealed, numbers, relpaths, progress))
    numbering.record()
    first, last = numbers[0], numbers[-1]
    span = first if len(numbers) == 1 else f"{first} … {last}"
    tx.commit(
        f"import {len(numbers)} households ({span})",
        trailers(
            "import",
            approval,
            actor,
            ", ".join(numbers),
            also_active=", ".join(no for no, shared in zip(numbers, also, strict=True) if shared),
        ),
        actor,
    )
    imported = Imported(numbers)
    imported.encoding, imported.separator = encoding, separator
    return imported


def refuse_second_active(archive: Archive, checked: list[_Checked]) -> None:
    """P1: ArchiveError naming both when a row would be a unit's second active household.

    Against the rows above it in the file, and against the unit's active
    households in the archive; a row saying also_active is let through.
    """
    first_in_file: dict[tuple[str, str], str] = {}
    units: dict[str, set[str]] = {}
    problems = []
    for chunk in checked:
        for (building, unit, _category), where, also in zip(chunk.places, chunk.wheres, chunk.also, strict=True):
            if also:
                continue
            earlier = first_in_file.setdefault((building, unit), where)
            if earlier != where:
                problems.append(
                    _("{where}: {building}/{unit} has an active household at {earlier} already (P1)").format(
                        where=where, building=building, unit=unit, earlier=" ".join(earlier.split(" ")[-2:])
                    )
                )
                continue
            if building not in units:
                units[building] = _names_in(archive.root / HouseholdPath(building, unit, "x").dir.rsplit("/", 2)[0])
            if unit in units[building]:
                active = active_on_unit(archive, building, unit)
                if active:
                    problems.append(
                        _("{where}: {no} is the active household of {building}/{unit} already (P1)").format(
                            where=where, no=active[0], building=building, unit=unit
                        )
                    )
    if problems:
        more = _(" (and {n} more)").format(n=len(problems) - 1) if len(problems) > 1 else ""
        raise ArchiveError(
            problems[0]
            + more
            + _(": move it out first, or say also_active on the row if both live there; nothing was imported")
        )


def _numbered_files(
    keys: _KeyStorer,
    sealed: Iterator[list[tuple[str, bytes, str]]],
    numbers: list[str],
    relpaths: list[str],
    progress: Callable[[int, int, str], None] | None,
) -> Iterator[tuple[str, bytes]]:
    """The record files of the sealed households, each given its number; their keys are stored as they come.

    A batch of FLUSH households at a time: its keys go to the key storer (one
    round to the keystore, journaled first, as put_keys does), its files to
    write_many; then the batch is dropped.
    """
    places = zip(numbers, relpaths, strict=True)
    done = 0
    batch: list[tuple[KeyAddress, bytes, str, str]] = []
    for chunk in sealed:
        for recipient, blob, text in chunk:
            archive_no, relpath = next(places)
            batch.append((KeyAddress(archive_no, recipient), blob, relpath, numbered(text, archive_no)))
        if len(batch) < FLUSH and done + len(batch) < len(numbers):
            continue
        keys.put([(address, blob) for address, blob, _, _ in batch])
        for _address, _blob, relpath, text in batch:
            yield relpath, text.encode("utf-8")
        done += len(batch)
        batch = []
        if progress:
            progress(done, len(numbers), "sealing and writing")
    if done != len(numbers):
        raise ArchiveError(_("internal: {done} of {n} households sealed").format(done=done, n=len(numbers)))


class _KeyStorer:
    """Stores batches of new keys (tx.put_keys) on a thread of its own while this one writes the record files.

    Both are mostly waiting on the file system (on ext4 here a new file costs
    100-300 us), and the thread waits without the GIL, so the keystore's files
    and the work tree's are made side by side instead of one after the other.
    The order that matters holds within each: a key is journaled before it is
    stored, a file before it is written; and every key is stored before the
    commit, which leaving the `with` waits for. A failure on the thread is raised
    here at the next batch or on leaving, and the write is undone as any other.
    The thread starts with the first batch, after the workers are forked.
    """

    def __init__(self, tx: Transaction):
        self.tx = tx
        self.batches: queue.Queue[list[tuple[Any, bytes]] | None] = queue.Queue(maxsize=2)  # memory stays flat
        self.thread: threading.Thread | None = None
        self.failed: BaseException | None = None
        self.stopping = False  # the write failed or was interrupted: store no more batches, they go back anyway

    def __enter__(self) -> _KeyStorer:
        return self

    def put(self, batch: list[tuple[Any, bytes]]) -> None:
        self._raise_failure()
        if self.thread is None:
            self.thread = threading.Thread(target=self._store, name="archivectl-keys", daemon=True)
            self.thread.start()
        self.batches.put(batch)

    def _store(self) -> None:
        while (batch := self.batches.get()) is not None:
            if self.failed is None and not self.stopping:  # else batches are only taken so put() never blocks
                try:
                    self.tx.put_keys(batch)
                except BaseException as exc:
                    self.failed = exc

    def _raise_failure(self) -> None:
        if self.failed is not None:
            raise self.failed

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        if self.thread is not None:
            self.stopping = exc_type is not None  # only the batch being stored is finished (journaled, undone)
            with ctrl_c_deferred():  # a second Ctrl-C must not leave it storing keys while the write is undone
                self.batches.put(None)
                self.thread.join()
        if exc_type is None:
            self._raise_failure()


def _numbered_rows(path: Path, rows: Iterator[tuple[int, Any]]) -> Iterator[tuple[str, Any]]:
    """(where, raw record) for each row, refusing a file with too many."""
    for count, (line, raw) in enumerate(rows, start=1):
        where = f"{path.name} line {line}"
        if count > MAX_IMPORT_ROWS:
            raise UsageError(
                _("{where}: more than {MAX_IMPORT_ROWS} households in one file; split it").format(
                    where=where, MAX_IMPORT_ROWS=MAX_IMPORT_ROWS
                )
            )
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
FLUSH = 1000  # sealed households held before their keys are stored and their files written
MIN_PARALLEL = 1000  # below this the workers' start costs more than they save
# Chunks being sealed or sealed and not yet taken: the workers seal this far ahead while the numbers are
# taken (20,000 in about 1.2 s, when the workers seal some 4,000), and when the files are written slower
# than the workers seal, their results wait here (some 2.3 KB a household: at most 10 MB) instead of
# piling up without end.
SEALED_AHEAD = 4 * FLUSH // CHUNK + 4
_state: dict[str, Any] = {}


def _start_worker() -> None:
    # Ctrl-C reaches the whole process group: the parent stops the workers (terminate) and undoes the write;
    # a worker that died of it would print a traceback and be replaced by a new fork, which inherits
    # whatever pipe the parent has open then (a git it waits on would never be seen to finish).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for fd in gitio._INHERITED_FDS:  # the archive lock: only the parent holds it
        try:
            os.close(fd)
        except OSError:
            pass


@dataclass
class _Checked:
    """A chunk of checked rows: what was wrong, and the good ones packed (compressed) with where each goes."""

    problems: list[str]
    places: list[tuple[str, str, str]]  # (building, unit, category) of each good row, in order
    packed: bytes  # the good rows' prepared records, pickled and compressed
    reason_holds: str | None  # what personal data the reason holds, judged with these rows' names
    wheres: list[str] = field(default_factory=list)  # each good row's file and line
    also: list[bool] = field(default_factory=list)  # each good row's also_active (P1)


def _check_rows(rows: list[tuple[str, Any]]) -> _Checked:
    schema, settings = _state["archive"].household_schema, _state["archive"].settings
    problems: list[str] = []
    good: list[dict] = []
    wheres: list[str] = []
    also: list[bool] = []
    columns: CsvColumns | None = _state["columns"]
    for where, raw in rows:
        if columns is not None:
            try:
                raw = columns.record(raw)
            except UsageError as exc:
                problems.append(f"{where}: {exc}")
                continue
        if not isinstance(raw, dict):
            problems.append(f"{where}: a record must be a YAML mapping")
            continue
        shared = raw.pop(ALSO_ACTIVE, False) if ALSO_ACTIVE in raw else False
        if not isinstance(shared, bool):
            problems.append(_("{where}: {column}: must be true or false").format(where=where, column=ALSO_ACTIVE))
            continue
        try:
            good.append(prepare_new(raw, schema, settings))
        except UsageError as exc:
            problems.append(f"{where}: {str(exc).removeprefix('record: ')}")
            continue
        wheres.append(where)
        also.append(shared)
    if problems:
        return _Checked(problems, [], b"", None)
    return _Checked(
        [],
        [(str(r["building"]), str(r["unit"]), str(r["category"])) for r in good],
        zlib.compress(pickle.dumps(good, pickle.HIGHEST_PROTOCOL), 1),
        personal_data_in_reason(_state["reason"], schema, *good) if _state["reason"] else None,
        wheres,
        also,
    )


def _seal_records(chunk: _Checked) -> list[tuple[str, bytes, str]]:
    archive, targets = _state["archive"], _state["targets"]
    prepared = pickle.loads(zlib.decompress(chunk.packed))  # noqa: S301 - packed by _check_rows, never read from a file
    index = _state.get("index")  # the blind index key, if the importer has one (ops.finding.writer_index)
    return [seal_unnumbered(archive, record, targets[record["building"]], index) for record in prepared]


def _handed_out(chunks: list[_Checked]) -> Iterator[_Checked]:
    """Each chunk in order, taken out of the list as it is handed out: nothing sealed is also held packed."""
    chunks.reverse()
    while chunks:
        yield chunks.pop()


class _Paced:
    """Chunks for the pool, handed out no more than `ahead` before their results are taken.

    Pool.imap takes its input on a thread of its own as fast as it can; this
    makes that thread wait for room instead.
    """

    def __init__(self, chunks: Iterator[Any], ahead: int):
        self.chunks, self.room, self.closed = chunks, threading.Semaphore(ahead), False

    def __iter__(self) -> _Paced:
        return self

    def __next__(self) -> Any:
        self.room.acquire()
        if self.closed:
            raise StopIteration
        return next(self.chunks)

    def taken(self) -> None:
        self.room.release()

    def close(self) -> None:
        self.closed = True
        self.room.release()


class _Workers:
    """A pool of forked processes (one per core) for checking and sealing, or this process alone."""

    def __init__(
        self,
        archive: Archive,
        targets: dict[str, list[str]],
        reason: str | None,
        columns: CsvColumns | None = None,
        index: Any = None,
    ):
        self.archive, self.targets, self.reason, self.columns = archive, targets, reason, columns
        self.index = index
        self.pool: Any = None
        self.paced: _Paced | None = None

    def __enter__(self) -> _Workers:
        _state.update(
            archive=self.archive, targets=self.targets, reason=self.reason, columns=self.columns, index=self.index
        )
        # The compiled first pass once, before the fork; jsonschema's validator only where a row is refused
        # (0.06 s with its import, which an import of good rows never needs).
        self.archive.household_schema.fast_validator  # noqa: B018
        self.archive.settings  # noqa: B018  # the estate's buildings, read once before the fork
        return self

    def __exit__(self, *exc: Any) -> None:
        with ctrl_c_deferred():  # the workers are stopped however often Ctrl-C is pressed meanwhile
            if self.paced is not None:
                self.paced.close()  # before terminate(), which waits for the thread that feeds the pool
            if self.pool is not None:
                self.pool.terminate()
                self.pool.join()
                self.pool = None
            _state.clear()

    @staticmethod
    def _parallel(count: int) -> bool:
        """Whether to fork workers for count rows: more than one core, fork available, and enough rows."""
        cores = os.cpu_count() or 1
        return cores >= 2 and "fork" in multiprocessing.get_all_start_methods() and count >= MIN_PARALLEL

    def _start(self) -> Any:
        self.pool = multiprocessing.get_context("fork").Pool(os.cpu_count(), initializer=_start_worker)
        return self.pool

    def checked(self, rows: Iterator[tuple[str, Any]]) -> Iterator[_Checked]:
        """Each chunk of rows checked: on every core once the stream proves long enough, else here."""
        chunks = batches(rows, CHUNK)
        first: list[Any] = []
        for chunk in chunks:
            first.append(chunk)
            if len(first) * CHUNK >= MIN_PARALLEL:
                break
        if not self._parallel(len(first) * CHUNK):
            for chunk in itertools.chain(first, chunks):
                yield _check_rows(chunk)
            return
        yield from self._start().imap(_check_rows, itertools.chain(first, chunks))

    def sealed(self, checked: list[_Checked], count: int) -> Iterator[list[tuple[str, bytes, str]]]:
        """Each chunk of checked rows sealed: (the record key's recipient, wrapped key, record text) each.

        With enough rows the workers start at once, and seal up to SEALED_AHEAD
        chunks before their results are taken (meanwhile the numbers are taken).
        """
        if not self._parallel(count):
            return (_seal_records(chunk) for chunk in _handed_out(checked))
        paced = self.paced = _Paced(_handed_out(checked), SEALED_AHEAD)
        results = self._start().imap(_seal_records, paced)

        def taken() -> Iterator[list[tuple[str, bytes, str]]]:
            for result in results:
                paced.taken()
                yield result

        return taken()
