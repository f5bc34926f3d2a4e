"""What a process that holds plaintext or a private key does first: it never leaves a core dump.

A crash (or a `kill -SEGV` by someone at the desk) of a process that has opened a
sealed block, a record key or an SSH private key would write its memory to disk
in clear. The core size limit is set to 0 (inherited by git and ssh-keygen, which
hold the same secrets) and, on Linux, the process is marked not dumpable, which
also keeps other processes of the same user from reading its memory (ptrace).
"""

from __future__ import annotations

import resource
import sys

_PR_SET_DUMPABLE = 4


def no_core_dumps() -> None:
    """Set this process's (and its children's) core size to 0 and, on Linux, make it not dumpable."""
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ValueError, OSError):  # pragma: no cover - a platform without RLIMIT_CORE
        pass
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None).prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)  # the running program's libc
        except (OSError, AttributeError):  # pragma: no cover - no libc to ask
            pass
