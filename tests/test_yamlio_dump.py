"""yamlio.dumps writes the common records itself: the very bytes yaml.dump writes, or it leaves them to yaml.dump.

Documents are built from the shapes records have (mappings, lists of mappings,
numbers, texts, armored blocks) and from the characters that change how a
text is written: spaces, quotes, colons, '#', leading '-', '@' or digits, Chinese,
newlines, texts that read as numbers, booleans or null.
"""

from __future__ import annotations

import pyrage
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from props import examples

from archivectl import records, yamlio

MANY = settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])


def reference(data: object) -> str:
    return yaml.dump(
        data, Dumper=yamlio._Dumper, allow_unicode=True, sort_keys=False, default_flow_style=False, width=100
    )


tricky = st.sampled_from(list("aZ09_-./+@:#'\" \t,[]{}&*!|>%`?~=<\u00e9\u4e2d\u6587\u3000\uff0c\u2028\x85\n"))
words = st.one_of(
    st.text(tricky, max_size=12),
    st.sampled_from(
        ["yes", "No", "on", "null", "~", "true", "0000", "0x1F", "1_000", "1.5", ".inf", "1e5", "2024-03-01", "<<", "="]
    ),
    st.from_regex(r"[0-9]{11}", fullmatch=True),
    st.from_regex(r"[\u4e00-\u9fff]{1,4}[0-9]{0,3}", fullmatch=True),
    st.from_regex(r"[a-z]+(\.[a-z_]+)*", fullmatch=True),
)
SEALED = [
    pyrage.encrypt(b"x" * size, [pyrage.x25519.Identity.generate().to_public()], armored=True).decode()
    for size in (0, 100, 512, 1024)
]
armored = st.sampled_from(SEALED)
blocks = st.one_of(armored, st.text(tricky, max_size=30).map(lambda t: t + "\n"))
scalars = st.one_of(
    words, st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), blocks, st.just([]), st.just({})
)
keys = st.one_of(st.from_regex(r"[a-z_]{1,12}", fullmatch=True), words, st.integers(0, 3))
documents = st.dictionaries(
    keys,
    st.recursive(
        scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=4), max_leaves=25
    ),
    min_size=1,
    max_size=8,
)

# Documents shaped like records, most of which take the direct way: plain texts (letters, digits, Chinese,
# '_./+@-'), texts that read as numbers, booleans or null, whole numbers, armored blocks; now and then a key
# or a value that sends them to yaml.dump.
plain = st.one_of(
    st.from_regex(r"[A-Za-z0-9\u4e00-\u9fff][A-Za-z0-9_./+@\u4e00-\u9fff-]{0,15}", fullmatch=True),
    st.sampled_from(["yes", "Off", "NULL", "0000", "13900000000", "0x1F", "1_000", "-1", "+1", "1.5", "1e5"]),
    st.sampled_from(["2024-03-01", "age1abc", "customers.id_number", "京A00000", "演示0", "", "@x", "-x"]),
)
field_names = st.from_regex(r"[a-z][a-z_]{0,11}", fullmatch=True)


def mostly(usual: st.SearchStrategy, odd: st.SearchStrategy, one_in: int) -> st.SearchStrategy:
    """usual, but odd once in one_in draws."""
    return st.tuples(st.integers(1, one_in), usual, odd).map(lambda t: t[2] if t[0] == 1 else t[1])


record_keys = mostly(field_names, st.sampled_from(["yes", "on", "1", "x" * 65, "名"]), 30)
record_values = mostly(
    st.one_of(plain, st.integers(), st.booleans(), st.none(), armored, st.builds(list), st.builds(dict)),
    st.sampled_from([1.5, "a b", "x\n\ny\n"]),
    20,
)
record_like = st.dictionaries(
    record_keys,
    st.recursive(
        record_values,
        lambda inner: (
            st.lists(mostly(st.dictionaries(record_keys, inner, max_size=4), inner, 10), max_size=3)
            | st.dictionaries(record_keys, inner, max_size=4)
        ),
        max_leaves=20,
    ),
    min_size=1,
    max_size=8,
)


@MANY
@given(record_like)
def test_record_like_documents_written_directly_are_what_yaml_dump_writes(data: dict):
    assert yamlio.dumps(data) == reference(data)


def test_record_like_documents_take_both_ways():
    written_directly: set[bool] = set()

    @settings(max_examples=examples(200), database=None, derandomize=True)  # collected, not shrunk: find() took 44 s
    @given(record_like)
    def collect(data: dict) -> None:
        written_directly.add(yamlio._simple_block(data) is not None)

    collect()
    assert written_directly == {True, False}


@MANY
@given(documents)
def test_dumps_writes_what_yaml_dump_writes(data: dict):
    assert yamlio.dumps(data) == reference(data)


@MANY
@given(documents)
def test_what_it_writes_itself_is_what_yaml_dump_writes(data: dict):
    written = yamlio._simple_block(data)
    assert written is None or written == reference(data)


def test_a_sealed_record_is_written_without_yaml_dump():
    """The records an import writes take the direct way (else it buys nothing), and read back the same."""
    record = {
        "archive_no": "HO-2026-00001",
        "building": "B03",
        "floor": 12,
        "unit": "0201",
        "category": "handed-over",
        "vehicles": [{"parking_space": "P2-045"}, {}],
        "recipient": "age1" + "q" * 58,
        "sealed_fields": ["customers", "customers.name"],
        "sealed": pyrage.encrypt(
            records.padded("customers:\n- name: 张三\n"), [pyrage.x25519.Identity.generate().to_public()], armored=True
        ).decode(),
    }
    sealed_part = {
        "customers": [{"role": "owner", "name": "演示0", "phone": "13900000000", "id_number": "110105195001010004"}],
        "vehicles": [None, {"plate": "京A00000"}],
    }
    for data in (record, sealed_part):
        written = yamlio._simple_block(data)
        assert written == reference(data)
        assert yamlio.loads(written) == data
