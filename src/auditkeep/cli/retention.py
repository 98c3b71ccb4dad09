"""``auditkeep retention`` and ``auditkeep hold``: retention policies and legal holds."""

from __future__ import annotations

import getpass
import time
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from auditkeep.cli.common import (
    err,
    global_options,
    interactive,
    ledger,
    out,
    print_json,
    reader,
    settings,
)
from auditkeep.ledger.reader import LogReader, check_tenant
from auditkeep.model.timeargs import parse_time_arg
from auditkeep.model.timefmt import format_rfc3339
from auditkeep.retention.holds import HoldBook, new_hold
from auditkeep.retention.run import TenantPlan, plan_retention, run_retention
from auditkeep.retention.service import add_hold, release_hold


def cli_actor() -> dict[str, str]:
    try:
        return {"id": f"cli:{getpass.getuser()}", "type": "user"}
    except (KeyError, OSError):
        return {"id": "cli", "type": "user"}


def _bar(label: str) -> Progress:
    return Progress(
        TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=err, disable=not interactive(),
    )


def _total(lg: LogReader, tenant: str | None) -> int:
    heads = lg.tenants() if tenant is None else [lg.head(tenant)]
    return sum(h.size for h in heads)


def _plan_json(plans: list[TenantPlan], at_ns: int) -> dict[str, Any]:
    return {
        "at": format_rfc3339(at_ns),
        "tenants": [
            {"tenant": p.tenant, "size": p.size, "scanned": p.scanned, "due": p.due, "held": p.held,
             "already_expired": p.already_expired, "unarchived": p.unarchived, "ranges": [[a, b] for a, b in p.ranges],
             "policies": dict(p.by_policy), "holds": dict(p.holds), "records": p.records}
            for p in plans
        ],
    }


def _print(plans: list[TenantPlan], verb: str) -> None:
    table = Table("tenant", "size", verb, "held", "not yet archived", "already expired", "ranges (end exclusive)",
                  "by policy")
    for p in plans:
        shown = ", ".join(f"{a}-{b}" for a, b in p.ranges[:4]) + (f" +{len(p.ranges) - 4}" if len(p.ranges) > 4 else "")
        policies = ", ".join(f"{k}: {v}" for k, v in sorted(p.by_policy.items()))
        table.add_row(p.tenant, str(p.size), str(p.due), str(p.held), str(p.unarchived), str(p.already_expired),
                      shown or "-", policies or "-")
    out.print(table)


@click.group()
def retention() -> None:
    """Retention policies ([[retention.policy]] in auditkeep.toml): plan and run them."""


@retention.command()
@click.option("--at", "at", metavar="TIME", help="Plan as if run at TIME (RFC 3339, or 30d for 30 days ago); default now.")
@click.option("--tenant", "-t", help="One tenant (default: all).")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@global_options
def plan(at: str | None, tenant: str | None, as_json: bool) -> None:
    """Show what a run would delete (counts, index ranges), changing nothing.

    Opens the store read-only."""
    policies = settings().retention.policies()
    at_ns = parse_time_arg(at, "at") if at else time.time_ns()
    if tenant is not None:
        check_tenant(tenant)
    with reader() as lg, _bar("planning") as bar:
        task = bar.add_task("plan", total=_total(lg, tenant))
        plans = plan_retention(lg, policies, at_ns, tenant, lambda n: bar.update(task, advance=n))
    if as_json:
        print_json(_plan_json(plans, at_ns))
        return
    if not policies:
        err.print("no retention policy is configured ([[retention.policy]] in auditkeep.toml): nothing is due")
    _print(plans, "would delete")


@retention.command()
@click.option("--tenant", "-t", help="One tenant (default: all).")
@click.option("--json", "as_json", is_flag=True, help="Print what was done as JSON.")
@global_options
def run(tenant: str | None, as_json: bool) -> None:
    """Delete the payloads of due events now (leaf hashes and tiles stay, so every checkpoint
    and proof still verifies); each chunk is first recorded in an auditkeep.retention.deleted
    event. Events whose policy has archive_after are archived first ([archive]) and deleted
    only once archived. Resumable: a run that is stopped or killed is finished by the next one."""
    s = settings()
    policies = s.retention.policies()
    if tenant is not None:
        check_tenant(tenant)
    at_ns = time.time_ns()
    from auditkeep.archive.run import retention_archiver

    with ledger() as lg, _bar("expiring") as bar:
        task = bar.add_task("run", total=_total(lg, tenant))
        plans = run_retention(lg, policies, at_ns, tenant, lambda n: bar.update(task, advance=n),
                              archive=retention_archiver(lg, s.archive, policies))
    if as_json:
        print_json(_plan_json(plans, at_ns))
        return
    _print(plans, "deleted")


