"""The IT person's part, run as written: README's "Setting up the office server" (#29 item 8).

The README's server block runs as root on this machine, creating real accounts (unique names,
removed afterwards), a real venv, a real bare repository and hook, against a real sshd on
127.0.0.1 with its own port and configuration. Then the office uses it as it would: the gm
founds the archive with its keystore on the server (sftp) and pushes it over ssh; a clerk's
unapproved change to main is refused by the server; the same change on a branch is approved
by the manager, merged and accepted; both reached the keystore through the SFTP-only account.

Also here: `init` installs the client hooks (a `git clone` still needs `install-hooks`).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import RECORD, SECRETS, process_env, staff_yaml
from officekit import Machine
from sshd import SFTP_SERVER, SSHD, Sshd

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def server_setup() -> str:
    """The shell block between README's <!-- it-setup --> markers."""
    text = README.read_text(encoding="utf-8")
    block = text[text.index("<!-- it-setup -->") : text.index("<!-- /it-setup -->")]
    return re.search(r"```sh\n(.*?)```", block, re.S).group(1)


def it_section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("## Setting up the office server")
    return text[start : text.index("\n## ", start + 1)]


# ------------------------------------------------------------------------------------------ what the README says


def test_the_it_section_names_the_cjk_font_and_every_debian_package_the_test_run_installs():
    section = it_section()
    assert "fonts-noto-cjk" in section  # HTML reports show Chinese as boxes without a CJK font
    ci = (REPO / ".ci" / "run").read_text()
    packages = re.search(r"apt-get install -y -qq ([^\\\n]+)", ci).group(1).split()
    assert packages and all(p in section for p in packages), packages
    assert "archivectl install-hooks" in section  # a `git clone` has no hooks until it is run


# ----------------------------------------------------------------------------------------- init installs the hooks


def test_init_installs_the_client_hooks_and_a_plain_git_clone_needs_install_hooks(tmp_path, people):  # P12
    env = {**process_env(people["gm01"]), "HOME": str(tmp_path)}
    (tmp_path / "staff.yaml").write_text(staff_yaml(people))
    founded = subprocess.run(
        [sys.executable, "-m", "archivectl", "init", "estate", "--name", "Estate", "--staff-file", "staff.yaml"],
        cwd=tmp_path, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert founded.returncode == 0, founded.stderr
    archive = tmp_path / "estate"
    for hook in ("pre-commit", "pre-push"):
        path = archive / ".git" / "hooks" / hook
        assert "archivectl install-hooks" in path.read_text() and os.access(path, os.X_OK)

    def git(repo: Path, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(repo), *args], env=env, capture_output=True, text=True)

    # the founder's copy refuses a hand-made commit at once, as every clone does
    (archive / "CODEOWNERS").write_text("* @someone\n")
    git(archive, "add", "CODEOWNERS")
    head = git(archive, "rev-parse", "HEAD").stdout
    refused = git(archive, "commit", "-q", "-m", "hand edit")
    assert refused.returncode != 0
    assert "archivectl: archive changes are made with archivectl commands, not git commit" in refused.stderr
    assert git(archive, "rev-parse", "HEAD").stdout == head
    git(archive, "reset", "-q", "--hard")

    # a clone made with `git clone` has none until `archivectl install-hooks` (README says so)
    clone = tmp_path / "clone"
    assert git(tmp_path, "clone", "-q", str(archive), str(clone)).returncode == 0
    assert not (clone / ".git" / "hooks" / "pre-commit").exists()
    installed = subprocess.run(
        [sys.executable, "-m", "archivectl", "install-hooks"], cwd=clone, env=env, capture_output=True, text=True
    )
    assert installed.returncode == 0, installed.stderr
    assert "archivectl install-hooks" in (clone / ".git" / "hooks" / "pre-commit").read_text()


# ------------------------------------------------------------------------------------------ the server, as root


class OfficeSshd(Sshd):
    """An sshd laid out as Debian's: sshd_config includes sshd_config.d/*.conf, keys in each home."""

    def _config_text(self) -> str:
        lines = [
            f"Include {self.directory / 'sshd_config.d'}/*.conf",
            f"Port {self.port}",
            "ListenAddress 127.0.0.1",
            f"HostKey {self.host_key}",
            f"PidFile {self.directory / 'sshd.pid'}",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "PermitRootLogin no",
            f"Subsystem sftp {SFTP_SERVER}",
            "LogLevel VERBOSE",
        ]
        return "\n".join(lines) + "\n"

    def wait_for_restart(self) -> None:
        """After the set-up's SIGHUP: sshd re-executes itself; wait until it listens again."""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            log = self.log.read_text(errors="replace")
            if "Received SIGHUP" in log and log.count("Server listening on") >= 2 and self._answers():
                return
            time.sleep(0.05)
        raise AssertionError(f"sshd did not come back after SIGHUP:\n{self.log.read_text()}")


