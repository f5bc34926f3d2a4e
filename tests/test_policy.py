"""policy's pure rules at their boundaries: the 30-day clock (P13) and who may approve (P12)."""

from __future__ import annotations

import datetime as dt

import pytest

from archivectl import policy
from archivectl.staff import Staff, StaffMember

UTC = dt.UTC
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIINrD0lNtzGceK9A+YP1msB8gUzwAMZ6ZkO1DjH0HAa8"
MADE = dt.datetime(2026, 10, 1, 9, 0, tzinfo=UTC)


def dates(**changes) -> policy.TombstoneDates:
    base = {"yaml_date": MADE.date(), "commit": MADE, "parents": (MADE - dt.timedelta(hours=1),), "mainline": MADE}
    return policy.TombstoneDates(**{**base, **changes})


@pytest.mark.parametrize(
    ("elapsed", "eligible", "days_left"),
    [
        (dt.timedelta(days=29, hours=23, minutes=59), False, 1),
        (dt.timedelta(days=30), True, 0),
        (dt.timedelta(days=30, seconds=1), True, 0),
        (dt.timedelta(days=0), False, 30),
    ],
)
def test_the_thirty_day_clock_at_its_edge(elapsed, eligible, days_left):  # P13
    verdict = policy.retention_verdict(dates(), MADE + elapsed, 30)
    assert (verdict.eligible, verdict.days_left, verdict.problem) == (eligible, days_left, None)


def test_the_clock_starts_at_the_latest_date():  # P13: a forged early date only makes the wait longer
    late_merge = MADE + dt.timedelta(days=5)
    verdict = policy.retention_verdict(dates(mainline=late_merge), MADE + dt.timedelta(days=31), 30)
    assert not verdict.eligible and verdict.started == late_merge and verdict.days_left == 4


@pytest.mark.parametrize(
    ("skew", "problem"),
    [
        (dt.timedelta(minutes=4, seconds=59), None),
        (dt.timedelta(minutes=5, seconds=1), "a tombstone date lies in the future"),
    ],
)
def test_clock_skew_of_a_few_minutes_is_tolerated(skew, problem):  # P13
    now = MADE + dt.timedelta(days=40)
    verdict = policy.retention_verdict(dates(mainline=now + skew), now, 30)
    assert verdict.problem == problem
    assert not verdict.eligible  # a mainline date in the future never starts the clock early


@pytest.mark.parametrize(
    ("yaml_offset", "problem"),
    [
        (dt.timedelta(days=1), None),
        (dt.timedelta(days=-1), None),
        (dt.timedelta(days=2), "a tombstone date lies in the future"),
        (dt.timedelta(days=-2), "the tombstone's YAML date disagrees with its commit by more than a day"),
    ],
)
def test_a_yaml_date_may_be_one_day_off_its_commit(yaml_offset, problem):  # P13
    now = MADE + dt.timedelta(days=1, hours=1)
    verdict = policy.retention_verdict(dates(yaml_date=MADE.date() + yaml_offset), now, 30)
    assert verdict.problem == problem


def test_a_commit_dated_before_its_parent_and_a_main_line_going_backwards_are_problems():  # P13
    now = MADE + dt.timedelta(days=60)
    before_parent = dates(parents=(MADE + dt.timedelta(minutes=6),))
    assert (
        policy.retention_verdict(before_parent, now, 30).problem == "the tombstone's commit is dated before its parent"
    )
    within_skew = dates(parents=(MADE + dt.timedelta(minutes=4),))
    assert policy.retention_verdict(within_skew, now, 30).problem is None
    backwards = dates(mainline_backwards=True)
    verdict = policy.retention_verdict(backwards, now, 30)
    assert verdict.problem == "the main line's dates go backwards after the tombstone" and not verdict.eligible


def member(sid: str, role: str, active: bool = True) -> StaffMember:
    return StaffMember(id=sid, name=sid, role=role, key=KEY, active=active)


STAFF = Staff(
    [
        member("clk01", "clerk"),
        member("but01", "butler"),
        member("mgr01", "manager"),
        member("mgr02", "manager", active=False),
        member("gm01", "gm"),
    ]
)


@pytest.mark.parametrize(
    ("acting", "approver", "roles", "problem"),
    [
        ("clk01", "mgr01", None, None),
        ("clk01", "gm01", None, None),
        ("clk01", None, None, "--approver is required: name the manager who approved this change"),
        ("clk01", "nobody", None, "approver nobody is not on staff.yaml"),
        ("clk01", "mgr02", None, "approver mgr02 is no longer active"),
        ("clk01", "but01", None, "approver but01 is a butler; approvals need a manager or gm"),
        ("mgr01", "mgr01", None, "mgr01 cannot approve their own change (four-eyes rule)"),
        ("mgr01", "mgr01", ("gm",), "approver mgr01 is a manager; approvals need a gm"),
        ("mgr01", "gm01", ("gm",), None),
        ("gm01", "gm01", ("gm",), "gm01 cannot approve their own change (four-eyes rule)"),
    ],
)
def test_who_may_approve(acting, approver, roles, problem):  # P12
    rules = policy.ApprovalRules()
    assert policy.approval_problem(STAFF.get(acting), approver, STAFF, rules, roles) == problem


def test_archive_yaml_may_relax_four_eyes_but_not_the_role():  # P12
    relaxed = policy.ApprovalRules(four_eyes=False)
    assert policy.approval_problem(STAFF.get("mgr01"), "mgr01", STAFF, relaxed) is None
    assert policy.approval_problem(STAFF.get("clk01"), "clk01", STAFF, relaxed) == (
        "approver clk01 is a clerk; approvals need a manager or gm"
    )
