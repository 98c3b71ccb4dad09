"""Files of the embedded store, readable by their owner only, whatever the umask.

The data directory holds every event (and, in the quarantine, raw bytes as received): it is
made 0700 and every file in it 0600. SQLite creates its ``-wal`` and ``-shm`` files with the
mode of the database file, so creating the database files 0600 first covers those too; files
left with looser modes by an earlier release are tightened when the store opens.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> None:
    """Create ``path`` (and its parents) if missing; make it 0700 when this user owns it."""
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    _tighten(path, DIR_MODE)


def private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 if missing, else make it 0600 (when possible)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        _tighten(path, FILE_MODE)
        return
    try:
        os.fchmod(fd, FILE_MODE)  # the umask may have taken bits away; never added any
    finally:
        os.close(fd)


def open_private(path: Path, flags: int) -> int:
    """``os.open`` of a file this store writes (a lock file, ...): created 0600."""
    fd = os.open(path, flags | os.O_CREAT, FILE_MODE)
    with contextlib.suppress(OSError):
        if stat.S_IMODE(os.fstat(fd).st_mode) & 0o077:
            os.fchmod(fd, FILE_MODE)
    return fd


def tighten_existing(directory: Path, names: tuple[str, ...]) -> None:
    """Make the named files of ``directory`` that exist 0600 (e.g. a WAL left by an older release)."""
    for name in names:
        path = directory / name
        if path.exists():
            _tighten(path, FILE_MODE)


def _tighten(path: Path, mode: int) -> None:
    # A reader without write access to someone else's files leaves them as they are.
    with contextlib.suppress(OSError):
        st = path.stat()
        if st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) != mode:
            path.chmod(mode)
