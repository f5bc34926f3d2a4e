"""The keystore on an OpenBao (or Vault) server: a key per household address, and a look-up log the server keeps.

`openbao://host:port/mount` (HTTPS; `openbao+http://` for a dev server on this machine;
`vault://` and `vault+http://` speak the same API). A cluster is named by its nodes,
comma-separated: `openbao://keys1:8200,keys2:8200,keys3:8200/estate`. A standby forwards a
request to the active node (or redirects it, which the client follows); a request that meets
no server, a 5xx answer or a standby without a leader is tried again, at the next node, for
up to RETRY_SECONDS, so losing the leader costs a pause, not a failed command. The server
holds two engines the IT person enables (README, "A key-management server: OpenBao"):

- KV version 2 at `<mount>/`: one entry per keystore name, `keys/<no>.<age1 recipient>.age`
  and `numbers/<no>`. Exclusive creation is a write with `cas=0`, which the server refuses
  when the entry exists (or ever existed and was not destroyed).
- transit at `<mount>-transit/`: one transit key per key address, named
  `<archive-no>.<first 20 characters of the recipient>`. The bytes of a record key (already
  age-wrapped to its readers) are encrypted with it before they are stored, so opening a
  record key takes two things: the server's permission (transit decrypt, which its audit
  device logs with who and when) and a reader's SSH key (age). Deleting the transit key
  makes every copy of the stored blob (a backup, another machine) useless at once.

The token is the one the bao/vault CLIs use: BAO_TOKEN, else VAULT_TOKEN, else the file
~/.vault-token that `bao login` writes. BAO_CACERT (or VAULT_CACERT) names a CA file for a
server whose certificate the system does not trust. No token, key byte or server answer text
is ever put in an error: errors are worded here, from the status alone.

Nothing is written to the local disk: requests and answers live in memory only.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from archivectl.errors import ArchiveError, UsageError
from archivectl.i18n import _
from archivectl.layout import ARCHIVE_NO_PATTERN, RECIPIENT_PATTERN

SCHEMES = {"openbao": "https", "openbao+http": "http", "vault": "https", "vault+http": "http"}
DEFAULT_PORT = 8200
TRANSIT_SUFFIX = "-transit"
# Requests in flight at once for read_many / create_many (one connection each). A raft server commits
# writes in flight together: 64 fill one at 85-92 households/s against 68-69 with 16 (issue 30).
WINDOW = 64
TIMEOUT = 30  # seconds per request
LIST_TIMEOUT = 600  # seconds for a listing, which the server answers whole: 100,000 entries' metadata took 90 s
RETRY_SECONDS = 30  # how long a request is tried again while no node answers (a leader election takes seconds)
AGE_VERSION_LINE = b"age-encryption.org/v1\n"
KEY_NAME = re.compile(rf"keys/(?P<no>{ARCHIVE_NO_PATTERN})\.(?P<recipient>{RECIPIENT_PATTERN})\.age")
T = TypeVar("T")

# Which archivectl command makes a request: the audit device logs this header in clear once the IT
# person lists it (sys/config/auditing/request-headers), so `report access` can tell archivectl's
# requests from any other. It is the client's word, like the register; the token is the server's.
COMMAND_HEADER = "X-Archivectl-Command"


def parse_url(url: str) -> tuple[str, str]:
    """openbao://host[:port]/mount -> (the (first) server's base URL, the KV mount path)."""
    addresses, mount = parse_addresses(url)
    return addresses[0], mount


def parse_addresses(url: str) -> tuple[list[str], str]:
    """openbao://host[:port][,host[:port]...]/mount -> (each node's base URL, the KV mount path)."""
    parts = urlsplit(url)
    scheme = SCHEMES.get(parts.scheme)
    if scheme is None or not parts.netloc:
        raise UsageError(
            _("keystore {url}: expected openbao://host[:port]/mount (or openbao+http://, vault://)").format(url=url)
        )
    if "@" in parts.netloc:
        raise UsageError(_("keystore URL: put no user or token in it; the token comes from BAO_TOKEN or VAULT_TOKEN"))
    if parts.query or parts.fragment:
        raise UsageError(_("keystore {url}: a keystore URL has no ?query or #fragment").format(url=url))
    addresses = [_address(url, scheme, node) for node in parts.netloc.split(",")]
    mount = parts.path.strip("/")
    if not mount or not all(re.fullmatch(r"[A-Za-z0-9_-]+", p) for p in mount.split("/")):
        raise UsageError(_("keystore {url}: name the KV mount, e.g. openbao://keys.office:8200/estate").format(url=url))
    return addresses, mount


