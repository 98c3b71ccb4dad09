"""The log's side of C2SP tlog-witness: send each new checkpoint to the configured witnesses.

A thread of the server, never in the append path: ingest goes on whatever the witnesses do.
For each tenant log and each witness it keeps the size that witness cosigned last (learned
from a 200, or from the body of a 409, which is how the spec lets a client start knowing
nothing), and when a newer checkpoint is stored it posts the old size, a consistency proof
from it and the checkpoint. The cosignature that comes back is checked against the
witness's configured key before it is stored beside the checkpoint. A failing witness is
retried with exponential backoff (and jitter), up to ``retry_max`` seconds apart.

On several nodes sharing PostgreSQL one submitter runs, under the store lease
``witness-submitter``; the others stand by and take over when it goes away.
"""

from __future__ import annotations

import base64
import logging
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx

from auditkeep.errors import AuditkeepError, TransportError
from auditkeep.ledger.cosigned import add_cosignature
from auditkeep.log.cosignature import CosignatureVerifier
from auditkeep.log.note import NoteError
from auditkeep.log.proofs import consistency_proof
from auditkeep.store.base import CheckpointRow, Head, Lease, Store

__all__ = ["LEASE", "WitnessEndpoint", "WitnessProgress", "WitnessSubmitter"]

log = logging.getLogger("auditkeep.witness.submit")

LEASE = "witness-submitter"
MAX_RESPONSE_BYTES = 16 * 1024


@dataclass(frozen=True)
class WitnessEndpoint:
    url: str  # submission prefix
    verifier: CosignatureVerifier

    @property
    def name(self) -> str:
        return self.verifier.name


@dataclass
class WitnessProgress:
    """What the submitter knows of one witness for one tenant log."""

    cosigned_size: int | None = None  # None until the witness told us (200 or 409)
    checkpoint_size: int = 0  # the newest checkpoint of the log the submitter saw
    failures: int = 0
    retry_at: float = 0.0
    last_error: str | None = None
    cosigned_at: float = field(default=0.0)


class _Stop(AuditkeepError):
    pass


class _UnknownLog(TransportError, RuntimeError):
    """The witness does not know this tenant's log (no `witness add-log` for it): asked
    again only every retry_max seconds."""


