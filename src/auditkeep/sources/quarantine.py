"""The quarantine: records a source could not parse or the ledger refused, kept with their
raw bytes so that nothing vanishes silently and each can be ingested again after a fix.

Records live in the store's ``quarantine`` document collection (no table of their own).
A record's id is a hash of its source, tenant and bytes, so a sender that retries a refused
batch (the Kubernetes API server, an OTLP exporter, ``auditkeep collect``) quarantines it
once. The document's ``status`` field holds the source name, so listing by source is a
store query.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from auditkeep.model.timefmt import format_rfc3339
from auditkeep.policy.pipeline import Pipeline
from auditkeep.sources.base import SourceError
from auditkeep.store.base import Doc, Store
from auditkeep.store.prefix import AmbiguousPrefix, resolve_prefix

COLLECTION = "quarantine"
DEFAULT_MAX_BYTES = 1024 * 1024
REASON_CLASSES = ("malformed", "too_large", "unsupported", "invalid", "conflict", "other")


class QuarantineRecord(msgspec.Struct, kw_only=True):
    """One refused record. ``raw`` is the bytes as received (cut at the quarantine's
    ``max_bytes``, then ``truncated``); ``context`` holds what a retry needs besides them
    (an OTLP content type, a Kubernetes cluster name, ``form: event`` for a mapped event the
    ledger refused)."""

    id: str
    source: str
    tenant: str
    reason: str
    raw: bytes
    raw_size: int
    truncated: bool = False
    received_ns: int
    attempts: int = 0
    last_attempt_ns: int | None = None
    context: dict[str, str] = msgspec.field(default_factory=dict)

    @property
    def reason_class(self) -> str:
        return reason_class(self.reason)

    def summary(self) -> dict[str, Any]:
        """The record without its bytes, as listings show it."""
        return {
            "id": self.id,
            "source": self.source,
            "tenant": self.tenant,
            "reason": self.reason,
            "reason_class": self.reason_class,
            "received_at": format_rfc3339(self.received_ns),
            "size": self.raw_size,
            "truncated": self.truncated,
            "attempts": self.attempts,
            "context": dict(self.context),
        }


_encode = msgspec.msgpack.Encoder()
_decode = msgspec.msgpack.Decoder(QuarantineRecord)

# The first class whose pattern matches. ``invalid`` comes before ``malformed``: a record
# that was read but whose field is missing or holds a value the model refuses is invalid,
# whatever words the reason uses ("is missing", "is not one of", "is not a UUID"); only
# bytes that could not be read at all are malformed.
_CLASSES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("too_large", re.compile(r"more than|larger than|exceeds|too (?:large|long)|longer than", re.I)),
    ("conflict", re.compile(r"already exists with different content", re.I)),
    (
        "invalid",
        re.compile(
            r"^(?:attribute |refused by the ledger|cannot map|timeUnixNano |observedTimeUnixNano |"
            r"traceId |spanId |doubleValue )|is missing|is not one of",
            re.I,
        ),
    ),
    (
        "malformed",
        re.compile(
            r"malformed|not valid|bad gzip|truncated|invalid utf|not json|not an? |out of range|"
            r"unterminated|structured data|octet-counting|closed inside",
            re.I,
        ),
    ),
    ("unsupported", re.compile(r"apiVersion|unsupported|is not Event|neither|no kubernetes audit", re.I)),
    ("invalid", re.compile(r"missing|expected|invalid|must|not a |refus", re.I)),
)


def reason_class(reason: str) -> str:
    """A short label of a reason, for metrics: one of :data:`REASON_CLASSES`."""
    for name, pattern in _CLASSES:
        if pattern.search(reason):
            return name
    return "other"


def record_id(source: str, tenant: str, raw: bytes) -> str:
    h = hashlib.sha256()
    for part in (source.encode(), tenant.encode(), raw):
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()[:32]


class Quarantine:
    """The quarantine over a store's document collection."""

    def __init__(self, store: Store, max_bytes: int = DEFAULT_MAX_BYTES, pipeline: Pipeline | None = None) -> None:
        """``pipeline``: the ledger's policy, whose secret detectors scrub every record before
        it is stored (the built-in detectors when None): a body refused for its form must not
        keep the passwords in it in plain text."""
        self.store = store
        self.max_bytes = max_bytes
        self._scrub = pipeline or Pipeline.default()

    def put(
        self,
        errors: Sequence[SourceError],
        tenant: str,
        context: Mapping[str, str] | None = None,
        now_ns: int | None = None,
    ) -> list[QuarantineRecord]:
        """Keep each error's record; one already kept (same source, tenant, bytes) stays as
        it is. Returns the records, new or not."""
        now = time.time_ns() if now_ns is None else now_ns
        out: list[QuarantineRecord] = []
        for err in errors:
            raw = self._scrub.scrub(bytes(err.raw))
            rid = record_id(err.source, tenant, raw)
            rec = QuarantineRecord(
                id=rid,
                source=err.source,
                tenant=tenant,
                reason=self._scrub.scrub_text(err.reason[:4096]),
                raw=raw[: self.max_bytes],
                raw_size=len(raw),
                truncated=len(raw) > self.max_bytes,
                received_ns=now,
                context=dict(context or {}),
            )
            self.store.doc_insert(self._doc(rec))
            out.append(rec)
        return out

    def _doc(self, rec: QuarantineRecord) -> Doc:
        return Doc(COLLECTION, rec.id, rec.tenant, rec.received_ns, rec.source, _encode.encode(rec))

    def get(self, record_id: str) -> QuarantineRecord | None:
        doc = self.store.doc_get(COLLECTION, record_id)
        return _decode.decode(doc.data) if doc is not None else None

    def find(self, prefix: str) -> QuarantineRecord | None:
        """A record by its id or an unambiguous prefix of it (at least 6 characters)."""
        try:
            found = resolve_prefix(self.store, COLLECTION, prefix)
        except AmbiguousPrefix:
            return None
        return self.get(found) if found is not None else None

    def list(
        self,
        source: str | None = None,
        tenant: str | None = None,
        limit: int = 100,
        before_ns: int | None = None,
    ) -> list[QuarantineRecord]:
        """Newest first."""
        docs = self.store.doc_list(COLLECTION, tenant=tenant, status=source, before_ns=before_ns, limit=limit)
        return [_decode.decode(d.data) for d in docs]

    def count(self, source: str | None = None, tenant: str | None = None) -> int:
        return self.store.doc_count(COLLECTION, tenant=tenant, status=source)

    def delete(self, record_id: str) -> bool:
        return self.store.doc_delete(COLLECTION, record_id)

    def failed_again(self, rec: QuarantineRecord, reason: str, now_ns: int | None = None) -> QuarantineRecord:
        """Note a retry that failed: its reason replaces the old one."""
        rec.attempts += 1
        rec.last_attempt_ns = time.time_ns() if now_ns is None else now_ns
        rec.reason = reason[:4096]
        self.store.doc_put(self._doc(rec))
        return rec