def _address(url: str, scheme: str, node: str) -> str:
    """One node of the URL's comma-separated list, host[:port], as a base URL."""
    parts = urlsplit(f"//{node}")
    if not parts.hostname or not re.fullmatch(r"[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]", node.rsplit(":", 1)[0]):
        raise UsageError(
            _("keystore {url}: {node!r} is not a host name (host[:port], comma-separated)").format(url=url, node=node)
        )
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise UsageError(_("keystore {url}: the port is not a number from 1 to 65535").format(url=url)) from None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{scheme}://{host}:{port}"


def transit_key(name: str) -> str:
    """The transit key of one key address: `<archive-no>.<first 20 characters of the recipient>`."""
    m = KEY_NAME.fullmatch(name)
    if m is None:
        raise UsageError(
            _("keystore name {name!r} is not a key address (keys/<archive-no>.<age1...>.age)").format(name=name)
        )
    return f"{m['no']}.{m['recipient'][:20]}"


def _exists(client: Any, mount: str, name: str) -> bool:
    """True when name has (or had) a version at the KV mount: its metadata exists."""
    import hvac.exceptions as bao

    try:
        client.secrets.kv.v2.read_secret_metadata(path=name, mount_point=mount)
    except (bao.InvalidPath, bao.Forbidden):
        return False
    return True


def _check_name(name: str) -> None:
    parts = name.split("/")
    if not name or any(not re.fullmatch(r"[A-Za-z0-9_.-]+", p) or p in (".", "..") for p in parts):
        raise UsageError(
            _("keystore name {name!r} must be a relative path without '..' or empty parts").format(name=name)
        )


def token_from_environment() -> str | None:
    """The token as the bao and vault CLIs find it: BAO_TOKEN, VAULT_TOKEN, then ~/.vault-token."""
    for variable in ("BAO_TOKEN", "VAULT_TOKEN"):
        value = os.environ.get(variable, "").strip()
        if value:
            return value
    try:
        return (Path.home() / ".vault-token").read_text().strip() or None
    except OSError:
        return None


