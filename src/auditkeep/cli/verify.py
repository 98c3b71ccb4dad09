"""``auditkeep verify``."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from auditkeep.cli.common import err, global_options, interactive, ledger, out, print_json


@click.command()
@click.option("--tenant", "-t", help="Verify one tenant (default: all).")
@click.option("--trusted", "trusted", multiple=True, metavar="FILE",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A file holding a checkpoint note saved earlier (repeatable): the log must still contain it.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@global_options
def verify(tenant: str | None, trusted: tuple[Path, ...], as_json: bool) -> None:
    """Recompute every leaf, tile and root and check every checkpoint.

    Exits 0 when everything is intact, 1 when tampering is found (naming the first index
    where the log diverges).
    """
    notes = [p.read_text() for p in trusted]
    with ledger() as lg:
        heads = lg.tenants() if tenant is None else [lg.head(tenant)]
        total = sum(h.size for h in heads)
        with Progress(
            TextColumn("[bold]verifying"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
            console=err, disable=not interactive(),
        ) as bar:
            task = bar.add_task("verify", total=total)
            report = lg.verify(tenant, notes, progress=lambda n: bar.update(task, advance=n))
    if as_json:
        print_json({
            "ok": report.ok,
            "tenants": [
                {"tenant": t.tenant, "size": t.size, "entries_checked": t.entries_checked,
                 "checkpoints_checked": t.checkpoints_checked,
                 "problems": [{"index": p.index, "kind": p.kind, "message": p.message} for p in t.problems]}
                for t in report.tenants
            ],
        })
    else:
        table = Table("tenant", "entries", "checkpoints", "result")
        for t in report.tenants:
            first = t.first
            result = "[green]intact[/green]" if t.ok else f"[red]{first.render(t.tenant) if first else 'failed'}[/red]"
            table.add_row(t.tenant, f"{t.entries_checked}/{t.size}", str(t.checkpoints_checked), result)
        out.print(table)
        for t in report.tenants:
            for p in t.problems:
                err.print(f"[red]tampering:[/red] {p.render(t.tenant)}", highlight=False)
    if not report.ok:
        sys.exit(1)


@click.command()
@click.option("--tenant", "-t", help="Rebuild one tenant's part only after the reset (default: all).")
@global_options
def reindex(tenant: str | None) -> None:
    """Drop the search indexes and rebuild them from the log.

    The indexes and the full-text index are a projection of the committed log: nothing in
    them is trusted by verify, and this command recreates them exactly (for instance after
    deleting index.db with its -wal and -shm files, or after a fix in how events are indexed).
    """
    with ledger() as lg:
        lg.store.reset_projection()
        heads = lg.tenants() if tenant is None else [lg.head(tenant)]
        with Progress(
            TextColumn("[bold]indexing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
            console=err, disable=not interactive(),
        ) as bar:
            task = bar.add_task("index", total=sum(h.size for h in heads))
            for h in heads:
                lg.sync_projection(h.tenant, progress=lambda n: bar.update(task, advance=n))
    out.print(f"reindexed {sum(h.size for h in heads)} events in {len(heads)} tenant log(s)", highlight=False)
