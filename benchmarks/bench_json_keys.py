"""What refusing duplicate JSON keys costs on the ingest path.

    python benchmarks/bench_json_keys.py [--events 1000] [--rounds 30]

Decodes the same batch of realistic events (``benchmarks/events.py``) the way
``POST /v1/events`` and ``auditkeep ingest`` do, interleaving the variants round by round so
that the machine's load falls on all of them alike:

- ``msgspec decode`` — the decode as ``decode_batch`` did it before the check (the array in one
  call; NDJSON line by line, skipping blank lines);
- ``decode + unique keys`` — :func:`auditkeep.model.validate.decode_batch` (decode, re-encode,
  compare the colons): what every batch pays now;
- ``json pairs hook`` — the obvious alternative, the standard library's parser with an
  ``object_pairs_hook`` that keeps every pair (the check's exact fallback), for comparison.

Prints ms per batch (best and median of the rounds) and events/s for a JSON array and NDJSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import msgspec
import orjson

sys.path.insert(0, str(Path(__file__).parent))
from events import make_event

from auditkeep.model.event import Event
from auditkeep.model.jsonkeys import find_duplicate_key
from auditkeep.model.validate import decode_batch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=30)
    args = ap.parse_args()
    rng = random.Random(1)
    events = [make_event(rng, i) for i in range(args.events)]
    array = orjson.dumps(events)
    lines = b"\n".join(orjson.dumps(e) for e in events)
    many = msgspec.json.Decoder(list[Event])
    one = msgspec.json.Decoder(Event)
    variants: dict[str, Callable[[], object]] = {
        "array: msgspec decode": lambda: many.decode(array.lstrip()),
        "array: decode + unique keys": lambda: decode_batch(array),
        "array: json pairs hook": lambda: find_duplicate_key(array, array=True),
        "ndjson: msgspec decode": lambda: [one.decode(x) for x in lines.lstrip().split(b"\n") if x.strip()],
        "ndjson: decode + unique keys": lambda: decode_batch(lines),
        "ndjson: json pairs hook": lambda: [json.loads(x, object_pairs_hook=list) for x in lines.split(b"\n")],
    }
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(args.rounds):
        for name, f in variants.items():
            t0 = time.perf_counter()
            f()
            times[name].append(time.perf_counter() - t0)
    print(f"{args.events} events/batch, {len(array) / args.events:.0f} bytes/event, {args.rounds} rounds; "
          f"nproc {os.cpu_count()}, {platform.processor() or platform.machine()}, load {os.getloadavg()[0]:.1f}")
    print(f"{'variant':32} {'best ms':>8} {'median ms':>10} {'events/s':>11} {'vs decode':>9}")
    for name, ts in times.items():
        best, med = min(ts), statistics.median(ts)
        base = min(times[name.split(":")[0] + ": msgspec decode"])
        print(f"{name:32} {best * 1000:8.2f} {med * 1000:10.2f} {args.events / best:11,.0f} {best / base:8.2f}x")
    print("(best of the rounds: the machine's load inflates the medians; events/s and the ratio use the best)")


if __name__ == "__main__":
    main()