class OpenBaoBackend:
    """The keystore as KV v2 entries on an OpenBao/Vault server, record keys sealed again with transit."""

    def __init__(self, url: str) -> None:
        """Parse only: the token is looked for, and the server reached, on first use."""
        import importlib.util

        self.url = url
        self.addresses, self.mount = parse_addresses(url)
        self.address = self.addresses[0]
        if importlib.util.find_spec("hvac") is None:
            raise ArchiveError(
                _("keystore {url}: an OpenBao keystore needs hvac: pip install 'archivectl[openbao]'").format(url=url)
            )
        self.transit = self.mount + TRANSIT_SUFFIX
        self._local = threading.local()
        self._listed: dict[str, list[tuple[str, float]]] = {}  # list()'s answers until this process writes
        self._headers: dict[str, str] = {}  # the fast path's (_http), set with its first connection

    # -- the connection

    def _client(self) -> Any:
        """One hvac client per thread (its HTTP session is not shared between threads), at this thread's node."""
        client = getattr(self._local, "client", None)
        if client is None:
            import hvac

            token = token_from_environment()
            if not token:
                raise ArchiveError(
                    _(
                        "keystore {url}: no token: set BAO_TOKEN (or VAULT_TOKEN, or `bao login`), "
                        "the token the IT person issued you"
                    ).format(url=self.url)
                )
            import requests

            ca = os.environ.get("BAO_CACERT") or os.environ.get("VAULT_CACERT")
            session = requests.Session()
            session.headers[COMMAND_HEADER] = _command()
            address = self.addresses[getattr(self._local, "node", 0) % len(self.addresses)]
            if len(self.addresses) > 1:
                address = _active_node(session, address, ca or True)
            client = hvac.Client(url=address, token=token, verify=ca or True, timeout=TIMEOUT, session=session)
            self._local.client = client
        return client

    def _next_node(self) -> None:
        """Drop this thread's connection and go on at the next node of the cluster (the same one if it is alone)."""
        self.close()
        self._local.node = getattr(self._local, "node", 0) + 1

    def _fast(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any] | None:
        """One request on this thread's own keep-alive connection (_Connection), for the calls made by the thousand.

        hvac over requests spends ~1 ms of CPU on a request, as much as the server
        does on a KV read: an import or `keys fsck` of 100,000 keys paid more in the
        client than at the server (issue 30). Only a clear answer is taken from here
        (2xx, or a 404 where hvac's would mean "missing"); None, and the caller goes
        the hvac way (_call: retries at the next node, errors worded from the kind),
        on anything else, when a proxy is configured, or when no connection is made.
        """
        connection = self._http()
        if connection is None:
            return None
        try:
            status, data = connection.exchange(method, path, None if body is None else json.dumps(body).encode())
        except (OSError, ValueError):
            connection.close()
            self._local.http = None
            return None
        try:
            return status, json.loads(data) if data else None
        except ValueError:
            return status, None

    def _http(self) -> _Connection | None:
        """This thread's connection to the node its hvac client talks to; None where not to be used."""
        if getattr(self._local, "http", None) is not None:
            return self._local.http
        import urllib.request

        if urllib.request.getproxies():
            return None  # requests would go through the proxy: so must every request
        try:
            client = self._client()  # finds the active node of a cluster: its failures are _call's to handle
        except Exception:
            return None
        where = urlsplit(client.url)
        if where.hostname is None:
            return None
        port = where.port or (443 if where.scheme == "https" else 80)
        self._headers = {
            "X-Vault-Token": client.token,
            "X-Vault-Request": "true",
            "Content-Type": "application/json",
            COMMAND_HEADER: _command(),
        }
        context = None
        if where.scheme == "https":
            import ssl

            ca = os.environ.get("BAO_CACERT") or os.environ.get("VAULT_CACERT")
            context = ssl.create_default_context(cafile=ca or None)
        self._local.http = _Connection(where.hostname, port, self._headers, context)
        return self._local.http

    def _call(self, operation: str, name: str, request: Callable[[Any], T]) -> T:
        """Run one request; any failure becomes a one-line ArchiveError worded from its kind alone.

        A request that meets no server, a 5xx answer (a standby without a leader, a
        sealed node) or a broken connection is tried again at the next node, with a
        growing pause, for up to RETRY_SECONDS. request() must therefore be safe to
        run again: reads are, and an exclusive creation recognises its own earlier
        write (_kv_write).
        """
        import time

        import hvac.exceptions as bao
        import requests

        transient = (
            requests.exceptions.ConnectionError,
            requests.exceptions.Timeout,
            requests.exceptions.ChunkedEncodingError,
            bao.VaultDown,
            bao.InternalServerError,
            bao.BadGateway,
        )
        give_up = time.monotonic() + RETRY_SECONDS
        pause = 0.05
        while True:
            try:
                return request(self._client())
            except requests.exceptions.SSLError:
                raise self._failure(operation, name, requests.exceptions.SSLError()) from None
            except transient as exc:
                if time.monotonic() + pause > give_up:
                    raise self._failure(operation, name, exc) from None
                self._next_node()
                time.sleep(pause)
                pause = min(pause * 2, 1.0)
            except (bao.VaultError, requests.exceptions.RequestException) as exc:
                raise self._failure(operation, name, exc) from None

    def _failure(self, operation: str, name: str, exc: Exception) -> ArchiveError:
        """The one-line error for a failed request, from the kind of failure alone (never the server's text)."""
        import hvac.exceptions as bao
        import requests

        if isinstance(exc, bao.Forbidden):
            if any("invalid token" in str(e) for e in (getattr(exc, "errors", None) or [])):
                why = _("the server does not accept your token (expired or revoked: ask the IT person for a new one)")
            else:
                why = _("refused by the server: permission denied (your token's policy does not cover it)")
            return ArchiveError(
                _("keystore {url}: {operation} {name}: {why}").format(
                    url=self.url, operation=operation, name=name, why=why
                )
            )
        if isinstance(exc, bao.Unauthorized):
            why = _("the server does not accept your token (expired or revoked: ask the IT person for a new one)")
            return ArchiveError(
                _("keystore {url}: {operation} {name}: {why}").format(
                    url=self.url, operation=operation, name=name, why=why
                )
            )
        if isinstance(exc, bao.VaultDown):
            why = _("the server is sealed or down")
            return ArchiveError(
                _("keystore {url}: {operation} {name}: {why}").format(
                    url=self.url, operation=operation, name=name, why=why
                )
            )
        if isinstance(exc, bao.VaultError):
            status = getattr(exc, "status_code", None) or exc.__class__.__name__
            return ArchiveError(
                _("keystore {url}: {operation} {name} failed: the server answered {status}").format(
                    url=self.url, operation=operation, name=name, status=status
                )
            )
        if isinstance(exc, requests.exceptions.SSLError):
            return ArchiveError(
                _("keystore {url}: the server's TLS certificate is not trusted (set BAO_CACERT to its CA file)").format(
                    url=self.url
                )
            )
        return ArchiveError(
            _("keystore {url}: cannot reach the server ({kind})").format(url=self.url, kind=exc.__class__.__name__)
        )

    def _many(self, work: Callable[[T], Any], items: list[T]) -> list[Any]:
        """work() for each item, WINDOW at a time; the first failure (in the items' order) is raised once all end.

        WINDOW threads each take the next item until none is left: a future an item
        cost 24 us of CPU, 2.4 s of a `keys fsck` of 100,000 keys (issue 30).
        """
        if len(items) <= 1:
            return [work(item) for item in items]
        results: list[Any] = [None] * len(items)
        failed: dict[int, BaseException] = {}
        feed = iter(range(len(items)))
        lock = threading.Lock()

        def run() -> None:
            while True:
                with lock:
                    i = next(feed, None)
                if i is None:
                    return
                try:
                    results[i] = work(items[i])
                except BaseException as exc:  # raised in the caller's thread below
                    failed[i] = exc

        workers = [threading.Thread(target=run, name=f"archivectl-bao-{n}") for n in range(min(WINDOW, len(items)))]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        if failed:
            raise failed[min(failed)]
        return results

    # -- KV v2 and transit, one request each

    def _kv_read(self, name: str) -> dict[str, Any] | None:
        import hvac.exceptions as bao

        fast = self._fast("GET", f"/v1/{self.mount}/data/{name}")
        if fast is not None and fast[0] == 404:
            return None  # never written, destroyed, or taken back (hvac: InvalidPath)
        if fast is not None and fast[0] == 200 and isinstance((fast[1] or {}).get("data"), dict):
            found = fast[1]["data"].get("data")
            if isinstance(found, dict):
                return found

        def request(client: Any) -> dict[str, Any] | None:
            try:
                answer = client.secrets.kv.v2.read_secret_version(
                    path=name, mount_point=self.mount, raise_on_deleted_version=True
                )
            except bao.InvalidPath:
                return None  # never written, destroyed, or taken back (soft-deleted)
            return answer["data"]["data"]

        return self._call("read", name, request)

    def _kv_write(self, name: str, data: dict[str, str], exclusive: bool, operation: str) -> bool:
        import hvac.exceptions as bao

        tries = 0
        body: dict[str, Any] = {"data": data, **({"options": {"cas": 0}} if exclusive else {})}
        fast = self._fast("POST", f"/v1/{self.mount}/data/{name}", body)
        if fast is not None and fast[0] in (200, 204):
            return True
        if fast is None or fast[0] >= 500:
            tries = 1  # it may have landed with its answer lost: a check-and-set refusal next is looked into

        def request(client: Any) -> bool:
            nonlocal tries
            tries += 1
            try:
                client.secrets.kv.v2.create_or_update_secret(
                    path=name, secret=data, cas=0 if exclusive else None, mount_point=self.mount
                )
            except bao.InvalidRequest as exc:
                if exclusive and "check-and-set" in str(exc):
                    # The name exists (or existed): exclusive creation refused, unless it is our own
                    # write of an earlier try, which landed before its answer was lost (a leader killed).
                    return tries > 1 and self._holds(client, name, data)
                raise
            except bao.Forbidden:
                # A policy without "update" is refused before the check-and-set is looked at when the
                # name exists already: tell that apart from a real refusal by asking whether it exists.
                if exclusive and _exists(client, self.mount, name):
                    return tries > 1 and self._holds(client, name, data)
                raise
            return True

        return self._call(operation, name, request)

    def _holds(self, client: Any, name: str, data: dict[str, str]) -> bool:
        """True when name holds exactly data: our own write (a transit ciphertext or a number's note is unique)."""
        import hvac.exceptions as bao

        try:
            answer = client.secrets.kv.v2.read_secret_version(
                path=name, mount_point=self.mount, raise_on_deleted_version=True
            )
        except (bao.InvalidPath, bao.Forbidden):
            return False
        return bool(answer["data"]["data"] == data)

    def _seal(self, name: str, data: bytes, operation: str) -> dict[str, str]:
        """The stored form of name's bytes: a record key sealed with its address's transit key, else base64.

        One transit request: encrypting to a transit key that does not exist yet
        makes it (the member policies grant create on encrypt/), so an import costs
        two requests a key, not three (issue 30). A record key's entry also names,
        in clear, whom its age file is wrapped to (the ssh-ed25519 tags and how many
        X25519 recipients, as its age header says to anyone who holds a copy), so
        `keys fsck` checks the readers of every key without opening one (wrappings).
        """
        encoded = base64.b64encode(data).decode("ascii")
        if not name.startswith("keys/"):
            return {"b64": encoded}
        key = transit_key(name)
        fast = self._fast("POST", f"/v1/{self.transit}/encrypt/{key}", {"plaintext": encoded})
        if fast is not None and fast[0] == 200 and isinstance((fast[1] or {}).get("data"), dict):
            answer = fast[1]
        else:
            answer = self._call(
                operation,
                name,
                lambda c: c.secrets.transit.encrypt_data(name=key, plaintext=encoded, mount_point=self.transit),
            )
        sealed = {"transit": answer["data"]["ciphertext"], "transit_key": key}
        if data.startswith(AGE_VERSION_LINE):
            from archivectl.crypto import wrapped_for

            tags, x25519 = wrapped_for(data)
            sealed.update({"readers": " ".join(sorted(tags)), "x25519": str(x25519)})
        return sealed

    def _unseal(self, name: str, stored: dict[str, Any]) -> bytes:
        import hvac.exceptions as bao

        if "transit" not in stored:
            return base64.b64decode(stored.get("b64", ""))
        key = transit_key(name)
        fast = self._fast("POST", f"/v1/{self.transit}/decrypt/{key}", {"ciphertext": stored["transit"]})
        if fast is not None and fast[0] == 200 and isinstance((fast[1] or {}).get("data"), dict):
            return base64.b64decode(fast[1]["data"]["plaintext"])

        def request(client: Any) -> bytes:
            try:
                answer = client.secrets.transit.decrypt_data(
                    name=key, ciphertext=stored["transit"], mount_point=self.transit
                )
            except bao.InvalidRequest:
                raise ArchiveError(
                    _("keystore {url}: read {name}: its transit key is destroyed (shredded); it opens no more").format(
                        url=self.url, name=name
                    )
                ) from None
            return base64.b64decode(answer["data"]["plaintext"])

        return self._call("read", name, request)

    # -- the Backend protocol (archivectl.keystore)

    def check(self) -> None:
        """Reach the server with the token, and refuse unless both engines are mounted."""
        for path, kind in ((self.mount, "kv"), (self.transit, "transit")):
            import hvac.exceptions as bao

            def request(client: Any, path: str = path) -> dict[str, Any] | None:
                try:
                    return client.adapter.get(f"/v1/sys/internal/ui/mounts/{path}")["data"]
                except (bao.InvalidPath, bao.InvalidRequest):
                    return None

            found = self._call("check", f"{path}/", request)
            version = str(((found or {}).get("options") or {}).get("version", "1"))
            if found is None or found.get("type") != kind or (kind == "kv" and version != "2"):
                engine = "kv-v2" if kind == "kv" else "transit"
                raise ArchiveError(
                    _(
                        "keystore {url} is missing on the server: no {engine} engine at {path}/ "
                        "(ask the IT person; README: A key-management server)"
                    ).format(url=self.url, engine=engine, path=path)
                )

    def makedirs(self) -> None:
        """Nothing to create: the IT person enables the engines (a staff token may not); check they are there."""
        self.check()

    def create(self, name: str, data: bytes) -> bool:
        """Store a new entry; False (nothing written) if the name exists already."""
        return self.create_many([(name, data)])[0]

    def create_many(self, items: list[tuple[str, bytes]]) -> list[bool]:
        """create() for each item, WINDOW at a time."""
        self._listed.clear()
        for name, _data in items:
            _check_name(name)

        def one(item: tuple[str, bytes]) -> bool:
            name, data = item
            return self._kv_write(name, self._seal(name, data, "create"), True, "create")

        return self._many(one, items)

    def replace(self, name: str, data: bytes) -> None:
        """Write a new version of name: KV v2 versions switch atomically (the mount keeps one: max_versions=1)."""
        self._listed.clear()
        _check_name(name)
        self._kv_write(name, self._seal(name, data, "replace"), False, "replace")

    def read(self, name: str) -> bytes | None:
        """The entry's bytes (a record key opened with transit: the server logs it), or None if it is missing."""
        return self.read_many([name])[0]

    def read_many(self, names: list[str]) -> list[bytes | None]:
        """read() for each name, WINDOW at a time."""
        for name in names:
            _check_name(name)

        def one(name: str) -> bytes | None:
            stored = self._kv_read(name)
            return None if stored is None else self._unseal(name, stored)

        return self._many(one, names)

    def wrappings_many(self, names: list[str]) -> list[bytes | None]:
        """Whom each entry's age file is wrapped to, as an age header without stanza bodies; None if missing.

        Read from what the entry names in clear (one KV read, no transit decrypt: nothing
        is opened, the audit log records no look-up); an entry written before it named
        its readers is opened as read() does. crypto.wrapped_for reads either alike.
        """
        for name in names:
            _check_name(name)

        def one(name: str) -> bytes | None:
            stored = self._kv_read(name)
            if stored is None:
                return None
            if "readers" not in stored:
                return self._unseal(name, stored)
            stanzas = [f"-> ssh-ed25519 {tag}\n" for tag in str(stored["readers"]).split()]
            stanzas += ["-> X25519\n"] * int(stored.get("x25519") or 0)
            return AGE_VERSION_LINE + "".join(stanzas).encode("ascii") + b"---\n"

        return self._many(one, names)

    def sealed_many(self, names: list[str]) -> list[bytes | None]:
        """The entries as the server keeps them (a record key still sealed with transit), for backups.

        A copy made this way opens only while the household's transit key exists:
        `keys shred` deleting it makes every such copy useless. No transit decrypt is made.
        """
        for name in names:
            _check_name(name)

        def one(name: str) -> bytes | None:
            stored = self._kv_read(name)
            return None if stored is None else json.dumps(stored, sort_keys=True).encode("ascii")

        return self._many(one, names)

    def list(self, folder: str) -> list[tuple[str, float]]:
        """(name, last written) of the entries in folder ("" = the top); [] if it has none.

        Asked once per folder until this process writes: `keys fsck` looks at keys/ three
        times (addresses, ages, staged leftovers), one listing of 100,000 entries each.
        """
        if folder:
            _check_name(folder)
        if folder not in self._listed:
            self._listed[folder] = self._list(folder)
        return list(self._listed[folder])

    def names(self, folder: str) -> list[str]:
        """The names list() gives, without their times: a plain LIST, which reads no entry's metadata.

        At 100,000 keys the detailed listing took the server 34 s of CPU and 90 s of wall
        (load ~20), past a request's timeout; the names alone, 2 s and 8 s (issue 30).
        A token that may not list metadata/ (the founder's, README step 4) gets list()'s names.
        """
        if folder:
            _check_name(folder)
        if folder in self._listed:
            return [name for name, _ in self._listed[folder]]
        fast = self._fast("LIST", f"/v1/{self.mount}/metadata/{folder}")
        if fast is not None and fast[0] == 404:
            return []
        found = ((fast[1] or {}).get("data") or {}).get("keys") if fast is not None and fast[0] == 200 else None
        if not isinstance(found, list):
            return [name for name, _ in self.list(folder)]
        return sorted(str(k) for k in found if not str(k).endswith("/"))

    def _list(self, folder: str) -> list[tuple[str, float]]:
        if self.url.startswith("vault"):
            return self._list_one_by_one(folder)
        import hvac.exceptions as bao

        def request(client: Any) -> dict[str, Any]:
            try:
                answer = client.adapter.list(f"/v1/{self.mount}/detailed-metadata/{folder}", timeout=LIST_TIMEOUT)
                return answer["data"]["key_info"]
            except bao.InvalidPath:
                return {}

        found = self._call("list", folder or ".", request) or {}
        return sorted((k, _seconds(v.get("updated_time"))) for k, v in found.items() if not k.endswith("/"))

    def _list_one_by_one(self, folder: str) -> list[tuple[str, float]]:
        """Vault has no detailed-metadata listing: names, then each entry's metadata."""
        import hvac.exceptions as bao

        def names(client: Any) -> list[str]:
            try:
                return client.secrets.kv.v2.list_secrets(path=folder, mount_point=self.mount)["data"]["keys"]
            except bao.InvalidPath:
                return []

        entries = [k for k in self._call("list", folder or ".", names) if not k.endswith("/")]

        def when(entry: str) -> float:
            path = f"{folder}/{entry}" if folder else entry
            meta = self._call(
                "list", path, lambda c: c.secrets.kv.v2.read_secret_metadata(path=path, mount_point=self.mount)
            )
            return _seconds(meta["data"].get("updated_time"))

        return sorted(zip(entries, self._many(when, entries), strict=True))

    def remove(self, name: str) -> bool:
        """Destroy name for good: its transit key (a record key's), then the KV entry with every version.

        Only the shredder policy may (`keys shred`, `keys fsck --remove-orphans`, run
        by the cron's token): a member's token is refused by the server before
        anything changes. Nothing is soft-deleted: no version is left to undelete.
        False if name was gone.
        """
        import hvac.exceptions as bao

        _check_name(name)
        self._listed.clear()

        def metadata(client: Any) -> bool:
            try:
                client.secrets.kv.v2.read_secret_metadata(path=name, mount_point=self.mount)
            except bao.InvalidPath:
                return False
            return True

        existed = self._call("remove", name, metadata)
        if name.startswith("keys/"):
            existed = self._destroy_transit_key(name) or existed
        if existed:
            self._call(
                "remove",
                name,
                lambda c: c.secrets.kv.v2.delete_metadata_and_all_versions(path=name, mount_point=self.mount),
            )
        return existed

    def release(self, name: str) -> bool:
        """Take back what a write that did not commit made: on a key server, nothing is asked, it stays.

        Members may not delete (least privilege: only the shredder destroys, and every
        destruction it makes is a `keys` command's). A record key whose household never
        reached main encrypts nothing in git: `keys fsck` lists it as an orphan, and the
        cron's `keys fsck --remove-orphans` destroys it once a week old. A number stays
        reserved: the series goes on after it, as after any number taken on a key server.
        False: nothing was removed.
        """
        _check_name(name)
        return False

    def _destroy_transit_key(self, name: str) -> bool:
        """Allow deletion of name's transit key, then delete it; False if it was gone already."""
        import hvac.exceptions as bao

        key = transit_key(name)

        def request(client: Any) -> bool:
            try:
                client.secrets.transit.update_key_configuration(
                    name=key, deletion_allowed=True, mount_point=self.transit
                )
            except (bao.InvalidPath, bao.InvalidRequest) as exc:
                gone = ("not found", "could be found")  # Vault's wording, OpenBao's ("no existing key named ...")
                if isinstance(exc, bao.InvalidPath) or any(words in str(exc) for words in gone):
                    return False
                raise
            client.secrets.transit.delete_key(name=key, mount_point=self.transit)
            return True

        return self._call("remove", name, request)

    def close(self) -> None:
        """Close this thread's HTTP session."""
        self._listed.clear()
        client = getattr(self._local, "client", None)
        if client is not None:
            client.adapter.close()
            self._local.client = None
        connection = getattr(self._local, "http", None)
        if connection is not None:
            connection.close()
            self._local.http = None


