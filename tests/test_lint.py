"""The code stays ruff-clean (lint and format), as CI and newcomers run it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff missing: pip install -e '.[test]'")
def test_ruff_check_and_format_are_clean():
    check = subprocess.run(["ruff", "check", "--output-format", "concise", str(ROOT)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout
    fmt = subprocess.run(["ruff", "format", "--check", str(ROOT)], capture_output=True, text=True)
    assert fmt.returncode == 0, fmt.stdout
