"""uid -> user name and gid -> group name, from passwd and group files.

The collector runs on the host that wrote the audit log, so that host's ``/etc/passwd``
names its uids. A missing or unreadable file names nothing; it is never an error. A file
that changes (a user added) is read again, checked at most every ``refresh`` seconds.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path


class _IdFile:
    def __init__(
        self, path: str | os.PathLike[str] | None, refresh: float, clock: Callable[[], float]
    ) -> None:
        self.path = None if path is None else Path(path)
        self.refresh = refresh
        self.clock = clock
        self.names: dict[str, str] = {}
        self.stamp: tuple[int, int] | None = None
        self.checked = -float("inf")

    def lookup(self, number: str) -> str | None:
        if self.path is None:
            return None
        now = self.clock()
        if now - self.checked >= self.refresh:
            self.checked = now
            self._reload()
        return self.names.get(number)

    def _reload(self) -> None:
        assert self.path is not None
        try:
            st = self.path.stat()
        except OSError:
            self.names, self.stamp = {}, None
            return
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == self.stamp:
            return
        names: dict[str, str] = {}
        try:
            with self.path.open("r", encoding="utf-8", errors="replace") as f:
                for line in f:
                    # name:password:id:... (both passwd and group files)
                    parts = line.split(":", 3)
                    if len(parts) >= 3 and parts[2].strip().isdigit() and parts[0]:
                        names.setdefault(parts[2].strip(), parts[0])
        except OSError:
            names = {}
        self.names, self.stamp = names, stamp


class UserDirectory:
    """Names for uids and gids, read from ``passwd`` and ``group`` (either may be None)."""

    def __init__(
        self,
        passwd: str | os.PathLike[str] | None = "/etc/passwd",
        group: str | os.PathLike[str] | None = "/etc/group",
        refresh: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._users = _IdFile(passwd, refresh, clock)
        self._groups = _IdFile(group, refresh, clock)

    def user(self, uid: str) -> str | None:
        """The account name of ``uid`` (decimal text), or None."""
        return self._users.lookup(uid)

    def group(self, gid: str) -> str | None:
        return self._groups.lookup(gid)