class _Connection:
    """A keep-alive HTTP/1.1 connection that sends each request whole, in one write, and reads its answer.

    http.client writes a request's head and body apart (two segments, two wake-ups
    of the server) and parses the answer's head with the email package: 0.38 ms of
    client CPU a request against 0.15 ms here, and ~5% more server CPU (issue 30,
    2,000 KV writes, 16 in flight). Only what OpenBao answers is read: a
    Content-Length or chunked body; anything else raises ValueError (the caller
    closes the connection and asks again the hvac way).
    """

    def __init__(self, host: str, port: int, headers: dict[str, str], context: Any = None) -> None:
        self.host, self.port, self.context = host, port, context
        name = f"[{host}]" if ":" in host else host
        lines = [f"Host: {name}:{port}", *(f"{k}: {v}" for k, v in headers.items())]
        self.head = ("\r\n".join(lines) + "\r\n").encode("latin-1")
        self.sock: Any = None
        self.reader: Any = None

    def _connect(self) -> None:
        import socket

        sock = socket.create_connection((self.host, self.port), timeout=TIMEOUT)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.context is not None:
            sock = self.context.wrap_socket(sock, server_hostname=self.host)
        self.sock, self.reader = sock, sock.makefile("rb")

    def exchange(self, method: str, path: str, body: bytes | None) -> tuple[int, bytes]:
        """Send one request and read its answer: (status, body)."""
        if self.sock is None:
            self._connect()
        length = b"" if body is None else b"Content-Length: %d\r\n" % len(body)
        self.sock.sendall(
            b"%s %s HTTP/1.1\r\n%s%s\r\n%s" % (method.encode(), path.encode(), self.head, length, body or b"")
        )
        reader = self.reader
        status_line = reader.readline(65537)
        parts = status_line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            raise ValueError("not an HTTP/1.x answer")
        status = int(parts[1])
        size, chunked, close = None, False, False
        while True:
            line = reader.readline(65537)
            if line in (b"\r\n", b"\n"):
                break
            if not line:
                raise ValueError("connection closed in the answer's head")
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                size = int(value)
            elif name == b"transfer-encoding":
                chunked = value.strip().lower() == b"chunked"
            elif name == b"connection":
                close = value.strip().lower() == b"close"
        if chunked:
            data = bytearray()
            while True:
                step = int(reader.readline(65537).split(b";", 1)[0], 16)
                if step == 0:
                    while reader.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                data += reader.read(step)
                reader.readline(65537)
            data = bytes(data)
        elif size is not None:
            data = reader.read(size)
            if len(data) != size:
                raise ValueError("connection closed in the answer's body")
        elif status in (204, 304) or 100 <= status < 200:
            data = b""
        else:
            raise ValueError("an answer without a length")
        if close:
            self.close()
        return status, data

    def close(self) -> None:
        if self.sock is not None:
            for part in (self.reader, self.sock):
                try:
                    part.close()
                except OSError:
                    pass
            self.sock = self.reader = None


