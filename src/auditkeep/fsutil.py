"""File-system helpers every layer may use (it imports nothing of auditkeep, so the SDK,
the store and the witness share it without an import cycle)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

__all__ = ["fsync_dir"]

# fsync of a directory is refused with these where the file system cannot sync one at all:
# there is no durability to gain, so there is nothing to report either.
_UNSUPPORTED = frozenset({errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP})


def fsync_dir(directory: Path | str) -> None:
    """Make the entries of ``directory`` (a file created, renamed or removed in it) durable.

    The one policy, for every caller: an ``OSError`` (the directory cannot be opened, or the
    sync fails) is raised, because a caller that promises durability must not promise it
    after a failed sync; only a file system that does not support syncing a directory
    (``EINVAL``, ``ENOTSUP``) is passed over silently."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in _UNSUPPORTED:
            raise
    finally:
        os.close(fd)