@click.group()
def hold() -> None:
    """Legal holds: held events are never deleted or erased until the hold is released."""


@hold.command(name="add")
@click.option("--tenant", "-t", required=True, help="The tenant whose events are held.")
@click.option("--actor", help="Only events of this actor id.")
@click.option("--resource-type", help="Only events on resources of this type.")
@click.option("--resource-id", help="Only events on this resource (needs --resource-type).")
@click.option("--since", metavar="TIME", help="Only events at or after TIME (event time; RFC 3339 or 30d).")
@click.option("--until", metavar="TIME", help="Only events before TIME.")
@click.option("--reason", required=True, help="Why (recorded in the log).")
@click.option("--json", "as_json", is_flag=True, help="Print the hold as JSON.")
@global_options
def hold_add(tenant: str, actor: str | None, resource_type: str | None, resource_id: str | None,
             since: str | None, until: str | None, reason: str, as_json: bool) -> None:
    """Place a hold (recorded as auditkeep.hold.added in the tenant's log)."""
    check_tenant(tenant)
    who = cli_actor()
    h = new_hold(
        tenant, reason, who["id"], actor=actor, resource_type=resource_type, resource_id=resource_id,
        since_ns=parse_time_arg(since, "since") if since else None,
        until_ns=parse_time_arg(until, "until") if until else None,
    )
    with ledger() as lg:
        add_hold(lg, h, who)
    if as_json:
        print_json(h)
        return
    out.print(f"hold {h.id} placed on tenant {tenant}", highlight=False)


@hold.command(name="list")
@click.option("--tenant", "-t", help="One tenant's holds (default: all).")
@click.option("--all", "show_all", is_flag=True, help="Released holds too.")
@click.option("--json", "as_json", is_flag=True, help="JSON Lines: one hold per line.")
@global_options
def hold_list(tenant: str | None, show_all: bool, as_json: bool) -> None:
    """List active holds (with --all, released ones too)."""
    with reader() as lg:
        holds = HoldBook(lg.store).all(tenant, active_only=not show_all, limit=100_000)
    if as_json:
        for h in holds:
            print_json(h)
        return
    table = Table("id", "tenant", "scope", "reason", "placed", "released")
    for h in holds:
        scope = ", ".join(f"{k}={v}" for k, v in h.scope().items()) or "every event"
        table.add_row(h.id, h.tenant, scope, h.reason, f"{h.created_at} by {h.created_by}", h.released_at or "-")
    out.print(table)


@hold.command(name="release")
@click.argument("hold_id")
@click.option("--reason", required=True, help="Why (recorded in the log).")
@global_options
def hold_release(hold_id: str, reason: str) -> None:
    """Release a hold (recorded as auditkeep.hold.released in the tenant's log)."""
    with ledger() as lg:
        h = release_hold(lg, hold_id, cli_actor(), reason)
    out.print(f"hold {h.id} on tenant {h.tenant} released", highlight=False)


@click.command()
@click.option("--tenant", "-t", required=True, help="The tenant whose log holds the subject's events.")
@click.option("--subject", "-s", required=True, help="The data subject (the value of subject_field, default actor.id).")
@click.option("--reason", required=True, help="Why (recorded in the log; write no personal data here).")
@click.option("--json", "as_json", is_flag=True, help="Print the erasure id, counts and ranges as JSON.")
@global_options
def erase(tenant: str, subject: str, reason: str, as_json: bool) -> None:
    """Erase a data subject's personal fields (crypto-shredding): the salt and the plaintext
    are destroyed in every store file, the leaves and every proof stay valid; recorded as
    auditkeep.subject.erased (without naming the subject). Active holds block it (exit 2)."""
    from auditkeep.retention.erase import erase_subject

    check_tenant(tenant)
    with ledger() as lg:
        done = erase_subject(lg, tenant, subject, reason, cli_actor())
    if as_json:
        print_json({"erasure_id": done.erasure_id, "tenant": done.tenant, "events": done.events,
                    "ranges": [[a, b] for a, b in done.ranges]})
        return
    out.print(f"erased the personal fields of {done.events} events in tenant {tenant} ({done.erasure_id})", highlight=False)
