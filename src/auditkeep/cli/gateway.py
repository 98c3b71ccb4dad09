"""``auditkeep gateway``: the access gateways and the approvals their guardrails ask for.

``approvals``, ``approve`` and ``reject`` work on the local store (``--data``/``--db``) or
on a server (``--server URL --key KEY``, an admin key)."""

from __future__ import annotations

import contextlib
import getpass
from collections.abc import Iterator

import click
from rich.text import Text

from auditkeep.cli.common import global_options, ledger, out, print_json
from auditkeep.cli.gateway_options import Refused, remote_options
from auditkeep.gateway.approvals import (
    STATUSES,
    Approval,
    ApprovalConflict,
    Approvals,
    SelfApproval,
)


def login() -> str:
    """Who runs this command (recorded as ``cli:<login>``)."""
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):  # no login name (a container without a passwd entry)
        return "cli:unknown"


@contextlib.contextmanager
def approvals_backend(server: str | None, api_key: str | None, ca_file: str | None) -> Iterator[Approvals]:
    if server:
        from auditkeep.gateway.remote import RemoteApprovals

        if not api_key:
            raise click.UsageError("--server needs --key (or AUDITKEEP_KEY)")
        import httpx

        from auditkeep.client.errors import APIError

        remote = RemoteApprovals(server, api_key, tls_verify=ca_file or True)
        try:
            yield remote
        except (APIError, httpx.HTTPError) as exc:
            raise Refused(f"{server}: {exc}") from None
        finally:
            remote.close()
        return
    from auditkeep.gateway.approvals import ApprovalBook

    with ledger() as lg:
        yield ApprovalBook(lg)


@click.group()
def gateway() -> None:
    """Access gateways (PostgreSQL, MCP) and the approvals their guardrails ask for."""


def _when(text: str | None) -> str:
    return (text or "-")[:19].replace("T", " ")


@gateway.command("approvals")
@click.option("--status", type=click.Choice(STATUSES), default=None, help="Only requests in this state.")
@click.option("--tenant", "-t", default=None, help="Only this tenant [default: all; with --server the key's].")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@remote_options
@global_options
def list_approvals(status: str | None, tenant: str | None, limit: int, as_json: bool,
                   server: str | None, api_key: str | None, ca_file: str | None) -> None:  # fmt: skip
    """List approval requests, newest first."""
    from rich.table import Column, Table

    with approvals_backend(server, api_key, ca_file) as book:
        items, _ = book.find(tenant, status, limit)
    if as_json:
        for a in items:
            print_json(a)
        return
    table = Table(Column("id", no_wrap=True, min_width=32), "created", "tenant", "status", "requester", "rule", "summary")
    for a in items:
        summary = a.summary if len(a.summary) <= 80 else a.summary[:79] + "…"
        table.add_row(*(Text(v) for v in (a.id, _when(a.created), a.tenant, a.status, a.requester, a.rule or "-", summary)))
    out.print(table)
    out.print(f"{len(items)} request(s)", highlight=False)


def _decide(verb: str, approval_id: str, note: str | None, server: str | None, api_key: str | None, ca_file: str | None) -> None:
    who = login()
    with approvals_backend(server, api_key, ca_file) as book:
        try:
            fn = book.approve if verb == "approve" else book.reject
            got: Approval = fn(approval_id, who, note=note)
        except SelfApproval as exc:
            raise Refused(str(exc)) from None
        except ApprovalConflict as exc:
            raise Refused(str(exc)) from None
    out.print(f"approval {got.id} is now {got.status} (by {got.decided_by})", highlight=False)


@gateway.command("approve")
@click.argument("approval_id")
@click.option("--note", default=None, help="Why (kept with the request and in the log).")
@remote_options
@global_options
def approve(approval_id: str, note: str | None, server: str | None, api_key: str | None, ca_file: str | None) -> None:
    """Approve a held statement; the gateway then runs it. You cannot approve your own."""
    _decide("approve", approval_id, note, server, api_key, ca_file)


@gateway.command("reject")
@click.argument("approval_id")
@click.option("--note", default=None, help="Why (kept with the request and in the log).")
@remote_options
@global_options
def reject(approval_id: str, note: str | None, server: str | None, api_key: str | None, ca_file: str | None) -> None:
    """Reject a held statement; the client gets an error."""
    _decide("reject", approval_id, note, server, api_key, ca_file)


@gateway.command("show")
@click.argument("approval_id")
@remote_options
@global_options
def show(approval_id: str, server: str | None, api_key: str | None, ca_file: str | None) -> None:
    """One approval request as JSON."""
    with approvals_backend(server, api_key, ca_file) as book:
        print_json(book.get(approval_id))


def _add_gateways() -> None:
    from auditkeep.cli.gateway_mcp import mcp
    from auditkeep.cli.gateway_postgres import postgres

    gateway.add_command(postgres)
    gateway.add_command(mcp)


_add_gateways()