def _active_node(session: Any, address: str, verify: Any) -> str:
    """The cluster's active node, as the node at address names it (sys/leader): talk to it, not a standby.

    A standby may answer a read from its own copy, which lags behind after it was
    down (OpenBao serves reads on standbys): a key it has not seen yet would read
    as missing. No leader known yet (an election) is a ConnectionError: retried.
    """
    import requests

    answer = session.get(f"{address}/v1/sys/leader", timeout=TIMEOUT, verify=verify)
    if answer.status_code >= 500:  # sealed, or starting: as if it were not there
        raise requests.exceptions.ConnectionError(f"sys/leader answered {answer.status_code}")
    answer.raise_for_status()
    found = answer.json()
    if not found.get("ha_enabled") or found.get("is_self"):
        return address
    leader = str(found.get("leader_address") or "").rstrip("/")
    if not leader:
        raise requests.exceptions.ConnectionError("no active node yet")
    return leader


def _command() -> str:
    """The archivectl command running now ("show", "keys fsck", ...), from click's context; "archivectl" if none."""
    try:
        import click
    except ImportError:
        return "archivectl"
    ctx = click.get_current_context(silent=True)
    names = []
    while ctx is not None:
        if ctx.parent is not None and ctx.info_name:
            names.append(ctx.info_name)
        ctx = ctx.parent
    return " ".join(reversed(names)) or "archivectl"