class WitnessSubmitter:
    def __init__(
        self,
        store: Store,
        witnesses: Sequence[WitnessEndpoint],
        *,
        timeout: float = 10.0,
        retry_base: float = 0.5,
        retry_max: float = 60.0,
        poll_interval: float = 0.5,
        quorum: int = 1,
    ) -> None:
        self.store = store
        self.quorum = quorum
        self.witnesses = list(witnesses)
        self.timeout = timeout
        self.retry_base = retry_base
        self.retry_max = retry_max
        self.poll_interval = poll_interval
        self._progress: dict[tuple[str, int], WitnessProgress] = {}
        self._tenants: dict[int, str] = {}
        self._witnessed: dict[str, int] = {}  # tenant -> newest checkpoint with the quorum stored
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._lease: Lease | None = None

    # lifecycle ---------------------------------------------------------------------------

    def start(self) -> WitnessSubmitter:
        if self.witnesses and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="auditkeep-witness-submitter", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout + 5)
            self._thread = None

    def wake(self) -> None:
        """A checkpoint was just signed: look now rather than at the next poll."""
        self._wake.set()

    def progress(self) -> list[tuple[str, str, WitnessProgress]]:
        """(witness name, tenant, progress) for the metrics."""
        with self._lock:
            return [
                (w, self._tenants.get(tid, str(tid)), WitnessProgress(**vars(p)))
                for (w, tid), p in sorted(self._progress.items())
            ]

    def witnessed(self) -> dict[str, int]:
        """Per tenant: the size of the newest checkpoint whose stored cosignatures reached the
        quorum since this submitter started (a checkpoint counts as witnessed from then)."""
        with self._lock:
            return dict(self._witnessed)

    # the loop ----------------------------------------------------------------------------

    def _run(self) -> None:
        with httpx.Client(timeout=self.timeout, follow_redirects=False) as client:
            while not self._stop.is_set():
                try:
                    if self._lease is None:
                        self._lease = self.store.lease(LEASE)
                    if self._lease is not None:
                        self._round(client)
                except _Stop:
                    break
                except Exception as exc:  # the store may be down: try again next round
                    log.warning("witness submitter: %s", exc)
                self._wake.wait(self.poll_interval)
                self._wake.clear()
        if self._lease is not None:
            self._lease.release()
            self._lease = None

    def _round(self, client: httpx.Client) -> None:
        heads: list[Head] = self.store.heads()
        for h in heads:
            if h.checkpoint_size == 0:
                continue
            row = self.store.latest_checkpoint(h.tenant_id)
            if row is None:
                continue
            self._tenants[h.tenant_id] = h.tenant
            for w in self.witnesses:
                if self._stop.is_set():
                    raise _Stop
                with self._lock:
                    p = self._progress.setdefault((w.name, h.tenant_id), WitnessProgress())
                    p.checkpoint_size = row.size
                if p.cosigned_size is not None and p.cosigned_size >= row.size:
                    continue
                if time.monotonic() < p.retry_at:
                    continue
                try:
                    self._submit(client, w, h.tenant, row, p)
                except _UnknownLog as exc:
                    self._failed(w, h.tenant, p, str(exc), self.retry_max)
                except Exception as exc:
                    self._failed(w, h.tenant, p, str(exc))

    def _failed(
        self, w: WitnessEndpoint, tenant: str, p: WitnessProgress, reason: str, delay: float | None = None
    ) -> None:
        with self._lock:
            p.failures += 1
            p.last_error = reason
            if delay is None:
                delay = min(self.retry_max, self.retry_base * 2 ** min(p.failures - 1, 30))
            p.retry_at = time.monotonic() + delay * random.uniform(0.5, 1.0)
        log.warning("witness %s (tenant %s): %s; retry in %.1fs", w.name, tenant, reason, delay)

    def _submit(self, client: httpx.Client, w: WitnessEndpoint, tenant: str, row: CheckpointRow, p: WitnessProgress) -> None:
        # At most two tries: the second after a 409 told us the witness's size.
        for _ in range(2):
            old = p.cosigned_size or 0
            if old > row.size:
                raise RuntimeError(
                    f"the witness cosigned size {old}, larger than this log's checkpoint at {row.size}: "
                    "the log was rolled back or forked (restored from a backup?)"
                )
            read = lambda keys: self.store.read_tiles(row.tenant_id, keys)  # noqa: E731
            proof = consistency_proof(old, row.size, read) if 0 < old < row.size else []
            body = "".join([f"old {old}\n", *(base64.b64encode(h).decode() + "\n" for h in proof), "\n", row.note])
            r = client.post(w.url.rstrip("/") + "/add-checkpoint", content=body.encode())
            text = r.content[:MAX_RESPONSE_BYTES].decode("utf-8", "replace")
            if r.status_code == 409 and r.headers.get("content-type", "").startswith("text/x.tlog.size"):
                try:
                    size = int(text.strip())
                except ValueError:
                    raise RuntimeError(f"409 with a malformed size {text[:40]!r}") from None
                if size == old:
                    raise RuntimeError("409 naming the size that was sent")
                with self._lock:
                    p.cosigned_size = size  # then again from there (the same size: no proof)
                continue
            if r.status_code == 404:
                raise _UnknownLog(f"HTTP 404: {' '.join(text.split())[:200]} (witness add-log on the witness?)")
            if r.status_code != 200:
                raise RuntimeError(f"HTTP {r.status_code}: {' '.join(text.split())[:200]}")
            lines = [ln + "\n" for ln in text.split("\n") if ln.startswith("\u2014 ")]
            for line in lines:
                try:
                    count = add_cosignature(self.store, tenant, row, w.verifier, line)
                except NoteError:
                    continue  # other keys of the same witness, or not ours: ignored per spec
                with self._lock:
                    if count >= self.quorum and row.size > self._witnessed.get(tenant, 0):
                        self._witnessed[tenant] = row.size
                    p.cosigned_size = row.size
                    p.failures = 0
                    p.last_error = None
                    p.cosigned_at = time.time()
                return
            raise RuntimeError("200 without a valid cosignature by the configured key")
        raise RuntimeError("the witness keeps answering 409")
