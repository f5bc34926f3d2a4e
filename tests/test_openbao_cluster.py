"""The keystore on a 3-node OpenBao cluster that loses its leader (P3 P8 P16; issue 30 item 3).

Three `bao server` processes with integrated (raft) storage on 127.0.0.1, each with its own
ports and data directory, initialised with `bao operator init` (shamir 1 of 1), joined by
retry_join and unsealed (tests/baoserver.py Cluster). The archive's keystore URL names all
three nodes. The leader is killed with SIGKILL while an import stores its keys, and again
while `show --reveal` opens keys: every command ends well (the client tries the next node
until a new leader answers), and nothing is lost: every household's key opens, every
number is reserved once. Every server the test started is stopped.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time

import hvac
import pytest
from baoserver import INSTALL_HINT, bao_binary, running_cluster
from conftest import SECRETS, World, process_env
from test_import_many import many_csv

pytestmark = pytest.mark.skipif(bao_binary() is None, reason=INSTALL_HINT)

IMPORTED = 150


def run(world: World, who: str, token: str, *args: str) -> subprocess.Popen:
    """The real archivectl as who, with their token, in a process of its own (started, not waited for)."""
    env = {**process_env(world.people[who]), "BAO_TOKEN": token, "VAULT_TOKEN": ""}
    return subprocess.Popen(
        [sys.executable, "-m", "archivectl", "--archive", str(world.root), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def finished(process: subprocess.Popen) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=300)
    return process.returncode, out, err


def key_count(cluster) -> int:
    """How many record keys the cluster holds, asked of the active node (else any node that answers)."""
    for node in [cluster.leader(), *cluster.nodes]:
        if node is None or node.process is None:
            continue
        try:
            found = hvac.Client(node.address, token=cluster.root_token).secrets.kv.v2.list_secrets(
                "keys", mount_point="estate"
            )
            return len(found["data"]["keys"])
        except Exception:
            continue
    return -1


def test_killing_the_leader_during_an_import_and_during_reveals_loses_nothing(world, tmp_path):  # P3 P8 P16
    first = world.add()
    world.approve("mgr01")
    with running_cluster(tmp_path) as cluster:
        cluster.write_policies(world.ok("gm01", "keys", "policy", "--mount", "estate", "--format", "json"))
        token = {who: cluster.token(who) for who in ("mgr01", "gm01", "clk01")}
        world.ok(
            "mgr01", "keys", "migrate", "--to", cluster.url, "-r", "the key service", "-a", "gm01",
            env={"BAO_TOKEN": token["mgr01"]},
        )  # fmt: skip
        world.approve("gm01")
        assert key_count(cluster) == 1

        # (1) A clerk imports households; the leader dies (SIGKILL) once some of their keys are stored.
        csv = many_csv(world, IMPORTED)
        importing = run(world, "clk01", token["clk01"], "import", str(csv), "-r", "moving off paper", "-a", "mgr01")
        leader = cluster.leader()
        assert leader is not None
        while key_count(cluster) < 1 + IMPORTED // 5 and importing.poll() is None:
            time.sleep(0.02)
        assert importing.poll() is None, "the import ended before the leader could be killed"
        leader.kill()
        code, out, err = finished(importing)
        assert code == 0, err
        assert f"imported {IMPORTED} households" in out
        assert cluster.wait_for_leader() is not leader
        assert key_count(cluster) == 1 + IMPORTED
        world.approve("mgr01")

        # Nothing lost: every household's key is there, wrapped for main's readers, and opens its record.
        fsck = run(world, "gm01", token["gm01"], "keys", "fsck", "--deep", "--format", "json")
        code, out, err = finished(fsck)
        assert code == 0 and [r for r in json.loads(out) if "problem" in r] == [], out + err
        numbers = [r["archive_no"] for r in json.loads(world.ok("gm01", "list", "--format", "json"))]
        assert len(numbers) == len(set(numbers)) == 1 + IMPORTED  # P3: no number twice, none lost
        reserved = hvac.Client(cluster.leader().address, token=cluster.root_token).secrets.kv.v2.list_secrets(
            "numbers", mount_point="estate"
        )["data"]["keys"]
        assert sorted(reserved) == sorted(numbers)  # every number reserved exactly once, none left over

        # (2) The killed node comes back as a standby; then the new leader dies during look-ups.
        cluster.restart(leader)
        second = cluster.wait_for_leader()
        reveals = []
        killer = None
        for i, number in enumerate([first, *numbers[1:6]]):
            shown = run(world, "mgr01", token["mgr01"], "show", number, "--reveal", "-r", "owner called", "-f", "json")
            if i == 2:
                killer = threading.Timer(0.3, second.kill)
                killer.start()
            reveals.append(finished(shown))
        assert killer is not None
        killer.join()
        assert second.process is None
        for code, out, err in reveals:
            assert code == 0, err
            assert token["mgr01"] not in out + err
        assert json.loads(reveals[0][1])["customers"][0]["phone"] == SECRETS[1]
        third = cluster.wait_for_leader()
        assert third not in (second,)

        # The next write succeeds on the cluster that is left, and every look-up was registered (P8).
        added = run(world, "clk01", token["clk01"], "add", "--file", str(world.tmp / "new-record.yaml"),
                    "--also-active", "-r", "new owner", "-a", "mgr01")  # fmt: skip
        code, out, err = finished(added)
        assert code == 0, err
        access = world.git("log", "--format=%(trailers:key=Action,valueonly)")
        assert access.split().count("reveal") == len(reveals)
        assert key_count(cluster) == 2 + IMPORTED


class LosingProxy:
    """A TCP proxy to a server that, for requests matching `drop`, forwards the request and loses the answer.

    As a leader killed right after it committed a write: the write landed, the client saw the
    connection close. Plain HTTP/1.1 with Content-Length (what the OpenBao API speaks).
    """

    def __init__(self, upstream_port: int, drop: str) -> None:
        import socket

        self.upstream, self.drop, self.dropped = upstream_port, drop.encode(), 0
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.served: list[threading.Thread] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            one = threading.Thread(target=self._one, args=(conn,), daemon=True)
            self.served.append(one)
            one.start()

    @staticmethod
    def _message(sock) -> bytes:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return b""
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = next(
            (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")),
            0,
        )
        while len(body) < length:
            body += sock.recv(65536)
        return head + b"\r\n\r\n" + body

    def _one(self, conn) -> None:
        import socket

        with conn, socket.create_connection(("127.0.0.1", self.upstream)) as up:
            while True:
                request = self._message(conn)
                if not request:
                    return
                up.sendall(request)
                answer = self._message(up)
                first_line = request.split(b"\r\n", 1)[0]
                if self.drop in first_line and b"cas" in request and self.dropped < 2:
                    self.dropped += 1
                    return  # the write landed; its answer is lost
                conn.sendall(answer)

    def close(self) -> None:
        """Stop accepting and wait for every thread (its clients closed first): none outlives the test, where it
        would keep a later test's process from forking (forked.possible)."""
        import socket

        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept
        self.listener.close()
        for thread in [self.thread, *self.served]:
            thread.join(timeout=10)


