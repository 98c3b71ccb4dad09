"""An application process for the SDK's crash tests: records events, writes their ids.

    python sdk_app.py URL KEY SPOOL_DIR ACTION COUNT IDS_FILE MODE

MODE ``deliver``: record COUNT events, flush, close, exit 0 (1 if the flush failed).
MODE ``spool-and-hang``: record COUNT events, wait until all are in the spool, print
SPOOLED, then keep recording until killed.
"""

from __future__ import annotations

import sys
import time

import auditkeep


def main() -> int:
    url, key, spool, action, count, ids_file, mode = sys.argv[1:]
    client = auditkeep.Client(url, key, spool_dir=spool, batch_size=20, flush_interval=0.02)
    with open(ids_file, "a", buffering=1) as ids:

        def record(i: int) -> None:
            eid = client.record(actor={"id": "app"}, action=action, metadata={"i": i})
            ids.write(eid + "\n")

        for i in range(int(count)):
            record(i)
        if mode == "deliver":
            ok = client.flush(timeout=30)
            client.close()
            return 0 if ok else 1
        deadline = time.monotonic() + 30
        while client.stats().spooled < int(count) or client.stats().queued:
            if time.monotonic() > deadline:
                return 2
            time.sleep(0.01)
        print("SPOOLED", flush=True)
        i = int(count)
        while True:  # until SIGKILL
            record(i)
            i += 1
            time.sleep(0.001)


if __name__ == "__main__":
    sys.exit(main())
