"""report access (P8, P10): the key server's look-up log against the access register in git.

With an OpenBao keystore every opening of a record key is a transit decrypt on
the server, and its file audit device writes a line for it, whoever made it and
however (archivectl, the bao CLI, a script holding the token): the look-up log
nobody can skip. The access register (registers/access/) is what archivectl
wrote for each reveal, open and view. This report joins the two:

- each register entry is paired with one decrypt archivectl made for the same
  household, by the same person, within MATCH_WINDOW (the nearest one);
- a decrypt made without archivectl (no X-Archivectl-Command header) is a
  look-up missing from the register, however near a registered one it is;
- a register entry with no decrypt on the server is listed too (the audit log
  must cover the period; a look-up may have used another keystore);
- decrypts archivectl made that no register entry claims are its masked views,
  approvals and checks (which show no personal value): listed with their
  command, for review, not as missing.

Who made a request comes from the token: the `staff` metadata the IT person sets
when issuing it (`bao token create -metadata staff=but01 ...`), else its display
name. Tokens for cron (`-metadata purpose=maintenance`) open every key on each
`recipients sync` or `keys fsck`; their decrypts are counted apart. Tokens,
ciphertexts and answers are HMAC'd in the log; the request path (a household's
transit key), the command header and the token's metadata are read, nothing else.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archivectl import registers
from archivectl.archive import Archive
from archivectl.errors import UsageError
from archivectl.i18n import _
from archivectl.layout import ARCHIVE_NO_PATTERN
from archivectl.openbao import COMMAND_HEADER
from archivectl.reports.render import Report, Section, document_head

MATCH_WINDOW = dt.timedelta(minutes=5)  # a register entry is written seconds after its decrypt; clocks differ a little
LOOKUP_ACTIONS = ("reveal", "open", "view")
DECRYPT = re.compile(rf"(?P<mount>.+)/decrypt/(?P<no>{ARCHIVE_NO_PATTERN})\.(?P<key>age1[0-9a-z]+)")


@dataclass(frozen=True)
class Decrypt:
    """One transit decrypt the server answered, as its audit log tells."""

    when: dt.datetime
    who: str
    archive_no: str
    key: str
    refused: bool
    maintenance: bool
    remote: str
    command: str | None  # what archivectl said it was running; None: not archivectl


def read_audit_log(path: Path, transit_mount: str | None = None) -> list[Decrypt]:
    """Every transit decrypt of a record key in an OpenBao/Vault file audit log (responses only: one per request)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UsageError(
            _("cannot read the audit log {path}: {strerror}").format(path=path, strerror=exc.strerror)
        ) from None
    except UnicodeDecodeError:
        raise UsageError(_("{path}: not an OpenBao audit log (JSON lines)").format(path=path)) from None
    found = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            raise UsageError(
                _("{path}:{number}: not an OpenBao audit log line (JSON)").format(path=path, number=number)
            ) from None
        if not isinstance(entry, dict) or entry.get("type") != "response":
            continue
        request = entry.get("request") or {}
        m = DECRYPT.fullmatch(str(request.get("path", "")))
        if m is None or (transit_mount is not None and m["mount"] != transit_mount):
            continue
        auth = entry.get("auth") or {}
        metadata = auth.get("metadata") or {}
        who = metadata.get("staff") or re.sub(r"^token-", "", str(auth.get("display_name") or "")) or "(unknown token)"
        found.append(
            Decrypt(
                when=_when(entry.get("time")),
                who=str(who),
                archive_no=m["no"],
                key=m["key"][:20],
                refused=bool(entry.get("error")),
                maintenance=metadata.get("purpose") == "maintenance",
                remote=str(request.get("remote_address") or ""),
                command=_header(request.get("headers"), COMMAND_HEADER),
            )
        )
    return found


def _header(headers: Any, name: str) -> str | None:
    """A request header the audit device logged (names lower-cased, values a list)."""
    if not isinstance(headers, dict):
        return None
    value = headers.get(name.lower())
    if isinstance(value, list):
        value = value[0] if value else None
    return str(value) if value else None


def _when(value: Any) -> dt.datetime:
    """An ISO time (the server's nanoseconds cut to microseconds) as an aware datetime."""
    text = re.sub(r"(\.\d{6})\d+", r"\1", str(value or "")).replace("Z", "+00:00")
    try:
        stamp = dt.datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(_("the audit log has a time that is not ISO 8601: {value!r}").format(value=value)) from None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)


def _numbers(value: Any) -> list[str]:
    items = value if isinstance(value, list) else str(value or "").split(",")
    return [str(n).strip() for n in items if str(n).strip()]


