"""ageread opens what pyrage opens, to the same bytes, and nothing else (issue 30, P7).

A record key is unwrapped with a staff member's ssh key by archivectl.ageread
(cryptography's X25519, HKDF and ChaCha20-Poly1305) where it can, for speed;
anything it does not take goes to pyrage, whose answer stands. These tests
hold it to that with real ssh-keygen keys and files written by pyrage, by
agewrite and by the reference `age` CLI: each opened by ageread itself (not
handed on), to pyrage's bytes; and every changed file either refused by both
or opened by both to the same bytes.
"""

from __future__ import annotations

import hmac
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyrage
import pytest
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archivectl import ageread, agewrite, crypto
from archivectl.errors import ArchiveError

SIZES = (0, 1, 700, agewrite.CHUNK, agewrite.CHUNK + 1, 2 * agewrite.CHUNK + 5)


def _plain(size: int) -> bytes:
    return bytes(range(256)) * (size // 256) + b"x" * (size % 256)


def _ssh_key(directory: Path, name: str, passphrase: str = "") -> tuple[Path, str]:
    path = directory / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-C", name, "-f", str(path)], check=True)
    return path, path.with_suffix(".pub").read_text().strip()


@pytest.fixture(scope="module")
def readers(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, str]]:
    directory = tmp_path_factory.mktemp("readers")
    return [_ssh_key(directory, f"reader{i}") for i in range(3)]


def _ssh_reader(private: Path) -> ageread.SshReader:
    return ageread.SshReader(private.read_bytes())


def _opened_by_both(data: bytes, reader: ageread._Reader, identity: object) -> bytes:
    """The plaintext, required to come from ageread itself and to be pyrage's."""
    ours = ageread.decrypt(data, reader)
    assert ours is not None, "ageread handed a file it should open to pyrage"
    assert ours == pyrage.decrypt(data, [identity])
    return ours


@pytest.mark.parametrize("size", SIZES)
def test_files_pyrage_writes_to_ssh_readers_open_to_its_bytes(readers, size):  # P7
    recipients = [crypto.recipient_of(public) for _, public in readers]
    for armored in (False, True):
        data = pyrage.encrypt(_plain(size), recipients, armored=armored)
        for private, _ in readers:
            assert _opened_by_both(data, _ssh_reader(private), crypto.load_identity(private)) == _plain(size)


def test_files_agewrite_writes_open_too(readers):
    private, public = readers[0]
    data = agewrite.encrypt(b"# archivectl record key\n", [readers[1][1], public])
    assert _opened_by_both(data, _ssh_reader(private), crypto.load_identity(private)) == b"# archivectl record key\n"


@pytest.mark.skipif(shutil.which("age") is None, reason="the reference age CLI is missing: apt-get install age")
def test_files_the_reference_age_writes_open_to_its_bytes(readers, tmp_path):  # P7
    private, public = readers[0]
    source = tmp_path / "clear"
    source.write_bytes(_plain(agewrite.CHUNK + 99))
    for armor in ([], ["-a"]):
        out = tmp_path / "sealed.age"
        subprocess.run(["age", *armor, "-r", public, "-r", readers[1][1], "-o", str(out), str(source)], check=True)
        assert _opened_by_both(out.read_bytes(), _ssh_reader(private), crypto.load_identity(private)) == _plain(
            agewrite.CHUNK + 99
        )


def test_another_readers_key_is_not_opened_and_pyrage_says_why(readers):
    record_key = crypto.new_record_key()
    blob = crypto.wrap_record_key(record_key, [readers[0][1]])
    assert ageread.decrypt(blob, _ssh_reader(readers[1][0])) is None
    with pytest.raises(ArchiveError, match="not one of this household's readers"):
        crypto.unwrap_record_key(blob, crypto.load_identity(readers[1][0]))


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]


def _shapes_ageread_leaves_to_pyrage(blob: bytes) -> dict[str, bytes]:
    """Files not written as the spec writes them, each made from a good one."""
    header, _, rest = blob.partition(b"\n---")
    lines = header.split(b"\n")
    body_at = next(i for i, line in enumerate(lines) if line.startswith(b"-> ssh-ed25519")) + 1
    noncanonical = lines[body_at][:-1] + {b"A": b"B"}.get(lines[body_at][-1:], b"A")  # the last character's spare bits
    return {
        "stanza body not canonical": b"\n".join([*lines[:body_at], noncanonical, *lines[body_at + 1 :]])
        + b"\n---"
        + rest,
        "no stanza": lines[0] + b"\n---" + rest,
        "an scrypt stanza beside": lines[0]
        + b"\n-> scrypt c2FsdHNhbHRzYWx0c2FsdA 10\n"
        + b"\n".join(lines[1:])
        + b"\n---"
        + rest,
        "cut in the payload": blob[:-3],
        "a byte after the payload": blob + b"\0",
        "MAC changed": _flip(blob, blob.index(b"\n--- ") + 8),
        "payload changed": _flip(blob, len(blob) - 1),
        "version line changed": blob.replace(b"age-encryption.org/v1", b"age-encryption.org/v2", 1),
    }


