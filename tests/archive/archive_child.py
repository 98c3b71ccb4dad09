"""Child process for the kill -9 test: archive to S3, and stop dead (sleep) right after the
object named on the command line (by prefix and suffix) is stored, so the test kills it at that exact point."""

from __future__ import annotations

import sys
import time

from auditkeep.archive.run import run_archive
from auditkeep.archive.target import S3Target
from auditkeep.ledger import Ledger


class Pausing(S3Target):
    """The real S3 target, which reports each stored object and halts after one of them."""

    pause_after = ("", "")  # (name prefix, name suffix) of the object to halt after

    def put(self, name: str, data: bytes) -> None:
        super().put(name, data)
        sys.stdout.write(f"stored {name}\n")
        sys.stdout.flush()
        if name.startswith(self.pause_after[0]) and name.endswith(self.pause_after[1]):
            time.sleep(600)


def main() -> None:
    data, url, bucket, prefix, suffix, at_ns = sys.argv[1:7]
    target = Pausing(bucket, "", url, "us-east-1", 1, "COMPLIANCE")
    target.pause_after = (prefix, suffix)
    with Ledger.open(data, create=False) as lg:
        run_archive(lg, target, [], 256, int(at_ns), "default", older_than_ns=1)
    sys.stdout.write("done\n")


if __name__ == "__main__":
    main()
