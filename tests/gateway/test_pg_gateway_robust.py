"""What must never crash the gateway or leak: malformed protocol bytes, clients that vanish
mid-query, cancel requests."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pg_gateway_support import RunningGateway, db_events, wait_for

from auditkeep.ledger import Ledger


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    lg = Ledger.open(tmp_path_factory.mktemp("robust") / "data")
    gw = RunningGateway(lg)
    yield gw
    gw.stop()
    lg.close()


def _startup(user: str = "postgres", db: str = "test") -> bytes:
    body = struct.pack("!i", 196608) + b"user\x00" + user.encode() + b"\x00database\x00" + db.encode() + b"\x00\x00"
    return struct.pack("!i", len(body) + 4) + body


def _ready(sock: socket.socket) -> bytes:
    """Read until the first ReadyForQuery (trust authentication)."""
    got = b""
    while b"Z\x00\x00\x00\x05" not in got:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed during startup: {got[-200:]!r}")
        got += chunk
    return got


def _session(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(_startup())
    _ready(s)
    return s


def _still_works(gw: RunningGateway) -> None:
    with gw.connect() as c:
        assert c.execute("SELECT 41 + 1").fetchone() == (42,)
    gw.wait_idle()


@pytest.mark.parametrize(
    "payload",
    [
        b"\x00\x00\x00\x03",  # startup length below the minimum
        b"\x7f\xff\xff\xff" + b"x" * 100,  # startup length over the limit
        struct.pack("!ii", 8, 12345),  # an unknown protocol code
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",  # not PostgreSQL at all
        struct.pack("!ii", 16, 80877102) + b"\x00" * 4,  # a cut CancelRequest
    ],
)
def test_malformed_first_packets_close_only_that_connection(gateway: RunningGateway, payload: bytes) -> None:
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        while s.recv(4096):
            pass
    _still_works(gateway)


@pytest.mark.parametrize(
    "payload",
    [
        b"Q\x00\x00\x00\x02",  # a length below 4
        b"Q\x7f\xff\xff\xff" + b"x" * 1000,  # a query longer than the gateway reads whole
        b"P\x00\x00\x00\x08ab\x00x",  # a Parse cut short inside a well-framed message
        b"B\x00\x00\x00\x0a\x00\x00\x00\x05\xff\xff",  # a Bind with an impossible count
        b"Q\x00\x00\x00\x09SELECT",  # a query without its terminator
        b"E\x00\x00\x00\x04",  # an Execute without a portal name
        b"\x00\x00\x00\x00\x00" * 10,
    ],
)
def test_malformed_messages_after_startup_never_crash_the_gateway(gateway: RunningGateway, payload: bytes) -> None:
    with _session(gateway.port) as s:
        s.sendall(payload)
        s.settimeout(5)
        try:
            while s.recv(4096):
                pass
        except (TimeoutError, ConnectionResetError):
            pass
    _still_works(gateway)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(min_size=1, max_size=300))
def test_random_bytes_after_startup(gateway: RunningGateway, junk: bytes) -> None:
    with _session(gateway.port) as s:
        s.sendall(junk)
        s.shutdown(socket.SHUT_WR)
        s.settimeout(5)
        try:
            while s.recv(4096):
                pass
        except (TimeoutError, ConnectionResetError):
            pass
    gateway.wait_idle()


def test_a_client_vanishing_mid_query(gateway: RunningGateway) -> None:
    before = len(db_events(gateway.events(), "db.session.end"))
    # during a slow statement
    s = _session(gateway.port)
    s.sendall(b"Q" + struct.pack("!i", 4 + len(b"SELECT pg_sleep(1)\x00")) + b"SELECT pg_sleep(1)\x00")
    s.close()
    # in the middle of a large result
    s = _session(gateway.port)
    q = b"SELECT g, repeat('x', 200) FROM generate_series(1, 200000) g\x00"
    s.sendall(b"Q" + struct.pack("!i", 4 + len(q)) + q)
    assert s.recv(65536)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # a reset, not a close
    s.close()
    gateway.wait_idle(20)
    ends = db_events(gateway.events(), "db.session.end")
    assert len(ends) == before + 2
    # a statement sent with no answer seen is still recorded: the server may have run it
    sleeps = [q for q in db_events(gateway.events(), "db.query") if q["statement"] == "SELECT pg_sleep(1)"]
    assert sleeps and sleeps[-1]["_outcome"] == "unknown"
    _still_works(gateway)


def test_cancel_request_is_forwarded(gateway: RunningGateway) -> None:
    with gateway.connect() as c:
        timer = threading.Timer(0.5, c.cancel_safe)  # the blocking cancel() would hold the GIL the in-process gateway needs
        timer.start()
        t0 = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled):
            c.execute("SELECT pg_sleep(30)")
        timer.join()
        assert time.monotonic() - t0 < 25  # cancelled, not run to its end
        assert c.execute("SELECT 1").fetchone() == (1,)
    q = [e for e in db_events(gateway.events(), "db.query") if "pg_sleep(30)" in e["statement"]]
    assert q and q[-1]["sqlstate"] == "57014"


def test_sessions_end_when_the_server_goes_away(gateway: RunningGateway, tmp_path: Path) -> None:
    with gateway.connect() as c:
        pid = c.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
        with psycopg.connect("host=127.0.0.1 port=5432 dbname=test user=postgres", autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(psycopg.OperationalError):
            c.execute("SELECT 1")
    wait_for(lambda: gateway.sessions() == 0, what="the session to end")
    ends = db_events(gateway.events(), "db.session.end")
    assert ends[-1]["ended_by"] == "server"
