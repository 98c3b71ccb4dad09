"""``auditkeep keys``: create, list and revoke API keys, directly on the store."""

from __future__ import annotations

import getpass

import click
from rich.table import Table

from auditkeep.cli.common import err, global_options, ledger, out, print_json
from auditkeep.ledger.ledger import Ledger
from auditkeep.server.audit import key_event, key_event_tenant
from auditkeep.server.keys import ALL_TENANTS, ApiKey, KeyStore, LastAdminKey, parse_expiry


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _record(lg: Ledger, action: str, key: ApiKey) -> None:
    lg.append_own([key_event(action, key, _actor(), "user")], key_event_tenant(key), lg.submitter)


@click.group()
def keys() -> None:
    """API keys (stored as hashes; a key's secret is shown once)."""


@keys.command()
@click.option("--tenant", "-t", required=True, help=f"Tenant the key acts on, or {ALL_TENANTS} for all tenants.")
@click.option("--scopes", "-s", required=True, help="Comma-separated: ingest, read, verify, admin.")
@click.option("--expires", help="Lifetime (90d, 12h, 2w, 1y) or an RFC 3339 time; default never.")
@click.option("--name", help="A label for listings.")
@click.option("--json", "as_json", is_flag=True, help="Print the key and its details as JSON.")
@global_options
def create(tenant: str, scopes: str, expires: str | None, name: str | None, as_json: bool) -> None:
    """Create a key and print it (only this once)."""
    with ledger() as lg:
        key, token = KeyStore(lg.store).create(tenant, scopes, parse_expiry(expires), name)
        _record(lg, "auditkeep.key.create", key)
    if as_json:
        print_json({"key": token, **key.public()})
        return
    err.print(f"created key {key.keyid} for tenant {key.tenant} with scopes {','.join(key.scopes)}", highlight=False)
    err.print("the key is shown only this once:", highlight=False)
    click.echo(token)


@keys.command(name="list")
@click.option("--tenant", "-t", default=None, help="Only this tenant's keys (* for keys of all tenants).")
@click.option("--json", "as_json", is_flag=True, help="JSON Lines: one key per line.")
@global_options
def list_keys(tenant: str | None, as_json: bool) -> None:
    """List keys (never their secrets)."""
    with ledger() as lg:
        found = KeyStore(lg.store).list(tenant, True, 100_000)
    if as_json:
        for k in found:
            print_json(k.public())
        return
    table = Table("keyid", "tenant", "scopes", "name", "created", "expires", "revoked")
    for k in found:
        p = k.public()
        table.add_row(k.keyid, k.tenant, ",".join(k.scopes), k.name or "", str(p["created"]), str(p["expires"] or ""), str(p["revoked"] or ""))
    out.print(table)


@keys.command()
@click.argument("keyid")
@global_options
def revoke(keyid: str) -> None:
    """Revoke a key: it stops working (within a second on a running server)."""
    with ledger() as lg:
        store = KeyStore(lg.store)
        key = store.get(keyid)
        if key is None:
            raise click.ClickException(f"no key {keyid}")
        if key.revoked_ns is not None:
            err.print(f"key {keyid} was already revoked", highlight=False)
            return
        try:
            revoked = store.revoke(keyid)
        except LastAdminKey as exc:
            raise click.ClickException(str(exc)) from None
        assert revoked is not None
        _record(lg, "auditkeep.key.revoke", revoked)
    err.print(f"revoked key {keyid}", highlight=False)
