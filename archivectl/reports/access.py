"""report access (P8, P10): the server's look-up log against the access register in git.

With an OpenBao keystore every opening of a record key is a transit decrypt on
the server, and its file audit device writes one JSON line per request and per
response, whoever made it and however (archivectl, the bao CLI, a script with
the token): the look-up log nobody can skip. The access register (registers/access/)
is what archivectl wrote for each reveal, open and view. This report joins them:
a decrypt of household N by staff member S matches a register entry of S for N
written within MATCH_WINDOW of it. What is in one and not the other is listed.

Who made a request comes from the token: the `staff` metadata the IT person sets
when issuing it (`bao token create -metadata staff=but01 ...`), else its display
name. Tokens issued for cron (`-metadata purpose=maintenance`) open every key on
each `recipients sync` or `keys fsck`; their decrypts are counted apart, not
listed as missing look-ups. Tokens, ciphertexts and answers are HMAC'd in the
log; the request path (the household's transit key) is in clear, and that is
all this report reads of it.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archivectl import clock, registers
from archivectl.archive import Archive
from archivectl.errors import UsageError
from archivectl.reports.render import Report, Section

MATCH_WINDOW = dt.timedelta(minutes=5)  # a register entry is written seconds after its decrypt; clocks differ a little
LOOKUP_ACTIONS = ("reveal", "open", "view")
DECRYPT = re.compile(r"(?P<mount>.+)/decrypt/(?P<no>(HO|NH|SP)-[0-9]{4}-[0-9]{5})\.(?P<key>age1[0-9a-z]+)")


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


def read_audit_log(path: Path, transit_mount: str | None = None) -> list[Decrypt]:
    """Every transit decrypt of a record key in an OpenBao/Vault file audit log (responses only: one per request)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UsageError(f"cannot read the audit log {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not an OpenBao audit log (JSON lines)") from None
    found = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            raise UsageError(f"{path}:{number}: not an OpenBao audit log line (JSON)") from None
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
            )
        )
    return found


def _when(value: Any) -> dt.datetime:
    """An ISO time (the server's nanoseconds cut to microseconds) as an aware datetime."""
    text = re.sub(r"(\.\d{6})\d+", r"\1", str(value or "")).replace("Z", "+00:00")
    try:
        stamp = dt.datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"the audit log has a time that is not ISO 8601: {value!r}") from None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)


def _numbers(value: Any) -> list[str]:
    items = value if isinstance(value, list) else str(value or "").split(",")
    return [str(n).strip() for n in items if str(n).strip()]


def access(archive: Archive, audit_log: Path, window: dt.timedelta = MATCH_WINDOW) -> Report:
    """Look-ups on the server missing from the register, registered look-ups the server never saw, refusals."""
    from archivectl.openbao import TRANSIT_SUFFIX, mount_of

    mount = mount_of(archive.keystore.url)
    decrypts = read_audit_log(audit_log, mount + TRANSIT_SUFFIX if mount else None)
    lookups = [d for d in decrypts if not d.refused and not d.maintenance]
    entries = []
    for entry in registers.entries(archive.root, "access"):
        if entry.get("action") not in LOOKUP_ACTIONS or not entry.get("when"):
            continue
        for number in _numbers(entry.get("archive_no")):
            entries.append((_when(entry["when"]), str(entry.get("who")), number, str(entry.get("action"))))
    by_key: dict[tuple[str, str], list[dt.datetime]] = {}
    for when, who, number, _ in entries:
        by_key.setdefault((who, number), []).append(when)
    seen: dict[tuple[str, str], list[dt.datetime]] = {}
    for d in lookups:
        seen.setdefault((d.who, d.archive_no), []).append(d.when)

    def near(times: list[dt.datetime], when: dt.datetime) -> bool:
        return any(abs(t - when) <= window for t in times)

    matched, unregistered = [], []
    for d in lookups:
        row = {"when": d.when.isoformat(timespec="seconds"), "who": d.who, "archive_no": d.archive_no, "key": d.key}
        if near(by_key.get((d.who, d.archive_no), []), d.when):
            matched.append(row)
        else:
            unregistered.append({**row, "from": d.remote})
    span = (min(d.when for d in decrypts) - window, max(d.when for d in decrypts) + window) if decrypts else None
    unseen = [
        {"when": when.isoformat(timespec="seconds"), "who": who, "action": action, "archive_no": number}
        for when, who, number, action in entries
        if span and span[0] <= when <= span[1] and not near(seen.get((who, number), []), when)
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
    summary = (
        f"{len(lookups)} look-up(s) on the server, {len(matched)} registered; "
        f"{len(unregistered)} not in the register; {len(unseen)} registered but not seen by the server; "
        f"{len(refused)} refused by the server."
    )
    document = {
        "report": "access",
        "archive": archive.settings.name,
        "generated": clock.now().isoformat(timespec="seconds"),
        "audit_log": str(audit_log),
        "window_seconds": int(window.total_seconds()),
        "not_in_register": unregistered,
        "not_seen_by_server": unseen,
        "refused": refused,
        "maintenance": maintenance,
        "registered": matched,
    }
    return Report(
        name="access",
        title=f"Look-ups: the key server's audit log against the access register (P8, P10) — {archive.settings.name}",
        document=document,
        sections=[
            Section(
                "Opened on the server, not in the access register",
                unregistered,
                ["when", "who", "archive_no", "key", "from"],
            ),
            Section("Registered, but no decrypt on the server", unseen, ["when", "who", "action", "archive_no"]),
            Section("Refused by the server", refused, ["when", "who", "archive_no", "from"]),
            Section("Maintenance tokens (recipients sync, keys fsck)", maintenance, ["who", "day", "decrypts"]),
            Section("Registered look-ups", matched, ["when", "who", "archive_no", "key"]),
        ],
        summary=summary,
        act_on=bool(unregistered or unseen),
    )
