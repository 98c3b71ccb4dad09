"""``auditkeep collect auditd`` against a real server, across a rotation, a crash and a
restart (no loss, no duplicates, verify passes); ``auditkeep serve --syslog`` receiving
over UDP and TCP."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sources_e2e_support import Server, cli, env, free_port

_MSG = re.compile(rb"msg=audit\(\d+\.\d+:\d+\)")
TEMPLATE_SERIAL = b":59)"  # an execve event of normal.log: SYSCALL, EXECVE, CWD, PATH x2


def _template(testdata: Path) -> list[bytes]:
    lines = (testdata / "auditd" / "go-libaudit" / "normal.log").read_bytes().splitlines()
    return [x for x in lines if TEMPLATE_SERIAL in x]


def _events(template: list[bytes], serials: range) -> bytes:
    """Audit events made from a real one, with consecutive serials (and times)."""
    out = []
    for s in serials:
        stamp = f"msg=audit({1_700_000_000 + s}.{s % 1000:03d}:{s})".encode()
        out += [_MSG.sub(stamp, line) for line in template]
    return b"\n".join(out) + b"\n"


class Collector:
    def __init__(self, log: Path, state: Path, server: Server, key: str) -> None:
        self.out = log.parent / f"collect-{time.monotonic_ns()}.log"
        self._fh = open(self.out, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "auditkeep.cli.main", "collect", "auditd", str(log), "--to", server.url,
             "--key", key, "--state", str(state), "--host", "web-1", "--batch-size", "25",
             "--poll-interval", "0.05", "--timeout", "0.3"],
            stdout=self._fh, stderr=subprocess.STDOUT, env=env(),
        )

    def stop(self, sig: int = signal.SIGTERM) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._fh.close()
        text = self.out.read_text(errors="replace")
        assert "Traceback" not in text, text
        return text


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path / "srv" / "data")
    yield srv
    srv.stop()
    assert "Traceback" not in srv.output(), srv.output()


def _audit_events(server: Server) -> list[dict[str, object]]:
    return server.search("host", action="auditd.*")


def _wait(server: Server, count: int, timeout: float = 60) -> list[dict[str, object]]:
    deadline = time.monotonic() + timeout
    while True:
        got = _audit_events(server)
        if len(got) >= count or time.monotonic() > deadline:
            return got
        time.sleep(0.25)


def test_collect_auditd_rotation_crash_and_restart(tmp_path: Path, server: Server, testdata: Path) -> None:
    key = server.key("host", "ingest")
    template = _template(testdata)
    logdir = tmp_path / "audit"
    logdir.mkdir()
    log = logdir / "audit.log"
    state = tmp_path / "state" / "auditd.state"
    # The real log first (serials 58-62), then events made from it.
    log.write_bytes((testdata / "auditd" / "go-libaudit" / "normal.log").read_bytes() + _events(template, range(63, 120)))
    expected = 5 + (120 - 63)

    first = Collector(log, state, server, key)
    got = _wait(server, expected)
    assert len(got) == expected, first.out.read_text()

    # auditd's rotation: the old file is renamed and a new one started; lines written to the
    # old one just before the switch are still read.
    with log.open("ab") as f:
        f.write(_events(template, range(120, 130)))
    log.rename(logdir / "audit.log.1")
    # 5 serials the kernel lost (150-154): recorded as a source.dropped event.
    log.write_bytes(_events(template, range(130, 150)) + _events(template, range(155, 200)))
    expected += 10 + 20 + 45
    got = _wait(server, expected)
    assert len(got) == expected, first.out.read_text()

    # A crash while delivering: kill -9, more lines meanwhile, then a restart.
    with log.open("ab") as f:
        f.write(_events(template, range(200, 400)))
    time.sleep(0.3)
    first.stop(signal.SIGKILL)
    with log.open("ab") as f:
        f.write(_events(template, range(400, 450)))
    expected += 250
    second = Collector(log, state, server, key)
    got = _wait(server, expected)
    time.sleep(1.0)  # anything sent twice would show up now
    got = _audit_events(server)
    assert len(got) == expected, second.out.read_text()
    ids = [str(e["id"]) for e in got]
    assert len(set(ids)) == len(ids)
    assert {e["source"]["host"] for e in got} == {"web-1"}  # type: ignore[index]
    dropped = server.search("host", action="source.dropped")
    assert sum(int(e["metadata"]["count"]) for e in dropped) == 5  # type: ignore[index]

    # A clean stop (SIGTERM), and a restart that finds nothing new to send.
    second.stop()
    third = Collector(log, state, server, key)
    time.sleep(1.5)
    third.stop()
    assert len(_audit_events(server)) == expected
    server.stop()
    done = cli("verify", data=server.data)
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()


def test_collect_refuses_a_bad_key(tmp_path: Path, server: Server, testdata: Path) -> None:
    log = tmp_path / "audit.log"
    log.write_bytes((testdata / "auditd" / "go-libaudit" / "normal.log").read_bytes())
    got = subprocess.run(
        [sys.executable, "-m", "auditkeep.cli.main", "collect", "auditd", str(log), "--to", server.url,
         "--key", "ak_aaaaaaaaaaaa_" + "A" * 43, "--state", str(tmp_path / "s"), "--once"],
        capture_output=True, env=env(), timeout=60,
    )
    assert got.returncode != 0 and b"HTTP 401" in got.stderr and b"Traceback" not in got.stderr
    assert not (tmp_path / "s").exists()  # nothing acknowledged, nothing committed


def test_serve_syslog_udp_and_tcp(tmp_path: Path) -> None:
    udp, tcp = free_port(socket.SOCK_DGRAM), free_port()
    srv = Server(
        tmp_path / "data",
        {"AUDITKEEP_SYSLOG_TENANT": "logs"},
        ("--syslog", f"udp://127.0.0.1:{udp},tcp://127.0.0.1:{tcp}"),
    )
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for i in range(30):
                s.sendto(f"<86>1 2024-05-01T12:00:{i:02d}Z web1 sshd 123 - [audit@32473 actor=\"alice\" "
                         f"action=\"user.login\" outcome=\"failure\"] Failed password for alice #{i}".encode(),
                         ("127.0.0.1", udp))
            s.sendto(b"<999>1 2024-05-01T12:00:00Z bad - - - - PRI out of range", ("127.0.0.1", udp))
        with socket.create_connection(("127.0.0.1", tcp)) as c:
            framed = b""
            for i in range(20):  # octet counting (RFC 6587)
                msg = f"<13>1 2024-05-01T13:00:{i:02d}Z web2 app - - - job {i} api_key=sk_live_0123456789abcdef".encode()
                framed += str(len(msg)).encode() + b" " + msg
            c.sendall(framed)
        with socket.create_connection(("127.0.0.1", tcp)) as c:  # newline framing, BSD format
            c.sendall(b"".join(f"<38>May  1 14:00:{i:02d} web3 sudo: alice : command {i}\n".encode() for i in range(10)))
        got = srv.wait_for("logs", 60, timeout=30)
        assert len(got) == 60
        logins = [e for e in got if e["action"] == "user.login"]
        assert len(logins) == 30 and {e["actor"]["id"] for e in logins} == {"alice"}
        jobs = [e for e in got if e["source"].get("host") == "web2"]
        assert len(jobs) == 20 and all("sk_live" not in e["reason"] for e in jobs)
        assert all("[REDACTED:" in e["reason"] for e in jobs)
        assert len([e for e in got if e["source"].get("host") == "web3"]) == 10
        with srv.client() as c:
            items = c.get("/v1/quarantine", params={"tenant": "logs", "source": "syslog"}).json()["items"]
        assert len(items) == 1 and "PRI" in items[0]["reason"]
    finally:
        assert srv.stop() in (0, -15)
    assert "Traceback" not in srv.output(), srv.output()


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "syslog.crt", tmp_path / "syslog.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def test_serve_syslog_over_tls(tmp_path: Path) -> None:
    """RFC 5425: octet-counted syslog over TLS into ``serve --syslog tls://``."""
    import ssl

    cert, key = _self_signed(tmp_path)
    port = free_port()
    srv = Server(
        tmp_path / "data",
        {"AUDITKEEP_SYSLOG_TENANT": "tls", "AUDITKEEP_SYSLOG_TLS_CERT": str(cert), "AUDITKEEP_SYSLOG_TLS_KEY": str(key)},
        ("--syslog", f"tls://127.0.0.1:{port}"),
    )
    try:
        ctx = ssl.create_default_context(cafile=str(cert))
        with socket.create_connection(("127.0.0.1", port)) as raw, ctx.wrap_socket(raw, server_hostname="127.0.0.1") as c:
            framed = b""
            for i in range(15):
                msg = (f"<86>1 2024-05-01T12:00:{i:02d}Z bastion sshd 77 - [audit@32473 actor=\"bob\" "
                       f"action=\"user.login\" outcome=\"success\"] Accepted publickey for bob #{i}").encode()
                framed += str(len(msg)).encode() + b" " + msg
            c.sendall(framed)
        got = srv.wait_for("tls", 15, timeout=30)
        assert len(got) == 15
        assert {e["actor"]["id"] for e in got} == {"bob"} and {e["action"] for e in got} == {"user.login"}
        with socket.create_connection(("127.0.0.1", port)) as plain:  # clear text is not syslog here
            plain.sendall(b"20 <13>1 - - - - - clear")
        time.sleep(1.0)
        assert len(srv.search("tls")) == 15
    finally:
        assert srv.stop() in (0, -15)
    assert "Traceback" not in srv.output(), srv.output()
