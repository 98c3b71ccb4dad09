"""``auditkeep search``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click
import msgspec
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from auditkeep.cli.common import err, global_options, interactive, out, print_json, reader
from auditkeep.ledger.reader import LogReader, NotFound, Record
from auditkeep.model.event import CATEGORIES, OUTCOMES
from auditkeep.query.filters import Filters

F = TypeVar("F", bound=Callable[..., Any])


_FILTER_OPTIONS = (
    click.option("--since", help="Event time from (RFC 3339, 'now', or ago: 15m, 2h, 7d)."),
    click.option("--until", help="Event time before (same forms as --since)."),
    click.option("--received-since", help="Received from (same forms)."),
    click.option("--received-until", help="Received before (same forms)."),
    click.option("--actor", help="Actor id."),
    click.option("--action", help="Action, exact or a prefix ending in * (user.*)."),
    click.option("--resource-type"),
    click.option("--resource-id"),
    click.option("--outcome", type=click.Choice(OUTCOMES)),
    click.option("--category", type=click.Choice(CATEGORIES)),
    click.option("--text", "-q", help="Full-text query: every word must occur; word* is a prefix."),
    click.option("--submitter", help="Who appended: KIND or KIND:ID (key:ID, cert, collector:NAME, cli, embedded, server)."),
    click.option("--meta", "metadata", multiple=True, metavar="PATH=VALUE", help="Equality on a metadata path (repeatable)."),
)


def filter_options(command: F) -> F:
    """The search filters as options (search, export): one list, so the two agree."""
    for option in reversed(_FILTER_OPTIONS):
        command = option(command)
    return command


@click.command()
@click.option("--tenant", "-t", default="default", show_default=True)
@filter_options
@click.option("--order", type=click.Choice(["newest", "oldest"]), default="newest", show_default=True)
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--cursor", help="Continue from a previous page's cursor.")
@click.option("--all", "all_pages", is_flag=True, help="Follow cursors to the end.")
@click.option("--json", "as_json", is_flag=True, help="JSON Lines: one record per line.")
@global_options
def search(tenant: str, order: str, limit: int, cursor: str | None, all_pages: bool, as_json: bool, **filters: Any) -> None:
    """Search a tenant's events (newest first by event time).

    Reads only: the log is opened read-only and needs no signing key. When the data
    directory's search index (index.db) is missing or behind the log, what it lacks is
    indexed into a temporary copy outside the data directory first; on PostgreSQL the index
    is searched as it is and the entries it has not reached are counted on stderr."""
    parsed = Filters.parse(filters)
    table = _table() if not as_json else None
    shown = 0
    unindexed = 0
    with reader() as lg:
        _catch_up_index(lg, tenant)
        while True:
            page = lg.search(tenant, order=order, cursor=cursor, limit=limit, filters=parsed)
            unindexed = max(unindexed, page.unindexed)
            for rec in page.items:
                if table is None:
                    print_json(msgspec.to_builtins(rec))
                else:
                    _row(table, rec)
            shown += len(page.items)
            cursor = page.next_cursor
            if not all_pages or cursor is None:
                break
        if shown == 0 and lg.store.tenant(tenant) is None:
            known = sorted(h.tenant for h in lg.tenants())
            err.print(
                f"hint: there is no log for tenant {tenant!r} here"
                + (f"; tenants: {', '.join(known)} (see `auditkeep tenants`)" if known else " (nothing was ingested yet)"),
                highlight=False,
                markup=False,
            )
    if table is not None:
        out.print(table)
        more = f"  next page: --cursor {cursor}" if cursor and not all_pages else ""
        out.print(f"{shown} event(s){more}", highlight=False)
    if unindexed:
        err.print(
            f"[yellow]warning:[/yellow] the search index is {unindexed} entries behind the log and cannot be "
            "updated here (a read-only database session): the newest entries were not searched.",
            highlight=False,
        )


def _catch_up_index(lg: LogReader, tenant: str) -> None:
    """A read-only embedded store whose index.db is missing or behind the log: index what it
    lacks into a temporary copy outside the data directory (PostgreSQL's projection is
    searched as it is, and the lag reported)."""
    try:
        lag = lg.projection_lag(tenant)
    except NotFound:
        return
    switch = getattr(lg.store, "use_temporary_projection", None)
    if lag <= 0 or switch is None:
        return
    if not getattr(lg.store, "temporary_projection", False):
        err.print(
            f"the search index is {lag} entries behind the log: indexing them into a temporary copy "
            "outside the data directory",
            highlight=False,
        )
        switch()
    else:
        err.print("no search index in the data directory: indexing into a temporary one outside it", highlight=False)
    with Progress(
        TextColumn("[bold]indexing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=err, disable=not interactive(),
    ) as bar:
        task = bar.add_task("index", total=lag)
        lg.sync_projection(tenant, progress=lambda n: bar.update(task, advance=n))


def _table() -> Table:
    t = Table(show_lines=False)
    for col in ("index", "time", "actor", "action", "resource", "outcome"):
        t.add_column(col, overflow="fold")
    return t


def _row(t: Table, rec: Record) -> None:
    ev = rec.event
    res = ev.resource
    resource = "/".join(x for x in (res.type, res.id or res.name) if x) if res else ""
    colour = {"success": "green", "denied": "red", "failure": "yellow", "error": "red"}.get(ev.outcome or "", "")
    outcome = f"[{colour}]{ev.outcome}[/]" if colour else (ev.outcome or "")
    t.add_row(str(rec.index), ev.time or "", ev.actor.id, ev.action, resource, outcome)
