"""The in-process signature checker gives git's own verdicts, commit for commit.

Every repository here is real: real ed25519 keys from ssh-keygen, commits
signed by git, tampered and grafted objects written with git hash-object. Each
test asks git (`%G? %GF %GS` against an allowed-signers file) and the checker
about the same commits and wants the same (status, fingerprint, principal).
"""

from __future__ import annotations

import base64
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from archivectl import sshsig
from archivectl.errors import ArchiveError

T0 = 1700000000  # 2023-11-14T22:13:20Z, the committer time of most commits here
ISOLATED = {"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1", "LC_ALL": "C"}


def run(*cmd: str, input: bytes | None = None, env: dict[str, str] | None = None) -> bytes:
    full_env = {**os.environ, **ISOLATED, **(env or {})}  # os.environ now: a test may have set TZ
    return subprocess.run(cmd, input=input, capture_output=True, check=True, env=full_env).stdout


class Key:
    def __init__(self, path: Path, key_type: str = "ed25519"):
        run("ssh-keygen", "-q", "-t", key_type, "-N", "", "-C", f"{path.name}@test", "-f", str(path))
        self.path = path
        self.public = " ".join((path.parent / f"{path.name}.pub").read_text().split()[:2])

    def sign(self, data: bytes, namespace: str = "git") -> bytes:
        return run("ssh-keygen", "-q", "-Y", "sign", "-f", str(self.path), "-n", namespace, input=data)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Key]:
    base = tmp_path_factory.mktemp("keys")
    return {name: Key(base / name) for name in ("mgr01", "but01", "clk01", "outsider")}


class Repo:
    def __init__(self, path: Path, object_format: str = "sha1"):
        run("git", "init", "-q", "-b", "main", f"--object-format={object_format}", str(path))
        self.path = path

    def git(self, *args: str, input: bytes | None = None, env: dict[str, str] | None = None) -> bytes:
        return run("git", "-C", str(self.path), *args, input=input, env=env)

    def commit(
        self, key: Key | None, message: bytes | str = "change", when: int = T0, file: str | None = "file.txt"
    ) -> str:
        """A real `git commit` (signed with -S when key is given) at committer time when, changing file if given."""
        if isinstance(message, str):
            message = message.encode()
        if file is not None:
            (self.path / file).write_text(f"{when} {message!r} {os.urandom(4).hex()}\n")
            self.git("add", file)
        dates = {"GIT_AUTHOR_DATE": f"{when} +0000", "GIT_COMMITTER_DATE": f"{when} +0000"}
        options = (["-S"] if key else []) + (["--allow-empty"] if file is None else [])
        self.git(*self.config(key), "commit", "-q", *options, "-F", "-", input=message, env=dates)
        return self.head()

    def config(self, key: Key | None) -> list[str]:
        """git -c options for a commit by a member of staff, signing with key if given."""
        who = ["-c", "user.name=Staff", "-c", "user.email=staff@example.invalid"]
        return who + (["-c", "gpg.format=ssh", "-c", f"user.signingkey={key.path}"] if key else [])

    def head(self) -> str:
        return self.git("rev-parse", "HEAD").decode().strip()

    def raw(self, commit: str) -> bytes:
        return self.git("cat-file", "commit", commit)

    def write(self, raw_commit: bytes) -> str:
        """Store a hand-made commit object (not on any branch) and return its id."""
        commit = self.git("hash-object", "-t", "commit", "-w", "--literally", "--stdin", input=raw_commit)
        return commit.decode().strip()

    def graft(self, payload: bytes, signature: bytes) -> str:
        """A commit object: payload with signature put in as its gpgsig header, the way git does."""
        headers, _, message = payload.partition(b"\n\n")
        lines = signature.rstrip(b"\n").split(b"\n")
        return self.write(headers + b"\ngpgsig " + b"\n ".join(lines) + b"\n\n" + message)

    def unsigned_payload(self, message: bytes = b"grafted\n", when: int = T0) -> bytes:
        tree = self.git("mktree", input=b"").decode().strip()
        who = f"Staff <staff@example.invalid> {when} +0000".encode()
        return b"tree " + tree.encode() + b"\nauthor " + who + b"\ncommitter " + who + b"\n\n" + message


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return Repo(tmp_path / "repo")


