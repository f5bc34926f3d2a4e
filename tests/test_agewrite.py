"""agewrite writes the age files pyrage would: pyrage and the reference age CLI open them (issue 14, P7).

A record key's wrapping is written by archivectl.agewrite (cryptography's
X25519, HKDF and ChaCha20-Poly1305) instead of pyrage, for speed. These tests
open what it writes with real ssh-keygen and age-keygen keys, by pyrage and by
the `age` CLI, and require every reader to open it and nobody else.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from pathlib import Path

import pyrage
import pytest

from archivectl import agewrite, crypto
from archivectl.errors import ArchiveError, UsageError

BODY = b"# archivectl record key\nAGE-SECRET-KEY-1QQQQ\n"


def _ssh_key(directory: Path, name: str) -> tuple[Path, str]:
    path = directory / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(path)], check=True)
    return path, path.with_suffix(".pub").read_text().strip()


def _age_identity() -> tuple[str, str]:
    identity = pyrage.x25519.Identity.generate()
    return str(identity), str(identity.to_public())


@pytest.fixture(scope="module")
def readers(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, str]]:
    directory = tmp_path_factory.mktemp("readers")
    return [_ssh_key(directory, f"reader{i}") for i in range(12)]


def _lines(blob: bytes) -> list[bytes]:
    """The header's lines before its MAC, without the grease stanza pyrage adds (a random type and body)."""
    kept, in_grease = [], False
    for line in blob.split(b"\n---", 1)[0].split(b"\n"):
        if line.startswith(b"-> "):
            in_grease = b"grease" in line.split()[1]
        if not in_grease:
            kept.append(line)
    return kept


def test_every_ssh_reader_opens_it_with_pyrage_and_nobody_else(readers, tmp_path):  # P7
    keys = [public for _, public in readers[:4]]
    blob = agewrite.encrypt(BODY, keys)
    for private, _ in readers[:4]:
        assert pyrage.decrypt(blob, [crypto.load_identity(private)]) == BODY
    with pytest.raises(pyrage.DecryptError):
        pyrage.decrypt(blob, [crypto.load_identity(readers[4][0])])


def test_many_keys_each_open_their_own_wrapping(readers):
    # agewrite works out each key's Montgomery form and tweak itself: twelve real keys each open their own.
    for private, public in readers:
        assert pyrage.decrypt(agewrite.encrypt(BODY, [public]), [crypto.load_identity(private)]) == BODY


@pytest.mark.skipif(shutil.which("age") is None, reason="reference age CLI missing: apt-get install age")
def test_reference_age_opens_it_with_an_ssh_key_and_with_the_recovery_identity(readers, tmp_path):
    recovery_secret, recovery_public = _age_identity()
    blob = tmp_path / "key.age"
    blob.write_bytes(agewrite.encrypt(BODY, [readers[0][1], readers[1][1], recovery_public]))
    for identity in (readers[0][0], readers[1][0]):
        opened = subprocess.run(["age", "-d", "-i", str(identity), str(blob)], capture_output=True, check=True)
        assert opened.stdout == BODY
    recovery_file = tmp_path / "recovery.txt"
    recovery_file.write_text(recovery_secret + "\n")
    opened = subprocess.run(["age", "-d", "-i", str(recovery_file), str(blob)], capture_output=True, check=True)
    assert opened.stdout == BODY
    refused = subprocess.run(["age", "-d", "-i", str(readers[2][0]), str(blob)], capture_output=True)
    assert refused.returncode != 0 and refused.stdout == b""


def test_the_recovery_recipient_opens_it_with_pyrage():
    secret, public = _age_identity()
    blob = agewrite.encrypt(BODY, [public])
    assert pyrage.decrypt(blob, [pyrage.x25519.Identity.from_str(secret)]) == BODY
    assert crypto.wrapped_for(blob) == (set(), 1)


def test_header_names_each_reader_with_a_fresh_ephemeral_share(readers):
    keys = [public for _, public in readers[:3]]
    first, second = agewrite.encrypt(BODY, keys), agewrite.encrypt(BODY, keys)
    assert first != second  # a fresh file key, shares and nonce each time
    assert crypto.wrapped_for(first) == ({crypto.ssh_tag(k) for k in keys}, 0)
    shares = [line.split()[3] for blob in (first, second) for line in _lines(blob) if line.startswith(b"-> ")]
    assert len(shares) == 6 and len(set(shares)) == 6
    # The same layout pyrage writes: the version line, then per reader a stanza line and its body line.
    mine, theirs = _lines(first), _lines(pyrage.encrypt(BODY, [crypto.recipient_of(k) for k in keys]))
    assert len(mine) == len(theirs) == 7
    for ours, pyrages in zip(mine, theirs, strict=True):
        if ours.startswith(b"-> "):
            assert ours.split()[:3] == pyrages.split()[:3] and len(ours) == len(pyrages)
        else:
            assert len(ours) == len(pyrages)


