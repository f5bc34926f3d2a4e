"""The blind index's per-row cost (issue 27): CPU of sealing one household with and without it, alternated.

What an import's workers do per row (new record key, seal, fingerprints, wrap to 4 readers, dump),
once without an index key and once with one, in the same process, runs alternated, so that the
ratio holds on a busy machine where wall time of a whole import does not.
Run: python bench/bench_blindindex.py [--rows 400] [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
os.environ.setdefault("ARCHIVECTL_LANG", "en")
from conftest import RECORD

from archivectl import blindindex, crypto, records
from archivectl.demo import examples_dir
from archivectl.schema import HouseholdSchema


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=400)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    # bench_import's rows (written by yamlio's own writer) and the tests' RECORD (addresses, a text with a
    # space: written by yaml.dump, where every line costs more)
    row_like = {
        "archive_no": "HO-2026-00001", "building": "B01", "floor": 3, "unit": "0301", "category": "handed-over",
        "occupancy": "owner-occupied", "status": "active",
        "customers": [{"role": "owner", "name": "演示1", "phone": "13900000001", "id_type": "resident-id",
                       "id_number": "110101198005170011"}],
        "emergency_contacts": [{"name": "联系人1", "phone": "13800000001"}],
        "vehicles": [{"plate": "京A00001", "parking_space": "P1"}], "handover_date": "2024-03-01",
    }  # fmt: skip
    for label, record in (("an import row", row_like), ("the tests' RECORD", {
        **yaml.safe_load(RECORD), "archive_no": "HO-2026-00001", "status": "active"
    })):  # fmt: skip
        _measure(label, record, args)


def _measure(label: str, record: dict, args: argparse.Namespace) -> None:
    import json

    schema = HouseholdSchema(
        json.loads((Path(__file__).resolve().parent.parent / "schemas/household.schema.json").read_text())
    )
    text = (examples_dir() / "staff.yaml").read_text()
    readers = [line.split("key:", 1)[1].strip() for line in text.splitlines() if "ssh-ed25519" in line][:4]
    key = blindindex.new_key()

    def row(index: blindindex.IndexKey | None) -> str:
        record_key = crypto.new_record_key()
        stored = records.to_stored(record, schema, record_key, None, index)
        crypto.wrap_record_key(record_key, readers)
        return records.dump(stored)

    took: dict[str, list[float]] = {"without": [], "with": []}
    for _ in range(args.runs):
        for which, index in (("without", None), ("with", key)):
            start = time.process_time()
            for _ in range(args.rows):
                row(index)
            took[which].append((time.process_time() - start) / args.rows * 1e6)
    alone = statistics.median(
        [_timed(lambda: blindindex.of(schema.split(record)[1], schema, key), args.rows) for _ in range(args.runs)]
    )
    was, now = statistics.median(took["without"]), statistics.median(took["with"])
    print(
        f"{label}: sealed, wrapped and dumped, CPU median of {args.runs} x {args.rows}: without blind index "
        f"{was:.0f} us, with {now:.0f} us ({now / was:.3f}x); blindindex.of alone {alone:.1f} us "
        f"(split included); load average {os.getloadavg()[0]:.1f}"
    )
    print("runs without: " + ", ".join(f"{t:.0f}" for t in took["without"]))
    print("runs with:    " + ", ".join(f"{t:.0f}" for t in took["with"]))


def _timed(fn, count: int) -> float:
    start = time.process_time()
    for _ in range(count):
        fn()
    return (time.process_time() - start) / count * 1e6


if __name__ == "__main__":
    main()
