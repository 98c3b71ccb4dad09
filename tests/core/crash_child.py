"""Child process for the crash test: append batches forever, print each receipt once durable."""

from __future__ import annotations

import random
import sys

from auditkeep.ledger import Ledger


def main() -> None:
    data, seed = sys.argv[1], int(sys.argv[2])
    rng = random.Random(seed)
    lg = Ledger.open(data)
    n = 0
    while True:
        size = rng.choice([1, 3, 50, 200, 700])
        batch = [{"actor": {"id": f"c{seed}", "name": "Crash Tester"}, "action": "crash.test", "metadata": {"n": n + i}} for i in range(size)]
        for r in lg.append(batch, tenant=rng.choice(["t1", "t2"])):
            sys.stdout.write(f"{r.tenant} {r.index} {r.leaf_hash}\n")
        sys.stdout.flush()
        n += size


if __name__ == "__main__":
    main()
