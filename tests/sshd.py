"""A real OpenSSH server on 127.0.0.1 for tests, and client homes that trust it.

`running_sshd(tmp)` starts /usr/sbin/sshd on a free port with its own config, host key,
authorized_keys, pid file and log (LogLevel VERBOSE, in tmp/sshd.log), in the foreground
(-D -e), serving SFTP with /usr/lib/openssh/sftp-server. It works as root (then it permits
root to log in with a key, and creates the privilege-separation directory /run/sshd if it
is missing) and as an ordinary user (then sshd can only log in as that same user, which is
all the tests need: every person logs in as the current OS user with their own key).

How a test person's SSH setup reaches ssh -- the -F way:
OpenSSH's client does NOT read ~/.ssh/config from $HOME. It expands `~` (for its config,
known_hosts and default identities) from the passwd entry of the user running it; measured
with OpenSSH 9.2p1 (Debian 12) as root: with HOME=/tmp/x, `ssh -G alias` ignores
/tmp/x/.ssh/config and still names /root/.ssh/known_hosts. So `ssh_home` writes the config
with absolute paths only and returns its path, and a test runs the backend with
ARCHIVECTL_SSH="ssh -F <that path>" (see `ssh_command`). Real users need none of this:
their ssh finds their own ~/.ssh/config. (With -F, ssh also skips /etc/ssh/ssh_config and
does not create ~/.ssh in the passwd home, so tests leave the real home alone.)
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shlex
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

SSHD = Path("/usr/sbin/sshd")
SFTP_SERVER = Path("/usr/lib/openssh/sftp-server")
INSTALL_HINT = "install openssh-server (apt-get install openssh-server)"


def keygen(path: Path, comment: str = "test") -> str:
    """A new passphrase-less ed25519 key at path; its public key line."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
    )
    return path.with_name(path.name + ".pub").read_text().strip()


def free_port() -> int:
    """A port nobody listens on right now (sshd binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Sshd:
    """One sshd process and the files it reads, all under `directory`."""

    def __init__(self, directory: Path, sftp_server: str = str(SFTP_SERVER)) -> None:
        self.directory = directory
        self.sftp_server = sftp_server
        directory.mkdir(parents=True, exist_ok=True)
        self.host_key = directory / "ssh_host_ed25519_key"
        self.host_public = keygen(self.host_key, "test-host")
        self.authorized_keys = directory / "authorized_keys"
        self.authorized_keys.touch()
        self.log = directory / "sshd.log"
        self.port = free_port()
        self.config = directory / "sshd_config"
        self.config.write_text(self._config_text())
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation chroot
        self._process = self._start()

    def _config_text(self) -> str:
        lines = [
            f"Port {self.port}",
            "ListenAddress 127.0.0.1",
            f"HostKey {self.host_key}",
            f"PidFile {self.directory / 'sshd.pid'}",
            f"AuthorizedKeysFile {self.authorized_keys}",
            "StrictModes no",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "PermitRootLogin prohibit-password",
            f"Subsystem sftp {self.sftp_server}",
            "LogLevel VERBOSE",
        ]
        return "\n".join(lines) + "\n"

    def _start(self) -> subprocess.Popen[bytes]:
        """Start sshd in the foreground, logging to self.log; return once it answers."""
        log = self.log.open("ab")
        try:
            process = subprocess.Popen(
                [str(SSHD), "-D", "-e", "-f", str(self.config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        finally:
            log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"sshd exited with {process.returncode}:\n{self.log.read_text()}")
            if self._answers():
                return process
            time.sleep(0.02)
        process.kill()
        process.wait()
        raise RuntimeError(f"sshd did not answer on port {self.port}:\n{self.log.read_text()}")

    def _answers(self) -> bool:
        """True once sshd accepts a connection and sends its version banner."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                return sock.recv(4).startswith(b"SSH-")
        except OSError:
            return False

    def host_key_line(self) -> str:
        """The known_hosts line for this server: `[127.0.0.1]:PORT ssh-ed25519 AAAA...`."""
        kind, blob = self.host_public.split()[:2]
        return f"[127.0.0.1]:{self.port} {kind} {blob}"

    def authorize(self, pubkey_line: str) -> None:
        """Let the holder of this public key log in (as the OS user sshd serves)."""
        with self.authorized_keys.open("a") as fh:
            fh.write(pubkey_line.strip() + "\n")

    def stop(self) -> None:
        """Terminate sshd and wait for it (its sessions end with it)."""
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()


@contextlib.contextmanager
def running_sshd(tmp_path: Path, sftp_server: str = str(SFTP_SERVER)) -> Iterator[Sshd]:
    """An Sshd under tmp_path/sshd, stopped afterwards.

    sftp_server is the Subsystem command line, e.g. with `-P posix-rename` to refuse a request.
    """
    server = Sshd(tmp_path / "sshd", sftp_server)
    try:
        yield server
    finally:
        server.stop()


def ssh_home(home: Path, sshd: Sshd, private_key: Path, alias: str = "keys.estate") -> Path:
    """Write home/.ssh/config and home/.ssh/known_hosts for reaching sshd as `alias`.

    Returns the config's path: pass it with -F (see the module docstring and ssh_command),
    because ssh reads ~ from the passwd entry, not from $HOME.
    """
    ssh_dir = home / ".ssh"
    ssh_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    known_hosts = ssh_dir / "known_hosts"
    known_hosts.write_text(sshd.host_key_line() + "\n")
    config = ssh_dir / "config"
    config.write_text(
        f"Host {alias}\n"
        f"  HostName 127.0.0.1\n"
        f"  Port {sshd.port}\n"
        f"  User {getpass.getuser()}\n"
        f"  IdentityFile {private_key}\n"
        f"  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {known_hosts}\n"
        # Keep the test hermetic: no system-wide known hosts, and ssh never rewrites ours.
        f"  GlobalKnownHostsFile /dev/null\n"
        f"  UpdateHostKeys no\n"
    )
    config.chmod(0o600)
    return config


def ssh_command(config: Path) -> str:
    """The ARCHIVECTL_SSH value that makes the backend's ssh use this config."""
    return shlex.join([shutil.which("ssh") or "ssh", "-F", str(config)])
