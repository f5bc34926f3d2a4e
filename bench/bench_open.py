"""Opening one household as approve's story does: pyrage alone against crypto (ageread, pyrage for the rest).

Run: python bench/bench_open.py [--households 3000] [--rounds 5]

Per household: its record key unwrapped with the reader's ssh key (wrapped to three readers and the
recovery recipient, as an import wraps it), checked against the record's recipient, and its sealed
block (a padded 2 KiB block, as records.padded writes it) opened. "pyrage" is what crypto did before
ageread: pyrage.decrypt twice and the key's to_public(); "crypto" is crypto.unwrap_record_key,
the key's to_public() and crypto.open_sealed. Rounds alternate; figures are microseconds a household
(median of the rounds, and the range).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyrage

from archivectl import crypto, records

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--households", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory(prefix="bench-open-") as tmp:
        keys = []
        for name in ("mgr01", "gm01", "but01"):
            path = Path(tmp) / name
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
            keys.append((path, path.with_suffix(".pub").read_text().strip()))
        recovery = str(crypto.new_record_key().to_public())
        identity = crypto.load_identity(keys[0][0])
        households = []
        for _ in range(args.households):
            key = crypto.new_record_key()
            blob = crypto.wrap_record_key(key, [public for _, public in keys] + [recovery])
            sealed = crypto.seal(records.padded("customers:\n- name: x\n  role: owner\n"), key.to_public())
            households.append((blob, str(key.to_public()), sealed))

    def with_pyrage() -> None:
        for blob, recipient, sealed in households:
            key = crypto.record_key_from_text(pyrage.decrypt(blob, [identity]).decode())
            assert str(key.to_public()) == recipient
            pyrage.decrypt(sealed.encode("ascii"), [key])

    def with_crypto() -> None:
        for blob, recipient, sealed in households:
            key = crypto.unwrap_record_key(blob, identity)
            assert str(key.to_public()) == recipient
            crypto.open_sealed(sealed, key)

    got: dict[str, list[float]] = {"pyrage": [], "crypto": []}
    for _ in range(args.rounds):
        for name, run in (("pyrage", with_pyrage), ("crypto", with_crypto)):
            start = time.process_time()
            run()
            got[name].append((time.process_time() - start) / args.households * 1e6)
    for name, times in got.items():
        print(f"  {name:7s} {statistics.median(times):7.1f} us a household (CPU; {min(times):.1f}-{max(times):.1f})")
    print(f"  crypto / pyrage: {statistics.median(got['crypto']) / statistics.median(got['pyrage']):.2f}x")


if __name__ == "__main__":
    main()
