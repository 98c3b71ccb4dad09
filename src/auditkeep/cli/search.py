"""``auditkeep search``."""

from __future__ import annotations

from typing import Any

import click
import msgspec
from rich.table import Table

from auditkeep.cli.common import err, global_options, ledger, out, print_json
from auditkeep.ledger.ledger import Record
from auditkeep.model.event import CATEGORIES, OUTCOMES
from auditkeep.query.filters import search_kwargs


@click.command()
@click.option("--tenant", "-t", default="default", show_default=True)
@click.option("--since", help="Event time from (RFC 3339, 'now', or ago: 15m, 2h, 7d).")
@click.option("--until", help="Event time before (same forms as --since).")
@click.option("--received-since", help="Received from (same forms).")
@click.option("--received-until", help="Received before (same forms).")
@click.option("--actor", help="Actor id.")
@click.option("--action", help="Action, exact or a prefix ending in * (user.*).")
@click.option("--resource-type")
@click.option("--resource-id")
@click.option("--outcome", type=click.Choice(OUTCOMES))
@click.option("--category", type=click.Choice(CATEGORIES))
@click.option("--text", "-q", help="Full-text query: every word must occur; word* is a prefix.")
@click.option("--meta", "metadata", multiple=True, metavar="PATH=VALUE", help="Equality on a metadata path (repeatable).")
@click.option("--order", type=click.Choice(["newest", "oldest"]), default="newest", show_default=True)
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--cursor", help="Continue from a previous page's cursor.")
@click.option("--all", "all_pages", is_flag=True, help="Follow cursors to the end.")
@click.option("--json", "as_json", is_flag=True, help="JSON Lines: one record per line.")
@global_options
def search(tenant: str, order: str, limit: int, cursor: str | None, all_pages: bool, as_json: bool, **filters: Any) -> None:
    """Search a tenant's events (newest first by event time)."""
    kwargs = search_kwargs(filters)
    table = _table() if not as_json else None
    shown = 0
    with ledger() as lg:
        while True:
            page = lg.search(tenant, order=order, cursor=cursor, limit=limit, **kwargs)
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
