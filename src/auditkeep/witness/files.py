"""Durable files of a witness: each written whole or not at all, and on disk before use.

A witness promises never to cosign a rollback. That promise is only as good as its record
of the last size it cosigned, so every change goes to a temporary file that is fsynced,
renamed over the old one and made durable by an fsync of the directory, before the
witness answers. A ``kill -9`` or power loss leaves either the old record or the new one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import IO

from auditkeep.fsutil import fsync_dir

__all__ = ["DirLock", "append_durable", "write_atomic"]


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data``: never a torn or half-written file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def append_durable(path: Path, line: bytes) -> None:
    """Append one line and fsync it (the witness's record of refused checkpoints)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


class DirLock:
    """An exclusive lock on a witness directory for one process (flock: the kernel frees it
    when the process dies, so a ``kill -9`` never leaves a stale lock behind)."""

    def __init__(self, directory: Path) -> None:
        self._path = directory / ".lock"
        self._file: IO[bytes] | None = None

    def acquire(self, blocking: bool = False) -> bool:
        f = open(self._path, "ab")  # noqa: SIM115 - held open for the lock's lifetime
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            f.close()
            return False
        except BaseException:
            f.close()
            raise
        self._file = f
        return True

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None
