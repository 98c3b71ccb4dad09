"""The embedded store's leases: one holder of a job (projection, alert runner, retention)
among the processes of this machine, as an exclusive ``flock`` on a file of the data
directory that the kernel drops when its holder dies."""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

from auditkeep.store.files import open_private


class FileLease:
    def __init__(self, fh: IO[bytes]) -> None:
        self._fh: IO[bytes] | None = fh

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()  # closing the descriptor drops the lock
            self._fh = None


def file_lease(directory: Path, name: str) -> FileLease | None:
    """An exclusive ``flock`` on ``<directory>/<name>.lock``: held by one process of this
    machine, dropped by the kernel when that process dies; None while another holds it."""
    import fcntl

    if not name.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"lease name {name!r}: letters, digits, - and _ only")
    fh = os.fdopen(open_private(directory / f"{name}.lock", os.O_WRONLY | os.O_APPEND), "ab")
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        return None
    fh.truncate(0)
    fh.write(f"{os.getpid()}\n".encode())
    fh.flush()
    return FileLease(fh)
