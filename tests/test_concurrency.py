"""The write lock and recovery from a write killed halfway."""

from __future__ import annotations

import fcntl
import os

from conftest import World, assert_refused, assert_unchanged

from archivectl.archive import Archive, Transaction, actor_of


def test_a_second_writer_waits_then_fails_clearly(world: World):
    lock = world.root / ".git/archivectl.lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
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
    """Simulate a crash: a transaction writes files and a key, then dies without cleanup."""
    before = world.snapshot()
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(world.people["clk01"].gitconfig))
    archive = Archive(world.root)
    tx = Transaction(archive, actor_of(archive))
    tx.__enter__()
    tx.write_text("households/B03/1203/HO-2099-00001/record.yaml", "half: written\n")
    tx.write_key("HO-2099-00001", b"orphan key")
    tx._stack.close()  # the lock dies with the process; the journal stays
    assert (world.keys / "HO-2099-00001.age").exists()
    journal = (world.root / ".git/archivectl/journal/journal.jsonl").read_text()
    assert '"key": "HO-2099-00001"' in journal and '"backup": null' in journal

    world.add()  # the next write recovers first
    assert not (world.keys / "HO-2099-00001.age").exists()
    assert not (world.root / "households/B03/1203/HO-2099-00001").exists()
    assert not (world.root / ".git/archivectl/journal").exists()
    assert sorted(p.name for p in world.keys.iterdir()) == [f"{world.git('ls-files', 'households').split('/')[3]}.age"]
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
    assert sorted(p.name.removesuffix(".age") for p in world.keys.iterdir()) == numbers
