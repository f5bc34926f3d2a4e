"""configure: commit reviewed changes to archive.yaml, schemas/ and the repository's own files.

These decide every other rule, so their change is an approved write like any
other, approved by a gm (archive.yaml `governance_approver_roles`).
"""

from __future__ import annotations

import json

from archivectl import gitio, rules, yamlio
from archivectl.archive import Archive
from archivectl.errors import ArchiveError, UsageError
from archivectl.ops.common import Approval, approved_writer, trailers
from archivectl.schema import HouseholdSchema
from archivectl.settings import Settings

CANDIDATES = ["archive.yaml", "schemas/", ".gitattributes", ".gitignore", "CODEOWNERS", ".pre-commit-config.yaml"]


def configure(archive: Archive, paths: list[str], approval: Approval) -> str:
    """Commit the work tree's edits of the named (default: every changed) settings files; return the commit."""
    with archive.writing() as tx:  # the edits checked are the edits committed
        actor = approved_writer(archive, approval, roles=archive.settings.rules.governance_approver_roles)
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
