"""Whether a stored record is valid where it stands: schema, place on disk, category code, sealed block.

verify judges every changed record with these; `validate` judges the work tree's with them too.
"""

from __future__ import annotations

from archivectl import records
from archivectl.errors import UsageError
from archivectl.i18n import _
from archivectl.layout import CATEGORY_CODES
from archivectl.schema import HouseholdSchema


def check_record_text(schema: HouseholdSchema, relpath: str, data: bytes) -> list[str]:
    """Problems with one stored record's content, judged as if at relpath."""
    try:
        stored = records.load_stored(data, relpath)
    except UsageError as exc:
        return [str(exc).removeprefix(f"{relpath}: ")]
    return check_stored_record(schema, relpath, stored)


def check_stored_record(
    schema: HouseholdSchema, relpath: str, stored: dict, valid_before: dict | None = None
) -> list[str]:
    """check_record_text for a record already parsed (valid_before: see HouseholdSchema.validate_stored)."""
    problems = schema.validate_stored(stored, valid_before)
    parts = relpath.split("/")
    if len(parts) == 5 and parts[0] == "households":
        for field, expected in (("building", parts[1]), ("unit", parts[2]), ("archive_no", parts[3])):
            if stored.get(field) != expected:
                problems.append(
                    _("{field}: does not match the record's directory {directory}").format(
                        field=field, directory="/".join(parts[:4])
                    )
                )
    else:
        problems.append(_("records live at households/<building>/<unit>/<archive-no>/record.yaml"))
    code = CATEGORY_CODES.get(str(stored.get("category")))
    if code and isinstance(stored.get("archive_no"), str) and not stored["archive_no"].startswith(code + "-"):
        problems.append(_("archive_no: does not carry the category code {code}").format(code=code))
    if bool(stored.get("sealed")) != bool(stored.get("sealed_fields")):
        problems.append(_("sealed: sealed and sealed_fields must be present together"))
    for name in schema.doc.get("required", []):
        if schema.holds_personal(name) and name not in (stored.get("sealed_fields") or []):
            problems.append(_("{field}: required field is missing").format(field=name))
    return sorted(set(problems))