@pytest.mark.parametrize(
    "shape",
    [
        "stanza body not canonical",
        "no stanza",
        "an scrypt stanza beside",
        "cut in the payload",
        "a byte after the payload",
        "MAC changed",
        "payload changed",
        "version line changed",
    ],
)
def test_a_file_not_as_the_spec_writes_it_goes_to_pyrage_which_refuses_it(readers, shape):  # P7
    private, public = readers[0]
    record_key = crypto.new_record_key()
    blob = _shapes_ageread_leaves_to_pyrage(crypto.wrap_record_key(record_key, [public]))[shape]
    identity = crypto.load_identity(private)
    assert ageread.decrypt(blob, _ssh_reader(private)) is None
    with pytest.raises(pyrage.DecryptError):
        pyrage.decrypt(blob, [identity])
    with pytest.raises(ArchiveError, match=r"not one of this household's readers|not an age file"):
        crypto.unwrap_record_key(blob, identity)


def test_a_stanza_with_the_readers_tag_that_does_not_open_refuses_the_file_though_a_later_one_opens(readers):
    """A sender who holds the file key can write a bad stanza for the reader before a good one, under a valid
    MAC: age refuses the file at the first stanza whose tag is the reader's, and so must ageread."""
    private, public = readers[0]
    reader = agewrite.recipient(public)
    file_key = os.urandom(16)
    bad = reader.stanza(os.urandom(16))  # the reader's tag, a body that opens to another file key
    bad = bad[: bad.rindex(b"\n", 0, -1) + 1] + agewrite._body_lines(os.urandom(32))  # and not even that
    header = agewrite.VERSION_LINE + bad + reader.stanza(file_key) + b"---"
    mac = hmac.digest(agewrite.hkdf(file_key, b"", b"header"), header, "sha256")
    nonce = os.urandom(16)
    payload = ChaCha20Poly1305(agewrite.hkdf(file_key, nonce, b"payload")).encrypt(
        agewrite.chunk_nonce(0, True), b"# archivectl record key\n", None
    )
    crafted = header + b" " + agewrite._b64(mac) + b"\n" + nonce + payload
    good = agewrite.VERSION_LINE + reader.stanza(file_key) + b"---"
    good += b" " + agewrite._b64(hmac.digest(agewrite.hkdf(file_key, b"", b"header"), good, "sha256")) + b"\n"
    assert _opened_by_both(good + nonce + payload, _ssh_reader(private), crypto.load_identity(private))
    with pytest.raises(pyrage.DecryptError):
        pyrage.decrypt(crafted, [crypto.load_identity(private)])
    assert ageread.decrypt(crafted, _ssh_reader(private)) is None


def test_an_empty_last_chunk_after_a_full_one_is_refused(readers):  # the spec: empty only where the payload is
    private, public = readers[0]
    head, aead = agewrite._start([public])
    full = aead.encrypt(agewrite.chunk_nonce(0, False), b"y" * agewrite.CHUNK, None)
    data = head + full + aead.encrypt(agewrite.chunk_nonce(1, True), b"", None)
    assert ageread.decrypt(data, _ssh_reader(private)) is None
    with pytest.raises(pyrage.DecryptError):
        pyrage.decrypt(data, [crypto.load_identity(private)])


def test_armor_not_as_age_writes_it_goes_to_pyrage(readers):
    private, public = readers[0]
    identity = crypto.load_identity(private)
    armored = crypto.seal_to(_plain(700), [public]).encode("ascii")
    lines = armored.rstrip(b"\n").split(b"\n")
    text = b"".join(lines[1:-1])
    rewrapped = b"\n".join([lines[0], *(text[i : i + 60] for i in range(0, len(text), 60)), lines[-1], b""])
    assert ageread.decrypt(rewrapped, _ssh_reader(private)) is None
    try:
        theirs = pyrage.decrypt(rewrapped, [identity])
    except pyrage.DecryptError:
        with pytest.raises(ArchiveError, match="damaged"):
            crypto.open_sealed(rewrapped.decode(), identity)
    else:
        assert crypto.open_sealed(rewrapped.decode(), identity) == theirs


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    edits=st.lists(
        st.tuples(st.sampled_from(["flip", "drop", "insert"]), st.integers(0, 10**6), st.integers(0, 255)),
        min_size=1,
        max_size=3,
    )
)
def test_whatever_is_changed_ageread_opens_only_what_pyrage_opens_to_the_same_bytes(sealed_case, edits):  # P7
    data, reader, identity = sealed_case
    for kind, at, value in edits:
        at %= len(data)
        if kind == "flip":
            data = data[:at] + bytes([data[at] ^ (value or 1)]) + data[at + 1 :]
        elif kind == "drop":
            data = data[:at] + data[at + 1 :]
        else:
            data = data[:at] + bytes([value]) + data[at:]
    ours = ageread.decrypt(data, reader)
    try:
        theirs = pyrage.decrypt(data, [identity])
    except pyrage.DecryptError:
        theirs = None
    assert ours is None or ours == theirs


