"""The person at the keyboard: whose key git signs with here, and which key decrypts."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

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


def check_can_sign(repo: Path | None) -> None:
    """Refuse, in words and before any work, a signing key git could not sign with here (nothing is written).

    What ssh-keygen -Y sign, which git runs, needs: the key's private half
    without a passphrase, or an ssh-agent that holds it. Found out without
    signing: the key file's header says whether it has a passphrase, and the
    agent lists its keys (one round on its socket). No signing key, or one
    that is not a file here, is left to actor_of's words; a gpg.ssh.program
    of the user's own (a password manager's signer) is trusted as it is.
    """
    found = gitio.run(
        repo, "config", "--get-regexp", r"^(user\.signingkey|gpg\.ssh\.program)$", check=False
    ).stdout.decode("utf-8", "replace")
    settings = dict(line.partition(" ")[::2] for line in found.splitlines() if line.strip())
    setting = settings.get("user.signingkey", "").strip()
    program = settings.get("gpg.ssh.program", "").strip()
    if not setting or (program and Path(program).name != "ssh-keygen"):
        return
    try:
        public, private = public_key_from_setting(setting)
    except ArchiveError:
        return  # actor_of says what is wrong with the setting
    check_key_file(private)
    protected = private is not None and has_passphrase(private)
    if private is not None and not protected:
        return
    held = agent_keys()
    if held is not None and " ".join(public.split()[:2]) in held:
        return
    if private is None:
        guess = Path(setting).expanduser().with_suffix("") if setting.endswith(".pub") else Path("~/.ssh/id_ed25519")
        raise ArchiveError(
            _(
                "user.signingkey is a public key and no ssh-agent holds its private half: run `ssh-add {private}` "
                "(or point user.signingkey at the private key file); nothing was written"
            ).format(private=guess)
        )
    if held is None:
        raise ArchiveError(
            _(
                'signing key {path} has a passphrase and no ssh-agent is running: run `eval "$(ssh-agent)"` '
                "and `ssh-add {path}`; nothing was written"
            ).format(path=private)
        )
    raise ArchiveError(
        _(
            "signing key {path} has a passphrase and the ssh-agent does not hold it: run `ssh-add {path}`; "
            "nothing was written"
        ).format(path=private)
    )


def has_passphrase(private: Path) -> bool:
    """Whether an SSH private key file is protected by a passphrase (its header says; no passphrase is asked)."""
    import base64

    try:
        text = private.read_text(errors="replace")
    except OSError:
        return False
    if "BEGIN OPENSSH PRIVATE KEY" not in text:
        return "ENCRYPTED" in text  # PEM: Proc-Type: 4,ENCRYPTED, or BEGIN ENCRYPTED PRIVATE KEY
    body = "".join(line for line in text.splitlines() if line and not line.startswith("-----"))
    try:
        data = base64.b64decode(body)
    except ValueError:
        return False
    magic = b"openssh-key-v1\0"
    if not data.startswith(magic) or len(data) < len(magic) + 4:
        return False
    size = int.from_bytes(data[len(magic) : len(magic) + 4], "big")
    return data[len(magic) + 4 : len(magic) + 4 + size] != b"none"


def agent_keys() -> set[str] | None:
    """The public keys ("type base64") the ssh-agent at SSH_AUTH_SOCK holds; None when none answers."""
    import socket
    import struct

    where = os.environ.get("SSH_AUTH_SOCK")
    if not where:
        return None
    request_identities, identities_answer = 11, 12  # the agent protocol (draft-miller-ssh-agent)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(where)
            sock.sendall(struct.pack(">IB", 1, request_identities))
            (size,) = struct.unpack(">I", _read_exactly(sock, 4))
            if size > 1 << 20:  # an agent lists a few keys: not a megabyte of them
                return None
            answer = _read_exactly(sock, size)
    except (OSError, struct.error):
        return None
    if not answer or answer[0] != identities_answer:
        return None
    keys: set[str] = set()
    try:
        (count,), at = struct.unpack(">I", answer[1:5]), 5
        for _n in range(count):
            blob, at = _ssh_string(answer, at)
            _comment, at = _ssh_string(answer, at)
            kind, _ = _ssh_string(blob, 0)
            keys.add(f"{kind.decode('ascii', 'replace')} {_base64_of(blob)}")
    except (struct.error, IndexError, ValueError):
        return keys
    return keys


def _base64_of(blob: bytes) -> str:
    import base64

    return base64.b64encode(blob).decode("ascii")


def _ssh_string(data: bytes, at: int) -> tuple[bytes, int]:
    import struct

    (size,) = struct.unpack(">I", data[at : at + 4])
    if at + 4 + size > len(data):
        raise ValueError("short")
    return data[at + 4 : at + 4 + size], at + 4 + size


def _read_exactly(sock: Any, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = sock.recv(min(left, 65536))
        if not chunk:
            raise OSError("the agent closed the connection")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def decrypting_identity(actor_private: Path | None, explicit: str | None) -> Path:
    """--identity, else ARCHIVECTL_IDENTITY, else the private half of the signing key."""
    chosen = explicit or os.environ.get("ARCHIVECTL_IDENTITY")
    if chosen:
        return Path(chosen).expanduser()
    if actor_private is None:
        raise ArchiveError(_("no identity to decrypt with: pass --identity ~/.ssh/id_ed25519"))
    return actor_private
