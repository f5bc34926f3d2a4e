"""Every rule the judge can find broken, named once: the names verify, review and the server hook print.

A newcomer looking for "what does verify mean by `register`?" reads this table;
a check that flags a name not listed here fails at once (Finding refuses it), so
the list and the checks cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass

RULES: dict[str, str] = {
    "action": "the Action trailer is missing or names no archivectl action; only the founding commit is an init",
    "approval": "a change awaits its signed approval, or an approval is signed by someone who may not give it",
    "approver": "the approver a change names may not approve it (role, four-eyes, inactive), or is missing",
    "attachment": "an original attachment was changed or deleted (P6)",
    "changes": "a commit changes a path its action may not change (staff, settings, schemas: governance only)",
    "dates": "a commit dated in the future or before its parent; a tombstone date more than a day off its commit",
    "hold": "a tombstone, purge or shred of a household under legal hold (until an approved release)",
    "keystore": "the keystore and main disagree: a missing key, or a key whose household was purged",
    "layout": "a path outside archivectl's layout, a symbolic link, or something that is not a plain file",
    "merge": "a merge that is neither git's own merge of its parents nor archivectl's field-level merge",
    "numbers": "an archive number used twice, or not the next of its series (P3)",
    "personal-data": "a phone number, an ID number or other personal data in clear (P9)",
    "purge": "a purge of a household not tombstoned retention_days before, or that leaves files behind (P13)",
    "record": "a record that is invalid, or changed in a way its action may not change it",
    "register": "a register entry that is missing, changed, removed or disagrees with its commit (P8, P14)",
    "root": "a root commit inside a range: a history of its own cannot vouch for itself",
    "shred": "a destruction entry naming a key no approved purge, rotation or forget on main made obsolete (P14)",
    "signature": "a commit unsigned, badly signed, or signed by a key its staff.yaml does not list as active",
    "signer": "the signer is not the staff member the Acted-by trailer names",
    "staff": "the staff.yaml a commit is judged by is missing or invalid",
    "trailers": "a trailer (Reason, Acted-by, Archive-No, Approves) is missing, repeated or malformed",
    "unit": "a second active household on a unit without Also-Active saying both live there (P1)",
}


@dataclass(frozen=True)
class Finding:
    """One broken rule: which commit, which rule (a name in RULES), what exactly."""

    commit: str
    subject: str
    rule: str
    message: str

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"finding {self.rule!r} is not declared in judge/findings.py RULES")
