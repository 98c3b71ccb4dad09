"""``auditkeep collect`` (follow a host's audit log, deliver it to a server) and
``auditkeep quarantine`` (what sources could not read: list, show, retry, drop); also the
source-format path of ``auditkeep ingest``."""

from __future__ import annotations

import base64
import gzip
import json
import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import click
import httpx
import msgspec

from auditkeep import __version__
from auditkeep.cli.common import err, global_options, ledger, out, print_json, reader, settings
from auditkeep.client.backoff import Backoff
from auditkeep.client.transport import Kind, classify
from auditkeep.ledger.append import Receipt
from auditkeep.ledger.ledger import Ledger
from auditkeep.ledger.reader import LogReader
from auditkeep.sources.auditd import AuditdFollower, Batch
from auditkeep.sources.formats import SOURCE_FORMATS, ParseOptions
from auditkeep.sources.intake import Intake, IntakeResult, retry
from auditkeep.sources.quarantine import Quarantine, QuarantineRecord

INGEST_BATCH = 1000
MAX_REQUEST_BYTES = 4 * 1024 * 1024  # well under the server's default 10 MiB body limit
_encode = msgspec.json.Encoder()


# --------------------------------------------------------------------------- ingest --format


@dataclass
class IngestReport:
    receipts: list[Receipt]
    dropped: int  # by the capture policy
    quarantined: int
    lost: int


def ingest_source(lg: Ledger, path: Path, tenant: str, fmt: str, *, host: str | None = None) -> IngestReport:
    """``auditkeep ingest --format FMT``: parse the file, append what maps (through the
    policy), quarantine what does not, record what the source says it lost. ``host`` names
    the machine of auditd lines without ``node=``."""
    s = settings()
    source_format = SOURCE_FORMATS[fmt]
    opts = ParseOptions(kubernetes_stages="all" if s.kubernetes_stages == "all" else "final", host=host)
    parsed = source_format.parse(path.read_bytes(), opts)
    intake = Intake(lg, Quarantine(lg.store, s.quarantine_max_bytes, lg.pipeline))
    total = IntakeResult(tenant)
    source = source_format.source
    total.merge(intake.deliver(source, tenant, [], parsed.errors, context=parsed.context))
    events = parsed.events
    for i in range(0, len(events), INGEST_BATCH):
        total.merge(intake.deliver(source, tenant, events[i : i + INGEST_BATCH], context=parsed.context))
    if parsed.lost:
        total.merge(intake.deliver(source, tenant, [], lost=parsed.lost, lost_reason=f"{source} reported lost records"))
    if total.quarantined:
        err.print(
            f"[yellow]{len(total.quarantined)} record(s) could not be read and are kept in quarantine[/yellow]: "
            f"{total.quarantined[0].reason} (see `auditkeep quarantine list --source {source}`)",
            highlight=False,
        )
    if total.filtered:
        err.print(f"{total.filtered} event(s) dropped by the capture policy", highlight=False)
    if total.lost:
        err.print(f"{total.lost} record(s) reported lost by {source}: recorded as a source.dropped event", highlight=False)
    if parsed.gaps:
        err.print(f"{parsed.gaps} serial number(s) missing between the file's events (an excerpt, or events lost "
                  "before the file was written): not recorded as lost", highlight=False)
    return IngestReport(total.receipts, total.filtered, len(total.quarantined), total.lost)


# --------------------------------------------------------------------------- quarantine


@click.group()
def quarantine() -> None:
    """Records that sources could not read: list, show, retry after a fix, drop."""


def _store_quarantine(lg: LogReader) -> Quarantine:
    return Quarantine(lg.store, settings().quarantine_max_bytes, getattr(lg, "pipeline", None))


def _find(q: Quarantine, record_id: str) -> QuarantineRecord:
    rec = q.find(record_id)
    if rec is None:
        raise click.ClickException(f"no quarantined record {record_id!r} (see `auditkeep quarantine list`)")
    return rec


