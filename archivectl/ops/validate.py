"""validate: are the records in git valid, judged from their clear parts alone?"""

from __future__ import annotations

from pathlib import Path

from archivectl import gitio, rules
from archivectl.archive import Archive
from archivectl.errors import UsageError
from archivectl.judge.records import check_record_text
from archivectl.layout import ARCHIVE_FILE, STAFF_FILE


def validate(archive: Archive, paths: list[str] | None = None) -> list[dict]:
    """Every problem found, as {file, problem}; an empty list means all is valid."""
    problems: list[dict] = []
    targets = _targets(archive, paths) if paths else [p for _, p in archive.record_paths()]
    if not paths:
        for name, check in ((ARCHIVE_FILE, lambda: archive.settings), (STAFF_FILE, lambda: archive.staff)):
            try:
                check()
            except UsageError as exc:
                problems.append({"file": name, "problem": str(exc).removeprefix(f"{name}: ")})
        problems += [
            {"file": link, "problem": "a symbolic link; the archive holds plain files only"}
            for link in gitio.tracked_links(archive.root)
        ]
        problems += _shared_numbers(targets)
        problems += _shared_units(archive)
    for relpath in targets:
        problems += [{"file": relpath, "problem": p} for p in check_record_file(archive, relpath)]
    return problems


def _shared_numbers(relpaths: list[str]) -> list[dict]:
    """P3: two households with one archive number (two branches that numbered alike, merged)."""
    seen: dict[str, str] = {}
    found = []
    for relpath in relpaths:
        kind = rules.classify(relpath)
        if kind is None or kind.archive_no is None:
            continue
        if kind.archive_no in seen:
            found.append({"file": relpath, "problem": f"archive_no: {seen[kind.archive_no]} has the same number (P3)"})
        seen.setdefault(kind.archive_no, relpath)
    return found


def _shared_units(archive: Archive) -> list[dict]:
    """P1: units with more than one active household (occupancy.shared_units over the index's clear facts)."""
    from archivectl.facts import households
    from archivectl.i18n import _
    from archivectl.occupancy import shared_units

    return [
        {
            "file": f"households/{building}/{unit}",
            "problem": _("{n} active households on one unit ({numbers}); move out the one that left (P1)").format(
                n=len(numbers), numbers=", ".join(numbers)
            ),
        }
        for building, unit, numbers in shared_units(households(archive))
    ]


def _targets(archive: Archive, paths: list[str]) -> list[str]:
    root = archive.root.resolve()
    found: list[str] = []
    for given in paths:
        path = Path(given)
        path = (path if path.is_absolute() else Path.cwd() / path).resolve()
        if not path.is_relative_to(root):
            raise UsageError(f"{given}: not inside the archive {root}")
        if path.is_dir():
            found += sorted(str(p.relative_to(root)) for p in path.rglob("record.yaml"))
        elif path.exists():
            found.append(str(path.relative_to(root)))
        else:
            raise UsageError(f"{given}: no such file or directory")
    return found


def check_record_file(archive: Archive, relpath: str) -> list[str]:
    """Problems with one stored record in the work tree: schema, place on disk, sealed block."""
    if (archive.root / relpath).is_symlink():
        return ["a symbolic link; the archive holds plain files only"]
    try:
        data = (archive.root / relpath).read_bytes()
    except OSError as exc:
        return [f"cannot read ({exc.strerror})"]
    return check_record_text(archive.household_schema, relpath, data)
