"""Child process for the kill -9 test: archive to S3, and stop dead (sleep) right after the
object named on the command line is stored, so the test kills it at that exact point."""

from __future__ import annotations

import sys
import time

from auditkeep.archive.run import run_archive
from auditkeep.archive.target import S3Target
from auditkeep.ledger import Ledger


class Pausing(S3Target):
    """The real S3 target, which reports each stored object and halts after one of them."""

    pause_after = ""

    def put(self, name: str, data: bytes) -> None:
        super().put(name, data)
        sys.stdout.write(f"stored {name}\n")
        sys.stdout.flush()
        if name == self.pause_after:
            time.sleep(600)


def main() -> None:
    data, url, bucket, pause_after, at_ns = sys.argv[1:6]
    target = Pausing(bucket, "", url, "us-east-1", 1, "COMPLIANCE")
    target.pause_after = pause_after
    with Ledger.open(data, create=False) as lg:
        run_archive(lg, target, [], 256, int(at_ns), "default", older_than_ns=1)
    sys.stdout.write("done\n")


if __name__ == "__main__":
    main()
