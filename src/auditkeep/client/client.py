"""``auditkeep.Client``: the remote audit log, with the embedded ledger's interface.

    log = auditkeep.Client("https://audit.example.com", "ak_...", spool_dir="/var/lib/app/audit")
    log.record(actor={"id": "alice"}, action="invoice.approve", resource={"type": "invoice", "id": "42"})

``record()`` validates in the caller's thread and returns the event id at once; a worker
thread delivers in batches, spooling to disk while the server cannot be reached.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Unpack
from urllib.parse import quote

import httpx

from auditkeep.client.base import (
    DEFAULT_MAX_BATCH_BYTES,
    DEFAULT_SPOOL_MAX_BYTES,
    BaseClient,
    http_headers,
)
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
from auditkeep.log.checkpoint import Checkpoint, verify_checkpoint
from auditkeep.log.note import NoteVerifier
from auditkeep.model.event import Event
from auditkeep.model.wire import InclusionProof, Page, Record
from auditkeep.query.filters import FilterArgs

__all__ = ["DEFAULT_MAX_BATCH_BYTES", "DEFAULT_SPOOL_MAX_BYTES", "Client", "http_headers"]


class Client(BaseClient):
    """A remote auditkeep log. See the module docstring and ``docs/sdk.md``; the options are
    :class:`~auditkeep.client.base.BaseClient`'s."""

    def _open_reads(self, headers: dict[str, str], timeout: float, tls_verify: bool | str) -> None:
        self._http = self._sync_http

    # -- recording -----------------------------------------------------------------------------

    def record(self, tenant: str | None = None, **fields: Any) -> str:
        """Queue one event (``actor=``, ``action=``, ``resource=``, ``outcome=``, ...) and
        return its id. Raises ValidationError for a bad event; never for delivery."""
        eid, item = self._prepared(fields, tenant)
        self._pipe.put(eid, item)
        return eid

    def record_many(self, events: Iterable[Mapping[str, Any] | Event], tenant: str | None = None) -> list[str]:
        """Queue several events, all or nothing: an invalid one raises and none is queued."""
        prepared = self._prepared_many(events, tenant)
        for eid, item in prepared:
            self._pipe.put(eid, item)
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

    def search(
        self,
        tenant: str | None = None,
        *,
        order: str = "newest",
        cursor: str | None = None,
        limit: int = 100,
        **filters: Unpack[FilterArgs],
    ) -> Page:
        """Search events, as :meth:`auditkeep.Ledger.search`; ``cursor`` continues a page."""
        params = search_params(tenant or self.tenant, filters, order=order, cursor=cursor, limit=limit)
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
