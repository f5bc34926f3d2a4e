"""The key layout on an OpenBao server at scale: storage, server memory, read latency (issue 30 item 3).

One single-node OpenBao server with integrated (raft) storage on 127.0.0.1 per layout and size
(tests/baoserver.py Cluster of one node: a real data directory to measure), filled the way
archivectl fills it, then read back:

- `household`: today's layout (archivectl/openbao.py). Per household one KV entry
  `keys/<no>.<record-key recipient>.age` holding the record key age-wrapped to *all* its
  readers at once (the age header has one stanza per reader), sealed with a transit key
  of its own (`<no>.<recipient[:20]>`), and one `numbers/<no>` entry. The address's
  recipient is the record key's, not a reader's: one entry per household already.
- `per-reader`: the alternative the issue names, one KV entry per household *and reader*
  (here 4 readers: two butlers or cashiers, a manager, the recovery recipient), each
  sealed with the household's one transit key, plus the number. A read opens one entry.
- `shared-transit`: today's entries, but one transit key per building (20 buildings)
  instead of one per household: what the per-household transit keys cost. (It would
  lose what they give: deleting a household's transit key kills every copy of its
  sealed entry, backups included.)

Each entry is written through archivectl's own client (OpenBaoBackend.create_many, 16
requests in flight, or --window) or the same requests for the other layouts. With --grow, one
server per layout is filled size after size (--households ascending) and measured at each:
the growth from one size to the next, without filling the first sizes again. Measured: the growth of the
raft data directory (bbolt files grow in preallocated steps), the size of a raft snapshot
(what the data takes, compacted), the server's RSS and peak RSS
(VmRSS/VmHWM), write rate, and the latency of reading one household's key as `show
--reveal` does (KV read + transit decrypt), 2,000 random households one after another,
p50/p99.

Run: python bench/bench_openbao_layout.py [--households 10000 100000] [--layouts household per-reader shared-transit]
[--window N] [--grow] [--transit-cache N] (transit's in-memory key cache bounded to N keys; default unbounded,
as the server ships)
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from baoserver import Cluster
from common import machine

from archivectl import openbao
from archivectl.openbao import OpenBaoBackend

READERS = 4
BUILDINGS = 20
SAMPLES = 2000


def wrapped(readers: int) -> bytes:
    """A stand-in of an age file wrapped to `readers` recipients: its size (a header stanza each, ~120 bytes)."""
    return b"age-encryption.org/v1\n" + os.urandom(120 * readers + 100)


def recipient(i: int, who: int = 0) -> str:
    return "age1" + f"{i:08d}r{who}".ljust(58, "q")


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def rss(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of the server in bytes."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) * 1024
    return found["VmRSS"], found["VmHWM"]


def number_of(i: int) -> str:
    return f"HO-2026-{i:05d}" if i < 100000 else f"NH-2026-{i - 100000:05d}"


def fill(backend: OpenBaoBackend, layout: str, count: int, first: int = 0) -> None:
    """Households first..count-1 in layout, in batches of 2,000 (archivectl's import stores keys in batches too)."""
    batch = 2000
    for start in range(first, count, batch):
        households = range(start, min(start + batch, count))
        numbers = [(f"numbers/{number_of(i)}", b"reserved") for i in households]
        if layout == "household":  # archivectl's own code, as it is
            backend.create_many(numbers + [(key_name(i), wrapped(READERS)) for i in households])
            continue
        backend.create_many(numbers)
        if layout == "per-reader":
            entries = [(key_name(i, r), f"{number_of(i)}.household", 1) for i in households for r in range(READERS)]
        else:
            entries = [(key_name(i), f"building-B{i % BUILDINGS:02d}", READERS) for i in households]
        _sealed_with(backend, entries)


def key_name(i: int, reader: int = 0) -> str:
    return f"keys/{number_of(i)}.{recipient(i, reader)}.age"


def _sealed_with(backend: OpenBaoBackend, entries: list[tuple[str, str, int]]) -> None:
    """KV entries each sealed with the named transit key, by the same requests the backend makes."""

    def one(entry: tuple[str, str, int]) -> None:
        name, key, readers = entry
        encoded = base64.b64encode(wrapped(readers)).decode()
        answer = backend._call(
            "create",
            name,
            lambda c: c.secrets.transit.encrypt_data(name=key, plaintext=encoded, mount_point=backend.transit),
        )
        backend._kv_write(name, {"transit": answer["data"]["ciphertext"], "transit_key": key}, True, "create")

    with ThreadPoolExecutor(openbao.WINDOW) as pool:
        list(pool.map(one, entries))


def read_latencies(backend: OpenBaoBackend, layout: str, count: int) -> list[float]:
    rng = random.Random(7)
    out = []
    for _ in range(SAMPLES):
        i = rng.randrange(count)
        name = key_name(i)
        start = time.perf_counter()
        if layout != "household":
            stored = backend._kv_read(name)
            assert stored is not None
            backend._call(
                "read",
                name,
                lambda c, s=stored: c.secrets.transit.decrypt_data(
                    name=s["transit_key"], ciphertext=s["transit"], mount_point=backend.transit
                ),
            )
        else:
            assert backend.read(name) is not None
        out.append(time.perf_counter() - start)
    return out


def measure(base: Path, layout: str, counts: list[int], transit_cache: int = 0) -> Iterator[dict]:
    """One server filled to each of counts in turn (ascending), measured at each."""
    cluster = Cluster(base / f"{layout}-{counts[-1]}-{transit_cache}", size=1)
    try:
        node = cluster.nodes[0]
        assert node.process is not None
        if transit_cache:  # transit keeps every key it has used in memory unless told a size (an LRU)
            cluster.root(node).write_data("estate-transit/cache-config", data={"size": transit_cache})
        os.environ["BAO_TOKEN"] = cluster.root_token
        url = f"openbao+http://127.0.0.1:{node.port}/estate"
        backend = OpenBaoBackend(url)
        empty = dir_size(node.directory / "data")
        filled, seconds, server_cpu = 0, 0.0, 0.0
        for count in counts:
            start, cpu = time.perf_counter(), _cpu(node.process.pid)
            fill(backend, layout, count, filled)
            seconds += time.perf_counter() - start
            server_cpu += _cpu(node.process.pid) - cpu
            filled = count
            time.sleep(2)
            latencies = sorted(read_latencies(backend, layout, count))
            now, peak = rss(node.process.pid)
            snapshot = _snapshot_size(node.address, cluster.root_token)
            yield {
                "layout": layout + (f" (transit cache {transit_cache})" if transit_cache else ""),
                "households": count,
                "window": openbao.WINDOW,
                "write_s": round(seconds, 1),
                "households_per_s": round(count / seconds),
                "server_cpu_ms_per_household": round(1000 * server_cpu / count, 2),
                "data_dir_mb": round((dir_size(node.directory / "data") - empty) / 1e6, 1),
                "snapshot_mb": round(snapshot / 1e6, 1),
                "rss_mb": round(now / 1e6),
                "peak_rss_mb": round(peak / 1e6),
                "read_p50_ms": round(statistics.median(latencies) * 1000, 2),
                "read_p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
                "load": round(os.getloadavg()[0], 1),
            }
    finally:
        cluster.stop()


def _snapshot_size(address: str, token: str) -> int:
    """Bytes of a raft snapshot, streamed (at 50,000 households one took longer than hvac's 30 s timeout)."""
    import requests

    size = 0
    with requests.get(
        f"{address}/v1/sys/storage/raft/snapshot", headers={"X-Vault-Token": token}, stream=True, timeout=600
    ) as answer:
        answer.raise_for_status()
        for chunk in answer.iter_content(1 << 20):
            size += len(chunk)
    return size


def _cpu(pid: int) -> float:
    """User + system CPU seconds of a running process (the server), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--households", type=int, nargs="+", default=[10000, 100000])
    parser.add_argument("--layouts", nargs="+", default=["household", "per-reader", "shared-transit"])
    parser.add_argument("--transit-cache", type=int, default=0, help="estate-transit/cache-config size (0: unbounded)")
    parser.add_argument("--window", type=int, default=openbao.WINDOW, help="requests in flight while filling")
    parser.add_argument("--grow", action="store_true", help="one server per layout, filled size after size")
    args = parser.parse_args()
    openbao.WINDOW = args.window
    print(f"# {machine()}, {time.strftime('%Y-%m-%d %H:%M')} UTC, load {os.getloadavg()}", flush=True)
    sizes = sorted(args.households)
    with tempfile.TemporaryDirectory() as tmp:
        if args.grow:
            for layout in args.layouts:
                for row in measure(Path(tmp), layout, sizes, args.transit_cache):
                    print(json.dumps(row), flush=True)
            return
        for count in args.households:
            for layout in args.layouts:
                for row in measure(Path(tmp), layout, [count], args.transit_cache):
                    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
