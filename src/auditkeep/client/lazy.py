"""``LazyClient``: one :class:`~auditkeep.client.client.Client` per process, made on first use.

Web servers that fork workers (gunicorn, uWSGI) and run several threads in each make
"create the client lazily" easy to get wrong: threads racing through an unguarded
``if client is None`` each make their own client, each with its worker thread, its
connections and its spool slot. A ``LazyClient`` made once at import, even in a master
process that forks later (gunicorn ``--preload``), builds its client on the first call
in each process, under a lock, and builds a new one in a forked child: the parent's
worker thread and connections do not exist there.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any

from auditkeep.client.client import Client
from auditkeep.client.pipeline import Stats
from auditkeep.log.checkpoint import Checkpoint
from auditkeep.log.note import NoteVerifier
from auditkeep.model.event import Event
from auditkeep.model.wire import InclusionProof, Page, Record

__all__ = ["LazyClient"]

_instances: weakref.WeakSet[LazyClient] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # A thread of the parent may have held the lock at the fork: it never lets go here.
    for lazy in list(_instances):
        lazy._reset()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class LazyClient:
    """Takes :class:`Client`'s arguments; :attr:`client` is this process's client, made
    the first time it is needed. Every method of ``Client`` is here and goes to it."""

    def __init__(self, url: str, api_key: str, tenant: str | None = None, **options: Any) -> None:
        self._args = (url, api_key, tenant)
        self._options = options
        self._lock = threading.Lock()
        self._client: Client | None = None
        self._pid = 0
        _instances.add(self)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._client = None
        self._pid = 0

    @property
    def client(self) -> Client:
        """This process's client (made now if it is the first call here)."""
        c = self._client
        if c is not None and self._pid == os.getpid():
            return c
        with self._lock:
            if self._client is None or self._pid != os.getpid():
                self._client = Client(*self._args, **self._options)
                self._pid = os.getpid()
            return self._client

    @property
    def started(self) -> bool:
        """Whether this process has made its client."""
        return self._client is not None and self._pid == os.getpid()

    # -- recording ---------------------------------------------------------------------

    def record(self, tenant: str | None = None, **fields: Any) -> str:
        return self.client.record(tenant, **fields)

    def record_many(self, events: Iterable[Mapping[str, Any] | Event], tenant: str | None = None) -> list[str]:
        return self.client.record_many(events, tenant)

    def flush(self, timeout: float | None = None) -> bool:
        """As :meth:`Client.flush`; True at once when this process recorded nothing."""
        return self.client.flush(timeout) if self.started else True

    def close(self, timeout: float | None = None) -> None:
        """Close this process's client, if it made one (a later call makes a new one)."""
        with self._lock:
            c, started = self._client, self.started
            self._client = None
        if c is not None and started:
            c.close(timeout)

    def stats(self) -> Stats:
        return self.client.stats()

    def __enter__(self) -> LazyClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- reading -----------------------------------------------------------------------

    def search(self, tenant: str | None = None, **query: Any) -> Page:
        return self.client.search(tenant, **query)

    def get(self, event_id: str, tenant: str | None = None) -> Record:
        return self.client.get(event_id, tenant)

    def prove_inclusion(
        self,
        index: int | None = None,
        tenant: str | None = None,
        size: int | None = None,
        *,
        event_id: str | None = None,
    ) -> InclusionProof:
        return self.client.prove_inclusion(index, tenant, size, event_id=event_id)

    def checkpoint(self, tenant: str | None = None) -> str:
        return self.client.checkpoint(tenant)

    def pubkey(self) -> str:
        return self.client.pubkey()

    def verifier(self) -> NoteVerifier:
        return self.client.verifier()

    def verify_checkpoint(self, note: str, tenant: str | None = None) -> Checkpoint:
        return self.client.verify_checkpoint(note, tenant)


def _check_protocol(lazy: LazyClient) -> Sequence[object]:  # pragma: no cover - typing only
    from auditkeep.client.protocol import AuditLog

    log: AuditLog = lazy
    return [log]
