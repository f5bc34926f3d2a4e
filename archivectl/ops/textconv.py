"""textconv: git's diff driver for records: a registered review shows a reader clear diffs.

Git runs it on a temporary copy of each record version and shows its output in
`git diff`, `git log -p` and `git show`. The output is never stored (the archive
sets diff.archivectl.cachetextconv=false). A version is decrypted only for an
active reader of its building who registered a review naming that very version
(`archivectl review-start RANGE --reason R`, P8); everyone else sees the file
unchanged, ciphertext lines and all, under a one-line hint. It never fails a diff.
"""

from __future__ import annotations

from pathlib import Path

from archivectl import records, yamlio
from archivectl.archive import Archive
from archivectl.identity import actor_of
from archivectl.ops.common import identity_for, require_reader, unlock_record_key
from archivectl.ops.reading import reviewed_versions

BANNER = "# --- sealed fields, decrypted for you by archivectl textconv (not stored) ---\n"
HINT = (
    "# sealed fields of version {} stay encrypted: "
    "register a review to read them (archivectl review-start RANGE -r R)\n"
)


def textconv(path: Path, identity: str | None = None) -> bytes:
    """The record with its sealed block opened for a reviewing reader, else the file as it is (with a hint)."""
    raw = path.read_bytes()
    try:
        stored = records.load_stored(raw, path.name)
        if not stored.get("sealed"):
            return raw
        archive = Archive.find(None)
        actor = actor_of(archive)
        require_reader(archive, actor, str(stored.get("building")))
        if _blob_id(raw) not in reviewed_versions(archive, actor.member.id):
            return _hinted(raw)
        record_key = unlock_record_key(archive, stored, identity_for(archive, identity, actor))
        _, sealed = records.open_record(stored, record_key)
    except Exception:  # any failure: show the file unchanged, never break a diff
        return _hinted(raw)
    clear = {k: v for k, v in stored.items() if k != "sealed"}
    return (yamlio.dumps(clear) + BANNER + yamlio.dumps(sealed)).encode("utf-8")


def _blob_id(data: bytes) -> str:
    """git's object id of a blob with this content: which record version git handed us."""
    import hashlib

    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # noqa: S324 - git's own id, not security


def _hinted(raw: bytes) -> bytes:
    """The file as it is, under a hint naming its version (a changed line, so git diff shows it)."""
    return HINT.format(_blob_id(raw)[:12]).encode() + raw
