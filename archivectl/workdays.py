"""Chinese working days (工作日): official holidays and make-up working days (调休), plus the company's closures.

P17 gives a customer's request five working days. A plain Monday-to-Friday count
is wrong twice a year at least: the State Council moves working days onto
weekends around Spring Festival and National Day. The official calendar comes
from the maintained `chinesecalendar` package (updated each year when the
State Council publishes the next year's arrangement); archive.yaml `closures:`
adds the company's own days off. A year the package has no data for yet is
counted Monday to Friday and the answer says it is provisional.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable
from dataclasses import dataclass

ANSWER_DAYS = 5  # P17: the company answers within five working days
DUE_SOON_DAYS = 2  # a request due within this many working days is flagged


@dataclass(frozen=True)
class Calendar:
    """Which days are working days: the official calendar less the company's closures."""

    closures: frozenset[dt.date] = frozenset()

    def is_working_day(self, day: dt.date) -> bool:
        """True on an official working day (make-up weekends included) that is not a company closure."""
        return day not in self.closures and official_working_day(day)[0]

    def official(self, day: dt.date) -> bool:
        """True when the official calendar for day's year is known (False: counted Monday to Friday)."""
        return official_working_day(day)[1]

    def add_working_days(self, start: dt.date, days: int) -> dt.date:
        """The day `days` working days after start (start itself not counted)."""
        day, left = start, days
        while left > 0:
            day += dt.timedelta(days=1)
            if self.is_working_day(day):
                left -= 1
        return day

    def working_days_between(self, start: dt.date, end: dt.date) -> int:
        """Working days after start up to and including end (0 when end is not after start)."""
        return _between(self, start, end)


@functools.lru_cache(maxsize=4096)
def _between(calendar: Calendar, start: dt.date, end: dt.date) -> int:
    """Calendar.working_days_between, once per (due date, today): a report asks it for every open request."""
    count, day = 0, start
    while day < end:
        day += dt.timedelta(days=1)
        count += calendar.is_working_day(day)
    return count


@functools.lru_cache(maxsize=8192)
def official_working_day(day: dt.date) -> tuple[bool, bool]:
    """(is it an official working day, is that from the official calendar rather than Monday-to-Friday).

    Kept per day for the process: a report counts the same days for every open request.
    """
    import chinese_calendar

    try:
        return bool(chinese_calendar.is_workday(day)), True
    except NotImplementedError:  # a year the package has no data for yet
        return day.weekday() < 5, False


def calendar_of(closures: Iterable[str | dt.date]) -> Calendar:
    """A Calendar with the company's closures (archive.yaml `closures:`, ISO dates)."""
    return Calendar(frozenset(d if isinstance(d, dt.date) else dt.date.fromisoformat(str(d)) for d in closures))


def due_date(received: dt.date, calendar: Calendar, days: int = ANSWER_DAYS) -> dt.date:
    """When a request received on `received` must be answered: `days` working days after receipt."""
    return calendar.add_working_days(received, days)


def provisional(received: dt.date, due: dt.date, calendar: Calendar) -> bool:
    """True when some day from receipt to due was counted without the official calendar."""
    return not (calendar.official(received) and calendar.official(due))
