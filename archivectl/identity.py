"""The person at the keyboard: whose key git signs with here, and which key decrypts."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from archivectl import gitio
from archivectl.errors import ArchiveError, UsageError
from archivectl.i18n import _
from archivectl.staff import Staff, StaffMember

if TYPE_CHECKING:
    from archivectl.archive import Archive


@dataclass(frozen=True)
class Actor:
    """The person at the keyboard: the staff member whose key signs."""

    member: StaffMember
    signing_key: str
    private_key: Path | None


def signing_key_setting(repo: Path | None) -> str:
    """git's user.signingkey, or ArchiveError saying how to configure it."""
    value = gitio.config_get(repo, "user.signingkey")
    if not value:
        raise ArchiveError(
            _(
                "no signing key configured: run `git config --global gpg.format ssh` and `git config --global "
                "user.signingkey ~/.ssh/id_ed25519`; nothing was written"
            )
        )
    return value


def public_key_from_setting(value: str) -> tuple[str, Path | None]:
    """(public key, private key path or None) for a user.signingkey value."""
    from archivectl.crypto import public_key_of_private

    if value.startswith("key::"):
        return value[5:].strip(), None
    if value.startswith("ssh-"):
        return value.strip(), None
    path = Path(value).expanduser()
    if path.suffix == ".pub":
        private = path.with_suffix("")
        text = _read_key_file(path)
        return text, (private if private.exists() else None)
    pub = path.with_name(path.name + ".pub")
    if pub.exists():
        return _read_key_file(pub), path
    if not path.exists():
        raise ArchiveError(_("signing key {path} does not exist (git config user.signingkey)").format(path=path))
    return public_key_of_private(path), path


def _read_key_file(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        raise ArchiveError(
            _("signing key {path} cannot be read (git config user.signingkey)").format(path=path)
        ) from None


def actor_of(archive: Archive, staff: Staff | None = None) -> Actor:
    """The staff member whose key git signs with here, or ArchiveError."""
    setting = signing_key_setting(archive.root)
    public, private = public_key_from_setting(setting)
    staff = staff or archive.staff  # a malformed staff.yaml is reported as such, not as a bad key
    try:
        member = staff.by_key(public)
    except UsageError:
        raise ArchiveError(_("the configured signing key is not an ssh-ed25519 key")) from None
    if member is None:
        raise ArchiveError(_("your signing key is not on staff.yaml: ask a manager to add you"))
    check_key_file(private)
    return Actor(member=member, signing_key=setting, private_key=private)


def check_key_file(private: Path | None) -> None:
    """Refuse, in words and before any work, a private key ssh-keygen would refuse to sign with.

    ssh-keygen refuses a key that others may read, with a screen of '@' and no word
    of what to do; the write would fail only at its commit, after all its work.
    """
    if private is None or not private.exists():
        return
    mode = private.stat().st_mode & 0o777
    if mode & 0o077:
        raise ArchiveError(
            _(
                "signing key {path} is readable by others (mode {mode}): run `chmod 600 {path}`; nothing was written"
            ).format(path=private, mode=f"{mode:04o}")
        )


def decrypting_identity(actor_private: Path | None, explicit: str | None) -> Path:
    """--identity, else ARCHIVECTL_IDENTITY, else the private half of the signing key."""
    chosen = explicit or os.environ.get("ARCHIVECTL_IDENTITY")
    if chosen:
        return Path(chosen).expanduser()
    if actor_private is None:
        raise ArchiveError(_("no identity to decrypt with: pass --identity ~/.ssh/id_ed25519"))
    return actor_private
