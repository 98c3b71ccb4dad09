"""``auditkeep gateway mcp``: put the gateway between an AI agent and an MCP server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from auditkeep.cli.common import err, global_options, settings
from auditkeep.gateway.mcp.framing import DEFAULT_MAX_MESSAGE
from auditkeep.ledger.ledger import check_tenant
from auditkeep.model.errors import ValidationError
from auditkeep.model.event import Submitter

if TYPE_CHECKING:  # the gateway (and the MCP types) load only when the command runs
    from auditkeep.gateway.mcp.guard import Guardrails, Reviewer
    from auditkeep.gateway.sink import EventSink

SOURCE = "mcp-gateway"  # the source name the capture policy and redaction see
CLOSE_TIMEOUT = 3.0
"""Seconds the events still queued get at exit; a spool keeps the rest. Short, since an
agent's host sends SIGTERM (and then SIGKILL) to a server that does not exit soon after it
closed the connection."""


@click.command("mcp")
@click.option("--tenant", "-t", required=True, help="The tenant log the events go to.")
@click.option("--agent", default=None, metavar="NAME",
              help="Who the agent is (the events' actor) [default: the client's name from initialize].")
@click.option("--rules", "rules_path", default=None, metavar="FILE", type=click.Path(dir_okay=False),
              help="Guardrail rules (deny, review, allow); re-read when the file changes.")
@click.option("--server", "server_url", default=None, metavar="URL", envvar="AUDITKEEP_URL",
              help="Send events (and approval requests) to this auditkeep server instead of an "
                   "embedded ledger [env AUDITKEEP_URL].")
@click.option("--key", default=None, envvar="AUDITKEEP_KEY", metavar="KEY",
              help="API key (ingest scope) for --server [env AUDITKEEP_KEY].")
@click.option("--spool", default=None, metavar="DIR",
              help="Where events wait while the log cannot take them [default with --server: "
                   "auditkeep-mcp-spool; embedded: DATA/mcp-spool].")
@click.option("--listen", default=None, metavar="HOST:PORT",
              help="Proxy the Streamable HTTP transport: listen here (with --upstream).")
@click.option("--upstream", default=None, metavar="URL", help="With --listen: the MCP server's endpoint URL.")
@click.option("--max-message-bytes", type=click.IntRange(1024), default=DEFAULT_MAX_MESSAGE, show_default=True,
              help="Largest JSON-RPC message passed through; larger ones are answered with an error.")
@click.argument("command", nargs=-1, type=click.UNPROCESSED, metavar="-- COMMAND [ARG]...")
@global_options
def mcp(
    tenant: str,
    agent: str | None,
    rules_path: str | None,
    server_url: str | None,
    key: str | None,
    spool: str | None,
    listen: str | None,
    upstream: str | None,
    max_message_bytes: int,
    command: tuple[str, ...],
) -> None:
    """Run the MCP server COMMAND (stdio) behind the gateway, or proxy a Streamable HTTP
    server (--listen/--upstream). The agent talks to the gateway as it would to the server;
    every session, tool call, resource read and prompt is recorded in the tenant's log.

    \b
    auditkeep gateway mcp --tenant acme --agent claude -- npx -y @modelcontextprotocol/server-filesystem /srv
    auditkeep gateway mcp --tenant acme --listen 127.0.0.1:8800 --upstream http://127.0.0.1:8000/mcp
    """
    try:
        check_tenant(tenant)
    except ValidationError as exc:
        raise click.BadParameter(str(exc), param_hint="--tenant") from None
    if bool(listen) != bool(upstream):
        raise click.UsageError("--listen and --upstream go together")
    if listen and command:
        raise click.UsageError("give a COMMAND (stdio) or --listen/--upstream (HTTP), not both")
    if not listen and not command:
        raise click.UsageError("give the MCP server's command after --, e.g. -- python server.py")
    if server_url and not key:
        raise click.UsageError("--server needs --key (or AUDITKEEP_KEY)")
    if listen:
        from auditkeep.gateway.mcp.http import check_upstream, parse_listen

        try:
            parse_listen(listen)
            check_upstream(upstream or "")
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
    guard = _guardrails(rules_path)
    # The event loop must not wait behind the thread that hands events to the log: with the
    # interpreter's default 5 ms switch interval a message could; 0.5 ms bounds that wait.
    sys.setswitchinterval(0.0005)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(message)s")
    with _backend(tenant, server_url, key, spool, guard) as (sink, reviewer):
        if listen:
            from auditkeep.gateway.mcp.http import serve_http

            assert upstream is not None
            serve_http(listen, upstream, tenant=tenant, agent=agent, sink=sink, max_message=max_message_bytes,
                       guard=guard, reviewer=reviewer)  # fmt: skip
            code = 0
        else:
            run = _Stdio(list(command), tenant, agent, sink, max_message_bytes, guard, reviewer)
            code = asyncio.run(run.main())
    sys.exit(code)


def _guardrails(path: str | None) -> Guardrails | None:
    if path is None:
        return None
    from auditkeep.alerts.errors import RuleError
    from auditkeep.gateway.mcp.guard import Guardrails, load_rules

    try:
        return Guardrails(load_rules(path))
    except RuleError as exc:
        raise click.UsageError(f"--rules: {exc.render()}") from None


@contextlib.contextmanager
def _backend(
    tenant: str, server_url: str | None, key: str | None, spool: str | None, guard: Guardrails | None
) -> Iterator[tuple[EventSink, Reviewer]]:
    """The sink the events go to and the reviewer of held calls, closed at the end."""
    from auditkeep.gateway.mcp.guard import ApprovalReviewer, NoReviewer

    def timeout() -> float:
        return guard.current.review_timeout if guard is not None else 300.0

    if server_url:
        from auditkeep.gateway.remote import RemoteApprovals
        from auditkeep.gateway.sink import ClientSink

        assert key is not None
        client_sink = ClientSink(server_url, key, tenant, SOURCE, spool_dir=spool or "auditkeep-mcp-spool")
        remote = RemoteApprovals(server_url, key)
        try:
            yield client_sink, ApprovalReviewer(remote, tenant, timeout)
        finally:
            with _no_interruptions():
                client_sink.close(CLOSE_TIMEOUT)
            remote.close()
        return
    from auditkeep.config import open_ledger
    from auditkeep.gateway.approvals import ApprovalBook
    from auditkeep.gateway.sink import LedgerSink

    s = settings()
    ledger = open_ledger(s, create=True, background=False)
    ledger.submitter = Submitter("collector", SOURCE)  # its approval events
    try:
        # The spool bounds the memory queue (past gateway_max_queue the oldest events go to
        # its overflow/); its slots are locked per process, so several gateways (one per MCP
        # server an agent's host starts) can share the data directory's.
        spool_dir = Path(spool) if spool else Path(s.data) / "mcp-spool"
        sink = LedgerSink(ledger, tenant, SOURCE, spool_dir=spool_dir, max_queue=s.gateway_max_queue)
        try:
            reviewer = ApprovalReviewer(ApprovalBook(ledger), tenant, timeout) if guard is not None else NoReviewer()
            yield sink, reviewer
        finally:
            with _no_interruptions():
                sink.close(CLOSE_TIMEOUT)
    finally:
        ledger.close()


@contextlib.contextmanager
def _no_interruptions() -> Iterator[None]:
    """While the last events are handed over, SIGTERM and SIGINT are ignored (SIGKILL is not)."""
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@dataclass
class _Stdio:
    command: list[str]
    tenant: str
    agent: str | None
    sink: EventSink
    limit: int
    guard: Guardrails | None
    reviewer: Any

    async def main(self) -> int:
        from auditkeep.gateway.mcp.events import Identity
        from auditkeep.gateway.mcp.session import Catalog, Session
        from auditkeep.gateway.mcp.stdio import ServerStartError, StdioProxy, std_streams

        ident = Identity(self.tenant, self.agent, str(uuid.uuid4()), "stdio", target=Path(self.command[0]).name)
        session = Session(ident, self.sink, self.guard, self.reviewer, Catalog())
        proxy = StdioProxy(session, self.command, self.limit)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.add_signal_handler(sig, proxy.stop, sig.name)
        reader, writer = await std_streams(self.limit)
        try:
            return await proxy.run(reader, writer)
        except ServerStartError as exc:
            err.print(f"error: {exc}", highlight=False, markup=False)
            return 2