@pytest.fixture(scope="module")
def sealed_case(readers) -> tuple[bytes, ageread.SshReader, object]:
    private, public = readers[0]
    data = pyrage.encrypt(_plain(900), [crypto.recipient_of(public), crypto.recipient_of(readers[1][1])], armored=True)
    return data, _ssh_reader(private), crypto.load_identity(private)


def test_unwrap_goes_through_ageread_from_the_identitys_quick_from_th_key(readers, monkeypatch):
    monkeypatch.setattr(crypto, "QUICK_FROM", 3)
    private, public = readers[0]
    identity = crypto.load_identity(private)
    record_keys = [crypto.new_record_key() for _ in range(4)]
    readers_seen = []
    for key in record_keys:
        assert str(crypto.unwrap_record_key(crypto.wrap_record_key(key, [public]), identity)) == str(key)
        readers_seen.append(type(crypto._reader_of(identity)).__name__)
    # the first two by pyrage (a command that opens a household or two imports nothing more), then ageread
    assert readers_seen == ["NoneType", "NoneType", "SshReader", "SshReader"]
    sealed = crypto.seal(b"name: x\n", record_keys[0].to_public())  # a sealed block: pyrage, with its record key
    assert crypto.open_sealed(sealed, record_keys[0]) == b"name: x\n"
    with pytest.raises(ArchiveError, match="not this household's"):
        crypto.open_sealed(sealed, record_keys[1])
    # a block sealed to the staff keys themselves (a request's requester) opens with the identity, by ageread
    assert crypto.open_sealed(crypto.seal_to(b"requester: x\n", [public]), identity) == b"requester: x\n"


def test_a_passphrase_protected_key_gets_its_reader(tmp_path, monkeypatch):
    monkeypatch.setattr(crypto, "QUICK_FROM", 1)
    private, public = _ssh_key(tmp_path, "locked", passphrase="correct horse")
    monkeypatch.setenv("ARCHIVECTL_KEY_PASSPHRASE", "correct horse")
    identity = crypto.load_identity(private)
    record_key = crypto.new_record_key()
    blob = crypto.wrap_record_key(record_key, [public])
    assert str(crypto.unwrap_record_key(blob, identity)) == str(record_key)
    reader = crypto._reader_of(identity)
    assert isinstance(reader, ageread.SshReader)
    assert ageread.decrypt(blob, reader) == pyrage.decrypt(blob, [identity])


def test_opening_one_household_imports_no_more_than_pyrage_needs(readers, tmp_path):
    """show of one household: ageread (and cryptography's ssh and X25519 parts) stay unimported."""
    private, public = readers[0]
    blob = tmp_path / "key.age"
    blob.write_bytes(crypto.wrap_record_key(crypto.new_record_key(), [public]))
    script = (
        "import sys; from pathlib import Path; from archivectl import crypto\n"
        f"crypto.unwrap_record_key(Path({str(blob)!r}).read_bytes(), crypto.load_identity(Path({str(private)!r})))\n"
        "print(sorted(m for m in sys.modules if m.startswith(('archivectl.age', 'cryptography.hazmat.primitives'))))"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_key_bytes_reads_an_age_recipient_as_pyrage_writes_it():
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    record_key = crypto.new_record_key()
    secret = crypto.key_bytes(str(record_key))
    assert crypto.key_bytes(str(record_key.to_public())) == (
        X25519PrivateKey.from_private_bytes(secret).public_key().public_bytes_raw()
    )
    with pytest.raises(ValueError):
        crypto.key_bytes("age1" + "b" * 58)  # 'b' is not a bech32 digit


def test_a_command_lets_go_of_the_keys_it_opened_with(world, household, monkeypatch):  # P7
    """After a command, no identity or record key (nor an unlocked key file) is held for ageread."""
    crypto.forget_keys()
    monkeypatch.setattr(crypto, "QUICK_FROM", 1)
    opened, remember = [], crypto._remember

    def remembered(key: object, reader: object) -> object:
        opened.append(type(reader).__name__)
        return remember(key, reader)

    monkeypatch.setattr(crypto, "_remember", remembered)
    world.ok("but01", "show", household, "--reveal", "--reason", "a caller asked")
    assert "SshReader" in opened  # the show unwrapped its key through ageread
    assert not crypto._READERS
