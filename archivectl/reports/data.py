"""The clear facts of every household, read once and cached by git blob id.

A run where nothing changed parses nothing: the cache maps each record's blob id
(from `git ls-files -s`) to the few clear fields reports use.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from archivectl import gitio, yamlio
from archivectl.archive import Archive
from archivectl.errors import UsageError

CACHE_VERSION = 1
FIELDS = ("archive_no", "building", "floor", "unit", "category", "occupancy", "status", "last_reviewed")


def summarise(stored: Any) -> dict[str, Any]:
    """The clear facts reports need from one stored record (no personal data)."""
    if not isinstance(stored, dict):
        return {"invalid": True}
    facts = {k: stored.get(k) for k in FIELDS}
    facts["documents"] = [[d.get("type"), d.get("date")] for d in stored.get("documents") or [] if isinstance(d, dict)]
    facts["fields"] = sorted(
        set(stored.get("sealed_fields") or [])
        | {
            k
            for k, v in stored.items()
            if k not in ("sealed", "sealed_fields", "recipient") and v not in (None, "", [], {})
        }
    )
    renovation = stored.get("renovation") or {}
    facts["renovation"] = bool(isinstance(renovation, dict) and renovation.get("started"))
    facts["moved_out"] = (
        (stored.get("moved_out") or {}).get("date") if isinstance(stored.get("moved_out"), dict) else None
    )
    facts["tombstoned"] = (
        (stored.get("tombstone") or {}).get("date") if isinstance(stored.get("tombstone"), dict) else None
    )
    return facts


def place_key(row: dict[str, Any]) -> tuple[str, int, str, str]:
    """Sort order of catalogues (P18): building, floor, unit, archive number (odd values sort first)."""
    floor = row.get("floor")
    return (
        str(row.get("building")),
        floor if isinstance(floor, int) else 0,
        str(row.get("unit")),
        str(row.get("archive_no")),
    )


def households(archive: Archive, progress: Callable[[int, int], None] | None = None) -> list[dict[str, Any]]:
    """Facts of every household in the index, from cache where the blob is unchanged."""
    entries = archive.record_paths()
    cache_file = archive.git_dir / "archivectl" / "cache" / f"summaries-v{CACHE_VERSION}.json"
    cache = _load_cache(cache_file)
    missing = [(blob, path) for blob, path in entries if blob not in cache]
    if missing:
        with gitio.BlobReader(archive.root) as reader:
            contents = reader.read_many([blob for blob, _ in missing])
            for i, ((blob, path), data) in enumerate(zip(missing, contents, strict=True)):
                data = data or b""
                try:
                    cache[blob] = summarise(yamlio.loads(data, source=path))
                except UsageError:
                    cache[blob] = {"invalid": True}
                if progress and (i % 500 == 0 or i + 1 == len(missing)):
                    progress(i + 1, len(missing))
        live = {blob for blob, _ in entries}
        _save_cache(cache_file, {b: f for b, f in cache.items() if b in live})
    rows = []
    for blob, path in entries:
        facts = dict(cache[blob])
        facts["path"] = path
        rows.append(facts)
    return rows


def _load_cache(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError, RecursionError):  # a damaged cache only means a cold run
        return {}


def _save_cache(path: Path, cache: dict[str, Any]) -> None:
    """Best effort: a read-only repository (cron as another user) simply runs cold."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(cache, separators=(",", ":"), ensure_ascii=False))
        os.replace(tmp, path)
    except OSError:
        return
