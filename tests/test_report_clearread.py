"""The fast clear-part reader answers exactly what the strict loader answers, or nothing (reports, #14)."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from props import examples

from archivectl import clearread, yamlio


def typed(value: Any) -> Any:
    """value with every type spelt out: 1, 1.0 and True differ, NaN equals NaN, mapping order counts."""
    if isinstance(value, dict):
        return ("map", [(typed(k), typed(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("seq", [typed(v) for v in value])
    if isinstance(value, float):
        return ("float", "nan" if math.isnan(value) else repr(value))
    return (type(value).__name__, value)


def strict(text: str) -> Any:
    """What yamlio.loads makes of text, or the name of the exception it refuses it with."""
    try:
        return typed(yamlio.loads(text.encode("utf-8")))
    except Exception as refused:  # any refusal: the fast reader must not answer
        return f"refused: {type(refused).__name__}"


def same_or_unsure(text: str) -> bool:
    """The reader's answer is the strict loader's, or None (left to the strict loader). Returns whether it answered."""
    fast = clearread.mapping(text)
    if fast is None:
        return False
    assert typed(fast) == strict(text), text
    return True


PLAIN_RECORD = """\
archive_no: HO-2026-00001
building: B03
floor: 12
unit: '0000'
category: handed-over
occupancy: owner-occupied
status: active
vehicles:
- parking_space: P2-190
  spaces:
  - 1
  - 2
renovation:
  started: 2024-03-15
  finished: 2024-05-10
  permit_no: ZX-2024-001
documents:
- type: fire-safety-pledge
  date: 2024-03-01
  file: attachments/fire.pdf.age
- type: owner-id-copy
  date: '2024-03-02'
