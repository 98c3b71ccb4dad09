"""Hand-run benchmark of the log layer (not collected by pytest).

    python tests/log/bench_log.py [max_size]

Prints Frontier.append throughput and proof-generation latency against an
in-memory tile store at 1M and 10M leaves (or up to max_size).
"""

from __future__ import annotations

import hashlib
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence

from auditkeep.log.proofs import clear_cache, consistency_proof, inclusion_proof, tree_root
from auditkeep.log.tiles import Frontier, TileKey


def fake_leaf_hashes(start: int, n: int) -> list[bytes]:
    return [hashlib.sha256(i.to_bytes(8, "big")).digest() for i in range(start, start + n)]


def build(size: int, batch: int = 1000) -> tuple[Frontier, dict[TileKey, bytes], float]:
    f = Frontier()
    store: dict[TileKey, bytes] = {}
    spent = 0.0
    for start in range(0, size, 100_000):
        hashes = fake_leaf_hashes(start, min(100_000, size - start))
        t0 = time.perf_counter()
        for i in range(0, len(hashes), batch):
            store.update(f.append(hashes[i : i + batch]))
        spent += time.perf_counter() - t0
    return f, store, spent


def percentile(samples: Sequence[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def bench_proofs(size: int, store: dict[TileKey, bytes], n: int = 2000) -> None:
    def read(keys: Sequence[TileKey]) -> dict[TileKey, bytes]:
        return {k: store[k] for k in keys}

    rng = random.Random(1)
    clear_cache()
    cases: list[tuple[str, Callable[[], object]]] = [
        ("inclusion", lambda: inclusion_proof(rng.randrange(size), size, read)),
        ("consistency", lambda: consistency_proof(rng.randrange(1, size), size, read)),
        ("tree_root(old size)", lambda: tree_root(rng.randrange(1, size), read)),
    ]
    for name, make in cases:
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            make()
            times.append(time.perf_counter() - t0)
        print(
            f"  {name:<20} size={size:>10,}  median {statistics.median(times) * 1e3:.3f} ms"
            f"  p99 {percentile(times, 0.99) * 1e3:.3f} ms  max {max(times) * 1e3:.3f} ms"
        )


def main() -> None:
    max_size = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000_000
    for size in [1_000_000, 10_000_000]:
        if size > max_size:
            break
        f, store, spent = build(size)
        print(
            f"Frontier.append, batches of 1000: {size / spent:,.0f} leaves/s over {size:,} leaves"
        )
        bench_proofs(size, store)
        del f, store


if __name__ == "__main__":
    main()
