"""init: a new archive whose founding commit a general manager signs."""

from __future__ import annotations

import shutil
from pathlib import Path

from archivectl import crypto, gitio, policy, schema, yamlio
from archivectl.archive import Archive
from archivectl.errors import ArchiveError, UsageError
from archivectl.i18n import _
from archivectl.identity import Actor, public_key_from_setting, signing_key_setting
from archivectl.layout import ARCHIVE_FILE, STAFF_FILE
from archivectl.ops.common import Approval, trailers
from archivectl.ops.hooks import configure_clone, install_hooks
from archivectl.settings import Settings, keystore_url
from archivectl.staff import Staff

GITATTRIBUTES = """\
# Records diff with their sealed block decrypted for readers (archivectl textconv);
# everyone else sees the unchanged ciphertext lines. Nothing decrypted is stored.
households/**/record.yaml diff=archivectl
# Two branches that change different fields of one record merge field by field
# (archivectl merge-driver); sealed fields for someone who can read the household.
households/**/record.yaml merge=archivectl
*.age binary
"""

GITIGNORE = "# The keystore never belongs in git.\n*.keys/\n"


def init(
    path: Path,
    name: str,
    staff_file: Path,
    reason: str = "found the archive",
    keystore: str | None = None,
    recovery: str | None = None,
) -> tuple[Archive, str]:
    """Create the archive and its keystore, with the clone's hooks; return the archive and the founding commit.

    keystore: a URL (sftp://host/path) or directory written to archive.yaml; default <path>.keys.
    recovery: the offline recovery recipient (age1...) every record key is also wrapped to.
    """
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise UsageError(_("{path} already exists and is not an empty directory").format(path=path))
    staff = Staff.from_yaml(yamlio.load_file(staff_file), str(staff_file))
    public, _source = public_key_from_setting(signing_key_setting(None))
    founder = staff.by_key(public)
    problem = policy.founder_problem(founder)
    if problem:
        raise ArchiveError(problem)
    assert founder is not None  # founder_problem refuses None
    from archivectl.keystore import backend_for
    from archivectl.settings import check_recovery

    settings = Settings(name=name, keystore=keystore, recovery=check_recovery(recovery))
    if settings.recovery:
        crypto.check_recovery_key(settings.recovery)
    url = keystore_url(path.resolve(), settings.keystore)
    backend = backend_for(url)
    local = Path(url) if "://" not in url else None
    if local is not None and local.exists() and any(local.iterdir()):
        raise ArchiveError(_("keystore {local} already holds keys; move it away first").format(local=local))
    if local is None and (backend.list("keys") or backend.list("numbers")):
        raise ArchiveError(_("keystore {url} already holds keys; give a new place").format(url=url))

    created_dir, created_keys = not path.exists(), local is not None and not local.exists()
    try:
        path.mkdir(parents=True, exist_ok=True)
        gitio.init(path)
        backend.makedirs()
        archive = Archive(path.resolve())
        configure_clone(archive, staff)
        acting = Actor(member=founder, signing_key=signing_key_setting(None), private_key=None)
        # The founding commit is a write like any other: journaled, one signed commit, or nothing.
        with archive.writing(acting) as tx:
            tx.write_text(ARCHIVE_FILE, "# archivectl archive settings\n" + yamlio.dumps(settings.to_yaml()))
            tx.write_text(
                STAFF_FILE,
                "# Staff: role, buildings read (P7), SSH ed25519 key (signs commits, decrypts)\n"
                + yamlio.dumps(staff.to_yaml()),
            )
            for fname in schema.SCHEMA_FILES:
                tx.write(f"schemas/{fname}", (schema.shipped_dir() / fname).read_bytes())
            tx.write_text(".gitattributes", GITATTRIBUTES)
            tx.write_text(".gitignore", GITIGNORE)
            commit = tx.commit(f"init archive {name}", trailers("init", Approval(reason, founder.id), acting))
        install_hooks(archive)  # the founder's clone has the hooks every clone has (a `git clone` runs install-hooks)
    except BaseException:
        # Nothing of a failed init is kept: the directory (or what was put in it) and the keystore it made.
        if created_dir:
            shutil.rmtree(path, ignore_errors=True)
        else:
            for child in path.iterdir() if path.exists() else []:
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        if created_keys and local is not None:
            shutil.rmtree(local, ignore_errors=True)
        raise
    return archive, commit
