"""``auditkeep serve``: the HTTP API on uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import signal
import ssl
from collections.abc import Iterator
from types import FrameType

import click
import uvicorn
from starlette.routing import Mount

from auditkeep.cli.common import err, global_options, settings
from auditkeep.config import Settings, open_ledger
from auditkeep.console import console_app
from auditkeep.model.event import Submitter
from auditkeep.server import Options, ServerContext, create_app
from auditkeep.server.audit import key_event, key_event_tenant
from auditkeep.server.collector import settle as settle_collector
from auditkeep.server.keys import ALL_TENANTS
from auditkeep.server.projection import ProjectionProcess

# Bound on the request head (h11's own limit; the httptools protocol is bounded in server.protocol).
MAX_HEADER_BYTES = 64 * 1024


class _Server(uvicorn.Server):
    """uvicorn, plus: on SIGTERM/SIGINT end the live tails first, so the graceful shutdown
    only waits for requests in flight (ingest batches finish and are durable)."""

    def __init__(self, config: uvicorn.Config, ctx: ServerContext) -> None:
        super().__init__(config)
        self.ctx = ctx
        self.stopped_by: list[int] = []

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.ctx.hub.close_threadsafe()
        super().handle_exit(sig, frame)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """uvicorn's, except that the signals that stopped the server are not raised again
        when it is down but kept in ``stopped_by`` for ``serve`` to raise after its own
        clean-up: raised by uvicorn, SIGTERM's default action ended the process before the
        projection child was stopped, and the child then closed ``index.db`` (removing its
        -wal file) after the server had exited."""
        with super().capture_signals():
            try:
                yield
            finally:
                self.stopped_by, self._captured_signals = list(self._captured_signals), []


def _is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _first_admin_key(ctx: ServerContext) -> None:
    if ctx.keys.count():
        return
    key, token = ctx.keys.create(ALL_TENANTS, ["admin"], None, "initial admin key")
    event = key_event("auditkeep.key.create", key, "auditkeep-serve", "system")
    ctx.ledger.append_own([event], key_event_tenant(key), Submitter("server"))
    err.print("=" * 72, highlight=False)
    err.print("auditkeep: first start: an admin key for all tenants was created.", highlight=False)
    err.print("It is shown only this once; keep it in a secret store:", highlight=False)
    err.print(f"\n    {token}\n", highlight=False, markup=False)
    err.print("=" * 72, highlight=False)


def uvicorn_config(app: object, s: Settings, access_log: bool, log_level: str, head_timeout: float = 30.0) -> uvicorn.Config:
    http: type[asyncio.Protocol] | str
    try:
        from auditkeep.server.protocol import bounded_protocol

        http = bounded_protocol(head_timeout)
        if s.tls_client_ca:
            from auditkeep.server.peercert import with_peer_certificate

            # the Kubernetes webhook may authenticate by its client certificate alone
            http = with_peer_certificate(http)
    except ImportError:  # httptools missing: h11, bounded by h11_max_incomplete_event_size
        http = "h11"
    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        host=s.host,
        port=s.port,
        http=http,
        lifespan="on",
        access_log=access_log,
        log_level=log_level,
        server_header=False,
        timeout_keep_alive=15,
        timeout_graceful_shutdown=30,
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        ssl_certfile=s.tls_cert,
        ssl_keyfile=s.tls_key,
        ssl_ca_certs=s.tls_client_ca,
        ssl_cert_reqs=ssl.CERT_REQUIRED if s.tls_client_ca else ssl.CERT_NONE,
    )


def _check_syslog(s: Settings) -> None:
    """Refuse bad syslog listener URLs before anything starts."""
    from urllib.parse import urlsplit

    for url in s.syslog:
        try:
            u = urlsplit(url)
            ok = u.scheme in ("udp", "tcp", "tls") and u.hostname is not None and u.port is not None
        except ValueError:
            ok = False
        if not ok:
            raise click.BadParameter(f"not a syslog listen URL (udp|tcp|tls://host:port): {url!r}", param_hint="--syslog")
        if u.scheme == "tls" and not ((s.syslog_tls_cert or s.tls_cert) and (s.syslog_tls_key or s.tls_key)):
            raise click.UsageError("a tls:// syslog listener needs syslog_tls_cert and syslog_tls_key (or --tls-cert/--tls-key)")


@click.command()
@click.option("--host", default=None, help="Address to listen on [default 127.0.0.1; setting host].")
@click.option("--port", type=click.IntRange(0, 65535), default=None, help="Port [default 8700; setting port].")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), default=None, help="Serve HTTPS with this certificate (PEM).")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), default=None, help="Private key of --tls-cert (PEM).")
@click.option("--tls-client-ca", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Require client certificates signed by this CA (PEM).")
@click.option("--heartbeat", type=click.FloatRange(0.05), default=15.0, show_default=True, help="Seconds between live-tail heartbeats.")
@click.option("--body-timeout", type=click.FloatRange(0.05), default=30.0, show_default=True,
              help="Seconds a client may take to send a request's headers, and its body (then 408).")
@click.option("--stream-send-timeout", type=click.FloatRange(0.05), default=30.0, show_default=True,
              help="Seconds a live-tail client may stop reading before it is disconnected.")
@click.option("--syslog", "syslog", metavar="URLS", default=None,
              help="Receive syslog: comma-separated udp://, tcp://, tls:// host:port URLs [setting syslog].")
@click.option("--access-log/--no-access-log", default=False, show_default=True, help="Log every request (never headers).")
@click.option("--log-level", type=click.Choice(["critical", "error", "warning", "info", "debug"]), default="info", show_default=True)
@global_options
def serve(
    host: str | None,
    port: int | None,
    tls_cert: str | None,
    tls_key: str | None,
    tls_client_ca: str | None,
    heartbeat: float,
    body_timeout: float,
    stream_send_timeout: float,
    syslog: str | None,
    access_log: bool,
    log_level: str,
) -> None:
    """Serve the HTTP API (creates the data directory and an admin key on first start)."""
    listeners = [u.strip() for u in syslog.split(",") if u.strip()] if syslog is not None else None
    s = settings(host=host, port=port, tls_cert=tls_cert, tls_key=tls_key, tls_client_ca=tls_client_ca, syslog=listeners)
    if bool(s.tls_cert) != bool(s.tls_key):
        raise click.UsageError("--tls-cert and --tls-key go together")
    _check_syslog(s)
    if s.tls_client_ca and not s.tls_cert:
        raise click.UsageError("--tls-client-ca needs --tls-cert and --tls-key")
    if not s.tls_cert and not _is_loopback(s.host):
        err.print(
            f"[yellow]warning:[/yellow] listening on {s.host} without TLS: API keys and events cross the "
            "network in clear text. Use --tls-cert/--tls-key or a TLS-terminating proxy.",
            highlight=False,
        )
    logging.getLogger("auditkeep").setLevel(log_level.upper())
    # The projection is followed by a child process (see auditkeep.server.projection).
    ledger = open_ledger(s, create=True, background=False)
    projection: ProjectionProcess | None = None
    server: _Server | None = None
    try:
        ctx = ServerContext(s, ledger, Options(heartbeat=heartbeat, body_timeout=body_timeout, send_timeout=stream_send_timeout))
        _first_admin_key(ctx)
        projection = ProjectionProcess(s)
        app = create_app(ctx, extra=[Mount("/ui", console_app(ctx))])
        server = _Server(uvicorn_config(app, s, access_log, log_level, body_timeout), ctx)
        # What start-up made lives as long as the process: out of the collector's sight;
        # and the collector seldom runs over a batch's short-lived objects (server/collector.py)
        settle_collector()
        server.run()
    finally:
        ledger.close()
        if projection is not None:
            projection.stop()
    for sig in reversed(server.stopped_by if server is not None else []):
        signal.raise_signal(sig)  # exit as uvicorn would have: by the signal that stopped it