def test_a_changed_header_or_payload_is_refused(readers):
    private, public = readers[0]
    blob = agewrite.encrypt(BODY, [public, readers[1][1]])
    identity = crypto.load_identity(private)
    stanza_at = blob.index(b"-> ssh-ed25519 ", blob.index(b"-> ssh-ed25519 ") + 1)  # the second reader's stanza
    share = blob.index(b" ", stanza_at + 16) + 1
    tampered_header = blob[:share] + (b"A" if blob[share : share + 1] != b"A" else b"B") + blob[share + 1 :]
    tampered_payload = blob[:-1] + bytes([blob[-1] ^ 1])
    for tampered in (tampered_header, tampered_payload):
        with pytest.raises(pyrage.DecryptError):
            pyrage.decrypt(tampered, [identity])


def test_payload_of_several_chunks_and_of_none(readers):
    private, public = readers[0]
    identity = crypto.load_identity(private)
    for size in (0, 1, agewrite.CHUNK, agewrite.CHUNK + 1, 2 * agewrite.CHUNK):
        plain = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
        assert pyrage.decrypt(agewrite.encrypt(plain, [public]), [identity]) == plain


def test_wrap_record_key_is_opened_by_unwrap_and_refuses_what_pyrage_refuses(readers):
    record_key = crypto.new_record_key()
    blob = crypto.wrap_record_key(record_key, [readers[0][1]])
    assert str(crypto.unwrap_record_key(blob, crypto.load_identity(readers[0][0]))) == str(record_key)
    with pytest.raises(ArchiveError, match="not one of this household's readers"):
        crypto.unwrap_record_key(blob, crypto.load_identity(readers[1][0]))
    with pytest.raises(ArchiveError, match="no active reader"):
        crypto.wrap_record_key(record_key, [])


@pytest.mark.parametrize(
    "point",
    [
        b"\xff" * 32,  # y not below p
        b"\x01" + bytes(31),  # y = 1: the neutral point
        bytes(32),  # y = 0: a point of order 4
        (2**255 - 20).to_bytes(32, "little"),  # y = -1: a point of order 2
        (2).to_bytes(32, "little"),  # y = 2: no x on the curve
    ],
)
def test_a_key_that_is_no_usable_point_is_refused(point):
    # pyrage 1.4.0 wraps to all but y = 2 without complaint; agewrite refuses them all, as Go's age does.
    key = "ssh-ed25519 " + base64.b64encode(b"\0\0\0\x0bssh-ed25519\0\0\0\x20" + point).decode()
    with pytest.raises(UsageError, match="not a usable ssh-ed25519 public key"):
        crypto.wrap_record_key(crypto.new_record_key(), [key])


@pytest.mark.parametrize(
    "recipient",  # u = 0 and u = 1, bech32-encoded: valid checksums, points of small order
    [
        "age1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq5cu47z",
        "age1qyqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqj7vrya",
    ],
)
def test_an_age_recipient_of_small_order_is_refused_not_wrapped_to(readers, recipient):
    # e.g. a recovery key edited into archive.yaml by hand: one line, not a traceback, and nothing wrapped
    with pytest.raises(UsageError, match="not a usable age X25519 recipient"):
        crypto.wrap_record_key(crypto.new_record_key(), [readers[0][1], recipient])


# -- streaming an attachment (issue 30): encrypt_stream, crypto.encrypt_file, gitio.LooseBlob

STREAM_SIZES = (0, 1, agewrite.CHUNK - 1, agewrite.CHUNK, agewrite.CHUNK + 1, 3 * agewrite.CHUNK)


def _streamed(plain: bytes, public: str) -> bytes:
    import io

    length, pieces = agewrite.encrypt_stream(io.BytesIO(plain), len(plain), [public])
    blob = b"".join(pieces)
    assert len(blob) == length  # known before the first byte, as git's hash needs it
    return blob


@pytest.mark.parametrize("size", STREAM_SIZES)
def test_a_streamed_file_opens_with_pyrage_and_the_reference_age(size, tmp_path):  # P7
    secret, public = _age_identity()
    plain = os.urandom(size)
    blob = _streamed(plain, public)
    assert pyrage.decrypt(blob, [pyrage.x25519.Identity.from_str(secret)]) == plain
    if shutil.which("age") is None:
        pytest.skip("reference age CLI missing: apt-get install age")
    (tmp_path / "id").write_text(secret + "\n")
    (tmp_path / "f.age").write_bytes(blob)
    opened = subprocess.run(["age", "-d", "-i", str(tmp_path / "id"), str(tmp_path / "f.age")], capture_output=True)
    assert opened.returncode == 0 and opened.stdout == plain