class StaffMachine(Machine):
    """A workstation whose ~/.ssh/config names the office's two accounts (git.office, keys.office)."""

    def __init__(self, base: Path, person, url: str, sshd: Sshd, git_user: str, keys_user: str):
        super().__init__(base, person, Path(url))
        self.url = url
        ssh_dir = self.home / ".ssh"
        ssh_dir.mkdir(mode=0o700)
        known_hosts = ssh_dir / "known_hosts"
        known_hosts.write_text(sshd.host_key_line() + "\n")
        self.ssh_config = ssh_dir / "config"
        common = (
            f"  HostName 127.0.0.1\n  Port {sshd.port}\n  IdentityFile {person.key}\n  IdentitiesOnly yes\n"
            f"  UserKnownHostsFile {known_hosts}\n  GlobalKnownHostsFile /dev/null\n  UpdateHostKeys no\n"
        )
        self.ssh_config.write_text(
            f"Host git.office\n  User {git_user}\n{common}Host keys.office\n  User {keys_user}\n{common}"
        )
        self.ssh_config.chmod(0o600)

    def backend_env(self) -> dict[str, str]:
        # ssh reads ~/.ssh/config from the passwd entry, not $HOME (tests/sshd.py): name it with -F
        ssh = f"ssh -F {self.ssh_config}"
        return {"GIT_SSH_COMMAND": ssh, "ARCHIVECTL_SSH": ssh}

    def join(self) -> None:
        """Clone over ssh and install the hooks, as the README says a new member of staff does."""
        cloned = self.run("git", "clone", "-q", self.url, str(self.clone), cwd=self.home)
        assert cloned.returncode == 0, cloned.stderr
        self.ok("install-hooks")

    def ssh(self, host: str, *command: str) -> subprocess.CompletedProcess:
        return self.run("ssh", "-F", str(self.ssh_config), host, *command, cwd=self.home)


def _missing_for_the_server_test() -> str | None:
    if os.geteuid() != 0:
        return "creates accounts and runs the README's server set-up as root: run the tests as root"
    if not SSHD.exists():
        return "sshd missing: apt-get install openssh-server"
    for tool in ("useradd", "userdel", "runuser", "git-shell"):
        if shutil.which(tool, path=SYSTEM_PATH + ":/usr/lib/git-core") is None:
            return f"{tool} missing: apt-get install passwd util-linux git"
    if not Path("/usr/bin/python3").exists():
        return "the system's Python is missing: apt-get install python3-venv"
    return None


PREFIX = "acit-"  # the accounts this test makes: acit-git-<pid>-<hex>, acit-keys-<pid>-<hex>


def _alive(pid: str) -> bool:
    return pid.isdigit() and Path(f"/proc/{pid}").exists()