def allowed_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "allowed_signers"
    path.write_text(text)
    return path


def git_verdicts(repo: Repo, commits: list[str], signers: Path) -> dict[str, tuple[str, str, str]]:
    """What git says: commit -> (%G?, %GF, %GS)."""
    fmt = "%H%x1f%G?%x1f%GF%x1f%GS%x1e"
    out = repo.git("-c", f"gpg.ssh.allowedSignersFile={signers}", "log", "--no-walk", f"--format={fmt}", *commits)
    found = {}
    for record in out.decode("utf-8", "replace").split("\x1e"):
        if record.strip():
            commit, status, fingerprint, principal = record.strip("\n").split("\x1f")
            found[commit] = (status, fingerprint, principal)
    return found


def our_verdicts(repo: Repo, commits: list[str], signers: Path) -> dict[str, tuple[str, str, str]]:
    """What the checker says, in git's terms: empty where git prints nothing."""
    allowed = sshsig.parse_allowed_signers(signers.read_text())
    verdicts = sshsig.check_commits(repo.path, commits, allowed)
    return {c: (v.status, v.fingerprint or "", v.principal or "") for c, v in verdicts.items()}


def assert_same_as_git(
    repo: Repo, commits: dict[str, str], signers: Path, expected: dict[str, str]
) -> dict[str, tuple[str, str, str]]:
    """Git and the checker agree on every commit, and git says what the test expects (so the case is real)."""
    ids = list(commits.values())
    ours = our_verdicts(repo, ids, signers)
    theirs = git_verdicts(repo, ids, signers)
    for name, commit in commits.items():
        assert ours[commit] == theirs[commit], f"{name}: checker {ours[commit]} != git {theirs[commit]}"
        assert theirs[commit][0] == expected[name], f"{name}: git says {theirs[commit]}"
    return theirs


def line(principal: str, key: Key, options: str = 'namespaces="git"') -> str:
    return f"{principal} {options} {key.public}\n"


def stamp(moment: int) -> str:
    return time.strftime("%Y%m%d%H%M%SZ", time.gmtime(moment))


def test_every_kind_of_commit_gets_gits_verdict(repo: Repo, keys: dict[str, Key], tmp_path: Path) -> None:
    mgr, but, clk, outsider = keys["mgr01"], keys["but01"], keys["clk01"], keys["outsider"]
    commits = {"good": repo.commit(mgr, "Add household B03-1203\n")}
    commits["unsigned"] = repo.commit(None, "hand edit\n")
    commits["foreign"] = repo.commit(outsider, "not staff\n")
    commits["departed"] = repo.commit(but, "after leaving\n")
    commits["clerk"] = repo.commit(clk, "still on staff\n")
    commits["trailers"] = repo.commit(
        mgr,
        "Edit household B03-1203\n\nA longer body\nover two lines.\n\nReason: owner moved\nApproved-by: gm01\n",
    )
    commits["latin-1"] = repo.commit(mgr, b"caf\xe9 cr\xe8me \xff\n\nbody \x01 bytes\n")
    repo.git("checkout", "-q", "-b", "side", commits["good"])
    repo.commit(clk, "side work\n", file="side.txt")
    repo.git("checkout", "-q", "main")
    merge_date = {"GIT_COMMITTER_DATE": f"{T0} +0000"}
    repo.git(*repo.config(mgr), "merge", "-q", "-S", "--no-ff", "-m", "Merge side", "side", env=merge_date)
    commits["merge"] = repo.head()
    assert len(repo.git("log", "-1", "--format=%P").split()) == 2

    good = repo.raw(commits["good"])
    commits["tampered message"] = repo.write(good.replace(b"B03-1203", b"B03-1204"))
    other_tree = repo.git("rev-parse", f"{commits['unsigned']}^{{tree}}").strip()
    commits["tampered tree"] = repo.write(good.replace(good.split(b"\n", 1)[0], b"tree " + other_tree, 1))
    payload = repo.unsigned_payload()
    commits["namespace file"] = repo.graft(payload, mgr.sign(payload, namespace="file"))
    commits["foreign namespace file"] = repo.graft(payload, outsider.sign(payload, namespace="file"))
    commits["foreign tampered"] = repo.write(repo.raw(commits["foreign"]).replace(b"not staff", b"not Staff"))

    signers = allowed_file(
        tmp_path,
        line("mgr01", mgr)
        + line("but01", but, f'namespaces="git",valid-before="{stamp(T0 - 3600)}"')
        + line("clk01", clk, f'namespaces="git",valid-before="{stamp(T0 + 3600)}"'),
    )
    expected = {
        "good": "G",
        "unsigned": "N",
        "foreign": "U",  # a good signature by a key not in the file: U, with a fingerprint
        "departed": "U",  # valid-before passed: the same U as an unknown key, not B
        "clerk": "G",
        "trailers": "G",
        "latin-1": "G",
        "merge": "G",
        "tampered message": "B",
        "tampered tree": "B",
        "namespace file": "B",
        "foreign namespace file": "B",
        "foreign tampered": "B",
    }
    assert_same_as_git(repo, commits, signers, expected)


