"""What personal data looks like in free text (pure functions, no I/O).

Reasons, notes and commit messages are kept in clear forever (P12), so a phone
number or an ID number typed into one would leak what the sealed block
protects (P9). The same patterns let verify look for personal data in clear.
Answers name the kind of data found, never the value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from archivectl.i18n import _

# A mobile number or an 18-character resident ID standing alone (not inside a
# longer run of digits or base64, so ciphertext and commit ids do not match).
PHONE = re.compile(r"(?<![0-9A-Za-z+/])1[3-9][0-9]{9}(?![0-9A-Za-z+/])")
RESIDENT_ID = re.compile(r"(?<![0-9A-Za-z+/])[1-9][0-9]{16}[0-9Xx](?![0-9A-Za-z+/])")
# How people write a mobile number by hand: +86 in front, spaces or dashes inside.
PHONE_WRITTEN = re.compile(r"(?<![0-9A-Za-z])(?:(?:\+|00)?86[ -]?)?1[3-9][0-9](?:[ -]?[0-9]{4}){2}(?![0-9A-Za-z])")
MIN_NAME_LENGTH = 2  # a one-character name would match far too much ordinary text


def personal_data_in(text: str, names: Iterable[str] = ()) -> str | None:
    """The kind of personal data text seems to hold ("a phone number", ...), or None.

    names are the customers' names from the record concerned.
    """
    if RESIDENT_ID.search(text):
        return _("an ID number")
    if PHONE.search(text) or PHONE_WRITTEN.search(text):
        return _("a phone number")
    for name in names:
        if isinstance(name, str) and len(name.strip()) >= MIN_NAME_LENGTH and name.strip() in text:
            return _("a customer's name")
    return None


def shown(text: str) -> str:
    """Commit text (a subject, a reason) as archivectl prints it: withheld when it seems to hold personal data.

    archivectl refuses such text when it writes; a hand-made commit may still carry it,
    and verify, history and pending must not print it (P9).
    """
    return "(withheld: it holds personal data)" if personal_data_in(text) else text
