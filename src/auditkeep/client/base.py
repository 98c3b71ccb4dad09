"""What the sync and async SDK clients share (httpx's ``BaseClient`` pattern): the options,
the delivery pipeline and its worker thread, checking what is recorded, and the parameters of
the reads. :class:`~auditkeep.client.client.Client` and
:class:`~auditkeep.client.aio.AsyncClient` add the I/O, blocking or awaitable."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import httpx

from auditkeep import __version__
from auditkeep.client.errors import Undelivered, closed_error
from auditkeep.client.pipeline import OnFull, Pipeline, Stats
from auditkeep.client.prepare import prepare, prepare_many, tenant_name
from auditkeep.client.reads import parse_vkey
from auditkeep.client.worker import Item
from auditkeep.model.event import Event
from auditkeep.model.validate import DEFAULT_LIMITS, Limits

__all__ = ["DEFAULT_MAX_BATCH_BYTES", "DEFAULT_SPOOL_MAX_BYTES", "BaseClient", "http_headers"]

DEFAULT_SPOOL_MAX_BYTES = 256 * 1024 * 1024
DEFAULT_MAX_BATCH_BYTES = 4 * 1024 * 1024  # well under the server's 10 MiB request limit


def http_headers(api_key: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {api_key}",
        "Content-Type": "application/json",
        "User-Agent": f"auditkeep-python/{__version__}",
    }


class BaseClient:
    """The options of a remote auditkeep log, sync or async (``docs/sdk.md``).

    ``tenant`` is the tenant events go to (None: the API key's own tenant). ``verify_key``
    (the server's verifier key text, ``auditkeep pubkey``) makes every proof fetched be
    checked offline; without it, :meth:`verify_checkpoint` trusts the key the server
    publishes. ``source`` is for the gateways (``postgres-gateway``, ``mcp-gateway``): the
    server then applies that source's capture policy instead of ``api``'s.
    """

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
        # The worker thread's connection pool (the sync client reads over it too).
        self._sync_http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout, verify=tls_verify)
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
            self._open_reads(headers, timeout, tls_verify)
        except BaseException:
            self._sync_http.close()
            raise

    def _open_reads(self, headers: dict[str, str], timeout: float, tls_verify: bool | str) -> None:
        """The connection the reads go over; the sync client reads over the worker's."""

    # -- recording -----------------------------------------------------------------------------

    def _prepared(self, fields: dict[str, Any], tenant: str | None) -> tuple[str, Item]:
        """One event checked (ValidationError if not valid), with its id, ready to queue."""
        if self._pipe.closed:
            raise closed_error(self._pipe.forked)
        t = tenant_name(tenant or self.tenant)
        eid, data = prepare(fields, t, self.limits)
        return eid, (data if t is None else (t, data))

    def _prepared_many(
        self, events: Iterable[Mapping[str, Any] | Event], tenant: str | None
    ) -> list[tuple[str, Item]]:
        """Several events checked, all or nothing, ready to queue."""
        if self._pipe.closed:
            raise closed_error(self._pipe.forked)
        t = tenant_name(tenant or self.tenant)
        return [(eid, data if t is None else (t, data)) for eid, data in prepare_many(list(events), t, self.limits)]

    def stats(self) -> Stats:
        return self._pipe.stats()

    # -- reading -------------------------------------------------------------------------------

    def _tenant_param(self, tenant: str | None) -> list[tuple[str, str]]:
        t = tenant or self.tenant
        return [("tenant", t)] if t else []