violations: []
arrears: {}
last_reviewed: null
recipient: age1u0a5600kd6cf3g2fht47a396ss6dxe8239463tpsc0tyqqrdtprqtlnv86
sealed_fields:
- customers
- customers.name
- notes
"""


def test_a_record_as_records_writes_it_is_read_and_read_the_same():
    assert same_or_unsure(PLAIN_RECORD)


# Each replaces one line of PLAIN_RECORD (its `status: active`): values and shapes YAML reads in awkward ways.
AWKWARD_LINES = [
    "status: 0499",  # not octal: a string
    "status: 0o12",
    "status: 010",  # YAML 1.1 octal: 8
    "status: 1_000",
    "status: 10:30",  # sexagesimal: 630
    "status: -10:30",
    "status: 0x1F",
    "status: 0b101",
    "status: 0b_",  # what the constructor cannot make
    "status: .inf",
    "status: -.inf",
    "status: .NaN",
    "status: -.5",
    "status: 1e5",  # not a float in YAML 1.1: a string
    "status: 1.0e+5",
    "status: 6.8523015e+5",
    "status: 190:20:30.15",
    "status: ~",
    "status: null",
    "status: Null",
    "status: NULL",
    "status: nULL",
    "status: yes",
    "status: No",
    "status: on",
    "status: OFF",
    "status: y",
    "status: n",
    "status: true",
    "status: 'yes'",
    'status: "no"',
    "status: ''",
    'status: ""',
    "status: 'it''s'",
    "status: 'it's'",
    'status: "a \\" b"',
    'status: "tab\\tthere"',
    "status: a #comment",
    "status: a#b",
    "status: a: b",
    "status: a:b",
    "status: http://x.invalid/a?b=c",
    "status: a:",
    "status: -",
    "status: -x",
    "status: - x",
    "status: --- x",
    "status: ---",
    "status: ...",
    "status: =",
    "status: <<",
    "status: [a, b]",
    "status: {a: b}",
    "status: [ ]",
    "status: []",
    "status: {}",
    "status: &anchor x",
    "status: *alias",
    "status: !!str 12",
    "status: !custom x",
    "status: |",
    "status: |\n  two\n  lines",
    "status: >-\n  folded\n  text",
    "status: first\n  continued",
    "status: 'first\n  continued'",
    'status: "first\n  continued"',
    "status: ?x",
    "status: @x",
    "status: `x",
    "status: %x",
    "status: a, b",
    "status: a]",
    "status: a}b",
    "status: 中文地址",
    "status: 楼栋 3 号",
    "status: café",
    "status: 'é'",
    "status: a\u3000",
    "status: a\u00a0b",
    "status: a\u0085b",
    "status: a\u2028b",
    "status: \ufeffa",
    "status: a\x7fb",
    "status: a\tb",
    "status:\ta",
    "status: a ",
    "status:  a",
    "status: ",
    "status:",
    "status:a",
    "'status': active",
    '"status": active',
    "? status\n: active",
    "on: active",
    "null: active",
    "yes: x",
    "y: x",
    "1: x",
    "building: B04",  # a duplicate key
    "sealed_fields: again",  # a duplicate key after the line
    "状态: active",
    "status-2: active",
    "_status: active",
    "status: active # comment",
    "# a comment",
    "",
    "status: active\n",
    "status:\n  - a\n  - b",
    "status:\n- a\n-\n- b",
    "status:\n- a\n- - b",
    "status:\n-  a",
    "status:\n - a",
    "status:\n  - a\n - b",
    "status:\n  a: 1\n b: 2",
    "status:\n  a: 1\n    b: 2",
    "status:\n  a:\n  - 1\n  b: 2",
    "status:\n  a:\n    b:\n      c: d",
    "status:\n- a: 1\n  b:\n  - x\n- c: 2",
    "status:\n- a: 1\n   b: 2",
    "status:\n- a:\n    b: 1",
    "status:\n- a:\n- b",
    "status:\n  - a: 1\n    b: 2\n  - c",
    "status:\n  a: 1\n  a: 2",
    "status:\n  - 1\n  x: 2",
    "status: x\n  - 1",
    "status:\n\n  a: 1",
    "status: x\n---\nb: 1",
    "status: x\n...",
    "status: x\r",
    "status: x\rb: 2",
    "  status: x",
    "- status",
]


@pytest.mark.parametrize("line", AWKWARD_LINES)
def test_awkward_yaml_is_read_as_the_strict_loader_reads_it_or_left_to_it(line: str):
    same_or_unsure(PLAIN_RECORD.replace("status: active\n", line + "\n"))
    same_or_unsure(PLAIN_RECORD.replace("status: active\n", "") + line + "\n")  # as the last line
    same_or_unsure(line + "\n")


def test_what_the_strict_loader_refuses_is_never_read():
    for line in ["building: B04", "status: *alias", "status: a: b", "status: 0b_", "on: x\non: y", "a:\n  - 1\n  b: 2"]:
        text = PLAIN_RECORD.replace("status: active\n", line + "\n")
        assert clearread.mapping(text) is None


def test_deep_nesting_is_left_to_the_strict_loader():
    deep = "deep:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 70)) + "  " * 70 + "k: v\n"
    assert clearread.mapping(deep) is None
    shallow = "deep:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 6)) + "  " * 6 + "k: v\n"
    assert same_or_unsure(shallow)


WORDS = st.text(alphabet=st.sampled_from(list("abcXYZ019 -_.:#'\"&*!|>[]{}@%,?中é\u00a0")), max_size=10)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    WORDS,
    WORDS,
    st.sampled_from(["0499", "010", "yes", "on", "~", "null", "2024-03-15", "10:30", "a: b", "a #b", "'", '"', "中文"]),
)
KEYS = st.one_of(
    st.sampled_from(["archive_no", "building", "on", "null", "yes", "y", "x-y", "_k", "1", "a b", "状态", "k:"]),
    st.from_regex(r"[a-z_][a-z0-9_-]{0,8}", fullmatch=True),
    st.from_regex(r"[a-z_][a-z0-9_-]{0,8}", fullmatch=True),
    st.text(max_size=6),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(KEYS, inner, max_size=4)),
    max_leaves=24,
)


@settings(max_examples=examples(1500), deadline=None, derandomize=True)
@given(record=st.dictionaries(KEYS, VALUES, min_size=1, max_size=8))
def test_what_yamlio_writes_is_read_as_the_strict_loader_reads_it(record: dict):
    same_or_unsure(yamlio.dumps(record))


LINE_VALUES = st.one_of(
    WORDS,
    st.sampled_from(["", " ", "0499", "1_0", "~", "null", "on", "'q'", "'it''s'", '"d"', "[]", "{}", "10:30", "..."]),
    st.sampled_from(["&a x", "*a", "!t x", "|", ">", "- x", "-1", "-x", "é", "\u2028", "\t", "#", "a #b", "a: b"]),
)
RAW_KEYS = st.one_of(
    st.from_regex(r"[a-z_][a-z0-9_-]{0,8}", fullmatch=True),
    st.sampled_from(["on", "null", "Yes", "y", "'q'", '"q"', "k:", "a b", "状态", "1", "~", "<<", "? k", "-k", "- k"]),
)
FRIENDLY = st.one_of(  # mostly what the reader answers for, in forms YAML reads in different ways
    st.from_regex(r"[a-zA-Z0-9][a-zA-Z0-9 ._:/-]{0,10}[a-zA-Z0-9.]", fullmatch=True),
    st.from_regex(r"[-+]?[0-9][0-9_]{0,4}(\.[0-9]*)?([eE][-+]?[0-9]+)?", fullmatch=True),
    st.from_regex(r"[1-9][0-9]?(:[0-5]?[0-9]){1,2}(\.[0-9]+)?", fullmatch=True),
    st.from_regex(r"'([^'\n]|'')*'|\"[^\"\\\n]*\"", fullmatch=True),
    st.sampled_from(
        ["~", "null", "NULL", "yes", "No", "on", "Off", "true", "y", ".inf", ".nan", "[]", "{}", "中文 地址"]
    ),
)
RAW = st.deferred(
    lambda: st.one_of(
        FRIENDLY,
        FRIENDLY,
        FRIENDLY,
        LINE_VALUES,
        st.lists(RAW, min_size=1, max_size=3),
        st.dictionaries(RAW_KEYS, RAW, min_size=1, max_size=3),
    )
)


def written(value: Any, column: int, step: int, indentless: bool) -> str:
    """value as block YAML written by hand: scalars as they are (unquoted), entries at column."""
    lines = ""
    pad = " " * column
    for key, item in value.items() if isinstance(value, dict) else [(None, v) for v in value]:
        head = pad + (f"{key}:" if key is not None else "-")
        if isinstance(item, str):
            lines += f"{head} {item}\n"
        elif key is None and isinstance(item, dict):  # `- key: value`, the rest two columns in
            lines += pad + "- " + written(item, column + 2, step, indentless)[column + 2 :]
        else:
            inner = column if isinstance(item, list) and indentless and key is not None else column + step
            lines += head + "\n" + written(item, inner, step, indentless)
    return lines


@settings(max_examples=examples(3000), deadline=None, derandomize=True)
@given(
    value=st.dictionaries(RAW_KEYS, RAW, min_size=1, max_size=5),
    step=st.integers(min_value=1, max_value=4),
    indentless=st.booleans(),
)
def test_hand_written_yaml_is_read_as_the_strict_loader_reads_it_or_left_to_it(
    value: dict, step: int, indentless: bool
):
    same_or_unsure(written(value, 0, step, indentless))


SEALED_TAIL = re.compile(rb"sealed: \|[-+]?\n(?:  [A-Za-z0-9+/=-][A-Za-z0-9+/= -]*\n)+\Z")
NOT_ONE_MAPPING = re.compile(rb"^(?:---|\.\.\.|%)", re.M)


def clear_part_by_regex(data: bytes) -> bytes | None:
    """facts.clear_part as a regular expression says it: what the quicker checks must agree with."""
    at = data.rfind(b"\nsealed: ")
    if at < 0 or len(data) > yamlio.MAX_YAML_BYTES or not data[:1].isalpha():
        return None
    head = data[: at + 1]
    if not SEALED_TAIL.match(data, at + 1) or NOT_ONE_MAPPING.search(head):
        return None
    return head


STORED = (
    b"archive_no: HO-2026-00001\nbuilding: B03\nstatus: active\nsealed_fields:\n- customers\n"
    b"sealed: |\n  -----BEGIN AGE ENCRYPTED FILE-----\n  YWdl+/=\n  -----END AGE ENCRYPTED FILE-----\n"
)


@settings(max_examples=examples(3000), deadline=None, derandomize=True)
@given(
    edits=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=len(STORED)),
            st.sampled_from([b"", b" ", b"  ", b"\n", b"\n\n", b"-", b"|", b"+", b"\r", b"\t", b"*", b"---", b"%"]),
            st.integers(min_value=0, max_value=3),
        ),
        max_size=3,
    )
)
def test_the_sealed_block_is_cut_off_exactly_where_the_regex_says(edits: list[tuple[int, bytes, int]]):
    from archivectl.facts import clear_part

    data = STORED
    for at, insert, remove in edits:
        data = data[:at] + insert + data[at + remove :]
    assert clear_part(data) == clear_part_by_regex(data)


def stored_records() -> list[bytes]:
    """Records as `add` stores them (a real age-sealed block), from the demo households and awkward variants."""
    import datetime as dt

    from archivectl import crypto, records, schema
    from archivectl.demo import examples_dir

    household_schema = schema.household(schema.shipped_dir())
    key = crypto.new_record_key()

    def dated(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: dated(v) for k, v in value.items()}
        if isinstance(value, list):
            return [dated(v) for v in value]
        return value.isoformat() if isinstance(value, dt.date) else value

    variants = [
        {},
        {"building": "楼栋 3", "unit": "0499"},
        {"unit": "010", "floor": -1, "notes": "personal: 张三 13800000000"},
        {"documents": [{"type": "owner-id-copy", "date": "2024-03-01"}, {"type": "lease-copy", "date": "2024-03-02"}]},
        {"tombstone": {"date": "2026-01-02", "reason": "duplicate"}, "status": "deleted-pending"},
        {"moved_out": {"date": "2025-12-31"}, "status": "moved-out"},
        {"renovation": {"started": "2024-03-15", "permit_no": "it's #3: done"}},
        {"last_reviewed": "2026-01-01", "vehicles": []},
    ]
    out = []
    for source in sorted((examples_dir() / "households").glob("*.yaml")):
        plain = dated(yamlio.loads(source.read_bytes()))
        for extra in variants:
            record = records.order_like_schema({**plain, **extra}, household_schema)
            out.append(records.dump(records.to_stored(record, household_schema, key)).encode("utf-8"))
    return out


def test_stored_records_give_the_facts_a_full_strict_parse_gives():
    from archivectl.facts import clear_part, facts_of, summarise

    stored = stored_records()
    assert len(stored) >= 40
    for data in stored:
        assert b"BEGIN AGE ENCRYPTED FILE" in data and "张三".encode() not in clear_part(data)
        assert clearread.mapping(clear_part(data).decode("utf-8")) is not None  # read by the quick reader
        assert facts_of(data, "x") == summarise(yamlio.loads(data))


def test_the_judge_reads_a_stored_record_whole_exactly_as_the_strict_loader():
    """facts.whole_record (verify's parse of every record version) answers what records.load_stored answers,
    sealed block and all: with each chomping, and for texts the quick way cannot read."""
    from archivectl import records
    from archivectl.errors import UsageError
    from archivectl.facts import clear_part, whole_record

    def loaded(read: Any, data: bytes) -> Any:
        try:
            return read(data, "record.yaml")
        except UsageError as exc:
            return ("refused", str(exc))

    texts = []
    for data in stored_records():
        texts += [data, data.replace(b"sealed: |\n", b"sealed: |-\n"), data.replace(b"sealed: |\n", b"sealed: |+\n")]
        texts += [data.replace(b"\n  -----END", b"\n   -----END"), data + b"sealed: x\n", b"sealed: x\n" + data]
        texts += [data.replace(b"status:", b"# a comment\nstatus:"), data[:-1], data.replace(b"|\n", b"|2\n")]
    assert sum(clear_part(t) is not None for t in texts) > len(texts) // 3
    for data in texts:
        assert loaded(whole_record, data) == loaded(records.load_stored, data)
        if isinstance(found := loaded(whole_record, data), dict):
            assert list(found) == list(records.load_stored(data, "record.yaml"))


@pytest.mark.parametrize("line", AWKWARD_LINES)
def test_a_register_entry_is_read_as_the_strict_loader_reads_it(line: str):
    """clearread.document (verify's read of register entries): whole-line comments first, then the quick
    reader's subset; anything else, and every refusal, the strict loader's."""
    from archivectl.errors import UsageError

    entry = "when: 2026-12-01T12:04:34+00:00\nwho: mgr01\naction: reveal\narchive_no: NH-2026-00036\nreason: x\n"
    for text in (
        "# Access register (查阅登记, P8): every reveal. Append only.\n" + entry,
        "# one\n#two\n" + entry.replace("who: mgr01\n", line + "\n"),
        "#\x07 odd\n" + entry,
        "# only a comment",
        "# c\n",
        entry + line + "\n",
        "\ufeff# c\n" + entry,
    ):
        data = text.encode("utf-8")
        try:
            expected: Any = yamlio.loads(data, "entry.yaml")
        except (UsageError, ValueError) as exc:
            expected = (type(exc), str(exc))
        try:
            found: Any = clearread.document(data, "entry.yaml")
        except (UsageError, ValueError) as exc:
            found = (type(exc), str(exc))
        assert found == expected
