"""``auditkeep.Client``: the remote audit log, with the embedded ledger's interface.

    log = auditkeep.Client("https://audit.example.com", "ak_...", spool_dir="/var/lib/app/audit")
    log.record(actor={"id": "alice"}, action="invoice.approve", resource={"type": "invoice", "id": "42"})

``record()`` validates in the caller's thread and returns the event id at once; a worker
thread delivers in batches, spooling to disk while the server cannot be reached.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from auditkeep import __version__
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
from auditkeep.log.checkpoint import Checkpoint, verify_checkpoint
from auditkeep.log.note import NoteVerifier
from auditkeep.model.event import Event
from auditkeep.model.validate import DEFAULT_LIMITS, Limits
from auditkeep.model.wire import InclusionProof, Page, Record

__all__ = ["Client", "http_headers"]

DEFAULT_SPOOL_MAX_BYTES = 256 * 1024 * 1024
DEFAULT_MAX_BATCH_BYTES = 4 * 1024 * 1024  # well under the server's 10 MiB request limit


def http_headers(api_key: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {api_key}",
        "Content-Type": "application/json",
        "User-Agent": f"auditkeep-python/{__version__}",
    }


class Client:
    """A remote auditkeep log. See the module docstring and ``docs/sdk.md``.

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
        self._http = httpx.Client(
            base_url=self.url, headers=http_headers(api_key), timeout=timeout, verify=tls_verify
        )
        try:
            self._pipe = Pipeline(
                self._http,
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
            self._http.close()
            raise

    # -- recording -----------------------------------------------------------------------------

    def record(self, tenant: str | None = None, **fields: Any) -> str:
        """Queue one event (``actor=``, ``action=``, ``resource=``, ``outcome=``, ...) and
        return its id. Raises ValidationError for a bad event; never for delivery."""
        pipe = self._pipe
        if pipe.closed:
            raise closed_error(pipe.forked)
        t = tenant_name(tenant or self.tenant)
        eid, data = prepare(fields, t, self.limits)
        pipe.put(eid, data if t is None else (t, data))
        return eid

    def record_many(self, events: Iterable[Mapping[str, Any] | Event], tenant: str | None = None) -> list[str]:
        """Queue several events, all or nothing: an invalid one raises and none is queued."""
        pipe = self._pipe
        if pipe.closed:
            raise closed_error(pipe.forked)
        t = tenant_name(tenant or self.tenant)
        prepared = prepare_many(list(events), t, self.limits)
        for eid, data in prepared:
            pipe.put(eid, data if t is None else (t, data))
        return [eid for eid, _ in prepared]

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event recorded so far is delivered; False on timeout (they stay
        queued or spooled, and delivery goes on)."""
        marker = self._pipe.flush_marker()
        return marker.done.wait(timeout) and marker.ok

    def close(self, timeout: float | None = None) -> None:
        """Deliver what is queued for up to ``timeout`` seconds (default ``close_timeout``),
        keep the rest in the spool, and stop. Idempotent; also run at interpreter exit."""
        if self._pipe.forked:
            return  # the connections are the parent's
        self._pipe.close(self._pipe.close_timeout if timeout is None else timeout)
        self._http.close()

    def stats(self) -> Stats:
        return self._pipe.stats()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- reading -------------------------------------------------------------------------------

    def _get(self, path: str, params: Sequence[tuple[str, str]] | None = None) -> httpx.Response:
        r = self._http.get(path, params=list(params) if params else None)
        raise_for_status(r.status_code, r.content, r.headers.get("retry-after"))
        return r

    def _tenant_param(self, tenant: str | None) -> list[tuple[str, str]]:
        t = tenant or self.tenant
        return [("tenant", t)] if t else []

    def search(
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
        """Search events, as :meth:`auditkeep.Ledger.search`; ``cursor`` continues a page."""
        params = search_params(
            tenant or self.tenant, since=since, until=until, received_since=received_since,
            received_until=received_until, actor=actor, action=action,
            resource_type=resource_type, resource_id=resource_id, outcome=outcome,
            category=category, text=text, metadata=metadata, submitter=submitter, order=order, cursor=cursor, limit=limit,
        )  # fmt: skip
        return decode_page(self._get("/v1/events", params).content)

    def get(self, event_id: str, tenant: str | None = None) -> Record:
        """One event by id; NotFound if there is none."""
        return decode_record(self._get(f"/v1/events/{quote(event_id, safe='')}", self._tenant_param(tenant)).content)

    def prove_inclusion(
        self,
        index: int | None = None,
        tenant: str | None = None,
        size: int | None = None,
        *,
        event_id: str | None = None,
    ) -> InclusionProof:
        """The inclusion proof of the entry at ``index`` (or of ``event_id``) in the tree of
        ``size`` (default: the latest checkpoint), checked offline when the client has a
        ``verify_key``."""
        if event_id is not None and size is None:
            # The event with its leaf bytes: the proof is then shown to be of that event.
            r = self._get(f"/v1/events/{quote(event_id, safe='')}", [("proof", "true"), *self._tenant_param(tenant)])
            leaf, proof = decode_event_proof(r.content)
            check_leaf(leaf, proof, event_id)
        else:
            params = proof_params(index, event_id, size) + self._tenant_param(tenant)
            proof = decode_proof(self._get("/v1/proofs/inclusion", params).content)
        if self._verifier is not None:
            check_proof(proof, self._verifier)
        return proof

    def checkpoint(self, tenant: str | None = None) -> str:
        """The latest signed checkpoint note of the tenant's log."""
        return self._get("/v1/checkpoints/latest", self._tenant_param(tenant)).text

    def pubkey(self) -> str:
        """The verifier key the server publishes."""
        return self._get("/v1/pubkey").text.strip()

    def verifier(self) -> NoteVerifier:
        """The ``verify_key`` given, else the server's published key (trust on first use)."""
        if self._verifier is None:
            self._verifier = parse_vkey(self.pubkey())
        return self._verifier

    def verify_checkpoint(self, note: str, tenant: str | None = None) -> Checkpoint:
        """Check a checkpoint's signature (and its origin, when ``tenant`` is given)."""
        v = self.verifier()
        return verify_checkpoint(note, v, origin_of(v, tenant) if tenant else None)
