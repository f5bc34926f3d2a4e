"""Commit signatures read and checked ahead, on the second core, while the judge checks earlier commits.

A commit's signature check is ~40% of judging it, and all of it but the last step
needs nothing the judge knows (sshsig.prepare: the payload split off, the SSHSIG
blob read, the ed25519 signature verified). For a long range (whole-history verify,
approve, pending) a forked worker reads each next batch of commit objects through
its own `git cat-file` and prepares their signatures while the judge checks the
batch before; the judge then only asks the allowed signers of the staff.yaml each
commit is judged by (SignatureChecker.decide), so the verdicts are the same ones,
decided in the same place.

The worker is forked between batches, only where forked.possible() (two cores, no
other thread: the desk's threaded server judges alone, as a lock another thread
held at the fork would never be released in the worker). It closes every file it
inherited but its two pipes and a lock git children are handed, and leaves by
os._exit, so no lock, `with` or exit handler of the parent ever runs in it. Only
commit ids go to it and only plain values come back (marshal). If it fails in any
way the judge reads and prepares those commits itself: a worker can make verify
slower, never different.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import struct
from pathlib import Path
from types import TracebackType

from archivectl import forked, gitio, sshsig

_LENGTH = struct.Struct("<Q")


class SignatureWorker:
    """Signatures prepared by a worker process, a batch ahead of the judge."""

    def __init__(self, repo: Path, object_format: str):
        self.repo = repo
        self.object_format = object_format
        self._pid = 0
        self._to: int | None = None  # requests (commit ids) to the worker
        self._from: int | None = None  # its answers
        self._asked: list[str] = []
        self._broken = False

    def ask(self, commits: list[str]) -> None:
        """Have these commits prepared while the caller works (the worker starts on the first call)."""
        if self._broken:
            return
        if not self._pid:
            if not forked.possible():
                self._broken = True
                return
            self._start()
        try:
            _send(self._to, marshal.dumps(commits))
        except OSError:
            self._stop_broken()
            return
        self._asked = commits

    def take(self) -> dict[str, sshsig.Prepared]:
        """The prepared signatures of the commits last asked for ({} when there are none, or the worker failed)."""
        asked, self._asked = self._asked, []
        if not asked or self._broken:
            return {}
        try:
            answer = marshal.loads(_receive(self._from))  # noqa: S302 - our own worker's answer through our own pipe
            found = {c: sshsig.Prepared(*p) for c, p in zip(asked, answer, strict=True) if p is not None}
        except (OSError, EOFError, ValueError, TypeError):
            self._stop_broken()
            return {}
        return found

    def _start(self) -> None:
        to_read, to_write = os.pipe()
        from_read, from_write = os.pipe()
        pid = os.fork()
        if pid == 0:
            _serve(to_read, from_write, self.repo, self.object_format)  # never returns
        os.close(to_read)
        os.close(from_write)
        self._pid, self._to, self._from = pid, to_write, from_read

    def _stop_broken(self) -> None:
        self._broken = True
        self.close()

    def close(self) -> None:
        """End the worker (it leaves when its requests end) and wait for it."""
        for fd in (self._to, self._from):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._to = self._from = None
        if self._pid:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self._pid, 0)
            self._pid = 0

    def __enter__(self) -> SignatureWorker:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


def _serve(requests: int, answers: int, repo: Path, object_format: str) -> None:
    """The worker: for each list of commit ids, their objects read and prepared; leaves when requests end."""
    status = 1
    try:
        _close_all_but({requests, answers, *gitio.inherited_fds()})  # a held lock stays held, as for any git
        with gitio.BlobReader(repo) as objects:
            while True:
                try:
                    commits = marshal.loads(_receive(requests))  # noqa: S302 - the judge's own request
                except EOFError:
                    break
                found = [
                    None if raw is None else tuple(sshsig.prepare(raw, object_format))
                    for raw in objects.read_many(commits)
                ]
                _send(answers, marshal.dumps(found))
        status = 0
    finally:
        os._exit(status)


def _close_all_but(keep: set[int]) -> None:
    """Close every file descriptor above stderr but those in keep."""
    low = 3
    for fd in sorted(k for k in keep if k >= low):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, os.sysconf("SC_OPEN_MAX"))


def _send(fd: int | None, data: bytes) -> None:
    if fd is None:
        raise OSError("closed")
    view = memoryview(_LENGTH.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view) :]


def _receive(fd: int | None) -> bytes:
    if fd is None:
        raise OSError("closed")
    (length,) = _LENGTH.unpack(_read_exactly(fd, _LENGTH.size))
    return _read_exactly(fd, length)


def _read_exactly(fd: int, size: int) -> bytes:
    parts, left = [], size
    while left:
        part = os.read(fd, min(left, 1 << 20))
        if not part:
            raise EOFError
        parts.append(part)
        left -= len(part)
    return b"".join(parts)
