"""The dates the 30-day rule counts from (P13): the tombstone's commit, its parents, its arrival on main.

policy.retention_verdict decides on them; this reads them from history, for verify, purge and keys shred.
"""

from __future__ import annotations

import datetime as dt
import itertools

from archivectl import gitio, policy, records
from archivectl.archive import Archive
from archivectl.errors import ArchiveError
from archivectl.i18n import _


def tombstone_dates(
    archive: Archive, relpath: str, stored: dict, rev: str = "HEAD", mainline: str | None = None
) -> policy.TombstoneDates:
    """The dates of the commit that made rev's tombstone, its parents and its arrival on the main line.

    The main line is mainline's first-parent history (default: rev's).
    """
    line_rev = mainline or rev
    tomb = stored.get("tombstone") or {}
    history = gitio.path_history(archive.root, relpath, rev)
    made_in = None
    for commit, parents, date in history:  # newest first: walk back while the tombstone is there
        blob = gitio.show_blob(archive.root, commit, relpath)
        version = records.load_stored(blob, relpath) if blob else {}
        if version.get("status") != "tombstoned" or version.get("tombstone") != tomb:
            break
        made_in = (commit, parents, date)
    if made_in is None:
        raise ArchiveError(
            _("{archive_no}: the tombstone is not committed yet").format(archive_no=stored.get("archive_no"))
        )
    commit, parents, date = made_in
    arrival = gitio.first_mainline_containing(archive.root, commit, line_rev)
    try:
        yaml_date = dt.date.fromisoformat(str(tomb.get("date")))
    except ValueError:
        raise ArchiveError(
            _("{archive_no}: tombstone date is not a date").format(archive_no=stored.get("archive_no"))
        ) from None
    return policy.TombstoneDates(
        yaml_date=yaml_date,
        commit=dt.datetime.fromisoformat(date),
        parents=tuple(dt.datetime.fromisoformat(gitio.committer_date(archive.root, p)) for p in parents),
        mainline=dt.datetime.fromisoformat(gitio.committer_date(archive.root, arrival)) if arrival else None,
        mainline_backwards=_mainline_goes_backwards(archive, line_rev, arrival),
    )


def _mainline_goes_backwards(archive: Archive, rev: str, since: str | None) -> bool:
    """True when a main-line commit from `since` up to rev is dated before its first parent (P13's clock)."""
    line = gitio.first_parent_dates(archive.root, rev)  # newest first
    for (commit, date), (_parent, parent_date) in itertools.pairwise(line):
        if dt.datetime.fromisoformat(date) < dt.datetime.fromisoformat(parent_date) - policy.CLOCK_SKEW:
            return True
        if commit == since:
            break
    return False


def change_dates(archive: Archive, commit: str, mainline: str) -> policy.TombstoneDates:
    """The dates a change that makes a record key obsolete counts its 30 days from (edit --forget-previous).

    As for a tombstone: the commit, its parents and its arrival on mainline's first-parent
    history; its own date stands for the YAML date, so policy.retention_verdict takes the latest.
    """
    info = gitio.out(archive.root, "log", "-1", "--format=%cI %P", commit).split()
    made = dt.datetime.fromisoformat(info[0])
    arrival = gitio.first_mainline_containing(archive.root, commit, mainline)
    return policy.TombstoneDates(
        yaml_date=made.date(),
        commit=made,
        parents=tuple(dt.datetime.fromisoformat(gitio.committer_date(archive.root, p)) for p in info[1:]),
        mainline=dt.datetime.fromisoformat(gitio.committer_date(archive.root, arrival)) if arrival else None,
        mainline_backwards=_mainline_goes_backwards(archive, mainline, arrival),
    )
