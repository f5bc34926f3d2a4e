"""The write lock and recovery from a write killed halfway."""

from __future__ import annotations

import fcntl
import os

import pyrage
from conftest import World, assert_refused, assert_unchanged

from archivectl.archive import Archive, Transaction
from archivectl.identity import actor_of
from archivectl.keystore import KeyAddress


def test_a_second_writer_waits_then_fails_clearly(world: World):
    lock = world.root / ".git/archivectl.lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.ftruncate(fd, 0)  # as archivectl's own lock does: the file may hold an earlier writer's pid (init's)
    os.pwrite(fd, b"4242", 0)
    try:
        before = world.snapshot()
        result = world.try_add(env={"ARCHIVECTL_LOCK_WAIT": "0.3"})
        assert_refused(result, 1, "another archivectl command (pid 4242) is writing")
        assert_unchanged(world, before)
    finally:
        os.close(fd)
    world.add()  # released: the next write goes through


def test_a_write_killed_before_its_commit_is_undone_by_the_next_command(world: World, monkeypatch):
    """Simulate a crash: a transaction reserves a number, writes files and a key, then dies without cleanup."""
    before = world.snapshot()
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(world.people["clk01"].gitconfig))
    archive = Archive(world.root)
    tx = Transaction(archive, actor_of(archive))
    tx.__enter__()
    assert tx.reserve_numbers("HO-2099", 1, 1) == ["HO-2099-00001"]
    tx.write_text("households/B03/1203/HO-2099-00001/record.yaml", "half: written\n")
    address = KeyAddress("HO-2099-00001", str(pyrage.x25519.Identity.generate().to_public()))
    tx.put_key(address, b"orphan key")
    tx.abandon()  # the lock dies with the process; the journal stays
    assert (world.keys / address.name).read_bytes() == b"orphan key"
    assert (world.keys / "numbers/HO-2099-00001").exists()
    journal = (world.root / ".git/archivectl/journal/journal.jsonl").read_text()
    assert f'"key": "{address.name}"' in journal and '"numbers": ["HO-2099-00001"]' in journal

    number = world.add()  # the next write recovers first
    assert not (world.keys / address.name).exists()
    assert not (world.keys / "numbers/HO-2099-00001").exists()
    assert not (world.root / "households/B03/1203/HO-2099-00001").exists()
    assert not (world.root / ".git/archivectl/journal").exists()
    # the keystore holds what it held before, plus the one household that did commit: its key and number
    assert world.key_files() == [world.key_file(number)]
    assert sorted(p.name for p in (world.keys / "numbers").iterdir()) == [number]
    assert sorted(p.name for p in world.keys.iterdir()) == ["keys", "numbers"]
    assert world.git("ls-files", "households").split("/")[3] == number
    assert world.git("rev-list", "--count", "HEAD").strip() == "2"
    assert before["head"] == world.git("rev-parse", "HEAD~1").strip()


def test_concurrent_adds_each_commit_once_with_unique_numbers(world: World):  # P3
    import subprocess

    from conftest import process_env

    env = process_env(world.people["clk01"])
    procs = [
        subprocess.Popen(
            world.add_command(f"batch {i}"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i in range(4)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], outputs
    numbers = sorted(out.strip() for out, _ in outputs)
    assert len(set(numbers)) == 4
    assert world.git("rev-list", "--count", "HEAD").strip() == "5"
    assert world.git("status", "--porcelain") == ""
    # one key per household, at the address its record names, and exactly the numbers they use reserved
    assert world.key_files() == sorted(world.key_file(n) for n in numbers)
    assert sorted(p.name for p in (world.keys / "numbers").iterdir()) == numbers
