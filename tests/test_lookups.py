"""A look-up made on a branch that is never merged still reaches main's register (P8).

Each person has a HOME, a key, a git config and a clone of a bare server with
the pre-receive hook (tests/test_office.py's office); nothing is copied by hand.
"""

from __future__ import annotations

import json

from test_office import office, propose_household  # noqa: F401 - the fixture is used by name


def _reveals(desk) -> int:
    return sum(row["reveals"] for row in json.loads(desk.ok("report", "stats", "--format", "json"))["activity"])


def test_a_reveal_on_an_unmerged_branch_reaches_main_with_sync(office):  # noqa: F811
    clerk, butler, manager = office["clk01"], office["but01"], office["mgr01"]
    number = propose_household(clerk)
    manager.git("fetch", "-q")
    manager.git("switch", "-q", "b03-new-owner")
    manager.ok("approve", "--yes", "--reason", "matches the form")
    manager.git("switch", "-q", "main")
    manager.git("merge", "-q", "--no-ff", "-m", "Merge b03-new-owner", "b03-new-owner")
    assert manager.git("push", "-q", "origin", "main", check=False).returncode == 0
    before = _reveals(manager)

    # The butler looks a resident up on a branch of their own that is never pushed or merged.
    butler.git("fetch", "-q")
    butler.git("switch", "-q", "-c", "visit", "origin/main")
    butler.ok("show", number, "--reveal", "--reason", "the resident called")
    assert "brought 1 look-up register entries to main" in butler.ok("sync")
    assert "every look-up of yours is on main already" in butler.ok("sync")  # nothing twice

    manager.git("pull", "-q", "--ff-only")
    assert _reveals(manager) == before + 1
    synced = manager.git("log", "-1", "--format=%G?%n%(trailers:only,unfold)").stdout
    assert synced.startswith("G") and "Action: reveal" in synced and "Acted-by: but01" in synced
    assert manager.cli("verify").exit_code == 0

    # The branch merged later brings the same entry file: no conflict, counted once.
    butler.git("push", "-q", "origin", "visit")
    manager.git("fetch", "-q")
    merged = manager.git("merge", "-q", "--no-ff", "-m", "Merge visit", "origin/visit", check=False)
    assert merged.returncode == 0, merged.stderr
    assert _reveals(manager) == before + 1
    assert manager.cli("verify").exit_code == 0
