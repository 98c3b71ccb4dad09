"""syslog receivers on real sockets (127.0.0.1): UDP, TCP in both framings, TLS."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from auditkeep.model import Event, validate_event
from auditkeep.sources.base import SourceError
from auditkeep.sources.syslog import SyslogServers, start_syslog_servers


class Collector:
    """A sink that records what it gets; optionally slow."""

    def __init__(self, delay: float = 0.0) -> None:
        self.events: list[Event] = []
        self.errors: list[SourceError] = []
        self.batches: list[int] = []
        self.delay = delay
        self.changed = asyncio.Event()

    async def __call__(self, events: list[Event], errors: list[SourceError]) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        self.events += events
        self.errors += errors
        self.batches.append(len(events) + len(errors))
        self.changed.set()

    async def wait_for(self, n: int, timeout: float = 10.0) -> None:
        async def until() -> None:
            while len(self.events) + len(self.errors) < n:
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(until(), timeout)


def run(coro: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(coro())


def port(servers: SyslogServers, scheme: str) -> int:
    return next(lst.port for lst in servers.listeners if lst.scheme == scheme)


async def send_tcp(p: int, data: bytes, ctx: ssl.SSLContext | None = None) -> None:
    _reader, writer = await asyncio.open_connection("127.0.0.1", p, ssl=ctx)
    writer.write(data)
    await writer.drain()
    writer.close()
    await writer.wait_closed()


def numbered(n: int, start: int = 0) -> list[bytes]:
    return [
        b"<14>1 2024-05-01T12:00:00Z h app - - - message %d" % i for i in range(start, start + n)
    ]


def reasons(c: Collector) -> list[str]:
    return sorted((e.reason or "" for e in c.events), key=lambda r: int(r.split()[-1]))


def test_udp() -> None:
    async def main() -> None:
        sink = Collector()
        servers = await start_syslog_servers(["udp://127.0.0.1:0"], sink, batch_interval=0.05)
        async with servers:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                for m in numbered(20):
                    s.sendto(m + b"\n", ("127.0.0.1", port(servers, "udp")))
                s.sendto(b"<999>bad pri", ("127.0.0.1", port(servers, "udp")))
            await sink.wait_for(21)
        assert reasons(sink) == [f"message {i}" for i in range(20)]
        assert len(sink.errors) == 1 and sink.errors[0].raw == b"<999>bad pri"
        for e in sink.events:
            validate_event(e)
            assert e.metadata is not None and e.metadata["syslog"]["peer"] == "127.0.0.1"  # the address, not the port

    run(main)


@pytest.mark.parametrize("framing", ["lf", "octet"])
def test_tcp_framings(framing: str) -> None:
    async def main() -> None:
        sink = Collector()
        servers = await start_syslog_servers(["tcp://127.0.0.1:0"], sink, batch_size=7)
        async with servers:
            msgs = numbered(50)
            if framing == "lf":
                data = b"".join(m + b"\n" for m in msgs)
            else:
                data = b"".join(b"%d %s" % (len(m), m) for m in msgs)
            await send_tcp(port(servers, "tcp"), data)
            await sink.wait_for(50)
        assert reasons(sink) == [f"message {i}" for i in range(50)]
        assert max(sink.batches) <= 7  # batched by size

    run(main)


def test_tcp_many_connections_and_last_message_without_newline() -> None:
    async def main() -> None:
        sink = Collector()
        async with await start_syslog_servers(["tcp://127.0.0.1:0"], sink) as servers:
            p = port(servers, "tcp")
            await asyncio.gather(
                *(send_tcp(p, b"\n".join(numbered(10, start=10 * k))) for k in range(10))
            )
            await sink.wait_for(100)
        assert reasons(sink) == [f"message {i}" for i in range(100)]

    run(main)


def test_tcp_oversize_message_is_an_error_and_the_connection_goes_on() -> None:
    async def main() -> None:
        sink = Collector()
        async with await start_syslog_servers(
            ["tcp://127.0.0.1:0"], sink, max_message_size=1024
        ) as servers:
            big = b"<14>1 - h a - - - " + b"z" * 5000
            data = b"".join(
                b"%d %s" % (len(m), m) for m in [numbered(1)[0], big, numbered(1, 1)[0]]
            )
            await send_tcp(port(servers, "tcp"), data)
            await sink.wait_for(3)
        assert reasons(sink) == ["message 0", "message 1"]
        assert len(sink.errors) == 1 and len(sink.errors[0].raw) == 1024

    run(main)


def test_broken_octet_stream_closes_the_connection() -> None:
    async def main() -> None:
        sink = Collector()
        async with await start_syslog_servers(["tcp://127.0.0.1:0"], sink) as servers:
            reader, writer = await asyncio.open_connection("127.0.0.1", port(servers, "tcp"))
            writer.write(b"5 <13>a9x <13>b")
            await writer.drain()
            assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the server
            writer.close()
            await writer.wait_closed()
            await sink.wait_for(2)
        assert [e.reason for e in sink.events] == ["a"]
        assert "invalid octet-counting" in sink.errors[0].reason

    run(main)


def test_time_batching_delivers_a_lone_message() -> None:
    async def main() -> None:
        sink = Collector()
        async with await start_syslog_servers(
            ["tcp://127.0.0.1:0"], sink, batch_size=1000, batch_interval=0.05
        ) as servers:
            _reader, writer = await asyncio.open_connection("127.0.0.1", port(servers, "tcp"))
            writer.write(numbered(1)[0] + b"\n")
            await writer.drain()
            await sink.wait_for(1, timeout=5)  # delivered while the connection stays open
            writer.close()
            await writer.wait_closed()

    run(main)


def test_udp_overflow_is_counted_as_dropped() -> None:
    async def main() -> None:
        sink = Collector(delay=0.2)
        servers = await start_syslog_servers(
            ["udp://127.0.0.1:0"], sink, queue_size=10, batch_size=5, batch_interval=0.01
        )
        sent = 300
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for m in numbered(sent):
                s.sendto(m, ("127.0.0.1", port(servers, "udp")))
        await asyncio.sleep(0.3)
        await servers.close()
        received = len(sink.events)
        lost = servers.lost()
        assert lost["queue"] > 0 and lost["shutdown"] == 0
        assert received + lost["queue"] == servers.received
        assert received + servers.dropped == sent  # every datagram accounted for, the kernel's drops too
        assert servers.take_dropped() == servers.dropped
        assert servers.take_dropped() == 0

    run(main)


def test_tcp_backpressure_loses_nothing() -> None:
    async def main() -> None:
        sink = Collector(delay=0.02)
        async with await start_syslog_servers(
            ["tcp://127.0.0.1:0"], sink, queue_size=50, batch_size=25
        ) as servers:
            await send_tcp(port(servers, "tcp"), b"".join(m + b"\n" for m in numbered(2000)))
            await sink.wait_for(2000, timeout=30)
            assert servers.dropped == 0
        assert len(sink.events) == 2000

    run(main)


def test_close_flushes_what_is_buffered() -> None:
    async def main() -> None:
        sink = Collector()
        servers = await start_syslog_servers(
            ["tcp://127.0.0.1:0"], sink, batch_size=10_000, batch_interval=60
        )
        await send_tcp(port(servers, "tcp"), b"\n".join(numbered(30)))
        await asyncio.sleep(0.1)
        assert sink.events == []  # waiting for a fuller batch
        await servers.close()
        assert len(sink.events) == 30

    run(main)


def test_sink_failures_are_retried() -> None:
    async def main() -> None:
        calls = {"n": 0}
        got: list[Event] = []

        async def flaky(events: list[Event], errors: list[SourceError]) -> None:
            calls["n"] += 1
            if calls["n"] <= 2:
                raise RuntimeError("ledger busy")
            got.extend(events)

        async with await start_syslog_servers(["tcp://127.0.0.1:0"], flaky) as servers:
            await send_tcp(port(servers, "tcp"), b"\n".join(numbered(5)))
            for _ in range(200):
                if len(got) == 5:
                    break
                await asyncio.sleep(0.02)
        assert len(got) == 5 and calls["n"] == 3

    run(main)


@pytest.mark.parametrize("url", ["http://127.0.0.1:1", "tcp://127.0.0.1", "udp://:514"])
def test_bad_urls(url: str) -> None:
    async def main() -> None:
        with pytest.raises(ValueError):
            await start_syslog_servers([url], Collector())

    run(main)


def test_tls_needs_a_certificate() -> None:
    async def main() -> None:
        with pytest.raises(ValueError, match="tls_cert"):
            await start_syslog_servers(["tls://127.0.0.1:0"], Collector())

    run(main)


# -- TLS -----------------------------------------------------------------------------------


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    ca: bool = False,
    server: bool = False,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    b = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        b = b.add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
    if server:
        b = b.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return b.sign(issuer_key, hashes.SHA256())


def _write(
    path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> tuple[Path, Path]:
    cp, kp = path.with_suffix(".crt"), path.with_suffix(".key")
    cp.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    kp.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cp, kp


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    ca_key = _key()
    ca = _cert("test CA", ca_key, None, ca_key, ca=True)
    ca_path, _ = _write(tmp_path / "ca", ca, ca_key)
    skey = _key()
    scert, skey_path = _write(
        tmp_path / "server", _cert("server", skey, ca, ca_key, server=True), skey
    )
    ckey = _key()
    ccert, ckey_path = _write(tmp_path / "client", _cert("client", ckey, ca, ca_key), ckey)
    return {
        "ca": ca_path,
        "cert": scert,
        "key": skey_path,
        "client_cert": ccert,
        "client_key": ckey_path,
    }


def _client_ctx(pki: dict[str, Path], with_cert: bool) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki["ca"]))
    if with_cert:
        ctx.load_cert_chain(pki["client_cert"], pki["client_key"])
    return ctx


def test_tls_octet_counting(pki: dict[str, Path]) -> None:
    async def main() -> None:
        sink = Collector()
        async with await start_syslog_servers(
            ["tls://127.0.0.1:0", "tcp://127.0.0.1:0"],
            sink,
            tls_cert=pki["cert"],
            tls_key=pki["key"],
        ) as servers:
            msgs = numbered(40)
            data = b"".join(b"%d %s" % (len(m), m) for m in msgs)
            await send_tcp(port(servers, "tls"), data, _client_ctx(pki, with_cert=False))
            await sink.wait_for(40)
        assert reasons(sink) == [f"message {i}" for i in range(40)]

    run(main)


def test_tls_client_certificates_required(pki: dict[str, Path]) -> None:
    async def main() -> None:
        sink = Collector()
        async with await start_syslog_servers(
            ["tls://127.0.0.1:0"],
            sink,
            tls_cert=pki["cert"],
            tls_key=pki["key"],
            tls_client_ca=pki["ca"],
        ) as servers:
            p = port(servers, "tls")
            # Without a certificate the server ends the handshake (with TLS 1.3 the client
            # may learn it only on its first read): the connection ends, nothing is taken.
            try:
                reader, writer = await asyncio.open_connection(
                    "127.0.0.1", p, ssl=_client_ctx(pki, with_cert=False)
                )
                try:
                    writer.write(b"10 <13>nocert")
                    await writer.drain()
                    assert await asyncio.wait_for(reader.read(), 5) == b""
                finally:
                    writer.close()
                    with contextlib.suppress(ssl.SSLError, ConnectionError):
                        await writer.wait_closed()
            except (ssl.SSLError, ConnectionError):
                pass
            await send_tcp(p, b"10 <13>secret", _client_ctx(pki, with_cert=True))
            await sink.wait_for(1)
        assert [e.reason for e in sink.events] == ["secret"]

    run(main)


def test_close_counts_what_a_failing_sink_never_took() -> None:
    async def main() -> None:
        async def down(events: list[Event], errors: list[SourceError]) -> None:
            raise RuntimeError("ledger down")

        servers = await start_syslog_servers(["tcp://127.0.0.1:0"], down, batch_interval=0.01)
        await send_tcp(port(servers, "tcp"), b"\n".join(numbered(12)))
        await asyncio.sleep(0.1)
        await servers.close(timeout=0.3)
        assert servers.dropped == 12 and servers.delivered == 0

    run(main)


def test_stream_ids_merge_a_resend() -> None:
    """A finely timed message written again, on a new connection or twice on the same one
    (rsyslog does both after a reconnect), gets the id it had; messages timed to the second
    get fresh ids, and so do datagrams."""

    async def main() -> None:
        sink = Collector()
        async with await start_syslog_servers(
            ["tcp://127.0.0.1:0", "udp://127.0.0.1:0"], sink, batch_interval=0.01
        ) as servers:
            p = port(servers, "tcp")
            a = b"<14>1 2024-05-01T12:00:00.000001Z h app - - - a"
            b = b"<14>1 2024-05-01T12:00:00.000002Z h app - - - b"
            coarse = b"<14>1 2024-05-01T12:00:00Z h app - - - coarse"
            await send_tcp(p, b"\n".join([a, b, b, coarse]) + b"\n")
            await sink.wait_for(4)
            await send_tcp(p, b + b"\n" + coarse + b"\n")
            await sink.wait_for(6)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.sendto(a, ("127.0.0.1", port(servers, "udp")))
            await sink.wait_for(7)
        ids = [(e.reason, e.id) for e in sink.events]
        assert [r for r, _ in ids] == ["a", "b", "b", "coarse", "b", "coarse", "a"]
        assert ids[0][1] is not None and ids[1][1] is not None and ids[0][1] != ids[1][1]
        assert ids[1][1] == ids[2][1] == ids[4][1]  # the copies: one id
        assert ids[3][1] is None and ids[5][1] is None  # timed to the second: fresh ids later
        assert ids[6][1] is None  # a datagram: a fresh id

    run(main)


def test_close_drains_a_sender_that_keeps_writing() -> None:
    """A sender writing steadily while the server closes: it sees the end of the stream
    (as rsyslog does, by peeking before each write) and stops; everything it wrote before
    that is delivered."""

    async def main() -> None:
        sink = Collector()
        servers = await start_syslog_servers(["tcp://127.0.0.1:0"], sink, batch_interval=0.01)
        p = port(servers, "tcp")
        written = 0
        stop = asyncio.Event()

        def write() -> None:
            nonlocal written
            with socket.create_connection(("127.0.0.1", p)) as s:
                while not stop.is_set():
                    try:  # rsyslog's check: an orderly end of stream means reconnect
                        if s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"":
                            return
                    except BlockingIOError:
                        pass
                    s.sendall(b"<14>1 2024-05-01T12:00:00Z h app - - - message %d\n" % written)
                    written += 1

        sender = asyncio.get_running_loop().run_in_executor(None, write)
        await sink.wait_for(200)
        await servers.close()
        stop.set()
        await sender
        assert written > 200 and len(sink.events) == written and servers.dropped == 0
        assert reasons(sink) == [f"message {i}" for i in range(written)]

    run(main)


def test_close_counts_a_message_cut_when_the_sender_does_not_stop() -> None:
    async def main() -> None:
        sink = Collector()
        servers = await start_syslog_servers(["tcp://127.0.0.1:0"], sink, batch_interval=0.01)
        _reader, writer = await asyncio.open_connection("127.0.0.1", port(servers, "tcp"))
        whole = b"<14>1 2024-05-01T12:00:00Z h app - - - whole"
        writer.write(b"%d %s" % (len(whole), whole))
        writer.write(b"90 <14>1 2024-05-01T12:00:00Z h app - - - half")  # never finished
        await writer.drain()
        await sink.wait_for(1)
        await servers.close()  # the sender ignores the end of stream: cut after 2 s
        assert [e.reason for e in sink.events] == ["whole"] and sink.errors == []
        assert servers.lost()["shutdown"] == 1 and servers.take_lost() == {"shutdown": 1}
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()

    run(main)


def test_close_waits_for_a_sender_held_back_by_a_slow_sink() -> None:
    """A stream paused because the queue is full is not silent: the drain at close waits
    for it longer than a silent sender gets (here 0.3 s instead of 2 s)."""

    async def main() -> None:
        sink = Collector(delay=0.2)
        servers = await start_syslog_servers(
            ["tcp://127.0.0.1:0"], sink, queue_size=4, batch_size=2, batch_interval=0.01
        )
        p = port(servers, "tcp")
        pad = b" " + b"x" * 16_000  # 16 messages to a 256 KiB read
        msgs = [m + pad for m in numbered(32)]

        def write() -> None:
            with socket.create_connection(("127.0.0.1", p)) as s:
                s.sendall(b"".join(m + b"\n" for m in msgs))
                s.settimeout(60)
                assert s.recv(1) == b""  # the server's end of stream; then close

        sender = asyncio.get_running_loop().run_in_executor(None, write)
        await sink.wait_for(2)
        await servers.close(drain_idle=0.3)  # about 3 s of draining at 10 messages a second
        await sender
        assert len(sink.events) == 32 and servers.dropped == 0

    run(main)
