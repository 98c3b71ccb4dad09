"""``auditkeep forward status``: how far each ``[[forward]]`` target has got."""

from __future__ import annotations

import click
from rich.table import Table

from auditkeep.cli.common import global_options, out, print_json, reader, settings
from auditkeep.forward.forwarder import check_targets, cursor_name


@click.group()
def forward() -> None:
    """The forward targets of auditkeep.toml ([[forward]]; `auditkeep serve` runs them)."""


@forward.command()
@click.option("--json", "as_json", is_flag=True, help="JSON Lines: one line per target and tenant.")
@global_options
def status(as_json: bool) -> None:
    """Each target's saved position and lag per tenant, read from the store (read-only).

    The position is the durable cursor: entries below it were taken by the receiver; the
    lag is what remains up to the log's head."""
    s = settings()
    try:
        check_targets(s.forward)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if not s.forward:
        raise click.UsageError("no [[forward]] targets in the settings (see docs/forwarding.md)")
    table = Table("target", "type", "tenant", "position", "size", "lag")
    with reader() as lg:
        heads = lg.tenants()
        for t in s.forward:
            for h in heads:
                if t.tenants and h.tenant not in t.tenants:
                    continue
                position = lg.store.cursor(cursor_name(t.name), h.tenant_id)[0]
                row = {"target": t.name, "type": t.type, "tenant": h.tenant, "position": position, "size": h.size,
                       "lag": h.size - position}
                if as_json:
                    print_json(row)
                else:
                    table.add_row(*(str(v) for v in row.values()))
    if not as_json:
        out.print(table)
