"""A long range's signatures prepared a batch ahead by a worker process: the same verdicts, or the judge's own.

Whole-history verify of 100,000 commits must fit in a minute on two cores (issue 30): the
signature half of each commit's check runs in a forked worker (archivectl/judge/signatures.py).
These tests make batches of two commits so that a short history takes that path, and hold
that every finding is the one the judge reaches on its own (P10, P12).
"""

from __future__ import annotations

import json
import os
import subprocess
import threading

import pytest
from conftest import counting_forks
from test_verify import Clone, clone, record_path  # noqa: F401  (the fixture)

from archivectl import judge, sshsig
from archivectl.judge import history


def tampered_signature(c: Clone) -> None:
    """A copy of HEAD's commit with one character of its SSH signature changed, made the branch's tip."""
    raw = subprocess.run(["git", "-C", str(c.path), "cat-file", "commit", "HEAD"], capture_output=True, check=True)
    lines = raw.stdout.split(b"\n")
    end = next(i for i, line in enumerate(lines) if line.startswith(b" -----END SSH SIGNATURE"))
    at = end - 2  # a whole line of the signature's last bytes: the blob still reads, the signature does not verify
    body = lines[at]
    lines[at] = body[:20] + (b"A" if body[20:21] != b"A" else b"B") + body[21:]
    made = (
        subprocess.run(
            ["git", "-C", str(c.path), "hash-object", "-t", "commit", "-w", "--stdin"],
            input=b"\n".join(lines),
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .strip()
    )
    c.git("update-ref", "refs/heads/change", made)


def history_of_mixed_signatures(c: Clone) -> None:
    """Seven commits on the branch: staff-signed, unsigned, signed by an outsider, one with a broken signature."""
    (c.path / "registers").mkdir(exist_ok=True)
    for n, (who, sign) in enumerate(
        [("but01", True), ("mgr01", True), (None, False), ("outsider", True), ("gm01", True), ("but01", True)]
    ):
        (c.path / "registers/numbers.yaml").write_text(f"HO-2026: {90 + n}\n")
        c.git("add", "-A")
        c.commit_by_hand(who, f"hand change {n}\n\nReason: x\nApproved-by: mgr01\nActed-by: {who or 'but01'}", sign)
    tampered_signature(c)
    (c.path / "registers/numbers.yaml").write_text("HO-2026: 99\n")
    c.git("add", "-A")
    c.commit_by_hand("mgr01", "after the broken one\n\nReason: x\nApproved-by: gm01\nActed-by: mgr01")


def whole_verify(c: Clone) -> dict:
    result = c.world.cli("aud01", "--archive", str(c.path), "verify", "--format", "json")
    assert result.exit_code == 1, result
    return json.loads(result.stdout)


def test_a_long_history_is_judged_the_same_with_its_signatures_prepared_ahead(  # P10, P12
    clone: Clone,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
):
    history_of_mixed_signatures(clone)
    alone = whole_verify(clone)  # one batch: no worker
    forks = counting_forks(monkeypatch)
    monkeypatch.setattr(judge, "_CHUNK", 2)
    ahead = whole_verify(clone)
    assert forks, "a history of several batches is judged with a worker"
    assert ahead == alone
    messages = [f["message"] for f in ahead["findings"] if f["rule"] == "signature"]
    assert "commit is not signed" in messages
    assert any("does not list" in m for m in messages)  # the outsider
    assert "signature does not verify (git says B)" in messages
    assert ahead["commits"] > 2 * 2  # more batches than one, the worker asked for every one after the first


def test_when_the_worker_fails_the_judge_checks_the_signatures_itself(  # P10, P12
    clone: Clone,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
):
    history_of_mixed_signatures(clone)
    alone = whole_verify(clone)
    parent = os.getpid()
    real = sshsig.prepare

    def prepare(raw: bytes, object_format: str = "sha1") -> sshsig.Prepared:
        if os.getpid() != parent:
            os._exit(3)  # the worker dies in the middle of its first request
        return real(raw, object_format)

    forks = counting_forks(monkeypatch)
    monkeypatch.setattr(sshsig, "prepare", prepare)
    monkeypatch.setattr(judge, "_CHUNK", 2)
    assert whole_verify(clone) == alone
    assert len(forks) == 1, "a failed worker is not started again"


def test_a_process_with_other_threads_judges_alone(clone: Clone, monkeypatch: pytest.MonkeyPatch):  # noqa: F811
    """The desk serves in threads: a fork there could inherit a lock held by another thread, forever."""
    history_of_mixed_signatures(clone)
    alone = whole_verify(clone)
    forks = counting_forks(monkeypatch)
    monkeypatch.setattr(judge, "_CHUNK", 2)
    done = threading.Event()
    other = threading.Thread(target=done.wait)
    other.start()
    try:
        assert whole_verify(clone) == alone
    finally:
        done.set()
        other.join()
    assert forks == []


def copies_of_a_record(c: Clone, count: int, broken: int) -> str:
    """One hand commit adding count copies of the clone's record under new numbers; copy `broken` has a floor
    the schema refuses. Returns the broken copy's path."""
    original = record_path(c)
    text = original.read_text()
    number = original.parent.name
    paths = []
    for n in range(count):
        other = number[:-5] + f"{90000 + n:05d}"
        path = original.parent.parent / other / "record.yaml"
        path.parent.mkdir()
        copy = text.replace(number, other)
        if n == broken:
            assert "\nfloor: 12\n" in copy
            copy = copy.replace("\nfloor: 12\n", "\nfloor: twelve\n")
        path.write_text(copy)
        paths.append(str(path.relative_to(c.path)))
    c.git("add", "-A")
    c.commit_by_hand("clk01", "copies\n\nReason: x\nApproved-by: mgr01\nActed-by: clk01")
    return paths[broken]


def test_a_large_commits_records_are_checked_half_in_a_second_process_with_the_same_findings(  # P10
    clone: Clone,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
):
    broken = copies_of_a_record(clone, 6, broken=5)  # the last: in the second process's half
    alone = whole_verify(clone)
    forks = counting_forks(monkeypatch)
    monkeypatch.setattr(history, "_SHARED_FROM", 2)
    shared = whole_verify(clone)
    assert forks, "a commit of many records is checked with a second process"
    assert shared == alone
    assert any(f["rule"] == "record" and f["message"].startswith(f"{broken}: ") for f in shared["findings"])