def test_key_validity_is_checked_at_the_committer_time_to_the_second(
    repo: Repo, keys: dict[str, Key], tmp_path: Path
) -> None:
    commit = {"commit": repo.commit(keys["mgr01"], when=T0)}
    for options, status in [
        (f'valid-before="{stamp(T0)}"', "G"),  # ssh-keygen: expired only when verify-time > valid-before
        (f'valid-before="{stamp(T0 - 1)}"', "U"),
        (f'valid-after="{stamp(T0)}"', "G"),
        (f'valid-after="{stamp(T0 + 1)}"', "U"),
        (f'valid-after="{stamp(T0 - 60)}",valid-before="{stamp(T0 + 60)}"', "G"),
    ]:
        signers = allowed_file(tmp_path, line("mgr01", keys["mgr01"], options))
        assert_same_as_git(repo, commit, signers, {"commit": status})


@pytest.fixture
def berlin(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process and git both in Europe/Berlin, where summer time applies."""
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_in_summer_git_checks_the_key_an_hour_after_the_commit(
    berlin: None, repo: Repo, keys: dict[str, Key], tmp_path: Path
) -> None:
    # git hands ssh-keygen the committer time as local time; ssh-keygen reads it
    # back with daylight saving time off, so in summer it is one hour later.
    summer = 1719835200  # 2024-07-01T12:00:00Z, 14:00 in Berlin
    commit = {"summer": repo.commit(keys["mgr01"], when=summer)}
    for valid_before, status in [(summer + 1800, "U"), (summer + 3600, "G")]:
        signers = allowed_file(tmp_path, line("mgr01", keys["mgr01"], f'valid-before="{stamp(valid_before)}"'))
        assert_same_as_git(repo, commit, signers, {"summer": status})


def test_principal_comes_from_the_first_line_valid_for_the_key(
    repo: Repo, keys: dict[str, Key], tmp_path: Path
) -> None:
    mgr = keys["mgr01"]
    commit = {"commit": repo.commit(mgr)}
    for text, status, principal in [
        (line("old-id", mgr, 'valid-before="20200101Z"') + line("mgr01", mgr), "G", "mgr01"),
        (line("first,second", mgr), "G", "first"),
        (line("m*", mgr), "G", "m*"),
        # the first valid line wins even if its namespaces exclude git: then nothing verifies
        (line("files-only", mgr, 'namespaces="file"') + line("mgr01", mgr), "B", ""),
        (line(",mgr01", mgr), "U", ""),  # ssh-keygen lists no principal for a leading comma
        (line("mgr01", mgr, 'valid-before="2020"'), "U", ""),  # a time ssh-keygen cannot read: line ignored
    ]:
        verdicts = assert_same_as_git(repo, commit, allowed_file(tmp_path, text), {"commit": status})
        assert verdicts[commit["commit"]][2] == principal


def test_signatures_openssh_accepts_though_they_were_edited(repo: Repo, keys: dict[str, Key], tmp_path: Path) -> None:
    mgr = keys["mgr01"]
    payload = repo.unsigned_payload(b"edited signatures\n")
    blob = base64.b64decode(b"".join(mgr.sign(payload).split(b"\n")[1:-2]))
    key_blob, namespace, reserved, hash_name, wrapped = _fields(blob)
    raw = wrapped[-64:]
    order = 2**252 + 27742317777372353535851937790883648493
    s_plus_order = raw[:32] + (int.from_bytes(raw[32:], "little") + order).to_bytes(32, "little")

    def variant(**changes: bytes) -> str:
        parts = {"key": key_blob, "namespace": namespace, "reserved": reserved, "hash": hash_name, "sig": wrapped}
        parts.update(changes)
        body = b"".join(_string(parts[name]) for name in ("key", "namespace", "reserved", "hash", "sig"))
        return repo.graft(payload, _armor(b"SSHSIG" + b"\0\0\0\1" + body))

    commits = {
        "as signed": variant(),
        # OpenSSH's ref10 Ed25519 reduces S modulo L; OpenSSL alone would refuse it
        "S + L": variant(sig=_string(b"ssh-ed25519") + _string(s_plus_order)),
        # the public key is not covered by the signature; OpenSSH accepts its short type name
        "key type ED25519": variant(key=_string(b"ED25519") + key_blob[15:]),
        "namespace git NUL": variant(namespace=b"git\0"),
        "reserved field used": variant(reserved=b"anything"),
        "S top bit set": variant(sig=_string(b"ssh-ed25519") + _string(raw[:63] + bytes([raw[63] | 0x80]))),
        "63-byte signature": variant(sig=_string(b"ssh-ed25519") + _string(raw[:63])),
    }
    signers = allowed_file(tmp_path, line("mgr01", mgr))
    expected = dict.fromkeys(commits, "G") | {"S top bit set": "B", "63-byte signature": "B"}
    assert_same_as_git(repo, commits, signers, expected)


def test_other_gpgsig_headers_are_not_part_of_the_payload(repo: Repo, keys: dict[str, Key], tmp_path: Path) -> None:
    payload = repo.unsigned_payload(b"two signatures\n")
    signed = repo.raw(repo.graft(payload, keys["mgr01"].sign(payload)))
    headers, _, message = signed.partition(b"\n\n")
    commits = {
        "gpgsig-sha256 too": repo.write(headers + b"\ngpgsig-sha256 xyz\n more\n\n" + message),
        "gpgsigfoo": repo.write(headers + b"\ngpgsigfoo bar\n\n" + message),
        "other header": repo.write(headers + b"\nx-extra bar\n\n" + message),
    }
    signers = allowed_file(tmp_path, line("mgr01", keys["mgr01"]))
    assert_same_as_git(repo, commits, signers, {"gpgsig-sha256 too": "G", "gpgsigfoo": "G", "other header": "B"})


def test_committer_line_without_a_time_is_checked_at_the_current_time(
    repo: Repo, keys: dict[str, Key], tmp_path: Path
) -> None:
    mgr = keys["mgr01"]
    dated = f"committer Staff <staff@example.invalid> {T0} +0000".encode()

    def signed(committer: bytes) -> str:
        payload = repo.unsigned_payload().replace(dated, committer)
        return repo.graft(payload, mgr.sign(payload))

    commits = {
        "no time": signed(b"committer Staff <staff@example.invalid>"),
        "no zone": signed(f"committer Staff <staff@example.invalid> {T0}".encode()),
        "no committer": signed(b"x-nobody here"),
        "no email": signed(f"committer Staff {T0} +0000".encode()),
        "dated": signed(dated),
    }
    # valid only from 2025: the dated commit (2023) is outside, the undated ones are checked "now"
    signers = allowed_file(tmp_path, line("mgr01", mgr, 'valid-after="20250101Z"'))
    expected = {"no time": "G", "no zone": "G", "no committer": "N", "no email": "N", "dated": "U"}
    assert_same_as_git(repo, commits, signers, expected)


def test_sha256_repository(tmp_path: Path, keys: dict[str, Key]) -> None:
    repo = Repo(tmp_path / "repo256", object_format="sha256")
    commits = {
        "good": repo.commit(keys["mgr01"]),
        "foreign": repo.commit(keys["outsider"]),
        "unsigned": repo.commit(None),
    }
    assert b"gpgsig-sha256 " in repo.raw(commits["good"])
    signers = allowed_file(tmp_path, line("mgr01", keys["mgr01"]))
    assert_same_as_git(repo, commits, signers, {"good": "G", "foreign": "U", "unsigned": "N"})


def test_a_long_mixed_history(repo: Repo, keys: dict[str, Key], tmp_path: Path) -> None:
    mgr, but, clk, outsider = keys["mgr01"], keys["but01"], keys["clk01"], keys["outsider"]
    signer_of = [mgr, but, clk, None, mgr, outsider, but, clk]
    commits = {}
    for i in range(60):
        message = f"Change {i}\n\nReason: step {i}\nApproved-by: gm01\n"
        commits[f"#{i}"] = repo.commit(signer_of[i % len(signer_of)], message, T0 + 3600 * i, file=None)
    left = T0 + 3600 * 30  # but01 departs at commit #30: their later commits are U
    commits["#10 tampered"] = repo.write(repo.raw(commits["#10"]).replace(b"step 10", b"step 11"))
    signers = allowed_file(
        tmp_path,
        "# staff\n"
        + line("mgr01", mgr)
        + line("but01", but, f'namespaces="git",valid-before="{stamp(left)}"')
        + line("clk01", clk),
    )
    ids = list(commits.values())
    ours = our_verdicts(repo, ids, signers)
    assert ours == git_verdicts(repo, ids, signers)
    statuses = {name: ours[commit][0] for name, commit in commits.items()}
    assert statuses["#1"] == "G" and statuses["#49"] == "U" and statuses["#3"] == "N"
    assert statuses["#5"] == "U" and statuses["#10 tampered"] == "B"
    assert {"G", "U", "N", "B"} == set(statuses.values())


def test_split_gives_back_the_object_git_signed(repo: Repo, keys: dict[str, Key]) -> None:
    signed = repo.raw(repo.commit(keys["mgr01"], "Subject\n\nbody\n"))
    payload, signature = sshsig.split_signed_commit(signed)
    assert signature is not None and signature.startswith(b"-----BEGIN SSH SIGNATURE-----\n")
    headers, _, message = payload.partition(b"\n\n")
    armored = b"\n ".join(signature.rstrip(b"\n").split(b"\n"))
    assert headers + b"\ngpgsig " + armored + b"\n\n" + message == signed
    unsigned = repo.raw(repo.commit(None))
    assert sshsig.split_signed_commit(unsigned) == (unsigned, None)


def test_what_the_checker_does_not_reproduce_it_says_so(repo: Repo, keys: dict[str, Key]) -> None:
    payload = repo.unsigned_payload()
    pgp = b"-----BEGIN PGP SIGNATURE-----\n\nabc\n-----END PGP SIGNATURE-----\n"
    assert sshsig.check_commit_signature(repo.raw(repo.graft(payload, pgp)), []).status == "E"
    ecdsa = Key(repo.path.parent / "ecdsa", "ecdsa")
    verdict = sshsig.check_commit_signature(repo.raw(repo.graft(payload, ecdsa.sign(payload))), [])
    assert verdict == sshsig.SignatureVerdict("E")


def test_allowed_signers_given_as_values(repo: Repo, keys: dict[str, Key]) -> None:
    mgr = keys["mgr01"]
    raw = repo.raw(repo.commit(mgr, when=T0))
    fingerprint = run("ssh-keygen", "-lf", str(mgr.path)).split()[1].decode()

    def verdict(**times: int) -> sshsig.SignatureVerdict:
        allowed = [sshsig.AllowedSigner("mgr01", mgr.public + " a comment", namespaces="git", **times)]
        return sshsig.check_commit_signature(raw, allowed)

    assert verdict() == sshsig.SignatureVerdict("G", fingerprint, "mgr01", mgr.public)
    assert verdict(valid_before=T0) == verdict()
    assert verdict(valid_before=T0 - 1) == sshsig.SignatureVerdict("U", fingerprint, None, mgr.public)
    assert verdict(valid_after=T0 + 1).status == "U"
    assert sshsig.parse_allowed_signers(line("mgr01", mgr, f'valid-before="{stamp(T0)}"')) == [
        sshsig.AllowedSigner("mgr01", mgr.public, None, None, T0)
    ]


def test_a_commit_that_is_not_there_is_an_error(repo: Repo, keys: dict[str, Key]) -> None:
    present = repo.commit(keys["mgr01"])
    with pytest.raises(ArchiveError, match="not in the repository"):
        sshsig.check_commits(repo.path, [present, "0" * 40], [])


def _fields(blob: bytes) -> list[bytes]:
    """The five strings after SSHSIG's magic and version."""
    fields, pos = [], 10
    while pos < len(blob):
        length = int.from_bytes(blob[pos : pos + 4], "big")
        fields.append(blob[pos + 4 : pos + 4 + length])
        pos += 4 + length
    return fields


def _string(value: bytes) -> bytes:
    return len(value).to_bytes(4, "big") + value


def _armor(blob: bytes) -> bytes:
    text = base64.b64encode(blob)
    lines = [text[i : i + 70] for i in range(0, len(text), 70)]
    return b"-----BEGIN SSH SIGNATURE-----\n" + b"\n".join(lines) + b"\n-----END SSH SIGNATURE-----\n"


def test_staff_yaml_allowed_signers_get_gits_verdicts(repo: Repo, keys: dict[str, Key], tmp_path: Path) -> None:
    """verify checks each commit against staff.allowed_signers() of the staff.yaml it is judged by: same as git."""
    from archivectl.staff import Staff, StaffMember, allowed_signers, deactivate

    mgr, but, outsider = keys["mgr01"], keys["but01"], keys["outsider"]
    left = T0 + 3600  # but01 departs an hour after T0
    staff = Staff(
        [
            StaffMember("mgr01", "Manager", "manager", mgr.public),
            deactivate(StaffMember("but01", "Butler", "butler", but.public, ("B03",)), time.strftime(
                "%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(left)
            )),
        ]
    )  # fmt: skip
    commits = {
        "manager": repo.commit(mgr, "edit\n", T0),
        "butler while on staff": repo.commit(but, "reveal\n", left - 60),
        "butler after leaving": repo.commit(but, "reveal\n", left + 60),
        "unsigned": repo.commit(None, "hand edit\n", left + 120),
        "foreign key": repo.commit(outsider, "not staff\n", left + 180),
    }
    commits["tampered"] = repo.write(repo.raw(commits["manager"]).replace(b"edit", b"edlt"))
    signers = allowed_file(tmp_path, allowed_signers(staff))
    expected = {
        "manager": "G",
        "butler while on staff": "G",
        "butler after leaving": "U",  # the key's validity window from staff.yaml has closed
        "unsigned": "N",
        "foreign key": "U",
        "tampered": "B",
    }
    assert_same_as_git(repo, commits, signers, expected)
