"""Input formats of ``auditkeep ingest --format``: name -> parser of a whole input.

Each entry of :data:`FORMATS` is a :class:`SourceFormat`. Called with the bytes of a file it
returns the events (the old registry's contract) and raises :class:`RefusedRecords`,
listing them, when some records cannot be read. :meth:`SourceFormat.parse` is what
``ingest`` uses: the events *and* the refused records (for the quarantine) and the count of
records the source itself reports lost. :meth:`SourceFormat.retry` reads one quarantined
record again with the current parser.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import msgspec

from auditkeep.errors import UserError
from auditkeep.model.event import Event
from auditkeep.model.validate import DEFAULT_LIMITS, decode_event
from auditkeep.sources.auditd import AuditdDecoder, decode_log
from auditkeep.sources.base import SourceError
from auditkeep.sources.cloudtrail import parse_cloudtrail
from auditkeep.sources.kubernetes import StageMerger, parse_k8s_log_line, parse_k8s_payload
from auditkeep.sources.syslog import map_syslog, parse_syslog


@dataclass(frozen=True)
class ParseOptions:
    """What a format may need beyond the bytes."""

    kubernetes_stages: Literal["final", "all"] = "final"
    cluster: str | None = None  # Kubernetes cluster name (ids and source.host)
    host: str | None = None  # auditd: the machine for lines without node= (default: none)
    content_type: str | None = None  # OTLP: the encoding of a quarantined request


@dataclass
class Parsed:
    events: list[Event] = field(default_factory=list)
    errors: list[SourceError] = field(default_factory=list)
    lost: int = 0  # records the source says were lost before they reached us
    context: dict[str, str] = field(default_factory=dict)  # kept with quarantined records
    gaps: int = 0  # auditd: serials missing from the file (an excerpt, or lost): not "lost"


class RefusedRecords(UserError, ValueError):
    """Some records of an input could not be read (raised by calling a format directly)."""

    def __init__(self, source: str, errors: list[SourceError]) -> None:
        self.source = source
        self.errors = errors
        shown = "; ".join(f"{e.reason} ({len(e.raw)} bytes)" for e in errors[:5])
        more = f"; and {len(errors) - 5} more" if len(errors) > 5 else ""
        super().__init__(f"{source}: {len(errors)} record(s) refused: {shown}{more}")


Parser = Callable[[bytes, ParseOptions], Parsed]
_EVENT_LIST = re.compile(rb'"kind"\s*:\s*"EventList"')


class SourceFormat:
    """One input format: ``parse`` for events and refused records; calling it gives the
    events alone, or raises :class:`RefusedRecords`."""

    def __init__(self, name: str, source: str, parser: Parser, summary: str) -> None:
        self.name = name
        self.source = source  # the source name the policy sees
        self.parser = parser
        self.summary = summary

    def parse(self, data: bytes, options: ParseOptions | None = None) -> Parsed:
        return self.parser(bytes(data), options or ParseOptions())

    def __call__(self, data: bytes) -> list[Event]:
        got = self.parse(data)
        if got.errors:
            raise RefusedRecords(self.source, got.errors)
        return got.events


# --------------------------------------------------------------------------- parsers


def _kubernetes(data: bytes, opts: ParseOptions) -> Parsed:
    """An audit log file (one event per line, native or wrapped), or one webhook body."""
    out = Parsed(context={"cluster": opts.cluster} if opts.cluster else {})
    head = data.lstrip()[:4096]
    if head.startswith(b"{") and _EVENT_LIST.search(head):
        out.events, out.errors = parse_k8s_payload(data, cluster=opts.cluster)
    else:
        for line in data.split(b"\n"):  # only newlines end a line: a stray CR stays in its record
            if not line.strip():
                continue
            try:
                out.events.append(parse_k8s_log_line(line, cluster=opts.cluster))
            except SourceError as err:
                out.errors.append(err)
    if opts.kubernetes_stages == "final":
        merger = StageMerger("final", timeout=float("inf"))
        out.events = merger.add(out.events) + merger.drain()
    return out


def _kubernetes_retry(data: bytes, opts: ParseOptions) -> Parsed:
    events, errors = parse_k8s_payload(data, cluster=opts.cluster)
    if not events and len(errors) == 1 and "neither EventList nor Event" in errors[0].reason:
        return _kubernetes(data, ParseOptions("all", opts.cluster))  # one log line
    return Parsed(events, errors)


def _cloudtrail(data: bytes, opts: ParseOptions) -> Parsed:
    events, errors = parse_cloudtrail(data)
    return Parsed(events, errors)


def _auditd(data: bytes, opts: ParseOptions) -> Parsed:
    # A file may come from any machine: lines without node= get the host the caller names,
    # never the name of the machine that happens to read the file.
    log = decode_log(data.split(b"\n"), AuditdDecoder(host=opts.host))
    context = {"host": opts.host} if opts.host else {}
    return Parsed(log.events, log.errors, context=context, gaps=log.gaps)


def _otlp(content_type: str) -> Parser:
    def parse(data: bytes, opts: ParseOptions) -> Parsed:
        from auditkeep.sources.otlp import parse_otlp_logs  # protobuf: only for this format

        kind = opts.content_type or content_type
        events, errors = parse_otlp_logs(data, kind)
        return Parsed(events, errors, context={"content_type": kind})

    return parse


def _syslog(data: bytes, opts: ParseOptions) -> Parsed:
    """One message per line (a file written by a syslog daemon, or a quarantined message)."""
    out = Parsed()
    now = time.time_ns()
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            out.events.append(map_syslog(parse_syslog(line, now), received_ns=now, limits=DEFAULT_LIMITS))
        except SourceError as err:
            out.errors.append(err)
    return out


def _event_json(data: bytes, opts: ParseOptions) -> Parsed:
    """A mapped event the ledger refused, quarantined as JSON: read back as it is."""
    return Parsed([decode_event(data)])


FORMATS: dict[str, Callable[[bytes], list[Event]]] = {}
SOURCE_FORMATS: dict[str, SourceFormat] = {}
for _fmt in (
    SourceFormat("kubernetes", "kubernetes", _kubernetes, "Kubernetes audit log (one event per line, native or EKS/AKS/GKE wrapped), or an EventList"),
    SourceFormat("cloudtrail", "cloudtrail", _cloudtrail, "CloudTrail {\"Records\": [...]} files (plain or gzip), JSON arrays, JSON Lines"),
    SourceFormat("auditd", "auditd", _auditd, "Linux audit.log"),
    SourceFormat("otlp-json", "otlp", _otlp("application/json"), "an OTLP/HTTP JSON logs request"),
    SourceFormat("otlp-protobuf", "otlp", _otlp("application/x-protobuf"), "an OTLP/HTTP protobuf logs request"),
    SourceFormat("syslog", "syslog", _syslog, "RFC 5424 / RFC 3164 messages, one per line"),
):
    FORMATS[_fmt.name] = _fmt
    SOURCE_FORMATS[_fmt.name] = _fmt

# How a quarantined record of each source is read again.
_RETRY: dict[str, Parser] = {
    "kubernetes": _kubernetes_retry,
    "cloudtrail": _cloudtrail,
    "auditd": _auditd,
    "otlp": _otlp("application/x-protobuf"),
    "syslog": _syslog,
}


def reparse(source: str, raw: bytes, context: Mapping[str, str]) -> Parsed:
    """A quarantined record read again with the current parser of its source.

    ``ValueError`` when the source has no parser here.
    """
    opts = ParseOptions(
        cluster=context.get("cluster"),
        host=context.get("host"),
        content_type=context.get("content_type"),
    )
    if context.get("form") == "event":
        try:
            return _event_json(raw, opts)
        except (ValueError, msgspec.DecodeError) as exc:
            return Parsed(errors=[SourceError(source, f"refused by the ledger: {exc}", raw)])
    parser = _RETRY.get(source)
    if parser is None:
        raise ValueError(f"no parser for source {source!r}")
    return parser(raw, opts)
