"""``auditkeep forward status``: how far each ``[[forward]]`` target has got;
``auditkeep forward reset``: move a target's cursor (to send again, or to skip)."""

from __future__ import annotations

from typing import Literal

import click
from rich.table import Table

from auditkeep.cli.common import (
    INDEX,
    err,
    global_options,
    ledger,
    out,
    print_json,
    reader,
    settings,
)
from auditkeep.cli.retention import cli_actor
from auditkeep.forward.forwarder import ResetRefused, check_targets, cursor_name, reset_cursors


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


@forward.command()
@click.argument("name")
@click.option("--to", "to_index", type=INDEX, default=None, metavar="INDEX", help="Send again from this log index (entries below it count as taken).")
@click.option("--start", "at_start", is_flag=True, help="Send every tenant's log again from its beginning.")
@click.option("--end", "at_end", is_flag=True, help="Skip everything committed so far: continue from each log's head.")
@click.option("--tenant", "-t", "tenants", multiple=True, help="Only this tenant's cursor (repeatable); default every tenant the target follows.")
@click.option("--json", "as_json", is_flag=True, help="JSON Lines: one line per tenant, {target, tenant, from, to}.")
@global_options
def reset(name: str, to_index: int | None, at_start: bool, at_end: bool, tenants: tuple[str, ...], as_json: bool) -> None:
    """Move target NAME's durable cursor (exactly one of --to, --start, --end).

    Needs the store's forwarder lease: stop `auditkeep serve` first (every server of a
    shared store). Each tenant's change is recorded in its log as an auditkeep.forward.reset
    event (old and new position), which the target then sends like any other event."""
    if at_start + at_end + (to_index is not None) != 1:
        raise click.UsageError("give exactly one of --to INDEX, --start, --end")
    s = settings()
    try:
        check_targets(s.forward)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    target = next((t for t in s.forward if t.name == name), None)
    if target is None:
        known = ", ".join(t.name for t in s.forward) or "none"
        raise click.UsageError(f"no [[forward]] target named {name!r} in the settings (targets: {known})")
    to: int | Literal["start", "end"] = "start" if at_start else "end" if at_end else int(to_index or 0)
    with ledger() as lg:
        try:
            done = reset_cursors(lg, target, to, cli_actor(), lg.submitter, tenants)
        except ResetRefused as exc:
            raise click.UsageError(str(exc)) from None
    for tenant, old, new in done:
        if as_json:
            print_json({"target": name, "tenant": tenant, "from": old, "to": new})
        else:
            err.print(f"{name}: tenant {tenant}: cursor {old} -> {new}", highlight=False)
    if not done and not as_json:
        err.print(f"{name}: no tenant log to reset", highlight=False)
