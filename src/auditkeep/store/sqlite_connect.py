"""Opening SQLite files read-only, including a copy in a directory nobody may write to."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

from auditkeep.store.base import StoreError


def _writable(directory: Path) -> bool:
    # The mode bits too: root passes os.access on a directory made read-only with chmod a-w.
    try:
        return os.access(directory, os.W_OK) and bool(directory.stat().st_mode & 0o222)
    except OSError:
        return False


def read_only_uri(path: Path) -> str:
    """A URI that opens ``path`` without writing to it.

    ``mode=ro`` where SQLite can use the WAL files (they exist, or the directory may hold
    them). In a directory nobody may write to and without a ``-wal`` file, every committed
    page is in the main file and no writer can open it there (it could not create its WAL),
    so ``immutable=1`` reads it without the lock files it could not create.
    """
    base = "file:" + quote(str(path.absolute()))
    wal = path.with_name(path.name + "-wal")
    shm = path.with_name(path.name + "-shm")
    if _writable(path.parent) or (wal.exists() and shm.exists()):
        return base + "?mode=ro"
    if not wal.exists():
        return base + "?mode=ro&immutable=1"
    raise StoreError(
        f"{wal} exists without {shm.name} in a read-only directory: copy the data directory somewhere writable "
        "(or copy it from a stopped server)"
    )
