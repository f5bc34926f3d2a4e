"""configure: commit reviewed changes to archive.yaml, schemas/ and the repository's own files.

These decide every other rule, so their change is an approved write like any
other, approved by a gm (archive.yaml `governance_approver_roles`).
"""

from __future__ import annotations

import json
from dataclasses import replace

from archivectl import gitio, rules, yamlio
from archivectl.archive import Archive
from archivectl.errors import ArchiveError, UsageError
from archivectl.i18n import _
from archivectl.layout import ARCHIVE_FILE
from archivectl.ops.common import Approval, approved_writer, trailers
from archivectl.schema import HouseholdSchema
from archivectl.settings import Settings

CANDIDATES = ["archive.yaml", "schemas/", ".gitattributes", ".gitignore", "CODEOWNERS", ".pre-commit-config.yaml"]


def configure(archive: Archive, paths: list[str], approval: Approval, add_buildings: list[str] | None = None) -> str:
    """Commit the work tree's edits of the named (default: every changed) settings files; return the commit.

    add_buildings: declare these buildings in archive.yaml (its `buildings:` list) first.
    """
    with archive.writing() as tx:  # the edits checked are the edits committed
        actor = approved_writer(archive, approval, "configure")
        if add_buildings:
            tx.write_text(ARCHIVE_FILE, with_buildings((archive.root / ARCHIVE_FILE).read_text("utf-8"), add_buildings))
            paths = sorted({*paths, ARCHIVE_FILE}) if paths else paths
        changed = gitio.dirty_paths(archive.root, paths or CANDIDATES)
        if paths:
            strays = sorted(set(paths) - set(changed))
            if strays:
                raise UsageError(f"{strays[0]}: no uncommitted change to it")
        if not changed:
            raise ArchiveError("no uncommitted change to archive.yaml, schemas/ or the repository's own files")
        for path in changed:
            _check(archive, path)
        for path in changed:
            tx.include(path)
        return tx.commit(f"configure {', '.join(changed)}", trailers("configure", approval, actor), actor)


def with_buildings(text: str, added: list[str]) -> str:
    """archive.yaml's text with these buildings added to its `buildings:` list (made if missing), comments kept.

    The list is written on one line in place of the old one; the result is
    read back, and anything that would not read as the old list plus the new
    buildings is refused (edit archive.yaml by hand then).
    """
    old = Settings.from_yaml(yamlio.loads(text, ARCHIVE_FILE))
    declared = list(old.buildings or ())
    for name in added:
        if name in declared:
            raise UsageError(_("--add-building {name}: already one of the estate's buildings").format(name=name))
        declared.append(name)
    line = f"buildings: [{', '.join(declared)}]"
    lines = text.splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.startswith("buildings:")), None)
    if start is None:
        lines.append(line)
    else:
        end = start + 1
        while end < len(lines) and (not lines[end].strip() or lines[end][0] in " -"):
            end += 1
        lines[start:end] = [line]
    new = "\n".join(lines) + "\n"
    try:
        settings = Settings.from_yaml(yamlio.loads(new, ARCHIVE_FILE))
    except UsageError as exc:
        raise UsageError(_("--add-building: {problem}").format(problem=exc)) from None
    if settings.buildings != tuple(declared) or replace(settings, buildings=old.buildings) != old:
        raise UsageError(_("--add-building: archive.yaml is laid out unusually; add the buildings by hand"))
    return new


def _check(archive: Archive, path: str) -> None:
    """A settings file must be one archivectl knows and must still parse."""
    kind = rules.classify(path)
    if kind is None or kind.kind not in ("settings", "schema", "meta"):
        raise UsageError(f"{path}: configure commits archive.yaml, schemas/ and the repository's own files only")
    file = archive.root / path
    if not file.is_file() or file.is_symlink():
        raise UsageError(f"{path}: configure commits edits, not deletions or links")
    if kind.kind == "settings":
        Settings.from_yaml(yamlio.load_file(file))
    elif kind.kind == "schema":
        try:
            doc = json.loads(file.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise UsageError(f"{path}: not valid JSON") from None
        if path.endswith("household.schema.json"):
            HouseholdSchema(doc).validate({})
