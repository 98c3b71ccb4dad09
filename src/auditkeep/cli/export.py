"""``auditkeep export``: a tenant's events as JSON Lines, CSV, OCSF or CEF."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import IO, Any

import click
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from auditkeep.cli.common import err, global_options, interactive, reader
from auditkeep.cli.search import _catch_up_index, filter_options
from auditkeep.export import FORMATS, Formatter, iter_chunks, planned_total
from auditkeep.query.filters import Filters


@click.command()
@click.option("--tenant", "-t", default="default", show_default=True)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="jsonl", show_default=True,
              help="jsonl (records as stored), csv, ocsf (OCSF 1.8.0 JSON Lines) or cef.")
@click.option("--out", "-o", "out_path", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write to FILE (replaced only when the export is complete) instead of stdout.")
@filter_options
@global_options
def export(tenant: str, fmt: str, out_path: str | None, **filters: Any) -> None:
    """Export a tenant's events, page by page in constant memory.

    Without filters: every entry of the log in log order, up to the head when the export
    began. With filters: the matching events, oldest event time first. Reads only (no
    signing key needed); a progress bar shows on a terminal."""
    parsed = Filters.parse(filters)
    formatter = Formatter(fmt)
    with reader() as lg, _output(out_path) as sink:
        if parsed:
            _catch_up_index(lg, tenant)
        total = planned_total(lg, tenant, parsed)
        columns = [TextColumn(f"[bold]export {fmt}"), BarColumn()]
        columns += [MofNCompleteColumn(), TimeRemainingColumn()] if total is not None else [TextColumn("{task.completed} events"), TimeElapsedColumn()]
        written = 0
        with Progress(*columns, console=err, disable=not interactive() or (out_path is None and sys.stdout.isatty())) as bar:
            task = bar.add_task("export", total=total)
            for count, chunk in iter_chunks(lg, tenant, parsed, formatter):
                sink.write(chunk)
                written += count
                bar.update(task, advance=count)
    if out_path is not None:
        err.print(f"{written} event(s) written to {out_path}", highlight=False, markup=False)


@contextlib.contextmanager
def _output(path: str | None) -> Any:
    """stdout, or ``path`` written beside it and renamed into place once complete (an
    interrupted export never leaves a file that looks whole)."""
    if path is None:
        yield sys.stdout.buffer
        sys.stdout.flush()
        return
    target = Path(path)
    part = target.with_name(target.name + ".part")
    f: IO[bytes] = open(part, "wb")  # noqa: SIM115 - renamed below
    try:
        yield f
        f.flush()
        os.fsync(f.fileno())
        f.close()
        os.replace(part, target)
    except BaseException:
        f.close()
        part.unlink(missing_ok=True)
        raise
