"""Where things are in an archive: the one place its path layout is written.

A household lives at ``households/<building>/<unit>/<archive-no>/``: its
``record.yaml`` and its ``attachments/``. Everything that builds such a path
or reads a part back out of one (the write path, the reports, verify's rule
table) goes through `HouseholdPath`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from archivectl.errors import UsageError
from archivectl.i18n import _

ARCHIVE_FILE = "archive.yaml"
STAFF_FILE = "staff.yaml"
HOUSEHOLD_SCHEMA = "schemas/household.schema.json"
NUMBERS_FILE = "registers/numbers.yaml"  # archives of format version < 3 only
HOUSEHOLDS = "households"
RECORD = "record.yaml"
ATTACHMENTS = "attachments"

# the archive number: category code, year, 5-digit serial (HO-2026-00001)
CATEGORY_CODES = {"handed-over": "HO", "not-handed-over": "NH", "special": "SP"}
ARCHIVE_NO_PATTERN = r"(?:HO|NH|SP)-[0-9]{4}-[0-9]{5}"
RECIPIENT_PATTERN = r"age1[0-9a-z]{20,90}"  # an age recipient as key names carry it (bech32; checked where parsed)
ARCHIVE_NO = re.compile(rf"^{ARCHIVE_NO_PATTERN}\Z")  # \Z: `$` would let a final newline through
BUILDING_PATTERN = r"[A-Z0-9][A-Z0-9-]{0,15}"
UNIT_PATTERN = r"[A-Za-z0-9][A-Za-z0-9-]{0,15}"
# a household's directory, with named groups, for verify's rule table (rules.classify)
HOUSEHOLD_PATTERN = (
    rf"{HOUSEHOLDS}/(?P<building>{BUILDING_PATTERN})/(?P<unit>{UNIT_PATTERN})/(?P<no>{ARCHIVE_NO_PATTERN})"
)


def check_archive_no(value: str) -> str:
    """value if it is a well-formed archive number, else UsageError (no path tricks).

    The error does not repeat what was given: a phone number typed in the wrong
    place must not end up in a terminal log.
    """
    if not isinstance(value, str) or not ARCHIVE_NO.fullmatch(value):
        raise UsageError(_("not an archive number like HO-2026-00001 (category code, year, 5-digit serial)"))
    return value


def series_of(archive_no: str) -> tuple[str, int]:
    """('HO-2026', 1) for HO-2026-00001."""
    series, _, serial = archive_no.rpartition("-")
    return series, int(serial)


@dataclass(frozen=True)
class HouseholdPath:
    """A household's place in the tree: format it with .dir/.record, read it back with parse()."""

    building: str
    unit: str
    archive_no: str

    @property
    def dir(self) -> str:
        return f"{HOUSEHOLDS}/{self.building}/{self.unit}/{self.archive_no}"

    @property
    def record(self) -> str:
        return f"{self.dir}/{RECORD}"

    def attachment(self, name: str) -> str:
        return f"{self.dir}/{ATTACHMENTS}/{name}"

    @classmethod
    def parse(cls, path: str) -> HouseholdPath | None:
        """The household a path in the tree belongs to (its directory or anything below), or None.

        This reads the shape only; whether the parts are well formed is verify's
        question (rules.classify, HOUSEHOLD_PATTERN) and the schema's.
        """
        parts = path.split("/")
        if len(parts) < 4 or parts[0] != HOUSEHOLDS or not all(parts[1:4]):
            return None
        return cls(parts[1], parts[2], parts[3])

    @classmethod
    def of(cls, path: str) -> HouseholdPath:
        """parse() for a path known to be a household's (a record path git listed): ValueError if not."""
        found = cls.parse(path)
        if found is None:
            raise ValueError(f"{path} is not a household path")
        return found

    @classmethod
    def of_record(cls, path: str) -> HouseholdPath | None:
        """The household whose record this path is (households/<b>/<u>/<no>/record.yaml exactly), or None."""
        place = cls.parse(path)
        return place if place is not None and path == place.record else None

    @staticmethod
    def records_glob(building: str = "*", unit: str = "*", archive_no: str = "*") -> str:
        """A git pathspec glob for record files: every one, or of a building, unit or number."""
        return f"{HOUSEHOLDS}/{building}/{unit}/{archive_no}/{RECORD}"


def archive_no_of(path: str) -> str:
    """The archive number a household path belongs to (the path is one of a household)."""
    return HouseholdPath.of(path).archive_no
