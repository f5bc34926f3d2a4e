"""The README's walk-through, run word for word as a newcomer would: a fresh HOME, from a checkout."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def walk_through() -> str:
    """The shell block of README's 'Five minutes for a real office'."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Five minutes") :]
    return re.search(r"```sh\n(.*?)```", section, re.S).group(1)


def test_the_readme_walk_through_runs_in_a_fresh_home_and_writes_nothing_into_the_checkout(tmp_path):
    checkout = tmp_path / "checkout"  # stands for this repository, with the .venv the README makes
    venv_bin = checkout / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "archivectl").write_text(f'#!/bin/sh\nexec {sys.executable} -m archivectl "$@"\n')
    (venv_bin / "archivectl").chmod(0o755)
    home, scratch = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    scratch.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARCHIVECTL_", "GIT_"))}
    env.update({"HOME": str(home), "TMPDIR": str(scratch), "GIT_CONFIG_NOSYSTEM": "1"})
    result = subprocess.run(
        ["bash", "-e", "-c", walk_through()], cwd=checkout, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "awaiting approval by mgr01" in result.stdout
    assert re.search(r"[0-9]+ commits verified", result.stdout)
    assert "* @li @wang" in result.stdout  # codeowners works with the README's own staff.yaml
    assert 'Good "git" signature for mgr01' in result.stdout + result.stderr
    assert sorted(p.name for p in checkout.iterdir()) == [".venv"]  # nothing written into the checkout
    assert (home / ".ssh" / "archivectl_ed25519").exists()
