"""migrate fingerprints: give every sealed record written before fingerprints its `sealed_fingerprints` (issue 26).

Records get fingerprints on their next sealing write; this does the whole
archive in one approved commit, for an office that wants every pull request
from now on to say which sealed field changed. Each record is opened in memory
by a reader of every building (a manager or the gm), and written again with
its sealed block's ciphertext kept as it is: the only change is the new clear
mapping of fingerprints, which the action's row in rules.TABLE allows and no
more.
"""

from __future__ import annotations

from typing import Any

from archivectl import crypto, records
from archivectl.archive import Archive
from archivectl.errors import ArchiveError
from archivectl.i18n import _
from archivectl.ops.common import (
    Approval,
    approved_writer,
    identity_for,
    open_key,
    sealed_records_to_rewrite,
    trailers,
)

ACTION = "fingerprint"


def migrate_fingerprints(archive: Archive, approval: Approval, identity: str | None = None) -> dict[str, Any]:
    """Fingerprint every sealed record that has none, in one approved commit: {households, commit}.

    Refused (nothing written) when a record that needs them is in a building the
    actor does not read, or nothing needs them.
    """
    with archive.writing() as tx:
        actor = approved_writer(archive, approval)
        todo = sealed_records_to_rewrite(archive, actor, lambda stored: "sealed_fingerprints" not in stored)
        if not todo:
            raise ArchiveError(_("every sealed record already has its fingerprints; nothing to migrate"))
        loaded = crypto.load_identity(identity_for(archive, identity, actor))
        schema = archive.household_schema
        numbers = []
        for relpath, stored in todo:
            key = open_key(archive, stored, loaded)
            plain, sealed = records.open_record(stored, key)
            new = records.to_stored(plain, schema, key, (sealed, stored["sealed"]), stored.get("blind_index"))
            if {k: v for k, v in new.items() if k != "sealed_fingerprints"} != stored:
                raise ArchiveError(
                    _("{no}: the record does not read back as it is stored; run `archivectl validate`").format(
                        no=stored.get("archive_no")
                    )
                )
            tx.write_text(relpath, records.dump(new))
            numbers.append(str(stored["archive_no"]))
        commit = tx.commit(
            f"fingerprint the sealed fields of {len(numbers)} households",
            trailers(ACTION, approval, actor, ", ".join(sorted(numbers))),
            actor,
        )
    return {"households": sorted(numbers), "commit": commit}