def _seconds(stamp: Any) -> float:
    """An RFC 3339 time from the server (nanoseconds, Z) as seconds since the epoch; 0 if absent."""
    if not stamp:
        return 0.0
    text = re.sub(r"(\.\d{6})\d+", r"\1", str(stamp)).replace("Z", "+00:00")
    try:
        return dt.datetime.fromisoformat(text).timestamp()
    except ValueError:
        return 0.0


# ---------------------------------------------------------------------------- policies

SHREDDER = "archivectl-shredder"
POLICY_PREFIX = "archivectl-"


def mount_of(url: str) -> str | None:
    """The KV mount an openbao:// or vault:// keystore URL names; None for another keystore."""
    if url.split("://", 1)[0] not in SCHEMES:
        return None
    return parse_url(url)[1]


def policies(members: Any, reads: dict[str, set[str]], mount: str) -> dict[str, dict[str, Any]]:
    """One OpenBao policy per staff member (`archivectl-<id>`), plus `archivectl-shredder`.

    reads: which households' keys each member may open (transit-decrypt); who
    that is, is decided by `ops.keys.bao_policies` from main (P7). Least
    privilege: every member but an auditor may reserve numbers, add keys and
    encrypt (clerks add households); only managers and the gm replace a key's
    wrapping (recipients sync); an auditor only reads (and opens what a grant
    gives); no member may delete, destroy or undelete anything. Only the
    shredder policy destroys: a household's transit key and its KV entry with
    every version at once (never a soft delete), and only record keys: a
    number stays reserved for ever (P3).
    """
    transit = mount + TRANSIT_SUFFIX
    out: dict[str, dict[str, Any]] = {}
    for member in members:
        out[POLICY_PREFIX + member.id] = _member_policy(member, mount, transit, sorted(reads.get(member.id, ())))
    out[SHREDDER] = {
        "path": {
            f"{transit}/keys/+/config": {"capabilities": ["update"]},
            f"{transit}/keys/+": {"capabilities": ["delete"]},
            f"{mount}/metadata/keys/+": {"capabilities": ["read", "delete"]},
            f"{mount}/metadata/index/+": {"capabilities": ["read", "delete"]},  # an index key a rotation replaced
        }
    }
    return out


