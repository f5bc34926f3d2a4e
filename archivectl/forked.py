"""A share of the work done in a forked process while the caller does its own: both cores, one answer.

Used where the shares are independent (the facts of a cold report, the records of a
large commit the judge checks). The child gets the caller's memory as it stands
(nothing is sent to it), answers through a pipe and leaves by os._exit, so no lock,
`with` or exit handler of the caller runs in it. There is no child in a process
running other threads (the desk serves in threads: a lock another thread held at
the fork would stay held in the child); then, and whenever the child fails, the
answer is None and the caller does that share itself.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any


def possible() -> bool:
    """True when a share of the work may go to a forked process here (two cores, no other thread)."""
    return hasattr(os, "fork") and len(os.sched_getaffinity(0)) >= 2 and threading.active_count() == 1


@contextlib.contextmanager
def in_child(
    work: Callable[[], Any],
    dumps: Callable[[Any], bytes] = marshal.dumps,
    loads: Callable[[bytes], Any] = marshal.loads,
    wait: bool = True,
) -> Iterator[Callable[[], Any]]:
    """Run work in a forked process while the block runs; yields a getter of its answer, None if there is none.

    The answer comes back in marshal's format by default (plain values only: several
    times quicker than JSON for 50,000 facts). The getter may be called inside the
    block (it waits for the child then) or after it. A block that raises stops the
    child; so does leaving the block without having asked for the answer, with
    wait=False (work done ahead that turned out not to be needed). A child that
    fails says nothing and answers None: the caller does that share itself.
    """
    answer: list[Any] = [None]
    if not possible():
        yield lambda: answer[0]
        return
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: answer through the pipe, then leave without running the parent's exit code
        status = 1
        try:
            os.close(read_end)
            with os.fdopen(write_end, "wb") as pipe:
                pipe.write(dumps(work()))
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    done: list[bool] = []

    def finish(stop: bool) -> None:
        if done:
            return
        done.append(True)
        if stop:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with os.fdopen(read_end, "rb") as pipe:
            data = pipe.read()
        _, status = os.waitpid(pid, 0)
        if status == 0 and not stop:
            with contextlib.suppress(ValueError, EOFError, TypeError):
                answer[0] = loads(data)

    def collect() -> Any:
        finish(stop=False)
        return answer[0]

    try:
        yield collect
    except BaseException:
        finish(stop=True)
        raise
    finally:
        finish(stop=not wait)
