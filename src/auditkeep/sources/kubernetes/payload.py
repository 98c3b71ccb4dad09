"""The ways in: one line of an audit log file, and the webhook backend's POST body."""

from __future__ import annotations

from typing import Any

import msgspec
import orjson

from auditkeep.model import Event
from auditkeep.model.jsonkeys import duplicate_key_reason
from auditkeep.sources.base import SourceError
from auditkeep.sources.kubernetes.vocabulary import (
    API_VERSIONS,
    MAX_LINE_BYTES,
    SOURCE,
    _decode_record,
    _loads,
)
from auditkeep.sources.kubernetes.wrapped import _map_any

# --------------------------------------------------------------------------- entry points


def parse_k8s_log_line(line: bytes, *, cluster: str | None = None) -> Event:
    """One line of an audit log file (native or wrapped). Raises :class:`SourceError`."""
    got = _map_bytes(bytes(line), cluster)
    if isinstance(got, SourceError):
        raise got
    return got


def _map_bytes(raw: bytes, cluster: str | None) -> Event | SourceError:
    if len(raw) > MAX_LINE_BYTES:
        return SourceError(SOURCE, f"record is {len(raw)} bytes, more than {MAX_LINE_BYTES}", raw)
    try:
        obj, fits = _decode_record(raw)
    except orjson.JSONDecodeError as exc:
        return SourceError(SOURCE, f"malformed JSON: {exc}", raw)
    repeated = duplicate_key_reason(raw, obj)  # the record is kept in the leaf: one reading only
    if repeated is not None:
        return SourceError(SOURCE, repeated, raw)
    try:
        return _map_any(obj, cluster, fits)
    except SourceError as exc:
        return SourceError(SOURCE, exc.reason, raw)


class _EventList(msgspec.Struct):
    kind: Any = None
    apiVersion: Any = None
    items: list[msgspec.Raw] | None = None


_list_decoder = msgspec.json.Decoder(_EventList)


def parse_k8s_payload(
    body: bytes, *, cluster: str | None = None
) -> tuple[list[Event], list[SourceError]]:
    """What the API server's webhook backend POSTs: an ``EventList`` (or one ``Event``).

    Also accepts a CloudWatch Logs subscription message (``logEvents``). Each item that
    cannot be mapped becomes a :class:`SourceError` holding that item's JSON.
    """
    body = bytes(body)
    try:
        doc = _list_decoder.decode(body)
    except msgspec.ValidationError:  # (a DecodeError too, so first)
        doc = None  # not an object, or items not an array: explained below
    except msgspec.DecodeError as exc:
        return [], [SourceError(SOURCE, f"malformed JSON: {exc}", body)]
    if doc is not None and doc.kind == "EventList":
        if doc.apiVersion not in API_VERSIONS:
            reason = f"apiVersion {doc.apiVersion!r} is not audit.k8s.io/v1"
            return [], [SourceError(SOURCE, reason, body)]
        events: list[Event] = []
        errors: list[SourceError] = []
        for raw in doc.items or ():
            got = _map_bytes(bytes(raw), cluster)
            if isinstance(got, SourceError):
                errors.append(got)
            else:
                events.append(got)
        return events, errors
    if doc is not None and doc.kind == "Event":
        got = _map_bytes(body, cluster)
        return ([], [got]) if isinstance(got, SourceError) else ([got], [])
    try:
        whole = _loads(body)
    except orjson.JSONDecodeError as exc:
        return [], [SourceError(SOURCE, f"malformed JSON: {exc}", body)]
    if not isinstance(whole, dict):
        reason = f"expected an EventList object, got {type(whole).__name__}"
        return [], [SourceError(SOURCE, reason, body)]
    if whole.get("kind") == "EventList":
        return [], [SourceError(SOURCE, "EventList.items is not an array", body)]
    if isinstance(whole.get("logEvents"), list):
        if cluster is None and isinstance(whole.get("logGroup"), str):
            cluster = _eks_cluster(whole["logGroup"])
        events, errors = [], []
        for item in whole["logEvents"]:
            try:
                events.append(_map_any(item, cluster, False))
            except SourceError as exc:
                errors.append(exc)
        return events, errors
    reason = f"kind {whole.get('kind')!r} is neither EventList nor Event"
    return [], [SourceError(SOURCE, reason, body)]


def _eks_cluster(log_group: str) -> str | None:
    # EKS control-plane logs go to /aws/eks/<cluster>/cluster
    parts = log_group.strip("/").split("/")
    if len(parts) >= 3 and parts[0] == "aws" and parts[1] == "eks":
        return parts[2] or None
    return None
