"""``auditkeep checkpoint`` and ``auditkeep proof``."""

from __future__ import annotations

import click
import msgspec

from auditkeep.cli.common import INDEX, TREE_SIZE, global_options, ledger, out, print_json, reader


@click.command()
@click.option("--tenant", "-t", default="default", show_default=True)
@click.option("--new", "new", is_flag=True, help="Sign the current tree head now.")
@global_options
def checkpoint(tenant: str, new: bool) -> None:
    """Print the latest signed checkpoint (C2SP tlog-checkpoint, signed note).

    Reads only, without the signing key; --new signs the current tree head first (a
    writer: it needs the signing key)."""
    if new:
        with ledger() as lg:
            click.echo(lg.checkpoint(tenant, new=True), nl=False)
        return
    with reader() as rd:
        click.echo(rd.checkpoint(tenant), nl=False)


@click.group()
def proof() -> None:
    """Inclusion and consistency proofs (RFC 9162)."""


@proof.command()
@click.option("--tenant", "-t", default="default", show_default=True)
@click.option("--index", "-i", type=INDEX, help="Log index of the event.")
@click.option("--id", "event_id", help="Event id (instead of --index).")
@click.option("--size", type=TREE_SIZE, help="Tree size of a signed checkpoint (default: the latest).")
@click.option("--json", "as_json", is_flag=True, help="Print the proof as JSON.")
@click.option("--leaf-out", type=click.Path(dir_okay=False, writable=True), help="Also write the exact leaf bytes to this file.")
@global_options
def inclusion(
    tenant: str, index: int | None, event_id: str | None, size: int | None, as_json: bool, leaf_out: str | None
) -> None:
    """Prove that an event is in the log's signed tree (a stored checkpoint's; nothing is
    signed here)."""
    if (index is None) == (event_id is None):
        raise click.UsageError("give exactly one of --index or --id")
    with reader() as lg:
        p = lg.prove_inclusion(index, tenant, size, event_id=event_id)
        if leaf_out:
            with open(leaf_out, "wb") as fh:
                fh.write(lg.entry(p.index, tenant).leaf)
    if as_json:
        print_json(msgspec.to_builtins(p))
        return
    out.print(f"event {p.index} of {p.tree_size} in tenant {p.tenant}", highlight=False)
    out.print(f"leaf hash  {p.leaf_hash}")
    for i, h in enumerate(p.hashes):
        out.print(f"  [{i:2d}] {h}")
    out.print(p.checkpoint, end="", highlight=False, markup=False)


@proof.command()
@click.option("--tenant", "-t", default="default", show_default=True)
@click.option("--from", "from_", type=INDEX, required=True, help="Older tree size.")
@click.option("--to", type=TREE_SIZE, help="Newer tree size with a signed checkpoint (default: latest).")
@click.option("--json", "as_json", is_flag=True, help="Print the proof as JSON.")
@global_options
def consistency(tenant: str, from_: int, to: int | None, as_json: bool) -> None:
    """Prove that an older tree is a prefix of a newer one."""
    with reader() as lg:
        p = lg.prove_consistency(from_, to, tenant)
    if as_json:
        print_json(msgspec.to_builtins(p))
        return
    out.print(f"tree {p.from_} is a prefix of tree {p.to} in tenant {p.tenant}", highlight=False)
    for i, h in enumerate(p.hashes):
        out.print(f"  [{i:2d}] {h}")
    out.print(p.checkpoint, end="", highlight=False, markup=False)


@click.command()
@click.argument("event_id", required=False)
@click.option("--tenant", "-t", default="default", show_default=True)
@click.option("--index", "-i", type=INDEX, help="Log index (instead of an event id).")
@click.option("--leaf", is_flag=True, help="Print the exact committed leaf bytes (canonical JSON) instead.")
@global_options
def show(event_id: str | None, tenant: str, index: int | None, leaf: bool) -> None:
    """Show one event (by id or --index) as JSON."""
    if (index is None) == (event_id is None):
        raise click.UsageError("give an event id or --index")
    with reader() as lg:
        if event_id is not None:
            index = lg.get(event_id, tenant).index
        assert index is not None
        entry = lg.entry(index, tenant)
        if leaf:
            click.echo(entry.leaf.decode())
            return
        print_json(msgspec.to_builtins(lg.record_at(index, tenant)))
