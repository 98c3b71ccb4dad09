"""``auditkeep users``: console accounts (add, list, disable, reset), directly on the store."""

from __future__ import annotations

import getpass
import sys
from typing import Any

import click
from rich.table import Table

from auditkeep.cli.common import err, global_options, ledger, out, print_json, settings
from auditkeep.console.secretbox import load_box
from auditkeep.console.users import ROLES, UserStore
from auditkeep.ledger.ledger import Ledger


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _record(lg: Ledger, action: str, tenant: str, username: str, metadata: dict[str, Any]) -> None:
    """An account change is an audit event in the tenant's own log (never the password)."""
    lg.append_own(
        [{
            "actor": {"id": _actor(), "type": "user"},
            "action": action,
            "category": "admin",
            "outcome": "success",
            "resource": {"type": "console_user", "id": username},
            "source": {"service": "auditkeep-cli"},
            "metadata": {"tenant": tenant, **metadata},
        }],
        tenant,
        lg.submitter,  # cli, the command: the auditkeep. namespace is auditkeep's own
    )  # fmt: skip


def _password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        if not line:
            raise click.UsageError("--password-stdin: no password on standard input")
        return line.rstrip("\r\n")
    if not sys.stdin.isatty():
        raise click.UsageError("no terminal to ask for the password: use --password-stdin")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise click.UsageError("the passwords differ")
    return first


@click.group()
def users() -> None:
    """Console accounts (passwords kept as argon2id hashes)."""


_tenant = click.option("--tenant", "-t", required=True, help="Tenant the account belongs to.")
_username = click.option("--username", "-u", required=True, help="The account's sign-in name.")
_stdin = click.option("--password-stdin", is_flag=True, help="Read the password from the first line of standard input (else prompt).")


@users.command()
@_tenant
@_username
@click.option("--role", "-r", required=True, type=click.Choice(ROLES), help="viewer: read; auditor: also ack alerts, sign off reviews; admin: also manage users.")
@_stdin
@global_options
def add(tenant: str, username: str, role: str, password_stdin: bool) -> None:
    """Create a console account."""
    password = _password(password_stdin)
    with ledger() as lg:
        UserStore(lg.store).add(tenant, username, role, password)
        _record(lg, "auditkeep.console.user.create", tenant, username, {"role": role})
    err.print(f"added {role} {username} to tenant {tenant}", highlight=False)


@users.command(name="list")
@click.option("--tenant", "-t", default=None, help="Only this tenant's accounts.")
@click.option("--json", "as_json", is_flag=True, help="JSON Lines: one account per line.")
@global_options
def list_users(tenant: str | None, as_json: bool) -> None:
    """List console accounts (never their password hashes)."""
    with ledger() as lg:
        found = UserStore(lg.store).list(tenant)
    found.sort(key=lambda u: (u.tenant, u.username))
    if as_json:
        for u in found:
            print_json(u.public())
        return
    table = Table("tenant", "username", "role", "created", "state")
    for u in found:
        p = u.public()
        state = "disabled" if p["disabled"] else "locked" if p["locked"] else "active"
        table.add_row(u.tenant, u.username, u.role, str(p["created"]), state)
    out.print(table)


@users.command()
@_tenant
@_username
@global_options
def disable(tenant: str, username: str) -> None:
    """Disable an account: its sessions end at their next request."""
    with ledger() as lg:
        UserStore(lg.store).disable(tenant, username)
        _record(lg, "auditkeep.console.user.disable", tenant, username, {})
    err.print(f"disabled {username} in tenant {tenant}", highlight=False)


@users.command()
@_tenant
@_username
@click.option("--role", "-r", type=click.Choice(ROLES), default=None, help="Also change the role.")
@_stdin
@global_options
def reset(tenant: str, username: str, role: str | None, password_stdin: bool) -> None:
    """Set a new password, clear a lockout and enable the account again."""
    password = _password(password_stdin)
    with ledger() as lg:
        user = UserStore(lg.store).reset(tenant, username, password, role)
        _record(lg, "auditkeep.console.user.reset", tenant, username, {"role": user.role})
    err.print(f"reset {username} in tenant {tenant}", highlight=False)


@users.command()
@_tenant
@_username
@click.option("--disable", "off", is_flag=True, help="Turn two-factor sign-in off.")
@global_options
def totp(tenant: str, username: str, off: bool) -> None:
    """Turn two-factor sign-in (TOTP, RFC 6238) on and print the secret once, or off."""
    import pyotp

    with ledger() as lg:
        secret = UserStore(lg.store, load_box(settings(), lg.store)).set_totp(tenant, username, not off)
        _record(lg, "auditkeep.console.user.totp", tenant, username, {"totp": not off})
    if secret is None:
        err.print(f"two-factor sign-in is off for {username} in tenant {tenant}", highlight=False)
        return
    err.print("add this to the user's authenticator app (shown only this once):", highlight=False)
    click.echo(secret)
    click.echo(pyotp.TOTP(secret).provisioning_uri(name=f"{username}@{tenant}", issuer_name="auditkeep"))
