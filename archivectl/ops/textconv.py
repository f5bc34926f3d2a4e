"""textconv: git's diff driver for records, so reviewers holding a reader key see clear diffs.

Git runs it on a temporary copy of each record version and shows its output in
`git diff`, `git log -p` and `git show`. The output is never stored (the archive
sets diff.archivectl.cachetextconv=false). Anyone who cannot decrypt sees the
file unchanged, ciphertext lines and all; it never fails a diff.
"""

from __future__ import annotations

from pathlib import Path

from archivectl import records, yamlio
from archivectl.archive import Archive
from archivectl.ops.common import identity_for, unlock_record_key

BANNER = "# --- sealed fields, decrypted for you by archivectl textconv (not stored) ---\n"


def textconv(path: Path, identity: str | None = None) -> bytes:
    """The record with its sealed block opened for a reader, else the file as it is."""
    raw = path.read_bytes()
    try:
        stored = records.load_stored(raw, path.name)
        if not stored.get("sealed"):
            return raw
        archive = Archive.find(None)
        record_key = unlock_record_key(archive, stored, identity_for(archive, identity))
        _, sealed = records.open_record(stored, record_key)
    except Exception:  # any failure: show the file unchanged, never break a diff
        return raw
    clear = {k: v for k, v in stored.items() if k != "sealed"}
    return (yamlio.dumps(clear) + BANNER + yamlio.dumps(sealed)).encode("utf-8")
