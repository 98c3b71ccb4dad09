"""``AuditLog``: what the embedded ledger and the remote client both are.

Code that takes an ``AuditLog`` runs unchanged on ``auditkeep.open(path)`` and on
``auditkeep.Client(url, key)``; switching is one line. The one difference is what
``record`` returns: the embedded ledger answers once the event is durable, with a
:class:`~auditkeep.Receipt`; the client answers at once, with the event id (the receipt
comes later, from the server). :func:`event_id` reads the id from either.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, Unpack, runtime_checkable

from auditkeep.log.checkpoint import Checkpoint
from auditkeep.model.event import Event
from auditkeep.model.wire import InclusionProof, Page, Receipt
from auditkeep.query.filters import FilterArgs

__all__ = ["AsyncAuditLog", "AuditLog", "Recorded", "event_id"]

Recorded = str | Receipt
"""What ``record`` returns: the event id (remote) or the durable receipt (embedded)."""


@runtime_checkable
class AuditLog(Protocol):
    """Record, search and prove events in an audit log, embedded or remote."""

    def record(self, tenant: str = ..., **fields: Any) -> Recorded: ...

    def record_many(self, events: Iterable[Mapping[str, Any] | Event], tenant: str = ...) -> Sequence[Recorded]: ...

    def search(
        self,
        tenant: str = ...,
        *,
        order: str = ...,
        cursor: str | None = ...,
        limit: int = ...,
        **filters: Unpack[FilterArgs],
    ) -> Page: ...

    def prove_inclusion(
        self,
        index: int | None = ...,
        tenant: str = ...,
        size: int | None = ...,
        *,
        event_id: str | None = ...,
    ) -> InclusionProof: ...

    def verify_checkpoint(self, note: str, tenant: str | None = ...) -> Checkpoint: ...


@runtime_checkable
class AsyncAuditLog(Protocol):
    """The same operations, awaitable (``auditkeep.AsyncClient``)."""

    async def record(self, tenant: str | None = ..., **fields: Any) -> str: ...

    async def record_many(
        self, events: Iterable[Mapping[str, Any] | Event], tenant: str | None = ...
    ) -> Sequence[str]: ...

    async def search(
        self,
        tenant: str | None = ...,
        *,
        order: str = ...,
        cursor: str | None = ...,
        limit: int = ...,
        **filters: Unpack[FilterArgs],
    ) -> Page: ...

    async def prove_inclusion(
        self,
        index: int | None = ...,
        tenant: str | None = ...,
        size: int | None = ...,
        *,
        event_id: str | None = ...,
    ) -> InclusionProof: ...

    async def verify_checkpoint(self, note: str, tenant: str | None = ...) -> Checkpoint: ...


def event_id(recorded: Recorded) -> str:
    """The event id of what ``record`` returned, embedded or remote."""
    return recorded if isinstance(recorded, str) else recorded.id


if TYPE_CHECKING:  # mypy proves both implementations satisfy the protocol
    from auditkeep.client.aio import AsyncClient
    from auditkeep.client.client import Client
    from auditkeep.ledger.ledger import Ledger

    def _conforms(ledger: Ledger, client: Client, aclient: AsyncClient) -> tuple[AuditLog, AuditLog, AsyncAuditLog]:
        return ledger, client, aclient
