"""How many examples a property test runs: a small number by default, the full number by hand.

The suite a contributor runs before every commit uses a tenth of each test's full count (at least
20): enough to catch a regression in the common shapes, quick enough for `pytest -n auto`. The full
counts, which found the bugs these tests were written for, run with

    ARCHIVECTL_PROPERTIES=deep pytest -q -n auto tests/

(the adversary's state machine has its own profiles: see tests/test_adversary.py; the random kill -9
rounds of tests/test_crash.py run 12 rounds, 48 deep, or CRASH_ROUNDS).
"""

from __future__ import annotations

import os

DEEP = os.environ.get("ARCHIVECTL_PROPERTIES", "").lower() == "deep"


def examples(full: int) -> int:
    """The number of examples to run for a test whose full count is `full`."""
    return full if DEEP else max(20, full // 10)
