"""The installed command as a user runs it: start-up, one-line usage errors, the demo."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest


def run(*args: str, cwd=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    return subprocess.run(
        [sys.executable, "-m", "archivectl", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300
    )


def test_help_lists_the_commands():
    result = run("--help")
    assert result.returncode == 0
    for command in ("init", "add", "edit", "show", "list", "history", "validate", "staff", "demo"):
        assert command in result.stdout


def test_usage_errors_are_one_line_with_exit_2(tmp_path):
    for args in (["--format", "bogus", "list"], ["show"], ["nosuchcommand"], ["list"]):
        result = run(*args, cwd=tmp_path)
        assert result.returncode == 2, (args, result)
        assert len(result.stderr.strip().splitlines()) == 1, (args, result.stderr)
        assert result.stderr.startswith("archivectl: error:")


def test_demo_walks_the_main_job(tmp_path):
    result = run("demo", str(tmp_path / "demo"))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "HO-" in out and "all records valid" in out
    assert "138****" in out or "139****" in out  # masked show
    assert "not a reader of building B03" in out  # another building's butler is refused
    log = subprocess.run(
        ["git", "-C", str(tmp_path / "demo/archive"), "log", "--format=%G?"], capture_output=True, text=True, check=True
    ).stdout.split()
    # init, the estate's buildings configured and approved, 12 adds, an approval, edit, reveal, 5 attaches,
    # move-out, lend, an approval
    assert set(log) == {"G"} and len(log) == 26
    assert (
        "archivectl configure" in out
        and "buildings: [B01, B02, B03, B04, B05]" in (tmp_path / "demo/archive/archive.yaml").read_text()
    )
    assert "approved 12 change(s)" in out and "approved 8 change(s)" in out
    assert "3 of 11 active households complete" in out  # the demo shows complete and incomplete dossiers
    assert "commits verified" in out and "active households complete" in out


def test_shell_completion_installs_and_completes(tmp_path):
    """archivectl --install-completion bash, as the README says; then bash asks archivectl for words."""
    env = {**os.environ, "HOME": str(tmp_path), "SHELL": "/bin/bash"}
    installed = subprocess.run(
        [sys.executable, "-m", "archivectl", "--install-completion", "bash"], env=env, capture_output=True, text=True
    )
    assert installed.returncode == 0, installed.stderr
    assert "archivectl.sh" in (tmp_path / ".bashrc").read_text()
    script = shutil.which("archivectl")
    if script is None:
        pytest.skip("the archivectl script is not on PATH (pip install -e . puts it there)")
    for words, cword, expected in (("archivectl appr", "1", "approve"), ("archivectl report ", "2", "completeness")):
        asked = subprocess.run(
            [script],
            env={**env, "_ARCHIVECTL_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": cword},
            capture_output=True,
            text=True,
        )
        assert expected in asked.stdout.split(), asked


def loaded_modules(importtime: str) -> set[str]:
    """The modules a `python -X importtime` run imported, from its stderr."""
    return {line.rsplit("|", 1)[-1].strip() for line in importtime.splitlines() if line.startswith("import time:")}


def test_a_help_page_does_not_load_a_markdown_parser(tmp_path):
    # typer's help renderer imports rich's Markdown (markdown-it, 40-50 ms of every help page),
    # which archivectl's "rich" markup never uses; the help is the same without it (test_i18n)
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    for args in (["--help"], ["add", "--help"]):
        result = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "archivectl", *args],
            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert "Usage:" in result.stdout and "--help" in result.stdout
        loaded = loaded_modules(result.stderr)
        assert "typer.rich_utils" in loaded
        assert not {m for m in loaded if m.startswith(("markdown_it", "rich.markdown"))}, args


@pytest.mark.parametrize(
    "args",
    [
        ["verify", "--help"],
        ["--archive", "/nowhere", "report", "--help"],
        ["-f", "json", "keys", "fsck", "--help"],
        ["--archive=/nowhere", "add", "--help"],
        ["verfy", "--range", "x"],
        ["verify", "--rnge", "x"],
    ],
)
def test_a_process_that_builds_only_its_command_says_what_the_whole_program_says(args, monkeypatch):
    """A process builds only the command it runs (cli.only_invoked); its help and refusals are the whole app's."""
    from typer.testing import CliRunner

    from archivectl.cli import app

    monkeypatch.setenv("COLUMNS", "100")
    whole = CliRunner().invoke(app, args, prog_name="archivectl")
    alone = run(*args)
    assert (alone.returncode, alone.stdout) == (whole.exit_code, whole.stdout)
    assert alone.stderr.strip() == whole.stderr.strip()
