"""Authentication through the gateway (cleartext, MD5, SCRAM-SHA-256) and TLS toward the
client, against a private PostgreSQL instance that asks for passwords; and a ledger outage
(the ledger's own PostgreSQL stopped) that neither blocks queries nor loses an event."""

from __future__ import annotations

import datetime
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from http_server_support import free_port
from pg_gateway_support import PASSWORD, PrivatePostgres, RunningGateway, db_events, wait_for

from auditkeep.gateway.sink import LedgerSink
from auditkeep.ledger import Ledger
from auditkeep.ledger.datadir import establish
from auditkeep.store.postgres import PostgresStore


@pytest.fixture(scope="module")
def private_pg() -> Iterator[PrivatePostgres]:
    pg = PrivatePostgres(free_port())
    try:
        yield pg
    finally:
        pg.destroy()


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    d = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256())
    )  # fmt: skip
    (d / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))  # fmt: skip
    return str(d / "cert.pem"), str(d / "key.pem")


@pytest.fixture
def gateway(tmp_path: Path, private_pg: PrivatePostgres, tls_files: tuple[str, str]) -> Iterator[RunningGateway]:
    lg = Ledger.open(tmp_path / "data")
    gw = RunningGateway(lg, upstream=("127.0.0.1", private_pg.port), tls_cert=tls_files[0], tls_key=tls_files[1])
    yield gw
    gw.stop()
    lg.close()


@pytest.mark.parametrize("user", ["pw_plain", "pw_md5", "pw_scram"])
@pytest.mark.parametrize("sslmode", ["disable", "require"])
def test_password_authentication_passes_through(gateway: RunningGateway, user: str, sslmode: str) -> None:
    with psycopg.connect(gateway.dsn(user, "postgres", password=PASSWORD, sslmode=sslmode)) as c:
        assert c.execute("SELECT current_user, pg_catalog.current_setting('server_version_num')::int > 0").fetchone() == (user, True)
        assert (c.pgconn.ssl_in_use == 1) is (sslmode == "require")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(gateway.dsn(user, "postgres", password="wrong", sslmode=sslmode))
    starts = db_events(gateway.events(), "db.session.start")
    assert [(s["_outcome"], s.get("sqlstate"), s["tls"]) for s in starts] == [
        ("success", None, sslmode == "require"), ("failure", "28P01", sslmode == "require"),
    ]
    assert all(PASSWORD not in str(s) for s in starts)


def test_scram_with_channel_binding_cannot_pass_a_tls_terminating_gateway(gateway: RunningGateway) -> None:
    with pytest.raises(psycopg.OperationalError, match="channel binding"):
        psycopg.connect(gateway.dsn("pw_scram", "postgres", password=PASSWORD, sslmode="require", channel_binding="require"))


def _startup_code(port: int, code: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(struct.pack("!ii", 8, code))
        return s.recv(1)


def test_gssenc_is_declined_and_ssl_accepted_or_declined(gateway: RunningGateway, tmp_path: Path, private_pg: PrivatePostgres) -> None:
    assert _startup_code(gateway.port, 80877104) == b"N"
    assert _startup_code(gateway.port, 80877103) == b"S"
    lg = Ledger.open(tmp_path / "plain")
    plain = RunningGateway(lg, upstream=("127.0.0.1", private_pg.port))
    try:
        assert _startup_code(plain.port, 80877103) == b"N"
        with psycopg.connect(plain.dsn("pw_scram", "postgres", password=PASSWORD, sslmode="prefer")) as c:
            assert c.pgconn.ssl_in_use == 0
            assert c.execute("SELECT 1").fetchone() == (1,)
    finally:
        plain.stop()
        lg.close()


def test_a_ledger_outage_neither_blocks_queries_nor_loses_events(private_pg: PrivatePostgres, tmp_path: Path) -> None:
    """The ledger lives on the private instance; it is stopped while clients work through
    the gateway (upstream: the machine's PostgreSQL), then started again."""
    store = PostgresStore(private_pg.url(), schema="gwledger", timeout=2.0)
    identity, _ = establish(store, tmp_path / "keys")
    lg = Ledger(store, identity, background=False)
    sink = LedgerSink(lg, "acme", "postgres-gateway", spool_dir=tmp_path / "spool", max_backoff=0.2)
    gw = RunningGateway(lg, sink=sink, approvals=False)
    try:
        with gw.connect() as c:
            c.execute("SELECT 1")
        assert sink.flush(20)
        private_pg.stop()
        with gw.connect() as c:
            for i in range(200):
                assert c.execute("SELECT %s::int", (i,)).fetchone() == (i,)
        gw.wait_idle()
        wait_for(lambda: sink.failures > 0, what="the sink to notice the outage")
        assert sink.pending() > 0
        private_pg.start()
        assert sink.flush(60), sink.last_error
        events = [r.event for r in lg.records(0, lg.head("acme").size, "acme")]
        seqs = [e.metadata["db"]["seq"] for e in events if e.action == "db.query" and e.metadata]
        assert seqs == [1, *list(range(1, 201))]
        assert [e.action for e in events].count("db.session.end") == 2
    finally:
        gw.stop()
        lg.close()