@quarantine.command("list")
@click.option("--source", default=None, help="Only this source (kubernetes, cloudtrail, auditd, syslog, otlp).")
@click.option("--tenant", "-t", default=None, help="Only this tenant.")
@click.option("--limit", type=click.IntRange(1, 100_000), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@global_options
def quarantine_list(source: str | None, tenant: str | None, limit: int, as_json: bool) -> None:
    """List quarantined records, newest first (without their bytes)."""
    from rich.table import Table

    with reader() as lg:
        q = _store_quarantine(lg)
        records = q.list(source, tenant, limit)
        total = q.count(source, tenant)
    if as_json:
        for rec in records:
            print_json(rec.summary())
        return
    table = Table("id", "source", "tenant", "received", "bytes", "tries", "reason")
    for rec in records:
        s = rec.summary()
        size = f"{s['size']}{'+' if rec.truncated else ''}"
        table.add_row(rec.id[:12], rec.source, rec.tenant, s["received_at"][:19], size, str(rec.attempts), rec.reason[:80])
    out.print(table)
    out.print(f"{total} record(s) in quarantine" + (f", {len(records)} shown" if total > len(records) else ""))


@quarantine.command("show")
@click.argument("record_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="The record as JSON, its bytes in base64.")
@global_options
def quarantine_show(record_id: str, as_json: bool) -> None:
    """Print a record's bytes exactly as received (its details go to stderr)."""
    with reader() as lg:
        rec = _find(_store_quarantine(lg), record_id)
    if as_json:
        print_json({**rec.summary(), "raw": base64.b64encode(rec.raw).decode("ascii")})
        return
    s = rec.summary()
    err.print(
        f"{rec.id}  source {rec.source}  tenant {rec.tenant}  received {s['received_at']}  "
        f"{rec.raw_size} bytes{' (cut)' if rec.truncated else ''}\nreason: {rec.reason}",
        highlight=False,
        markup=False,
    )
    sys.stdout.flush()
    sys.stdout.buffer.write(rec.raw)
    if not rec.raw.endswith(b"\n") and sys.stdout.isatty():
        sys.stdout.buffer.write(b"\n")
    sys.stdout.buffer.flush()


@quarantine.command("retry")
@click.argument("record_ids", metavar="[ID]...", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Every record (of --source / --tenant when given).")
@click.option("--source", default=None)
@click.option("--tenant", "-t", default=None)
@click.option("--json", "as_json", is_flag=True)
@global_options
def quarantine_retry(record_ids: tuple[str, ...], every: bool, source: str | None, tenant: str | None, as_json: bool) -> None:
    """Read records again with the current parsers; each one read leaves the quarantine."""
    if bool(record_ids) == every:
        raise click.UsageError("name record ids, or give --all")
    done = failed = 0
    with ledger() as lg:
        q = _store_quarantine(lg)
        intake = Intake(lg, q)
        records = [_find(q, r) for r in record_ids] if record_ids else _all(q, source, tenant)
        for rec in records:
            got = retry(intake, rec)
            events = len(got.result.receipts) if got.result else 0
            if got.ok:
                done += 1
            else:
                failed += 1
            if as_json:
                print_json({"id": rec.id, "ok": got.ok, "events": events, "reason": got.reason or None})
            elif got.ok:
                out.print(f"{rec.id[:12]}  ingested ({events} event(s))", highlight=False)
            else:
                out.print(f"{rec.id[:12]}  still refused: {got.reason}", highlight=False, markup=False)
    if not as_json:
        out.print(f"{done} record(s) left the quarantine, {failed} still refused")
    if failed:
        sys.exit(2)  # the records are still bad input; 1 is for integrity failures


def _all(q: Quarantine, source: str | None, tenant: str | None) -> list[QuarantineRecord]:
    out_: list[QuarantineRecord] = []
    before: int | None = None
    while True:
        page = q.list(source, tenant, 1000, before)
        out_ += page
        if len(page) < 1000:
            return out_
        before = page[-1].received_ns


@quarantine.command("drop")
@click.argument("record_ids", metavar="ID...", nargs=-1, required=True)
@global_options
def quarantine_drop(record_ids: tuple[str, ...]) -> None:
    """Delete records from the quarantine for good."""
    with ledger() as lg:
        q = _store_quarantine(lg)
        for rid in record_ids:
            rec = _find(q, rid)
            q.delete(rec.id)
            out.print(f"{rec.id[:12]}  dropped", highlight=False)


# --------------------------------------------------------------------------- collect


@click.group()
def collect() -> None:
    """Follow a source on this host and deliver it to an auditkeep server."""


class _BatchCounter:
    """Numbers the batches of one collector (kept beside the follower's state), so the
    source.dropped event of a resent batch has the id it had the first time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            data = json.loads(path.read_text("utf-8"))
            self.collector, self.seq = str(data["collector"]), int(data["seq"])
        except (OSError, ValueError, KeyError, TypeError):
            self.collector, self.seq = uuid.uuid4().hex, 0

    @property
    def batch_id(self) -> str:
        return f"{self.collector}:{self.seq}"

    def advance(self) -> None:
        self.seq += 1
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps({"collector": self.collector, "seq": self.seq}), "utf-8")
        os.replace(tmp, self.path)


class _Stop:
    def __init__(self, follower: AuditdFollower) -> None:
        self.follower = follower
        self.requested = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        self.follower.stop()


class _Sender:
    """Delivers one follower batch, in requests of at most ``MAX_REQUEST_BYTES``, retrying
    until the server acknowledges it (or a stop is requested)."""

    def __init__(self, http: httpx.Client, tenant: str | None, stop: _Stop) -> None:
        self.http = http
        self.tenant = tenant
        self.stop = stop
        self.limit = MAX_REQUEST_BYTES

    def deliver(self, batch: Batch, batch_id: str) -> bool:
        """True once every part is acknowledged; False if a stop cut it short."""
        return all(self._send(body) for body in self._parts(batch, batch_id))

    def _parts(self, batch: Batch, batch_id: str) -> Iterator[bytes]:
        events = [_encode.encode(e) for e in batch.events]
        errors = [
            _encode.encode({"reason": e.reason, "raw": base64.b64encode(bytes(e.raw)).decode("ascii")})
            for e in batch.errors
        ]
        chunk_e: list[bytes] = []
        chunk_x: list[bytes] = []
        size = 0
        for kind, item in [("e", x) for x in events] + [("x", x) for x in errors]:
            if size + len(item) > self.limit and (chunk_e or chunk_x):
                yield _body(chunk_e, chunk_x, 0, None)
                chunk_e, chunk_x, size = [], [], 0
            (chunk_e if kind == "e" else chunk_x).append(item)
            size += len(item) + 1
        yield _body(chunk_e, chunk_x, batch.lost, batch_id)

    def _send(self, body: bytes) -> bool:
        """The SDK's reading of an answer (``classify``) and its backoff: retry what may
        succeed later (network, 408, 429, 5xx), give up on what cannot."""
        backoff = Backoff(base=0.5, cap=30.0)
        params = {"tenant": self.tenant} if self.tenant else None
        headers = {"Content-Type": "application/json"}
        if len(body) > 64 * 1024:
            body = gzip.compress(body, 5)
            headers["Content-Encoding"] = "gzip"
        while not self.stop.requested:
            retry_after: float | None = None
            try:
                r = self.http.post("/v1/sources/auditd", content=body, params=params, headers=headers)
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                answer = classify(r.status_code, r.headers, r.content, 1)
                if answer.kind is Kind.OK:
                    return True
                problem = f"HTTP {r.status_code}: {(answer.detail or r.text)[:300]}"
                if answer.kind is not Kind.RETRY:
                    raise click.ClickException(f"the server refused the batch ({problem}); nothing was acknowledged")
                retry_after = answer.retry_after
            delay = backoff.next_delay(retry_after)
            err.print(f"collect: delivery failed ({problem}); retrying in {delay:.1f}s", highlight=False, markup=False)
            self._sleep(delay)
        return False

    def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self.stop.requested and time.monotonic() < end:
            time.sleep(min(0.1, end - time.monotonic()))


def _body(events: list[bytes], errors: list[bytes], lost: int, batch_id: str | None) -> bytes:
    head = b'{"events":[' + b",".join(events) + b'],"errors":[' + b",".join(errors) + b"]"
    tail = b',"lost":' + str(lost).encode()
    if batch_id is not None:
        tail += b',"batch":' + _encode.encode(batch_id)
    return head + tail + b"}"


def _default_state() -> str:
    base = os.environ.get("STATE_DIRECTORY")  # systemd's StateDirectory=
    return str(Path(base.split(":")[0]) / "auditd.state") if base else "auditkeep-auditd.state"


@collect.command("auditd")
@click.argument("path", default="/var/log/audit/audit.log", type=click.Path(dir_okay=False))
@click.option("--to", "url", required=True, envvar="AUDITKEEP_URL", metavar="URL",
              help="The auditkeep server, e.g. https://audit.example.com:8700 [env AUDITKEEP_URL].")
@click.option("--key", required=True, envvar="AUDITKEEP_KEY", metavar="KEY",
              help="An API key with the ingest scope [env AUDITKEEP_KEY].")
@click.option("--tenant", "-t", default=None, help="Tenant (a key for all tenants needs one; default: the key's).")
@click.option("--state", "state_path", default=None, metavar="FILE",
              help="Where the read position is kept [default: $STATE_DIRECTORY/auditd.state or ./auditkeep-auditd.state].")
@click.option("--host", default=None, help="Machine name for records without node= [default: this host's name].")
@click.option("--batch-size", type=click.IntRange(1, 10_000), default=500, show_default=True)
@click.option("--poll-interval", type=click.FloatRange(0.01), default=0.25, show_default=True,
              help="Seconds between looks at an idle log.")
@click.option("--timeout", "group_timeout", type=click.FloatRange(0.01), default=2.0, show_default=True,
              help="Seconds an incomplete audit event waits for its other records.")
@click.option("--ca-file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="CA certificate(s) to trust for an https:// server (PEM).")
@click.option("--once", is_flag=True, help="Read to the end of the log, deliver, and exit.")
def collect_auditd(
    path: str,
    url: str,
    key: str,
    tenant: str | None,
    state_path: str | None,
    host: str | None,
    batch_size: int,
    poll_interval: float,
    group_timeout: float,
    ca_file: str | None,
    once: bool,
) -> None:
    """Follow PATH (an audit.log) across rotation and deliver its events to the server.

    The read position is saved only after the server acknowledged a batch, so a restart
    resumes without loss; event ids are derived from the records, so a batch sent again
    after a crash is stored once. Records that cannot be read go to the server's
    quarantine; events the kernel lost are recorded as a source.dropped event.
    """
    state = Path(state_path or _default_state())
    follower = AuditdFollower(
        path, state, host=host or socket.gethostname(), batch_size=batch_size,
        poll_interval=poll_interval, timeout=group_timeout,
    )
    stop = _Stop(follower)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    counter = _BatchCounter(state.with_name(state.name + ".batch"))
    verify: Any = ca_file if ca_file else True
    headers = {"Authorization": f"Bearer {key}", "User-Agent": f"auditkeep-collect/{__version__}"}
    err.print(f"collect: following {path} -> {url} (state {state})", highlight=False)
    delivered = 0
    with httpx.Client(base_url=url, headers=headers, timeout=60, verify=verify) as http:
        sender = _Sender(http, tenant, stop)
        for batch in follower.batches(follow=not once):
            if batch.events or batch.errors or batch.lost:
                if not sender.deliver(batch, counter.batch_id):
                    break  # stopped before the server acknowledged: sent again on restart
                counter.advance()
            batch.commit()
            delivered += len(batch.events)
            if stop.requested:
                break
    err.print(f"collect: stopped after {delivered} event(s) delivered", highlight=False)


__all__ = ["IngestReport", "collect", "ingest_source", "quarantine"]
