"""Checks for Chinese resident ID numbers and phone numbers (pure functions).

Messages never repeat the number itself: it is personal data.
"""

from __future__ import annotations

import datetime as dt
import re

from archivectl.i18n import _

_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
_CHECK = "10X98765432"
_MOBILE = re.compile(r"(\+86-?)?1[3-9][0-9]{9}")
_LANDLINE = re.compile(r"0[1-9][0-9]{1,2}-?[2-9][0-9]{6,7}(-[0-9]{1,6})?")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def check_digit(first17: str) -> str:
    """ISO 7064 MOD 11-2 check character for the first 17 digits of a resident ID."""
    total = sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True))
    return _CHECK[total % 11]


def resident_id_problem(number: str, today: dt.date | None = None) -> str | None:
    """Why number is not a valid 18-character resident ID, or None if it is."""
    if len(number) != 18:
        return _("must be 18 characters")
    if not number[:17].isdigit() or not (number[17].isdigit() or number[17] in "Xx"):
        return _("must be 17 digits followed by a digit or X")
    if number[0] == "0":
        return _("has an invalid region code")
    try:
        born = dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return _("has an impossible birth date")
    if born.year < 1880 or born > (today or dt.date.today()):
        return _("has a birth date out of range")
    if check_digit(number[:17]) != number[17].upper():
        return _("check digit is wrong")
    return None


def birth_date_of(number: str) -> str:
    """The ISO birth date encoded in a valid resident ID."""
    return f"{number[6:10]}-{number[10:12]}-{number[12:14]}"


def phone_problem(number: str) -> str | None:
    """Why number is not a Chinese mobile or landline number, or None if it is."""
    if _MOBILE.fullmatch(number) or _LANDLINE.fullmatch(number):  # fullmatch: no trailing newline
        return None
    return _("is not a mobile (1xxxxxxxxxx) or landline (0xx-xxxxxxxx) number")


def date_problem(value: str) -> str | None:
    """Why value is not a real calendar date written YYYY-MM-DD, or None."""
    if not _DATE.fullmatch(value):
        return _("must be a date written YYYY-MM-DD")
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return _("is not a real calendar date")
    return None
