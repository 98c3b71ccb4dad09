"""``auditkeep gateway postgres``: run the PostgreSQL access gateway in the foreground."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import Any

import click

from auditkeep.cli.common import err, global_options, settings
from auditkeep.cli.gateway_options import Refused, remote_options
from auditkeep.model.event import Submitter


def host_port(value: str, option: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise click.BadParameter(f"expected HOST:PORT, got {value!r}", param_hint=option)
    return host.strip("[]") or "127.0.0.1", int(port)


@click.command("postgres")
@click.option("--listen", default="127.0.0.1:6432", show_default=True, metavar="HOST:PORT", help="Where clients connect.")
@click.option("--upstream", default="127.0.0.1:5432", show_default=True, metavar="HOST:PORT",
              help="The PostgreSQL server; DIR:PORT (DIR starting with /) for its Unix socket in DIR.")
@click.option("--tenant", "-t", default="default", show_default=True, help="The tenant whose log records the sessions.")
@click.option("--rules", "rules_file", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="Guardrails and masking (YAML; reloaded when it changes).")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), default=None, help="Certificate for TLS toward clients.")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), default=None, help="Its private key.")
@click.option("--require-tls", is_flag=True, help="Refuse clients that do not ask for TLS (with --tls-cert).")
@click.option("--spool", "spool_dir", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="Where events wait while the log is unreachable [default: DATA/gateway-spool, or ./auditkeep-gateway-spool with --server].")
@click.option("--metrics", "metrics_at", default=None, metavar="HOST:PORT", help="Serve Prometheus metrics here.")
@click.option("--max-sessions", type=click.IntRange(1, 100_000), default=1000, show_default=True)
@remote_options
@global_options
def postgres(
    listen: str, upstream: str, tenant: str, rules_file: str | None, tls_cert: str | None, tls_key: str | None,
    require_tls: bool, spool_dir: str | None, metrics_at: str | None, max_sessions: int,
    server: str | None, api_key: str | None, ca_file: str | None,
) -> None:  # fmt: skip
    """Proxy PostgreSQL clients to a server, recording every session and statement.

    Events go to the local log (--data/--db) or to a server (--server URL --key KEY, an
    ingest key). Point psql at it: psql "host=127.0.0.1 port=6432 dbname=app user=alice".
    """
    from auditkeep.gateway.guardrails import RuleError
    from auditkeep.gateway.postgres import Gateway, GatewayConfig
    from auditkeep.ledger.ledger import check_tenant

    check_tenant(tenant)
    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("--tls-cert and --tls-key go together")
    if require_tls and tls_cert is None:
        raise click.UsageError("--require-tls needs --tls-cert and --tls-key")
    config = GatewayConfig(
        listen=host_port(listen, "--listen"), upstream=host_port(upstream, "--upstream"), tenant=tenant,
        rules=rules_file, tls_cert=tls_cert, tls_key=tls_key, require_tls=require_tls, max_sessions=max_sessions,
    )  # fmt: skip
    metrics = host_port(metrics_at, "--metrics") if metrics_at else None
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger = logging.getLogger("auditkeep")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    closers: list[Any] = []
    try:
        sink, approvals = _backends(server, api_key, ca_file, tenant, spool_dir, closers)
        try:
            gw = Gateway(config, sink, approvals)
        except RuleError as exc:
            raise Refused(exc.render()) from None
        except OSError as exc:
            raise Refused(f"TLS: {exc}") from None
        from auditkeep.gateway.postgres.server import new_event_loop

        # The client sink's and the approvals' threads would otherwise hold the interpreter
        # lock for 5 ms at a time while clients wait on the event loop.
        sys.setswitchinterval(0.0005)

        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            runner.run(_serve(gw, metrics))
    finally:
        for close in reversed(closers):
            close()
        logger.removeHandler(handler)


def _backends(server: str | None, api_key: str | None, ca_file: str | None, tenant: str, spool_dir: str | None,
              closers: list[Any]) -> tuple[Any, Any]:  # fmt: skip
    from auditkeep.gateway.sink import ClientSink
    from auditkeep.gateway.sink_process import ProcessSink

    if server:
        from auditkeep.gateway.remote import RemoteApprovals

        if not api_key:
            raise click.UsageError("--server needs --key (or AUDITKEEP_KEY)")
        spool = Path(spool_dir or "auditkeep-gateway-spool")
        csink = ClientSink(server, api_key, tenant, "postgres-gateway", spool_dir=spool, tls_verify=ca_file or True)
        closers.append(csink.close)
        remote = RemoteApprovals(server, api_key, tls_verify=ca_file or True)
        closers.append(remote.close)
        return csink, remote
    from auditkeep.config import open_ledger
    from auditkeep.gateway.approvals import ApprovalBook

    s = settings()
    lg = open_ledger(s, create=True, background=False)
    lg.submitter = Submitter("collector", "postgres-gateway")  # its approval events
    closers.append(lg.close)
    spool = Path(spool_dir) if spool_dir else (Path(s.data) / "gateway-spool" if not s.db else Path("auditkeep-gateway-spool"))
    # The ledger's work per event runs in a child process (a sink of its own over the same
    # store), so it never holds this interpreter while clients wait on the event loop.
    psink = ProcessSink(s, tenant, "postgres-gateway", spool_dir=spool, submitter=lg.submitter)
    closers.append(psink.close)
    return psink, ApprovalBook(lg)


async def _serve(gw: Any, metrics: tuple[str, int] | None) -> None:
    await gw.start()
    if metrics is not None:
        from prometheus_client import start_http_server

        start_http_server(metrics[1], metrics[0], registry=gw.metrics.registry)
    host, port = gw.address
    err.print(f"postgres gateway listening on {host}:{port} -> {gw.config.upstream[0]}:{gw.config.upstream[1]}"
              f" (tenant {gw.config.tenant}); Ctrl-C to stop", highlight=False)  # fmt: skip
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    err.print("stopping: ending sessions, delivering queued events", highlight=False)
    await gw.stop()