def remove_what_dead_runs_left() -> None:
    """Accounts and folders of a run killed before its clean-up (its process is gone): removed first."""
    for line in Path("/etc/passwd").read_text().splitlines():
        name = line.split(":", 1)[0]
        if name.startswith(PREFIX) and not _alive(name.split("-")[2]):
            subprocess.run(["userdel", "-r", name], capture_output=True)
    for folder in Path(tempfile.gettempdir()).glob("archivectl-it-*-*"):
        if not _alive(folder.name.split("-")[2]):
            shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def server_base():
    """A folder for the server's side (home directories, venv, sshd): traversable by the new accounts,
    which pytest's own (mode 0700, under root) is not. Removed afterwards."""
    remove_what_dead_runs_left()
    base = Path(tempfile.mkdtemp(prefix=f"archivectl-it-{os.getpid()}-"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.mark.skipif(_missing_for_the_server_test() is not None, reason=str(_missing_for_the_server_test()))
def test_the_readme_server_setup_runs_as_root_and_the_office_works_through_it(
    tmp_path, people, server_base
):  # P7 P9 P12
    suffix = f"{os.getpid()}-{secrets.token_hex(3)}"  # unique per run; the pid tells a dead run's apart
    git_user, keys_user = f"{PREFIX}git-{suffix}", f"{PREFIX}keys-{suffix}"
    srv = server_base / "srv"
    try:
        with_server(tmp_path, people, server_base, srv, git_user, keys_user)
    finally:
        for user in (git_user, keys_user):  # never leave an account behind
            subprocess.run(["userdel", "-r", user], capture_output=True)
        assert all(
            subprocess.run(["getent", "passwd", u], capture_output=True).returncode != 0 for u in (git_user, keys_user)
        )


def copy_of_the_checkout(target: Path) -> Path:
    """This checkout's files as a build sees them (tracked, and new ones not ignored), copied to target.

    The venv is installed from the copy: building compiles the catalogs (.mo) into its source tree,
    which in this checkout other tests are reading at the same time.
    """
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True, check=True,
    ).stdout.decode()  # fmt: skip
    for name in filter(None, listed.split("\0")):
        if (REPO / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, target / name)
    return target


def with_server(tmp_path: Path, people, base: Path, srv: Path, git_user: str, keys_user: str) -> None:
    sshd = OfficeSshd(base / "sshd")
    try:
        staff_keys = tmp_path / "staff-keys.pub"
        staff_keys.write_text("".join(people[w].pub + "\n" for w in ("gm01", "clk01", "mgr01")))
        env = {k: v for k, v in os.environ.items() if k.startswith("PIP_")}  # the machine's own pip settings
        env.update(
            PATH=SYSTEM_PATH,
            HOME=os.environ.get("HOME", "/root"),
            LANG="C.UTF-8",
            GIT_USER=git_user,
            KEYS_USER=keys_user,
            SRV=str(srv),
            VENV=str(base / "opt" / "archivectl"),
            SSHD_CONFIG=str(sshd.config),
            SSHD_PID=str(sshd.directory / "sshd.pid"),
            STAFF_KEYS=str(staff_keys),
        )
        source = copy_of_the_checkout(base / "src")
        env["ARCHIVECTL_SRC"] = str(source)
        setup = subprocess.run(
            ["sh", "-c", server_setup()], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
        )
        assert setup.returncode == 0, setup.stdout[-3000:] + setup.stderr[-3000:]
        sshd.wait_for_restart()
        hook = srv / "git" / "estate.git" / "hooks" / "pre-receive"
        assert str(base / "opt" / "archivectl" / "bin" / "python") in hook.read_text()
        office(tmp_path, people, sshd, srv, git_user, keys_user)
    finally:
        sshd.stop()


def office(tmp_path: Path, people, sshd: Sshd, srv: Path, git_user: str, keys_user: str) -> None:
    url = f"ssh://git.office{srv}/git/estate.git"  # the git account on 127.0.0.1:PORT (~/.ssh/config)
    keystore = f"sftp://keys.office{srv}/keys/estate.keys"
    gm, clerk, manager = (
        StaffMachine(tmp_path, people[w], url, sshd, git_user, keys_user) for w in ("gm01", "clk01", "mgr01")
    )

    # The accounts do only what they are for.
    shell = clerk.ssh("git.office", "id")
    assert shell.returncode != 0 and "uid=" not in shell.stdout  # git-shell: git's own commands only
    sftp_only = clerk.ssh("keys.office", "id")
    assert sftp_only.returncode != 0 and "uid=" not in sftp_only.stdout
    assert "sftp connections only" in sftp_only.stdout + sftp_only.stderr

    # The gm founds the archive, its keystore on the server, and pushes it over ssh.
    (gm.home / "staff.yaml").write_text(staff_yaml(people))
    founded = gm.run(
        sys.executable, "-m", "archivectl", "init", "estate", "--name", "Estate",
        "--staff-file", str(gm.home / "staff.yaml"), "--keystore", keystore, cwd=gm.home,
    )  # fmt: skip
    assert founded.returncode == 0, founded.stderr
    assert (srv / "keys" / "estate.keys" / "keys").is_dir()
    gm.git("remote", "add", "origin", url)
    gm.git("push", "-q", "-u", "origin", "main")

    # The clerk's unapproved change to main: refused by their own hook, and by the server when skipped.
    clerk.join()
    form = tmp_path / "form.yaml"
    form.write_text(RECORD)
    number = clerk.ok("add", "--file", str(form), "-r", "new owner at hand-over", "-a", "mgr01").strip()
    on_server = clerk.git("ls-remote", "origin", "refs/heads/main")
    locally = clerk.run("git", "push", "origin", "main")
    assert locally.returncode != 0 and "awaiting approval by mgr01" in locally.stdout + locally.stderr
    pushed = clerk.run("git", "push", "--no-verify", "origin", "main")
    assert pushed.returncode != 0, pushed.stderr
    assert "remote:" in pushed.stderr and "awaiting approval by mgr01" in pushed.stderr
    assert "pre-receive hook declined" in pushed.stderr
    assert clerk.git("ls-remote", "origin", "refs/heads/main") == on_server

    # The same change as a proposal on a branch: accepted; the manager approves, merges, pushes main.
    clerk.git("branch", "b03-new-owner")
    clerk.git("reset", "-q", "--hard", "origin/main")
    clerk.git("push", "-q", "-u", "origin", "b03-new-owner")
    manager.join()
    manager.git("switch", "-q", "b03-new-owner")
    manager.ok("approve", "--yes", "-r", "checked against the hand-over form")
    manager.git("push", "-q", "origin", "b03-new-owner")
    manager.merge("b03-new-owner")  # git push origin main: accepted by the server's hook
    assert clerk.git("ls-remote", "origin", "refs/heads/main") != on_server
    assert manager.git("rev-parse", "HEAD").strip() in clerk.git("ls-remote", "origin", "refs/heads/main")

    # The keystore, through the SFTP-only account, for both: the clerk's add stored the record key
    # there (owned by that account); the manager opens it from there into memory.
    keys = list((srv / "keys" / "estate.keys" / "keys").glob(f"{number}.age1*.age"))
    assert len(keys) == 1 and keys[0].owner() == keys_user
    shown = json.loads(manager.ok("show", number, "--reveal", "-r", "checking the hand-over", "--format", "json"))
    assert shown["customers"][0]["phone"] == SECRETS[1]
    assert not list(manager.home.rglob("*.age"))  # no key written on the workstation
    verified = manager.cli("verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
