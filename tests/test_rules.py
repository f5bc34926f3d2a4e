"""Pure rules: ID and phone checks, approval, masking, strict YAML."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from archivectl import idcheck, policy, yamlio
from archivectl.errors import UsageError
from archivectl.schema import mask_value
from archivectl.staff import Staff, StaffMember

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIINrD0lNtzGceK9A+YP1msB8gUzwAMZ6ZkO1DjH0HAa8"


@pytest.mark.parametrize(
    ("number", "problem"),
    [
        ("11010519491231002X", None),  # the check digit X
        ("110101198005170011", None),
        ("110101198005170012", "check digit is wrong"),
        ("11010119800517001", "must be 18 characters"),
        ("1101011980051700A1", "must be 17 digits followed by a digit or X"),
        ("110101198002300011", "has an impossible birth date"),
        ("110101218005170011", "has a birth date out of range"),
        ("010101198005170011", "has an invalid region code"),
    ],
)
def test_resident_id_checks(number, problem):
    assert idcheck.resident_id_problem(number, today=dt.date(2026, 11, 24)) == problem


@given(
    st.from_regex(
        r"[1-9][0-9]{5}(19[0-9]{2}|20[01][0-9])(0[1-9]|1[0-2])(0[1-9]|1[0-9]|2[0-8])[0-9]{3}", fullmatch=True
    ),
    st.sampled_from("0123456789X"),
)
def test_id_validator_accepts_exactly_the_right_check_digit(body, last):
    expected = idcheck.check_digit(body)
    assert (idcheck.resident_id_problem(body + last) is None) == (last == expected)


@pytest.mark.parametrize(
    ("number", "ok"),
    [
        ("13812345678", True),
        ("+86-13812345678", True),
        ("010-62345678", True),
        ("0755-2345678", True),
        ("12812345678", False),
        ("1381234567", False),
        ("phone", False),
    ],
)
def test_phone_checks(number, ok):
    assert (idcheck.phone_problem(number) is None) == ok


@pytest.mark.parametrize(
    ("value", "ok"), [("2024-02-29", True), ("2023-02-29", False), ("20240301", False), ("2024-3-1", False)]
)
def test_dates_are_real_dates(value, ok):
    assert (idcheck.date_problem(value) is None) == ok


def member(sid: str, role: str, active: bool = True) -> StaffMember:
    return StaffMember(id=sid, name=sid, role=role, key=KEY, active=active)


STAFF = Staff([member("m1", "manager"), member("g1", "gm"), member("b1", "butler"), member("m2", "manager", False)])


@pytest.mark.parametrize(
    ("acting", "approver", "expected"),
    [
        ("b1", "m1", None),
        ("b1", "g1", None),
        ("m1", "m1", "m1 cannot approve their own change (four-eyes rule)"),
        ("m1", "b1", "approver b1 is a butler; approvals need a manager or gm"),
        ("b1", "zz", "approver zz is not on staff.yaml"),
        ("b1", "m2", "approver m2 is no longer active"),
        ("b1", None, "--approver is required: name the manager who approved this change"),
    ],
)
def test_approval_rules(acting, approver, expected):  # P12
    rules = policy.ApprovalRules()
    assert policy.approval_problem(STAFF.get(acting), approver, STAFF, rules) == expected


def test_four_eyes_can_be_relaxed_by_archive_settings():
    relaxed = policy.ApprovalRules(four_eyes=False)
    assert policy.approval_problem(STAFF.get("m1"), "m1", STAFF, relaxed) is None


@pytest.mark.parametrize(
    ("reason", "ok"),
    [("owner called", True), ("", False), ("  ", False), (None, False), ("two\nlines", False), ("x" * 501, False)],
)
def test_reasons(reason, ok):
    assert (policy.reason_problem(reason) is None) == ok


@pytest.mark.parametrize(
    ("value", "how", "masked"),
    [
        ("张伟", "name", "张*"),
        ("13812345678", "phone", "138****5678"),
        ("110101198005170011", "id", "1101**********0011"),
        ("1980-05-17", "date", "****-**-**"),
        ("京A12345", "plate", "京A***5"),
        ("北京市东城区", "text", "北***"),
        ("owner", "none", "owner"),
    ],
)
def test_masking(value, how, masked):
    assert mask_value(value, how) == masked


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("a: &x [1, 2]\nb: *x\n", "aliases"),
        ("a: 1\na: 2\n", "duplicate key 'a'"),
        ("!!python/object/apply:os.system ['true']\n", "tags other than !!str"),
        ("when: !!timestamp 2026-11-24\n", "tags other than !!str"),
        ("a: [\n", "line"),
        (b"\xff\xfe\x00", "not UTF-8"),
    ],
)
def test_hostile_yaml_is_refused_with_one_line(text, words):
    with pytest.raises(UsageError) as err:
        yamlio.loads(text)
    assert words in str(err.value)
    assert "\n" not in str(err.value)


def test_billion_laughs_is_refused_quickly():
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)
    )
    with pytest.raises(UsageError, match="aliases"):
        yamlio.loads(bomb)


def test_dates_stay_strings_and_round_trip_unquoted():
    assert yamlio.loads("d: 2024-03-01\n") == {"d": "2024-03-01"}
    assert yamlio.dumps({"d": "2024-03-01", "u": "1203"}) == "d: 2024-03-01\nu: '1203'\n"
