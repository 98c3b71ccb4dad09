"""The read side of the API, without I/O: request parameters in, typed results out.

Shared by the sync and async clients. Results are the embedded ledger's own types
(``Page``, ``Record``, ``InclusionProof``, ``Checkpoint``) and errors its own exceptions
(``NotFound``, ``ValidationError``), so code written against ``auditkeep.open()`` keeps
working against a server.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import msgspec

from auditkeep.client.backoff import parse_retry_after
from auditkeep.client.errors import APIError, AuthError, ServerUnavailableError
from auditkeep.errors import NotFound
from auditkeep.log.checkpoint import Checkpoint, CheckpointError, verify_checkpoint
from auditkeep.log.hashing import leaf_hash
from auditkeep.log.note import NoteVerifier
from auditkeep.log.proofs import ProofError, verify_inclusion
from auditkeep.model.errors import ValidationError
from auditkeep.model.timeargs import TimeArg as TimeArg  # re-exported: the one definition
from auditkeep.model.timefmt import format_rfc3339
from auditkeep.model.wire import InclusionProof, Page, Record
from auditkeep.query.filters import SEARCH_FIELDS, TIME_FIELDS, filter_args

__all__ = [
    "TimeArg",
    "check_leaf",
    "check_proof",
    "decode_page",
    "decode_proof",
    "decode_record",
    "origin_of",
    "proof_params",
    "raise_for_status",
    "search_params",
]



class _Page(msgspec.Struct):
    events: list[Record]
    next_cursor: str | None = None


class _EventWithProof(msgspec.Struct):
    index: int
    tenant: str
    leaf: str = ""
    proof: InclusionProof | None = None


class _LeafId(msgspec.Struct):
    id: str = ""


_leaf_id = msgspec.json.Decoder(_LeafId).decode
_page = msgspec.json.Decoder(_Page)
_record = msgspec.json.Decoder(Record)
_proof = msgspec.json.Decoder(InclusionProof)
_with_proof = msgspec.json.Decoder(_EventWithProof)
_any = msgspec.json.Decoder()


def time_param(value: TimeArg, name: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValidationError("datetime must have a timezone", name)
        return value.isoformat()
    return format_rfc3339(value)


def search_params(
    tenant: str | None,
    filters: Mapping[str, Any],
    *,
    order: str = "newest",
    cursor: str | None = None,
    limit: int = 100,
) -> list[tuple[str, str]]:
    """Query parameters of ``GET /v1/events`` for ``search(**filters)``: the filter keywords
    (:class:`~auditkeep.query.filters.FilterArgs`, checked here for the SDK clients) as the
    server parses them, times as given (text is resolved by the server)."""
    filter_args(filters, "search")
    out = [("tenant", tenant)] if tenant is not None else []
    for name in SEARCH_FIELDS:
        value = filters.get(name)
        text = time_param(value, name) if name in TIME_FIELDS else value
        if text is not None:
            out.append((name, text))
    out.append(("order", order))
    if cursor is not None:
        out.append(("cursor", cursor))
    out.append(("limit", str(limit)))
    metadata = filters.get("metadata")
    items = metadata.items() if isinstance(metadata, Mapping) else (metadata or [])
    out.extend(("metadata", f"{path}={value}") for path, value in items)
    return out


def raise_for_status(status: int, content: bytes, retry_after: str | None = None) -> None:
    """Raise the exception matching an error answer to a read (nothing for 2xx)."""
    if status < 400:
        return
    try:
        body: Any = _any.decode(content)
    except msgspec.DecodeError:
        body = content[:500].decode("utf-8", "replace")
    message = str(body.get("error", body)) if isinstance(body, dict) else str(body)
    if status == 404:
        raise NotFound(message)
    if status in (400, 422) and isinstance(body, dict):
        raise ValidationError(str(body.get("reason") or message), str(body.get("field") or ""))
    if status in (401, 403):
        raise AuthError(status, message, body)
    if status in (429, 502, 503, 504):
        raise ServerUnavailableError(status, message, parse_retry_after(retry_after))
    raise APIError(status, message, body)


def _decode(decoder: msgspec.json.Decoder[Any], content: bytes, what: str) -> Any:
    try:
        return decoder.decode(content)
    except msgspec.DecodeError as exc:
        raise APIError(200, f"unexpected {what} from the server: {exc}") from None


def decode_page(content: bytes) -> Page:
    got: _Page = _decode(_page, content, "search result")
    return Page(got.events, got.next_cursor)


def decode_record(content: bytes) -> Record:
    rec: Record = _decode(_record, content, "event")
    return rec


def decode_proof(content: bytes) -> InclusionProof:
    proof: InclusionProof = _decode(_proof, content, "inclusion proof")
    return proof


def decode_event_proof(content: bytes) -> tuple[bytes, InclusionProof]:
    """The leaf bytes and the proof of ``GET /v1/events/{id}?proof=true``."""
    got: _EventWithProof = _decode(_with_proof, content, "event with proof")
    if got.proof is None or not got.leaf:
        raise APIError(200, "the server sent no proof")
    try:
        leaf = base64.b64decode(got.leaf, validate=True)
    except binascii.Error:
        raise APIError(200, "the server sent a leaf that is not base64") from None
    return leaf, got.proof


def origin_of(verifier: NoteVerifier, tenant: str) -> str:
    """A tenant log's checkpoint origin: the signing key's name, then the tenant."""
    return f"{verifier.name}/{tenant}"


def check_proof(proof: InclusionProof, verifier: NoteVerifier) -> Checkpoint:
    """Verify an inclusion proof offline: the checkpoint's signature and origin, then the
    path from the leaf hash to the checkpoint's root. Raises CheckpointError, NoteError or
    ProofError naming the check that failed."""
    cp = verify_checkpoint(proof.checkpoint, verifier, origin_of(verifier, proof.tenant))
    if cp.size != proof.tree_size:
        raise ProofError(f"proof is for tree size {proof.tree_size}, its checkpoint for {cp.size}")
    try:
        leaf = bytes.fromhex(proof.leaf_hash)
        hashes = [bytes.fromhex(h) for h in proof.hashes]
    except ValueError:
        raise ProofError("proof hashes are not hex") from None
    verify_inclusion(leaf, proof.index, proof.tree_size, hashes, cp.root)
    return cp


def check_leaf(leaf: bytes, proof: InclusionProof, event_id: str) -> None:
    """The leaf bytes the server sent are the event asked for, and hash to the leaf hash
    the proof starts from."""
    if leaf_hash(leaf).hex() != proof.leaf_hash.lower():
        raise ProofError("the event's leaf bytes do not hash to the proof's leaf hash")
    try:
        got = _leaf_id(leaf).id
    except msgspec.DecodeError:
        raise ProofError("the leaf is not an event") from None
    if got != event_id.lower():
        raise ProofError(f"the leaf is event {got}, not {event_id}")


def proof_params(index: int | None, event_id: str | None, size: int | None) -> list[tuple[str, str]]:
    """Query parameters of ``GET /v1/proofs/inclusion``."""
    if (index is None) == (event_id is None):
        raise ValueError("give an index or an event_id")
    params = [("index", str(index))] if index is not None else [("id", str(event_id))]
    if size is not None:
        params.append(("size", str(size)))
    return params


def parse_vkey(text: str) -> NoteVerifier:
    try:
        return NoteVerifier.from_vkey(text.strip())
    except ValueError as exc:
        raise CheckpointError(f"not a verifier key: {exc}") from None
