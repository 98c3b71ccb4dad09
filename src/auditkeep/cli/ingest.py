"""``auditkeep ingest``: load events from a file, all or nothing.

Re-running an ingest never stores an event twice: a line without an ``id`` gets one derived
from its content (and which repetition of that content it is in the file), so the same file
— completed, interrupted, or edited in between — adds only the lines not stored yet.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import click
import msgspec
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from auditkeep.cli.common import err, global_options, interactive, ledger, out, print_json
from auditkeep.ledger.append import Receipt
from auditkeep.model.errors import ValidationError
from auditkeep.model.event import Event
from auditkeep.model.validate import decode_batch, decode_event, validate_event
from auditkeep.sources.common import derived_id

BATCH = 1000
_ID_NAMESPACE = b"auditkeep-ingest\x1f"
_encode = msgspec.json.Encoder()


class LineIds:
    """Stable ids for events without one: from the event's bytes and which repetition of
    those bytes it is in the input. Another line inserted, removed or changed leaves the
    ids of the others as they were."""

    def __init__(self) -> None:
        self._seen: dict[bytes, int] = {}

    def assign(self, ev: Event, content: bytes) -> None:
        n = self.count(content)
        if ev.id is None:
            ev.id = derived_id(_ID_NAMESPACE, content + b"\x1f" + str(n).encode())

    def count(self, content: bytes) -> int:
        """How many times ``content`` came before (and count this one)."""
        key = hashlib.sha256(content).digest()
        n = self._seen.get(key, 0)
        self._seen[key] = n + 1
        return n


@dataclass
class Appended:
    """What an ingest did: receipts (new and already stored), and what the policy dropped."""

    receipts: list[Receipt] = field(default_factory=list)
    dropped: int = 0  # by the capture policy: no receipt, no index
    interrupted: bool = False
    start: int = 0  # the log's size before: a receipt below it is of an event already there

    @property
    def new(self) -> list[Receipt]:
        """Receipts of events this ingest stored (each once: a repeat in the input shares one)."""
        seen: set[int] = set()
        out: list[Receipt] = []
        for r in self.receipts:
            if r.index >= self.start and r.index not in seen:
                seen.add(r.index)
                out.append(r)
        return out

    @property
    def existing(self) -> int:
        return len(self.receipts) - len(self.new)

# Other sources add parsers here: name -> function(bytes of the whole input) -> events.
FORMATS: dict[str, Callable[[bytes], list[Event]]] = {}


def _known_formats() -> list[str]:
    try:
        from auditkeep.sources.formats import FORMATS as extra
    except ModuleNotFoundError:
        extra = {}
    FORMATS.update(extra)
    return ["json", *sorted(FORMATS)]


def _progress(total: int, label: str) -> Progress:
    return Progress(
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=not interactive(),
        transient=False,
    )


def _lines(fh: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    for number, line in enumerate(fh, 1):
        if line.strip():
            yield number, line


@click.command()
@click.argument("file", type=click.Path(allow_dash=True, dir_okay=False, path_type=str))
@click.option("--tenant", "-t", default="default", show_default=True, help="Tenant log to append to.")
@click.option("--format", "fmt", default="json", show_default=True, metavar="FORMAT",
              help="json (JSON Lines or a JSON array of events), or a source format such as kubernetes or cloudtrail.")
@click.option("--skip-lines", type=click.IntRange(0), default=0,
              help="Skip the first N lines (JSON Lines); re-running without it is safe too.")
@click.option("--host", default=None, metavar="NAME",
              help="--format auditd: the machine that wrote the log, for lines without node= [default: none].")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@global_options
def ingest(file: str, tenant: str, fmt: str, skip_lines: int, host: str | None, as_json: bool) -> None:
    """Append the events in FILE (or - for standard input) to a tenant's log.

    The whole input is validated first: one bad event rejects the input, naming its line
    and field, and nothing is stored. Running it again on the same file (after it completed,
    was interrupted, or the file was edited) stores only the events not stored yet: an event
    without an id gets one derived from its content.
    """
    formats = _known_formats()
    if fmt not in formats:
        raise click.BadParameter(f"unknown format {fmt!r}; choose from {', '.join(formats)}", param_hint="--format")
    spool: Path | None = None
    path = Path(file)
    if file == "-":
        # Two passes (validate, then append) need the input twice.
        with tempfile.NamedTemporaryFile(prefix="auditkeep-ingest-", delete=False) as tmp:
            shutil.copyfileobj(sys.stdin.buffer, tmp)
        spool = path = Path(tmp.name)
    try:
        started = time.perf_counter()
        report: dict[str, int] = {}
        with ledger(create=True) as lg:
            start = _size(lg, tenant)
            if fmt != "json":
                done = _ingest_source(lg, path, tenant, fmt, report, host)
            else:
                done = _ingest_json(lg, path, tenant, skip_lines)
            done.start = start
            note = lg.checkpoint(tenant, new=True) if done.new else None
            size = lg.head(tenant).size if done.receipts else 0
            elapsed = time.perf_counter() - started
            if done.new:
                _index(lg, tenant)
    finally:
        if spool is not None:
            spool.unlink(missing_ok=True)
    _summary(done, tenant, size, note is not None, elapsed, as_json, report)
    if done.interrupted:
        sys.exit(130)


def _summary(
    done: Appended, tenant: str, size: int, signed: bool, elapsed: float, as_json: bool, report: dict[str, int]
) -> None:
    new = done.new
    first = new[0].index if new else None
    last = new[-1].index if new else None
    if as_json:
        print_json({"tenant": tenant, "events": len(done.receipts), "stored": len(new), "existing": done.existing,
                    "first_index": first, "last_index": last, "tree_size": size, "seconds": round(elapsed, 3),
                    **report, "dropped": done.dropped, "interrupted": done.interrupted})
        return
    if done.interrupted:
        err.print(
            f"interrupted: {len(new)} event(s) were committed before Ctrl-C"
            + (f" (indexes {first}..{last})" if new else "")
            + f", {done.existing} were already there. Run the same command again to add the rest: "
            "events already stored are recognised by their ids and not stored twice.",
            highlight=False,
        )
        return
    rate = len(new) / elapsed if elapsed > 0 else 0.0
    where = f" (indexes {first}..{last})" if new else ""
    out.print(f"ingested {len(new)} new event(s) into tenant [bold]{tenant}[/bold]{where} in {elapsed:.2f}s ({rate:,.0f}/s)")
    if done.existing:
        out.print(f"{done.existing} event(s) were already in the log (same ids): not stored again", highlight=False)
    if done.dropped:
        out.print(f"{done.dropped} event(s) dropped by the capture policy", highlight=False)
    if signed:
        out.print(f"checkpoint: tree size {size}")


def _index(lg: Any, tenant: str) -> None:
    """Bring the search projection up to the new head, as a server's projection follower
    would: readers (search) open the store read-only and do not index into it."""
    lag = lg.projection_lag(tenant)
    if lag <= 0:
        return
    with Progress(
        TextColumn("[bold]indexing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=err, disable=not interactive(),
    ) as bar:
        task = bar.add_task("index", total=lag)
        lg.sync_projection(tenant, progress=lambda n: bar.update(task, advance=n))


def _ingest_json(lg: Any, path: Path, tenant: str, skip_lines: int) -> Appended:
    limits = lg.config.limits
    with path.open("rb") as fh:
        head = fh.read(4096).lstrip()
    if head[:1] == b"[":
        events = decode_batch(path.read_bytes())
        ids = LineIds()
        for i, ev in enumerate(events):
            ids.assign(ev, _encode.encode(ev))  # before validation normalises it
            try:
                validate_event(ev, limits, tenant)
            except ValidationError as exc:
                raise exc.at(i) from None
        return _append_all(lg, tenant, [events[i : i + BATCH] for i in range(0, len(events), BATCH)], len(events))

    size = path.stat().st_size
    # Pass 1: validate everything, keep nothing.
    count = 0
    with path.open("rb") as fh, _progress(size, "validating") as bar:
        task = bar.add_task("validate", total=size)
        for number, line in _lines(fh):
            if number <= skip_lines:
                continue
            try:
                validate_event(decode_event(line), limits, tenant)
            except ValidationError as exc:
                raise ValidationError(exc.message, exc.path, None).with_line(number) from None
            count += 1
            if count % 2048 == 0:
                bar.update(task, completed=fh.tell())
        bar.update(task, completed=size)

    def batches() -> Iterator[list[Event]]:
        ids = LineIds()
        batch: list[Event] = []
        with path.open("rb") as fh:
            for number, line in _lines(fh):
                ev = decode_event(line)
                # the event's bytes as decoded (not the line's): the same in a JSON array
                content = _encode.encode(ev)
                if number <= skip_lines:
                    ids.count(content)  # skipped lines still count, so the ids stay the same
                    continue
                ids.assign(ev, content)
                batch.append(ev)
                if len(batch) >= BATCH:
                    yield batch
                    batch = []
        if batch:
            yield batch

    return _append_all(lg, tenant, batches(), count)


def _append_all(lg: Any, tenant: str, batches: Iterable[list[Event]], total: int) -> Appended:
    """Append batches with two in flight, so validation of one overlaps the commit of the other.

    On Ctrl-C no batch is handed over any more; those already handed over are waited for, so
    the report says exactly what was committed."""
    done = Appended(start=_size(lg, tenant))
    inflight: list[tuple[int, Future[list[Receipt]]]] = []

    def take() -> int:
        n, fut = inflight[0]
        got = fut.result()  # an interrupt here leaves the batch in flight, to be waited for
        inflight.pop(0)
        done.receipts += got
        done.dropped += n - len(got)
        return n

    try:
        with Progress(
            TextColumn("[bold]appending"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=err,
            disable=not interactive(),
        ) as bar:
            task = bar.add_task("append", total=total)
            try:
                for batch in batches:
                    inflight.append((len(batch), lg.submit(batch, tenant, source="api")))  # policy and redaction
                    if len(inflight) >= 2:
                        bar.update(task, advance=take())
                while inflight:
                    bar.update(task, advance=take())
            except KeyboardInterrupt:
                done.interrupted = True
                while inflight:  # handed to the ledger: they commit (or fail) whatever we do
                    take()
    except ValidationError:
        raise
    except Exception as exc:
        stored = len(done.new)
        raise click.ClickException(
            f"append failed after {stored} events were stored: {exc}. "
            "Run the same command again once the cause is fixed: events already stored are not stored twice."
        ) from exc
    return done


def _size(lg: Any, tenant: str) -> int:
    head = lg.store.tenant(tenant)
    return int(head.size) if head is not None else 0


def _ingest_source(
    lg: Any, path: Path, tenant: str, fmt: str, report: dict[str, int], host: str | None = None
) -> Appended:
    from auditkeep.cli.sources import ingest_source
    from auditkeep.sources.formats import SOURCE_FORMATS

    if fmt in SOURCE_FORMATS:
        # Records a source cannot read go to quarantine; the rest is appended (policy applied).
        got = ingest_source(lg, path, tenant, fmt, host=host)
        report.update(quarantined=got.quarantined, lost=got.lost)
        return Appended(got.receipts, got.dropped)
    parse = FORMATS[fmt]
    events = parse(path.read_bytes())
    limits = lg.config.limits
    for i, ev in enumerate(events):
        try:
            validate_event(ev, limits, tenant)
        except ValidationError as exc:
            raise exc.at(i) from None
    return _append_all(lg, tenant, [events[i : i + BATCH] for i in range(0, len(events), BATCH)], len(events))
