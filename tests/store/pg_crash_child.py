"""Child process for the PostgreSQL kill -9 test: submit batches with several in flight
(the writer's pipeline sequences one while another commits) and print each receipt once
its future resolved (durable)."""

from __future__ import annotations

import random
import sys
from collections import deque
from concurrent.futures import Future
from pathlib import Path

from auditkeep.ledger import Ledger, LedgerConfig
from auditkeep.ledger.datadir import establish
from auditkeep.model.wire import Receipt
from auditkeep.store.postgres import PostgresStore


def main() -> None:
    url, data, seed = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    rng = random.Random(seed)
    cfg = LedgerConfig(max_group_events=300)
    store = PostgresStore(url)
    identity, _ = establish(store, data)
    lg = Ledger(store, identity, cfg, background=False)
    inflight: deque[Future[list[Receipt]]] = deque()
    n = 0
    while True:
        size = rng.choice([1, 3, 50, 200])
        batch = [
            {"actor": {"id": f"c{seed}-{(n + i) % 7}"}, "action": "crash.test", "metadata": {"n": n + i}}
            for i in range(size)
        ]
        inflight.append(lg.submit(batch, rng.choice(["t1", "t2"])))
        n += size
        if len(inflight) >= 4:
            for r in inflight.popleft().result():
                sys.stdout.write(f"{r.tenant} {r.index} {r.leaf_hash}\n")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
