"""A signing key git cannot use is refused in words, before any work, with what to run (issue 29 item 5).

Real keys (ssh-keygen, some with a passphrase), a real ssh-agent started here
(SSH_AUTH_SOCK) and killed after, real signing by git when the key is usable.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import World, assert_refused, assert_unchanged
from crashkit import keystore_files
from test_import_many import IMPORT, many_csv

PASSPHRASE = "correct horse battery staple"

pytestmark = pytest.mark.skipif(
    not (shutil.which("ssh-agent") and shutil.which("ssh-add")),
    reason="needs ssh-agent and ssh-add: apt-get install openssh-client",
)


def protected_copy(world: World, who: str) -> Path:
    """who's own key (so staff.yaml knows it), copied and given a passphrase, mode 0600."""
    folder = world.tmp / "protected"
    folder.mkdir(exist_ok=True)
    key = folder / f"{who}_ed25519"
    shutil.copy(world.people[who].key, key)
    shutil.copy(f"{world.people[who].key}.pub", f"{key}.pub")
    key.chmod(0o600)
    subprocess.run(["ssh-keygen", "-q", "-p", "-N", PASSPHRASE, "-P", "", "-f", str(key)], check=True)
    return key


def signing_with(world: World, who: str, signingkey: Path | str, agent: str | None) -> dict[str, str | None]:
    """An environment whose git signs as user.signingkey = signingkey, with this agent (None: no agent at all)."""
    config = world.tmp / f"{who}-{Path(str(signingkey)).name}.gitconfig"
    config.write_text(f"[user]\n\tsigningkey = {signingkey}\n[gpg]\n\tformat = ssh\n")
    return {"GIT_CONFIG_GLOBAL": str(config), "SSH_AUTH_SOCK": agent, "SSH_AGENT_PID": None}


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[str]:
    """A real ssh-agent on a socket of this test's own, holding nothing yet; killed after the test."""
    sock = tmp_path / "agent.sock"
    proc = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not sock.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "ssh-agent did not start"
            time.sleep(0.02)
        yield str(sock)
    finally:
        proc.kill()
        proc.wait()


def ssh_add(key: Path, sock: str) -> None:
    """Give the agent the key, typing its passphrase through SSH_ASKPASS (no terminal here)."""
    askpass = key.parent / "askpass.sh"
    askpass.write_text(f"#!/bin/sh\necho '{PASSPHRASE}'\n")
    askpass.chmod(0o700)
    env = {**os.environ, "SSH_AUTH_SOCK": sock, "SSH_ASKPASS": str(askpass), "SSH_ASKPASS_REQUIRE": "force"}
    env.pop("DISPLAY", None)
    subprocess.run(["ssh-add", "-q", str(key)], env=env, check=True, stdin=subprocess.DEVNULL, capture_output=True)


def before_of(world: World) -> tuple[dict, dict]:
    return world.snapshot(), keystore_files(world)


def assert_nothing_written(world: World, before: tuple[dict, dict]) -> None:
    assert_unchanged(world, before[0])
    assert keystore_files(world) == before[1]  # no number reserved, no key stored
    assert not (world.root / ".git/archivectl/journal").exists()


def test_a_protected_key_without_an_agent_is_refused_with_the_ssh_agent_commands(world: World):  # P12
    key = protected_copy(world, "clk01")
    before = before_of(world)
    result = world.try_add(env=signing_with(world, "clk01", key, None))
    assert_refused(result, 1, f"signing key {key} has a passphrase", 'eval "$(ssh-agent)"', f"ssh-add {key}")
    assert "incorrect passphrase" not in result.stderr
    assert_nothing_written(world, before)


def test_a_protected_key_the_agent_does_not_hold_is_refused_with_ssh_add(world: World, agent: str):  # P12
    key = protected_copy(world, "clk01")
    before = before_of(world)
    result = world.try_add(env=signing_with(world, "clk01", key, agent))
    assert_refused(result, 1, "the ssh-agent does not hold it", f"run `ssh-add {key}`", "nothing was written")
    assert_nothing_written(world, before)


def test_once_the_agent_holds_the_protected_key_the_write_is_signed_with_it(world: World, agent: str):  # P10 P12
    key = protected_copy(world, "clk01")
    ssh_add(key, agent)
    env = signing_with(world, "clk01", key, agent)
    result = world.try_add(env=env)
    assert result.exit_code == 0, result
    assert world.signature_status() == "G"
    assert world.trailers()["Acted-by"] == "clk01"


def test_a_public_key_as_signing_key_without_an_agent_names_the_private_key_to_add(world: World):  # P12
    public = world.tmp / "only" / "clk01_ed25519.pub"
    public.parent.mkdir()
    public.write_text(world.people["clk01"].pub + "\n")  # its private half is not beside it
    before = before_of(world)
    result = world.try_add(env=signing_with(world, "clk01", public, None))
    assert_refused(result, 1, "user.signingkey is a public key", f"ssh-add {public.with_suffix('')}")
    assert_nothing_written(world, before)


def test_a_public_key_the_agent_holds_the_private_half_of_signs(world: World, agent: str):  # P12
    ssh_add(world.people["clk01"].key, agent)
    public = world.tmp / "only" / "clk01_ed25519.pub"
    public.parent.mkdir()
    public.write_text(world.people["clk01"].pub + "\n")
    result = world.try_add(env=signing_with(world, "clk01", public, agent))
    assert result.exit_code == 0, result
    assert world.signature_status() == "G"


def test_an_import_that_could_not_sign_is_refused_before_it_checks_or_seals_a_row(world: World):  # P3 P12
    """It used to seal every row, take every number and store every key, and only then fail at its commit."""
    key = protected_copy(world, "clk01")
    csv = many_csv(world)
    before = before_of(world)
    result = world.cli("clk01", IMPORT[0], str(csv), *IMPORT[1:], env=signing_with(world, "clk01", key, None))
    assert_refused(result, 1, "has a passphrase", f"ssh-add {key}")
    assert_nothing_written(world, before)


def test_a_key_others_may_read_is_still_refused_first(world: World):  # P12
    key = protected_copy(world, "clk01")
    key.chmod(0o644)
    before = before_of(world)
    result = world.try_add(env=signing_with(world, "clk01", key, None))
    assert_refused(result, 1, "readable by others", f"chmod 600 {key}")
    assert_nothing_written(world, before)
