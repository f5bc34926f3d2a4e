"""Every parser, fed random nested and hostile YAML, CSV and JSON: a value or a one-line refusal, nothing else.

No traceback, no RecursionError, no segfault (the 100,000-deep case is a test of its own in
test_hardening2.py): whatever a file holds, archivectl answers with an ArchiveError it can print as one line.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from props import examples

from archivectl import schema, yamlio
from archivectl.errors import ArchiveError
from archivectl.ops.importing import csv_cells, csv_lines, yaml_rows

SCHEMA = schema.HouseholdSchema(
    json.loads((Path(__file__).resolve().parent.parent / "schemas/household.schema.json").read_text())
)
FUZZ = settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20))
nested = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=40,
)
deep = st.integers(min_value=1, max_value=400).map(lambda n: "[" * n + "]" * n)
deep_maps = st.integers(min_value=1, max_value=400).map(lambda n: "{a: " * n + "1" + "}" * n)
hostile = st.sampled_from(
    ["&a [*a]", "!!python/object:os.system x", "a: 1\na: 2", "- &x [1]\n- *x", "\x00\x01", "key: [unclosed", "? ? ?"]
)


def one_line_refusal(exc: ArchiveError) -> None:
    text = str(exc)
    assert text and "\n" not in text and "Traceback" not in text


def yaml_texts() -> st.SearchStrategy[str]:
    as_yaml = nested.map(lambda v: json.dumps(v))  # JSON is YAML: nested flow collections of any shape
    return st.one_of(as_yaml, deep, deep_maps, hostile, st.text(max_size=200))


@FUZZ
@given(yaml_texts())
def test_yaml_loader_returns_or_refuses_in_one_line(text):
    try:
        yamlio.loads(text, "fuzz.yaml")
    except ArchiveError as exc:
        one_line_refusal(exc)


@FUZZ
@given(st.lists(yaml_texts(), min_size=1, max_size=3).map("\n---\n".join))
def test_an_import_yaml_stream_returns_or_refuses_in_one_line(text):
    try:
        list(yaml_rows(Path("fuzz.yaml"), text))
    except ArchiveError as exc:
        one_line_refusal(exc)


cells = st.one_of(st.text(max_size=30), st.text(alphabet='",\n\r', max_size=10), st.just("x" * 140_000))
header = st.sampled_from(["building,floor,unit,category", "customers.0.name,unit", "a,b", "customers..x,y", ""])


@FUZZ
@given(header, st.lists(st.lists(cells, max_size=5), max_size=5))
def test_an_import_csv_returns_or_refuses_in_one_line(head, rows):
    text = head + "\n" + "\n".join(",".join(r) for r in rows)
    try:
        cells, columns = csv_cells(Path("fuzz.csv"), text, SCHEMA)
        for _, row in cells:
            columns.record(row)  # as each import worker makes a record of a row
    except ArchiveError as exc:
        one_line_refusal(exc)


@FUZZ
@given(st.text(alphabet='ab,"\r\n\x0b\x0c\x1c\x85\u2028', max_size=60))
def test_csv_lines_are_the_lines_csv_reads_from_a_file_opened_with_newline_empty(text):
    # import reads a CSV through csv_lines (no copy of the text); it must split it exactly where a file
    # opened with newline="" does: at \r\n, \r and \n only, not at the other line breaks str.splitlines knows
    assert list(csv_lines(text)) == list(io.StringIO(text, newline=""))

    def rows(lines: object) -> object:
        try:
            return list(csv.reader(lines))  # type: ignore[call-overload]
        except csv.Error as exc:
            return str(exc)

    assert rows(csv_lines(text)) == rows(io.StringIO(text, newline=""))


@FUZZ
@given(
    st.one_of(nested.map(json.dumps), deep, st.text(max_size=200), deep.map(lambda s: s.replace("[", '{"a":[')[:4000]))
)
def test_a_json_schema_file_returns_or_refuses_in_one_line(text):
    try:
        schema.parse_json(text, "fuzz.schema.json")
    except ArchiveError as exc:
        one_line_refusal(exc)


def _checking_composer(text: str) -> object:
    """What loads() gave before libyaml composed clean files: the value, or its refusal's words."""
    import yaml

    try:
        return yaml.load(text, Loader=yamlio._Loader)
    except yaml.YAMLError as exc:
        return f"fuzz.yaml: {yamlio.describe(exc)}"


def _loads(text: str) -> object:
    try:
        return yamlio.loads(text, "fuzz.yaml")
    except ArchiveError as exc:
        return str(exc)


blocks = nested.map(lambda v: yamlio.dumps(v))  # block style, as records are written
awkward = st.sampled_from(
    [
        "a: 1\nb: {c: 2, c: 3}\n",  # a duplicate deep down
        "? [1, 2]\n: x\n",  # a key that is not a plain value
        "a: 1\n---\nb: 2\n",  # two documents
        "note: 'three * four & five'\n",  # alias characters inside a value
        "when: 2026-11-24\nt: 2026-11-24T10:00:00Z\n",  # dates stay strings
        "- " * 70 + "x\n",  # nested past the limit in block style
        "a:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 70)) + "  " * 70 + "v\n",
        "!!python/object:os.system x\n",
        "a: !!binary aGk=\n",
        "",
    ]
)


@FUZZ
@given(st.one_of(blocks, yaml_texts(), awkward))
def test_libyaml_composing_clean_files_changes_no_value_and_no_refusal(text):
    # loads() lets libyaml's C composer build clean files (a third of a record's parse in
    # verify and reports) and keeps the checking composer for the rest: same answers.
    assert _loads(text) == _checking_composer(text)
