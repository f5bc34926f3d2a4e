"""The one place archivectl reads the time, so tests and reviewers know where "now" comes from.

End-to-end tests move time with libfaketime, which git and this module see alike.
"""

from __future__ import annotations

import datetime as dt


def now() -> dt.datetime:
    """The current moment, timezone-aware, in the machine's local zone."""
    return dt.datetime.now(dt.UTC).astimezone()


def today() -> dt.date:
    """Today's date in the machine's local zone."""
    return now().date()


def now_iso() -> str:
    """The current time as an ISO string with seconds and zone."""
    return now().isoformat(timespec="seconds")