READ_ONLY_ROLES = ("auditor",)  # they add nothing to the keystore


def _member_policy(member: Any, mount: str, transit: str, households: list[str]) -> dict[str, Any]:
    from archivectl.staff import ALL_BUILDINGS_ROLES

    if not member.active:
        return {"path": {f"{mount}/*": {"capabilities": ["deny"]}, f"{transit}/*": {"capabilities": ["deny"]}}}
    every = member.role in ALL_BUILDINGS_ROLES
    adds = member.role not in READ_ONLY_ROLES
    create = ["create"] if adds else []
    paths: dict[str, dict[str, list[str]]] = {
        f"{mount}/data/numbers/+": {"capabilities": [*create, "read"]},
        f"{mount}/data/keys/+": {"capabilities": [*create, "read", *(["update"] if every else [])]},
        # the office's index key (issue 27), wrapped to the readers like a record key: anyone may read the wrapped
        # file (a clerk's add looks whom it opens for); a manager or the gm makes, rotates and re-wraps it
        f"{mount}/data/index/+": {"capabilities": [*(["create", "update"] if every else []), "read"]},
        f"{mount}/detailed-metadata/*": {"capabilities": ["list"]},
        f"{mount}/metadata/*": {"capabilities": ["list", "read"]},
    }
    if adds:
        paths[f"{transit}/keys/+"] = {"capabilities": ["create", "update"]}
        # create: an encrypt makes the transit key when it is missing (a retry after a failover can meet that)
        paths[f"{transit}/encrypt/+"] = {"capabilities": ["create", "update"]}
    if every:
        paths[f"{transit}/decrypt/*"] = {"capabilities": ["update"]}
    else:
        for number in households:
            paths[f"{transit}/decrypt/{number}.*"] = {"capabilities": ["update"]}
    return {"path": paths}


def to_hcl(policy: dict[str, Any]) -> str:
    """A policy document in HCL, the form `bao policy write NAME FILE` reads."""
    blocks = []
    for path, rule in policy["path"].items():
        capabilities = ", ".join(json.dumps(c) for c in rule["capabilities"])
        blocks.append(f'path "{path}" {{\n  capabilities = [{capabilities}]\n}}\n')
    return "\n".join(blocks)
