"""``auditkeep ingest``: load events from a file, all or nothing."""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import IO, Any

import click
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

BATCH = 1000

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
@click.option("--skip-lines", type=click.IntRange(0), default=0, help="Skip the first N lines (resume after a failed run).")
@click.option("--host", default=None, metavar="NAME",
              help="--format auditd: the machine that wrote the log, for lines without node= [default: none].")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@global_options
def ingest(file: str, tenant: str, fmt: str, skip_lines: int, host: str | None, as_json: bool) -> None:
    """Append the events in FILE (or - for standard input) to a tenant's log.

    The whole input is validated first: one bad event rejects the input, naming its line
    and field, and nothing is stored.
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
            if fmt != "json":
                receipts = _ingest_source(lg, path, tenant, fmt, report, host)
            else:
                receipts = _ingest_json(lg, path, tenant, skip_lines)
            note = lg.checkpoint(tenant, new=True) if receipts else None
        elapsed = time.perf_counter() - started
    finally:
        if spool is not None:
            spool.unlink(missing_ok=True)
    count = len(receipts)
    first = receipts[0].index if receipts else None
    last = receipts[-1].index if receipts else None
    size = int(note.split("\n")[1]) if note else 0
    if as_json:
        print_json({"tenant": tenant, "events": count, "first_index": first, "last_index": last,
                    "tree_size": size, "seconds": round(elapsed, 3), **report})
        return
    rate = count / elapsed if elapsed > 0 else 0.0
    where = f" (indexes {first}..{last})" if count else ""
    out.print(f"ingested {count} events into tenant [bold]{tenant}[/bold]{where} in {elapsed:.2f}s ({rate:,.0f}/s)")
    if note:
        out.print(f"checkpoint: tree size {size}")


def _ingest_json(lg: Any, path: Path, tenant: str, skip_lines: int) -> list[Receipt]:
    limits = lg.config.limits
    with path.open("rb") as fh:
        head = fh.read(4096).lstrip()
    if head[:1] == b"[":
        data = path.read_bytes()
        events = decode_batch(data)
        for i, ev in enumerate(events):
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
        batch: list[Event] = []
        with path.open("rb") as fh:
            for number, line in _lines(fh):
                if number <= skip_lines:
                    continue
                batch.append(decode_event(line))
                if len(batch) >= BATCH:
                    yield batch
                    batch = []
        if batch:
            yield batch

    return _append_all(lg, tenant, batches(), count)


def _append_all(lg: Any, tenant: str, batches: Any, total: int) -> list[Receipt]:
    """Append batches with two in flight, so validation of one overlaps the commit of the other."""
    receipts: list[Receipt] = []
    inflight: list[Future[list[Receipt]]] = []
    stored = 0
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
            for batch in batches:
                inflight.append(lg.submit(batch, tenant, source="api"))  # capture policy and redaction
                if len(inflight) >= 2:
                    got = inflight.pop(0).result()
                    receipts += got
                    stored += len(got)
                    bar.update(task, advance=len(got))
            while inflight:
                got = inflight.pop(0).result()
                receipts += got
                stored += len(got)
                bar.update(task, advance=len(got))
    except ValidationError:
        raise
    except Exception as exc:
        raise click.ClickException(
            f"append failed after {stored} events were stored: {exc}. "
            "Events with ids are safe to resend; see --skip-lines."
        ) from exc
    return receipts


def _ingest_source(
    lg: Any, path: Path, tenant: str, fmt: str, report: dict[str, int], host: str | None = None
) -> list[Receipt]:
    from auditkeep.cli.sources import ingest_source
    from auditkeep.sources.formats import SOURCE_FORMATS

    if fmt in SOURCE_FORMATS:
        # Records a source cannot read go to quarantine; the rest is appended (policy applied).
        got = ingest_source(lg, path, tenant, fmt, host=host)
        report.update(dropped=got.dropped, quarantined=got.quarantined, lost=got.lost)
        return got.receipts
    parse = FORMATS[fmt]
    events = parse(path.read_bytes())
    limits = lg.config.limits
    for i, ev in enumerate(events):
        try:
            validate_event(ev, limits, tenant)
        except ValidationError as exc:
            raise exc.at(i) from None
    return _append_all(lg, tenant, [events[i : i + BATCH] for i in range(0, len(events), BATCH)], len(events))

