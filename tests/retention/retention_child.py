"""Child process for the kill -9 test: run retention in small chunks, print a line per chunk."""

from __future__ import annotations

import sys

from auditkeep.ledger import Ledger
from auditkeep.retention import load_policies, run_retention


def main() -> None:
    data, at_ns = sys.argv[1], int(sys.argv[2])
    policies = load_policies([{"action": "user.*", "delete_after": "1d"}])
    with Ledger.open(data, create=False) as lg:

        def progress(n: int) -> None:
            sys.stdout.write(f"chunk {n}\n")
            sys.stdout.flush()

        run_retention(lg, policies, at_ns, "default", progress, chunk_size=300)
    sys.stdout.write("done\n")


if __name__ == "__main__":
    main()