def access(archive: Archive, audit_log: Path, window: dt.timedelta = MATCH_WINDOW) -> Report:
    """Look-ups on the server missing from the register, registered look-ups the server never saw, refusals."""
    from archivectl.openbao import TRANSIT_SUFFIX, mount_of

    mount = mount_of(archive.keystore.url)
    decrypts = read_audit_log(audit_log, mount + TRANSIT_SUFFIX if mount else None)
    opened = [d for d in decrypts if not d.refused and not d.maintenance]
    entries = []
    for entry in registers.entries(archive.root, "access"):
        if entry.get("action") not in LOOKUP_ACTIONS or not entry.get("when"):
            continue
        for number in _numbers(entry.get("archive_no")):
            entries.append((_when(entry["when"]), str(entry.get("who")), number, str(entry.get("action"))))
    entries.sort()
    # One decrypt per register entry: archivectl's own, same person and household, the nearest within the window.
    free = {i for i, d in enumerate(opened) if d.command is not None}
    matched, unseen = [], []
    span = (min(d.when for d in decrypts) - window, max(d.when for d in decrypts) + window) if decrypts else None
    for when, who, number, action in entries:
        candidates = [
            i
            for i in free
            if opened[i].who == who and opened[i].archive_no == number and abs(opened[i].when - when) <= window
        ]
        if candidates:
            best = min(candidates, key=lambda i: abs(opened[i].when - when))
            free.discard(best)
            d = opened[best]
            matched.append(
                {"when": d.when.isoformat(timespec="seconds"), "who": who, "archive_no": number, "action": action}
            )
        elif span and span[0] <= when <= span[1]:
            unseen.append(
                {"when": when.isoformat(timespec="seconds"), "who": who, "action": action, "archive_no": number}
            )
    unregistered = [
        {
            "when": d.when.isoformat(timespec="seconds"),
            "who": d.who,
            "archive_no": d.archive_no,
            "key": d.key,
            "from": d.remote,
        }
        for d in opened
        if d.command is None
    ]
    unclaimed = [
        {"when": d.when.isoformat(timespec="seconds"), "who": d.who, "archive_no": d.archive_no, "command": d.command}
        for i, d in enumerate(opened)
        if i in free
    ]
    refused = [
        {"when": d.when.isoformat(timespec="seconds"), "who": d.who, "archive_no": d.archive_no, "from": d.remote}
        for d in decrypts
        if d.refused
    ]
    maintenance = [
        {"who": who, "day": day, "decrypts": n}
        for (who, day), n in sorted(
            Counter((d.who, d.when.date().isoformat()) for d in decrypts if d.maintenance and not d.refused).items()
        )
    ]
    summary = _(
        "{opened} record key(s) opened on the server: {matched} registered look-ups, "
        "{unclaimed} by archivectl without a look-up (masked views, approvals, checks), "
        "{unregistered} not through archivectl and not in the register; "
        "{unseen} registered but not seen by the server; {refused} refused by the server."
    ).format(
        opened=len(opened),
        matched=len(matched),
        unclaimed=len(unclaimed),
        unregistered=len(unregistered),
        unseen=len(unseen),
        refused=len(refused),
    )
    document = {
        **document_head("access", archive.settings.name),
        "audit_log": str(audit_log),
        "window_seconds": int(window.total_seconds()),
        "not_in_register": unregistered,
        "not_seen_by_server": unseen,
        "refused": refused,
        "maintenance": maintenance,
        "by_archivectl_without_lookup": unclaimed,
        "registered": matched,
    }
    return Report(
        name="access",
        title=_("Look-ups: the key server's audit log against the access register (P8, P10) — {name}").format(
            name=archive.settings.name
        ),
        document=document,
        sections=[
            Section(
                _("Opened on the server, not in the access register"),
                unregistered,
                ["when", "who", "archive_no", "key", "from"],
                key="not_in_register",
            ),
            Section(
                _("Registered, but no decrypt on the server"),
                unseen,
                ["when", "who", "action", "archive_no"],
                key="not_seen_by_server",
            ),
            Section(_("Refused by the server"), refused, ["when", "who", "archive_no", "from"], key="refused"),
            Section(
                _("Maintenance tokens (recipients sync, keys fsck)"),
                maintenance,
                ["who", "day", "decrypts"],
                key="maintenance",
            ),
            Section(
                _("Opened by archivectl without a look-up (masked views, approvals, checks)"),
                unclaimed,
                ["when", "who", "archive_no", "command"],
                key="by_archivectl_without_lookup",
            ),
            Section(_("Registered look-ups"), matched, ["when", "who", "action", "archive_no"], key="registered"),
        ],
        summary=summary,
        act_on=bool(unregistered or unseen),
    )
