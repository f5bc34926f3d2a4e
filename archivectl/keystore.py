"""The keystore: one wrapped record key per household, outside git.

Destroying a household's key file is what purge means: every copy of its data
in git history becomes unreadable.
"""

from __future__ import annotations

from pathlib import Path

from archivectl.errors import ArchiveError


class Keystore:
    """A directory of <archive-no>.age files.

    Keys are written only by a write transaction (archive.Transaction.write_key),
    which keeps the version it replaces in a .journal-* directory in here until
    its commit is settled.
    """

    def __init__(self, path: Path):
        self.path = path

    def key_path(self, archive_no: str) -> Path:
        """Where a household's wrapped record key lives."""
        return self.path / f"{archive_no}.age"

    def require(self) -> None:
        """Refuse to work without the keystore directory."""
        if not self.path.is_dir():
            raise ArchiveError(
                f"keystore {self.path} is missing (set keystore: in archive.yaml or ARCHIVECTL_KEYSTORE)"
            )

    def read(self, archive_no: str) -> bytes:
        """The wrapped record key, or ArchiveError if it is gone."""
        self.require()
        try:
            return self.key_path(archive_no).read_bytes()
        except FileNotFoundError:
            raise ArchiveError(f"{archive_no}: record key is missing from the keystore") from None

    def destroy(self, archive_no: str) -> bool:
        """Overwrite and delete a household's wrapped record key (crypto-shredding); False if it was gone."""
        from archivectl.files import shred

        path = self.key_path(archive_no)
        if not path.exists():
            return False
        shred(path)
        return True

    def archive_numbers(self) -> list[str]:
        """Every household with a key file."""
        if not self.path.is_dir():
            return []
        return sorted(p.name.removesuffix(".age") for p in self.path.glob("*.age"))