def test_a_create_whose_answer_was_lost_is_recognised_as_our_own_on_retry(tmp_path, monkeypatch):  # P3
    from baoserver import running_bao

    from archivectl.openbao import OpenBaoBackend

    with running_bao(tmp_path) as bao:
        monkeypatch.setenv("BAO_TOKEN", bao.root.token)
        proxy = LosingProxy(bao.port, "/v1/estate/data/")
        backend = OpenBaoBackend(f"openbao+http://127.0.0.1:{proxy.port}/estate")
        try:
            name = f"keys/HO-2026-00001.age1{'r' * 58}.age"
            assert backend.create_many([("numbers/HO-2026-00001", b"reserved by me"), (name, b"age-sealed")]) == [
                True,
                True,
            ]
            assert proxy.dropped == 2  # both writes landed and lost their answer once; the retry knew them
            assert backend.read(name) == b"age-sealed"
            # Someone else's entry under the name stays a clash, retry or not (P3).
            proxy.dropped = 0
            bao.root.secrets.kv.v2.create_or_update_secret("numbers/HO-2026-00002", {"b64": "b3RoZXI="}, cas=0,
                                                           mount_point="estate")  # fmt: skip
            assert backend.create("numbers/HO-2026-00002", b"reserved by me") is False
            assert backend.create("numbers/HO-2026-00001", b"reserved by me") is False  # no retry: taken is taken
        finally:
            backend.close()
            proxy.close()
