"""``auditkeep.AsyncClient``: the client for asyncio applications.

Delivery runs in the same worker thread as the sync client's (so the spool's fsync and
the retries never block the event loop); what is async here is what an async caller
waits on: ``record`` when the queue is full under the ``block`` policy, ``flush``,
``aclose``, and the reads (over ``httpx.AsyncClient``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Unpack
from urllib.parse import quote

import httpx

from auditkeep.client.base import BaseClient
from auditkeep.client.reads import (
    check_leaf,
    check_proof,
    decode_event_proof,
    decode_page,
    decode_proof,
    decode_record,
    origin_of,
    parse_vkey,
    proof_params,
    raise_for_status,
    search_params,
)
from auditkeep.client.worker import Item
from auditkeep.log.checkpoint import Checkpoint, verify_checkpoint
from auditkeep.log.note import NoteVerifier
from auditkeep.model.event import Event
from auditkeep.model.wire import InclusionProof, Page, Record
from auditkeep.query.filters import FilterArgs

__all__ = ["AsyncClient"]


class AsyncClient(BaseClient):
    """The async twin of :class:`auditkeep.Client`; same options (:class:`~auditkeep.client.base.BaseClient`),
    awaitable methods."""

    def _open_reads(self, headers: dict[str, str], timeout: float, tls_verify: bool | str) -> None:
        # Reads use the loop's own client; delivery stays on the worker thread's.
        self._http = httpx.AsyncClient(base_url=self.url, headers=headers, timeout=timeout, verify=tls_verify)

    # -- recording -----------------------------------------------------------------------------

    async def _put(self, eid: str, item: Item) -> None:
        pipe = self._pipe
        if len(pipe.queue) >= pipe.max_queue and pipe.on_full == "block":
            # Wait for room without blocking the loop; then the policy decides as usual.
            deadline = time.monotonic() + pipe.block_timeout
            while len(pipe.queue) >= pipe.max_queue and time.monotonic() < deadline:
                pipe.wake.set()
                await asyncio.sleep(0.005)
            if len(pipe.queue) >= pipe.max_queue:
                pipe.drop(eid, item, "timeout")
                return
        pipe.put(eid, item)

    async def record(self, tenant: str | None = None, **fields: Any) -> str:
        """Queue one event and return its id (see :meth:`auditkeep.Client.record`)."""
        eid, item = self._prepared(fields, tenant)
        await self._put(eid, item)
        return eid

    async def record_many(self, events: Iterable[Mapping[str, Any] | Event], tenant: str | None = None) -> list[str]:
        prepared = self._prepared_many(events, tenant)
        for eid, item in prepared:
            await self._put(eid, item)
        return [eid for eid, _ in prepared]

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything recorded so far is delivered; False on timeout."""
        marker = self._pipe.flush_marker()
        deadline = None if timeout is None else time.monotonic() + timeout
        # Polled, not waited for in a thread: cancelling the caller then leaves nothing behind.
        while not marker.done.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.005)
        return marker.ok

    async def aclose(self, timeout: float | None = None) -> None:
        pipe = self._pipe
        if pipe.forked:
            return  # the connections are the parent's
        await asyncio.to_thread(pipe.close, pipe.close_timeout if timeout is None else timeout)
        self._sync_http.close()
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- reading -------------------------------------------------------------------------------

    async def _get(self, path: str, params: Sequence[tuple[str, str]] | None = None) -> httpx.Response:
        r = await self._http.get(path, params=list(params) if params else None)
        raise_for_status(r.status_code, r.content, r.headers.get("retry-after"))
        return r

    async def search(
        self,
        tenant: str | None = None,
        *,
        order: str = "newest",
        cursor: str | None = None,
        limit: int = 100,
        **filters: Unpack[FilterArgs],
    ) -> Page:
        params = search_params(tenant or self.tenant, filters, order=order, cursor=cursor, limit=limit)
        return decode_page((await self._get("/v1/events", params)).content)

    async def get(self, event_id: str, tenant: str | None = None) -> Record:
        r = await self._get(f"/v1/events/{quote(event_id, safe='')}", self._tenant_param(tenant))
        return decode_record(r.content)

    async def prove_inclusion(
        self,
        index: int | None = None,
        tenant: str | None = None,
        size: int | None = None,
        *,
        event_id: str | None = None,
    ) -> InclusionProof:
        if event_id is not None and size is None:
            # The event with its leaf bytes: the proof is then shown to be of that event.
            r = await self._get(f"/v1/events/{quote(event_id, safe='')}", [("proof", "true"), *self._tenant_param(tenant)])
            leaf, proof = decode_event_proof(r.content)
            check_leaf(leaf, proof, event_id)
        else:
            params = proof_params(index, event_id, size) + self._tenant_param(tenant)
            proof = decode_proof((await self._get("/v1/proofs/inclusion", params)).content)
        if self._verifier is not None:
            check_proof(proof, self._verifier)
        return proof

    async def checkpoint(self, tenant: str | None = None) -> str:
        return (await self._get("/v1/checkpoints/latest", self._tenant_param(tenant))).text

    async def pubkey(self) -> str:
        return (await self._get("/v1/pubkey")).text.strip()

    async def verifier(self) -> NoteVerifier:
        if self._verifier is None:
            self._verifier = parse_vkey(await self.pubkey())
        return self._verifier

    async def verify_checkpoint(self, note: str, tenant: str | None = None) -> Checkpoint:
        v = await self.verifier()
        return verify_checkpoint(note, v, origin_of(v, tenant) if tenant else None)
