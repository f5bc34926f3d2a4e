"""The compiled first pass of validation (jsonschema-rs) and jsonschema give the same verdict on every record.

validate() takes the compiled pass's "valid" as the answer and asks jsonschema
only about a record it refuses, for the messages. So the two must agree: the
records here are built field by field from good values, near misses (a date
that is no date, a phone number one digit short, a unit with a newline) and
values of the wrong kind, so that both verdicts come up often.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st
from props import examples

from archivectl import idcheck, schema
from archivectl.ops.households import prepare_new

DOC = json.loads((Path(__file__).resolve().parent.parent / "schemas/household.schema.json").read_text())
SCHEMA = schema.HouseholdSchema(DOC)
MANY = settings(max_examples=examples(1500), deadline=None, suppress_health_check=[HealthCheck.too_slow])


def slow_verdict(record: object) -> bool:
    return not schema.error_messages(SCHEMA.validator, record)


def fast_verdict(record: object) -> bool:
    return schema.fast_accepts(SCHEMA.fast_validator, record)


def resident_id(year: int, month: int, day: int, serial: int) -> str:
    body = f"110105{year:04d}{month:02d}{day:02d}{serial:03d}"
    return body + idcheck.check_digit(body)


odd = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True), st.binary(max_size=3))
texts = st.text(max_size=12)
dates = st.one_of(
    st.dates().map(str),
    st.sampled_from(["2024-02-30", "2024-13-01", "2024-1-01", "24-01-01", "2024-03-01\n", "２０２４-03-01", ""]),
    texts,
)
phones = st.one_of(
    st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True),
    st.from_regex(r"0[1-9][0-9]{1,2}-[2-9][0-9]{6,7}", fullmatch=True),
    st.sampled_from(["1391234567", "13912345678\n", "+86-13912345678", "12912345678", "010-12345678"]),
    texts,
)
id_numbers = st.one_of(
    st.builds(resident_id, st.integers(1870, 2030), st.integers(0, 13), st.integers(0, 32), st.integers(0, 999)),
    st.sampled_from(["11010519800101001", "110105198001010010", "x" * 40, "abc"]),
    texts,
)
names = st.one_of(st.text(min_size=0, max_size=70), st.sampled_from(["张三", "李四"]))
patterned = st.one_of(
    st.from_regex(r"[A-Z0-9][A-Z0-9-]{0,15}", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9-]{0,17}", fullmatch=True),
    st.sampled_from(["B03\n", "b03", "", "-B", "B 03"]),
)
customers = st.fixed_dictionaries(
    {"role": st.sampled_from(["owner", "tenant", "resident", "landlord"]), "name": names},
    optional={
        "birth_date": dates,
        "phone": phones,
        "id_type": st.sampled_from(["resident-id", "passport", "other", "visa"]),
        "id_number": id_numbers,
        "mailing_address": st.text(max_size=210),
        "hobbies": st.lists(st.text(max_size=55), max_size=22),
        "nickname": texts,
    },
)
contacts = st.fixed_dictionaries(
    {"name": names, "phone": phones}, optional={"relation": st.text(max_size=45), "extra": texts}
)
events = st.lists(
    st.fixed_dictionaries(
        {"date": dates, "summary": st.text(max_size=510)},
        optional={
            "amount": st.one_of(st.integers(), st.floats(), st.booleans()),
            "settled": st.one_of(st.booleans(), odd),
        },
    ),
    max_size=3,
)
documents = st.lists(
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(["owner-id-copy", "lease-copy", "scan"]),
            "date": dates,
            "version": st.one_of(st.integers(-1, 3), st.just(2.0), st.booleans()),
            "file": st.one_of(
                st.from_regex(r"attachments/[a-z-]+-[0-9]{4}-[0-9]{2}-[0-9]{2}-[0-9]+(\.pdf)?\.age", fullmatch=True),
                st.sampled_from(["attachments/x.age", "attachments/scan-2024-01-01-1.age\n", "../x.age"]),
            ),
        }
    ),
    max_size=2,
)
top = {
    "archive_no": st.one_of(
        st.from_regex(r"(HO|NH|SP)-[0-9]{4}-[0-9]{5}", fullmatch=True), st.sampled_from(["HO-2026-1", "XX-2026-00001"])
    ),
    "building": patterned,
    "floor": st.one_of(st.integers(-20, 400), st.sampled_from([3.0, 2.5, True, "3", math.nan, 2**70, -(2**70)])),
    "unit": patterned,
    "category": st.sampled_from(["handed-over", "not-handed-over", "special", "other"]),
    "occupancy": st.sampled_from(["owner-occupied", "rented", "vacant", "empty"]),
    "status": st.sampled_from(["active", "moved-out", "tombstoned", "lost"]),
}
optional = {
    "customers": st.one_of(st.lists(customers, max_size=3), odd),
    "emergency_contacts": st.lists(contacts, max_size=2),
    "vehicles": st.lists(
        st.fixed_dictionaries({}, optional={"plate": st.text(max_size=18), "parking_space": st.text(max_size=34)}),
        max_size=2,
    ),
    "handover_date": dates,
    "move_in_date": st.one_of(dates, odd),
    "renovation": st.fixed_dictionaries({}, optional={"started": dates, "permit_no": st.text(max_size=42)}),
    "special_requests": st.text(max_size=2010),
    "notes": st.one_of(st.text(max_size=50), odd),
    "violations": events,
    "repairs": st.one_of(events, odd),
    "documents": documents,
    "last_reviewed": dates,
    "moved_out": st.fixed_dictionaries({}, optional={"date": dates}),
    "tombstone": st.fixed_dictionaries(
        {"date": dates, "reason": st.text(max_size=20), "approver": st.one_of(st.text(max_size=8), odd)},
        optional={"previous_status": st.sampled_from(["active", "moved-out", "tombstoned"])},
    ),
    "garage": texts,
}
records = st.fixed_dictionaries(top, optional=optional)


@MANY
@given(records)
def test_the_compiled_pass_and_jsonschema_agree_on_every_record(record: dict):
    assert fast_verdict(record) == slow_verdict(record)


@MANY
@given(records, st.data())
def test_they_agree_when_one_field_is_taken_away_or_made_odd(record: dict, data: st.DataObject):
    changed = copy.deepcopy(record)
    name = data.draw(st.sampled_from(sorted(changed)))
    if data.draw(st.booleans()):
        del changed[name]
    else:
        changed[name] = data.draw(odd)
    assert fast_verdict(changed) == slow_verdict(changed)


def test_both_verdicts_come_up():
    """The records above are neither all good nor all bad (else the agreement says little)."""
    found = settings(database=None, phases=[Phase.generate])  # one of each is enough: not shrunk (24 s of CPU)
    find(records, slow_verdict, settings=found)
    find(records, lambda record: not slow_verdict(record), settings=found)


@pytest.mark.parametrize(
    "key, value",
    [
        (1, "a key that is a number"),
        ("notes", b"bytes"),
        ("notes", {1, 2}),
        ("floor", 10**30),
        ("floor", math.inf),
    ],
)
def test_what_json_cannot_hold_is_left_to_jsonschema(key: object, value: object):
    """Values the compiled pass cannot read are refused by it, and judged (with messages) by jsonschema."""
    record = prepare_new({"building": "B03", "floor": 12, "unit": "1203", "category": "handed-over"}, SCHEMA)
    record[key] = value
    assert not fast_verdict(record)
    assert SCHEMA.validate(record) == sorted(set(schema.error_messages(SCHEMA.validator, record)))
    assert SCHEMA.validate(record)


def test_a_schema_whose_patterns_could_read_differently_is_left_to_jsonschema():
    """\\d, \\w, lookarounds and remote references read differently in Rust and in Python: no compiled pass."""
    for pattern in (r"^\d+$", r"^\w+$", r"^(?=a)a$", r"^a\b"):
        doc = {**DOC, "properties": {**DOC["properties"], "unit": {"type": "string", "pattern": pattern}}}
        assert schema.HouseholdSchema(doc).fast_validator is None
    remote = {**DOC, "properties": {**DOC["properties"], "unit": {"$ref": "https://example.invalid/unit.json"}}}
    assert schema.HouseholdSchema(remote).fast_validator is None
    assert SCHEMA.fast_validator is not None  # the shipped schema has one


def test_messages_are_jsonschemas_own():
    """A refused record gets exactly the messages jsonschema writes, with the cross-checks beside them."""
    born = resident_id(1980, 1, 1, 1)
    record = {
        "archive_no": "HO-2026-00001",
        "building": "b03",
        "floor": 12,
        "unit": "1203\n",
        "category": "handed-over",
        "occupancy": "vacant",
        "status": "active",
        "customers": [{"role": "owner", "name": "张三", "id_type": "resident-id", "id_number": born}],
        "handover_date": "2024-02-30",
    }
    assert SCHEMA.validate(record) == [
        "building: use capital letters, digits and '-', e.g. B03",
        "handover_date: is not a real calendar date",
        "unit: use letters, digits and '-', e.g. 1203",
    ]
    record = {**record, "building": "B03", "unit": "1203", "handover_date": "2024-03-01"}
    record["customers"][0]["birth_date"] = "1980-01-02"
    assert SCHEMA.validate(record) == ["customers[0].birth_date: does not match the birth date in id_number"]


STAFF_DOC = schema.load_json(schema.shipped_dir() / "staff.schema.json")
STAFF_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB0kXqR5W6PqSxNLxPz3wM2y0Z5b1v4eXcFJkz9sEr1g but01"
member = st.fixed_dictionaries(
    {
        "id": st.sampled_from(["but01", "mgr01", "x", "Bad", "gm-2", "a" * 40]),
        "name": st.sampled_from(["王五", "", "Li Lei"]),
        "role": st.sampled_from(["butler", "manager", "gm", "clerk", "auditor", "janitor"]),
        "key": st.sampled_from([STAFF_KEY, STAFF_KEY + "\nssh-rsa AAAA", "ssh-rsa AAAAB3", STAFF_KEY.split(" but")[0]]),
    },
    optional={
        "buildings": st.lists(st.sampled_from(["B03", "b03", "B-7", "B03/..", ""]), max_size=3),
        "active": st.sampled_from([True, False, "yes"]),
        "deactivated": st.sampled_from(["2026-11-24T10:00:00+08:00", "2026-11-24", "yesterday"]),
        "handle": st.sampled_from(["@but01", "but 01", "@"]),
    },
)


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.fixed_dictionaries({"staff": st.lists(member, min_size=1, max_size=3)}))
def test_every_command_checks_staff_yaml_with_the_compiled_pass_and_agrees_with_jsonschema(staff: dict):
    # Every command reads staff.yaml; the compiled pass spares it importing jsonschema.
    # Its key pattern holds \n in a class, which both read alike: it is used for staff.yaml.
    fast = schema.fast_validator_for(STAFF_DOC)
    assert fast is not None
    refused = schema.error_messages(schema._validator(STAFF_DOC), staff)
    assert schema.fast_accepts(fast, staff) == (not refused)


def _walked_names(household: schema.HouseholdSchema, record: object) -> list[str]:
    found: list[str] = []
    household._names(record, household.resolve(household.doc), found)
    return found


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records)
def test_names_are_found_where_the_schema_says_as_walking_the_record_finds_them(record):
    # An import judges every row's reason against its customers' names (P9): names_in looks where the schema
    # puts names instead of walking each record with it; both must find the same names.
    assert sorted(SCHEMA.names_in(record)) == sorted(_walked_names(SCHEMA, record))


def test_names_in_a_schema_that_refers_to_itself_are_found_by_walking():
    person = {
        "type": "object",
        "properties": {"name": {"type": "string", "x-mask": "name"}, "heirs": {"items": {"$ref": "#/$defs/person"}}},
    }
    household = schema.HouseholdSchema({"$defs": {"person": person}, "$ref": "#/$defs/person"})
    record = {"name": "甲", "heirs": [{"name": "乙", "heirs": [{"name": "丙"}]}, {"name": 3}]}
    assert household.names_in(record) == ["甲", "乙", "丙"]
