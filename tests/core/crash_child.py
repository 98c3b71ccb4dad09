"""Child processes for the crash test: each appends batches forever and writes each receipt
once durable, until it is killed.

Run as ``crash_child.py``, this is a zygote: it imports auditkeep once and, for each line
``SEED PATH`` on its standard input, forks a child that appends (its receipts to ``PATH``),
prints the child's pid, waits for it to die and prints ``done``. A fresh interpreter per
kill spent ~0.5 s of CPU importing auditkeep; the zygote runs no thread, so forking it is
safe, and the child is the same appending process a fresh one would be."""

from __future__ import annotations

import os
import random
import sys
from typing import TextIO

from auditkeep.ledger import Ledger


def append_forever(data: str, seed: int, out: TextIO) -> None:
    rng = random.Random(seed)
    lg = Ledger.open(data)
    n = 0
    while True:
        size = rng.choice([1, 3, 50, 200, 700])
        batch = [{"actor": {"id": f"c{seed}", "name": "Crash Tester"}, "action": "crash.test", "metadata": {"n": n + i}} for i in range(size)]
        for r in lg.append(batch, tenant=rng.choice(["t1", "t2"])):
            out.write(f"{r.tenant} {r.index} {r.leaf_hash}\n")
        out.flush()
        n += size


def main() -> None:
    data = sys.argv[1]
    for line in sys.stdin:
        seed, path = line.split(maxsplit=1)
        pid = os.fork()
        if pid == 0:
            try:
                with open(path.strip(), "w") as out:
                    append_forever(data, int(seed), out)
            finally:
                os._exit(70)
        print(pid, flush=True)
        os.waitpid(pid, 0)
        print("done", flush=True)


if __name__ == "__main__":
    main()
