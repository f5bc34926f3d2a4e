"""Render an HTML report the way a manager sees it: headless Chromium, 1200 px wide, a PNG.

Run: python bench/screenshot_report.py REPORT.html OUT.png
(tests/test_reports.py runs it on the completeness report; it needs Debian's chromium.)
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def screenshot(page: Path, png: Path, width: int = 1200, height: int = 1600) -> None:
    """Write a PNG of page as headless Chromium renders it (its own throw-away profile)."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise SystemExit("chromium is missing: apt-get install chromium")
    with tempfile.TemporaryDirectory(prefix="archivectl-shot-") as profile:
        subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                f"--screenshot={png}",
                page.resolve().as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )


if __name__ == "__main__":
    screenshot(Path(sys.argv[1]), Path(sys.argv[2]))