def test_a_streamed_file_cut_short_or_changed_is_refused_by_both(tmp_path):  # P7
    secret, public = _age_identity()
    plain = os.urandom(3 * agewrite.CHUNK + 100)
    blob = _streamed(plain, public)
    payload = blob.index(b"\n", blob.index(b"\n---")) + 1 + 16
    sealed = agewrite.CHUNK + agewrite.TAG
    damaged = {
        "last chunk dropped": blob[: payload + 3 * sealed],  # ends on a whole chunk that is not marked last
        "cut mid-chunk": blob[: payload + sealed + 1000],
        "a payload byte flipped": blob[: payload + 5] + bytes([blob[payload + 5] ^ 1]) + blob[payload + 6 :],
        "chunks swapped": blob[:payload]
        + blob[payload + sealed : payload + 2 * sealed]
        + blob[payload : payload + sealed]
        + blob[payload + 2 * sealed :],
    }
    identity = pyrage.x25519.Identity.from_str(secret)
    (tmp_path / "id").write_text(secret + "\n")
    for what, bad in damaged.items():
        with pytest.raises(pyrage.DecryptError):
            pyrage.decrypt(bad, [identity])
        if shutil.which("age"):
            (tmp_path / "bad.age").write_bytes(bad)
            opened = subprocess.run(
                ["age", "-d", "-i", str(tmp_path / "id"), "-o", str(tmp_path / "out"), str(tmp_path / "bad.age")],
                capture_output=True,
            )
            assert opened.returncode != 0, what


def test_a_source_that_is_not_its_announced_size_raises_source_changed():
    import io

    _, public = _age_identity()
    for plain, size in ((b"x" * 10, 11), (b"x" * 10, 9), (os.urandom(agewrite.CHUNK + 5), agewrite.CHUNK)):
        _, pieces = agewrite.encrypt_stream(io.BytesIO(plain), size, [public])
        with pytest.raises(agewrite.SourceChanged):
            b"".join(pieces)


def _repo(path: Path) -> Path:
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    return path


# one chunk and a bit; and more than the batches written at once and the write-back step (crypto._WriteBack)
@pytest.mark.parametrize("size", [2 * agewrite.CHUNK + 7, (17 << 20) + 3])
def test_encrypt_file_stores_the_git_blob_it_hashed_on_the_way(size, tmp_path):
    secret, public = _age_identity()
    repo = _repo(tmp_path / "repo")
    plain = os.urandom(size)
    (tmp_path / "scan.pdf").write_bytes(plain)
    target = repo / "scan.pdf.age"
    blob = crypto.encrypt_file(tmp_path / "scan.pdf", target, crypto.record_recipient(public), repo)
    # the id git gives the file, and git reads the object it names back as exactly the file's bytes
    assert (
        blob
        == subprocess.run(
            ["git", "-C", str(repo), "hash-object", str(target)], capture_output=True, text=True
        ).stdout.strip()
    )
    stored = subprocess.run(["git", "-C", str(repo), "cat-file", "blob", blob], capture_output=True, check=True).stdout
    assert stored == target.read_bytes()
    assert pyrage.decrypt(stored, [pyrage.x25519.Identity.from_str(secret)]) == plain
    assert subprocess.run(["git", "-C", str(repo), "fsck", "--full", "--strict"], capture_output=True).returncode == 0
    assert not list((repo / ".git/objects").glob("tmp_obj_*"))


def test_encrypt_file_refuses_a_file_that_grows_while_read_and_leaves_nothing(tmp_path):
    # /proc/self/status says it is 0 bytes long and reads as more: a file written to while it is attached
    _, public = _age_identity()
    repo = _repo(tmp_path / "repo")
    objects_before = sorted(p.name for p in (repo / ".git/objects").rglob("*"))
    target = tmp_path / "out.age"
    with pytest.raises(ArchiveError, match="changed while it was being encrypted"):
        crypto.encrypt_file(Path("/proc/self/status"), target, crypto.record_recipient(public), repo)
    assert not target.exists()
    assert sorted(p.name for p in (repo / ".git/objects").rglob("*")) == objects_before


def test_a_loose_blob_aborted_after_it_was_finished_leaves_nothing_in_the_store(tmp_path):
    # encrypt_file's blob thread finishes the object while the work-tree copy is still being synced;
    # if that then fails, no commit will name the object, and it goes
    from archivectl import gitio

    repo = _repo(tmp_path / "repo")
    objects_before = sorted(p.name for p in (repo / ".git/objects").rglob("*"))
    pieces = [os.urandom(1000), os.urandom(70000)]
    blob = gitio.LooseBlob.open(repo, sum(len(p) for p in pieces))
    assert blob is not None
    blob.write_many(pieces)
    assert blob.complete()
    found = blob.finish()
    shown = subprocess.run(["git", "-C", str(repo), "cat-file", "blob", found], capture_output=True, check=True)
    assert shown.stdout == b"".join(pieces)
    blob.abort()
    assert sorted(p.name for p in (repo / ".git/objects").rglob("*") if p.is_file()) == [
        p for p in objects_before if (repo / ".git/objects").joinpath(p).is_file()
    ]
