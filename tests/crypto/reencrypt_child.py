"""Child process of the re-encryption crash test: re-encrypts tenant 1 of the store at
argv[1] (data directory argv[2]) in small chunks and kills itself with SIGKILL after
argv[3] chunks have been rewritten, before their cursor moves."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from auditkeep.crypto.atrest import EncryptionSettings
from auditkeep.ledger import atrest_rotate
from auditkeep.ledger.atrest import EncryptedStore, at_rest
from auditkeep.store.factory import open_store


def main() -> None:
    location, data, kill_after = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    atrest_rotate.CHUNK = 50
    store = at_rest(open_store(location, create=False), EncryptionSettings(), data)
    assert isinstance(store, EncryptedStore)
    seen = [0]

    def progress(_n: int) -> None:
        seen[0] += 1
        if seen[0] >= kill_after:
            os.kill(os.getpid(), signal.SIGKILL)

    atrest_rotate.reencrypt_tenant(store, 1, "default", progress)
    print("finished without being killed", flush=True)


if __name__ == "__main__":
    main()
