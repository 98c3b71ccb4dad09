"""``auditkeep.AsyncClient``: the client for asyncio applications.

Delivery runs in the same worker thread as the sync client's (so the spool's fsync and
the retries never block the event loop); what is async here is what an async caller
waits on: ``record`` when the queue is full under the ``block`` policy, ``flush``,
``aclose``, and the reads (over ``httpx.AsyncClient``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from auditkeep.client.client import DEFAULT_MAX_BATCH_BYTES, DEFAULT_SPOOL_MAX_BYTES, http_headers
from auditkeep.client.errors import Undelivered, closed_error
from auditkeep.client.pipeline import OnFull, Pipeline, Stats
from auditkeep.client.prepare import prepare, prepare_many, tenant_name
from auditkeep.client.reads import (
    TimeArg,
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
from auditkeep.model.validate import DEFAULT_LIMITS, Limits
from auditkeep.model.wire import InclusionProof, Page, Record

__all__ = ["AsyncClient"]


class AsyncClient:
    """The async twin of :class:`auditkeep.Client`; same options, awaitable methods."""

    def __init__(
        self,
        url: str,
        api_key: str,
        tenant: str | None = None,
        *,
        spool_dir: str | Path | None = None,
        batch_size: int = 500,
        flush_interval: float = 0.2,
        max_queue: int = 10_000,
        spool_max_bytes: int = DEFAULT_SPOOL_MAX_BYTES,
        on_full: OnFull = "block",
        block_timeout: float = 1.0,
        on_drop: Callable[[Undelivered], None] | None = None,
        on_reject: Callable[[Undelivered], None] | None = None,
        timeout: float = 10.0,
        close_timeout: float = 5.0,
        verify_key: str | None = None,
        limits: Limits = DEFAULT_LIMITS,
        max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
        tls_verify: bool | str = True,
        source: str | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.tenant = tenant_name(tenant)
        self.limits = limits
        self._verifier = parse_vkey(verify_key) if verify_key else None
        headers = http_headers(api_key)
        # The worker thread's connection pool; reads use the loop's own client below.
        self._sync_http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout, verify=tls_verify)
        self._http = httpx.AsyncClient(base_url=self.url, headers=headers, timeout=timeout, verify=tls_verify)
        try:
            self._pipe = Pipeline(
                self._sync_http,
                spool_dir=spool_dir,
                spool_max_bytes=spool_max_bytes,
                batch_size=batch_size,
                max_batch_bytes=max_batch_bytes,
                flush_interval=flush_interval,
                max_queue=max_queue,
                on_full=on_full,
                block_timeout=block_timeout,
                on_drop=on_drop,
                on_reject=on_reject,
                close_timeout=close_timeout,
                source=source,
            )
        except BaseException:
            self._sync_http.close()
            raise

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
        if self._pipe.closed:
            raise closed_error(self._pipe.forked)
        t = tenant_name(tenant or self.tenant)
        eid, data = prepare(fields, t, self.limits)
        await self._put(eid, data if t is None else (t, data))
        return eid

    async def record_many(self, events: Iterable[Mapping[str, Any] | Event], tenant: str | None = None) -> list[str]:
        if self._pipe.closed:
            raise closed_error(self._pipe.forked)
        t = tenant_name(tenant or self.tenant)
        prepared = prepare_many(list(events), t, self.limits)
        for eid, data in prepared:
            await self._put(eid, data if t is None else (t, data))
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

    def stats(self) -> Stats:
        return self._pipe.stats()

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

    def _tenant_param(self, tenant: str | None) -> list[tuple[str, str]]:
        t = tenant or self.tenant
        return [("tenant", t)] if t else []

    async def search(
        self,
        tenant: str | None = None,
        *,
        since: TimeArg = None,
        until: TimeArg = None,
        received_since: TimeArg = None,
        received_until: TimeArg = None,
        actor: str | None = None,
        action: str | None = None,
        resource_type: str | None = None,
        resource_id: str | None = None,
        outcome: str | None = None,
        category: str | None = None,
        text: str | None = None,
        metadata: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
        submitter: str | None = None,
        order: str = "newest",
        cursor: str | None = None,
        limit: int = 100,
    ) -> Page:
        params = search_params(
            tenant or self.tenant, since=since, until=until, received_since=received_since,
            received_until=received_until, actor=actor, action=action,
            resource_type=resource_type, resource_id=resource_id, outcome=outcome,
            category=category, text=text, metadata=metadata, submitter=submitter, order=order, cursor=cursor, limit=limit,
        )  # fmt: skip
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
