"""Notifiers against real servers on 127.0.0.1: an HTTP receiver that checks signatures
and can fail on purpose, and an SMTP server (aiosmtpd) with STARTTLS and login."""

from __future__ import annotations

import asyncio
import datetime
import io
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from auditkeep.alerts import Alert
from auditkeep.alerts.notify import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Dispatcher,
    EmailNotifier,
    InMemoryDeadLetters,
    RetryPolicy,
    SlackNotifier,
    StdoutNotifier,
    WebhookNotifier,
    deliver,
    sign,
    verify_signature,
)

SECRET = b"s3cret-key"
FAST = RetryPolicy(attempts=4, base=0.01, factor=2, max_delay=0.05)


def alert(n: int = 1, notify: list[str] | None = None, severity: str = "high") -> Alert:
    return Alert(
        id=f"{n:032x}", rule_id="brute", rule_name="Brute force", tenant="acme", severity=severity,
        title="Brute force", explanation="5 matching events for actor.id=alice within 5m.",
        group_key="actor.id=alice", first_index=10, last_index=14, event_ids=["e1"], count=5,
        time=1_700_000_000_000_000_000, fields={"actor.id": "alice"}, notify=notify or [],
    )


class Receiver:
    """An HTTP server recording requests; fails the first ``fail`` with ``status``."""

    def __init__(self, fail: int = 0, status: int = 503, delay: float = 0.0) -> None:
        self.fail = fail
        self.status = status
        self.delay = delay
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.bad_signatures = 0
        recv = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                headers = {k: v for k, v in self.headers.items()}
                if recv.delay:
                    time.sleep(recv.delay)
                sig = headers.get(SIGNATURE_HEADER)
                if sig is not None and not verify_signature(SECRET, headers[TIMESTAMP_HEADER], body, sig):
                    recv.bad_signatures += 1
                    self.send_response(401)
                    self.end_headers()
                    return
                recv.requests.append((headers, body))
                if len(recv.requests) <= recv.fail:
                    self.send_response(recv.status)
                    self.send_header("Retry-After", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


async def _once(n: WebhookNotifier, dead: InMemoryDeadLetters, a: Alert | None = None) -> bool:
    try:
        return await deliver(n, a or alert(), FAST, dead)
    finally:
        await n.aclose()


def test_signature_round_trip_and_rejections() -> None:
    body = b'{"a":1}'
    now = time.time()
    ts = str(int(now))
    sig = sign(SECRET, ts, body)
    assert sig.startswith("sha256=") and len(sig) == 7 + 64
    assert verify_signature(SECRET, ts, body, sig, now=now)
    assert not verify_signature(SECRET, ts, body + b" ", sig, now=now)
    assert not verify_signature(b"other", ts, body, sig, now=now)
    assert not verify_signature(SECRET, str(int(now) + 1), body, sig, now=now)  # timestamp is signed
    assert not verify_signature(SECRET, ts, body, sig, now=now + 3600)  # too old: no replays
    assert not verify_signature(SECRET, "x", body, sig, now=now)


def test_webhook_delivers_signed_json_after_retries() -> None:
    dead = InMemoryDeadLetters()
    with Receiver(fail=2, status=503) as rx:
        ok = asyncio.run(_once(WebhookNotifier("hook", rx.url, secret=SECRET), dead))
    assert ok and dead.list() == []
    assert len(rx.requests) == 3 and rx.bad_signatures == 0
    headers, body = rx.requests[-1]
    assert headers["Content-Type"] == "application/json"
    doc = json.loads(body)
    assert doc["id"] == alert().id and doc["explanation"].startswith("5 matching events") and doc["status"] == "open"


def test_webhook_retries_429_then_dead_letters() -> None:
    dead = InMemoryDeadLetters()
    with Receiver(fail=100, status=429) as rx:
        ok = asyncio.run(_once(WebhookNotifier("hook", rx.url, secret=SECRET), dead, alert()))
    assert not ok and len(rx.requests) == FAST.attempts
    [letter] = dead.list()
    assert letter.notifier == "hook" and letter.attempts == 4 and "429" in letter.error and letter.alert.id == alert().id


def test_webhook_client_errors_are_not_retried() -> None:
    dead = InMemoryDeadLetters()
    with Receiver(fail=100, status=400) as rx:
        ok = asyncio.run(_once(WebhookNotifier("hook", rx.url), dead, alert()))
    assert not ok and len(rx.requests) == 1 and dead.list()[0].attempts == 1


def test_webhook_network_errors_are_retried() -> None:
    rx = Receiver()
    url = rx.url  # bound but never served: connection refused
    rx.server.server_close()
    dead = InMemoryDeadLetters()
    ok = asyncio.run(_once(WebhookNotifier("hook", url), dead, alert()))
    assert not ok and dead.list()[0].attempts == FAST.attempts and "ConnectError" in dead.list()[0].error


def test_wrong_secret_is_refused_by_the_receiver() -> None:
    dead = InMemoryDeadLetters()
    with Receiver() as rx:
        asyncio.run(_once(WebhookNotifier("hook", rx.url, secret=b"wrong"), dead, alert()))
    assert rx.bad_signatures == 1 and rx.requests == [] and "401" in dead.list()[0].error


def test_slack_payload_has_text_and_blocks() -> None:
    with Receiver() as rx:
        asyncio.run(_once(SlackNotifier("slack", rx.url), InMemoryDeadLetters(), alert(severity="critical")))
    doc = json.loads(rx.requests[0][1])
    assert doc["text"].startswith(":rotating_light: [CRITICAL] Brute force")
    assert doc["blocks"][0]["type"] == "header"
    assert any("actor.id" in f["text"] for f in doc["blocks"][2]["fields"])
    assert SIGNATURE_HEADER not in rx.requests[0][0]


def test_stdout_notifier_writes_json_lines_and_text() -> None:
    buf = io.StringIO()
    asyncio.run(StdoutNotifier(stream=buf).send(alert()))
    assert json.loads(buf.getvalue())["rule_id"] == "brute"
    buf = io.StringIO()
    asyncio.run(StdoutNotifier(stream=buf, json=False).send(alert()))
    assert buf.getvalue().startswith("[HIGH] Brute force\n5 matching events")


def test_dispatcher_routes_and_never_blocks() -> None:
    async def main() -> tuple[Receiver, Receiver, Dispatcher, float]:
        with Receiver(delay=0.2) as slow, Receiver() as fast:
            d = Dispatcher(
                [WebhookNotifier("slow", slow.url), WebhookNotifier("fast", fast.url), StdoutNotifier(stream=io.StringIO())],
                default=["stdout"],
                retry=FAST,
            )
            async with d:
                t = time.perf_counter()
                d.submit([alert(1, ["slow", "fast"]), alert(2, ["fast"]), alert(3), alert(4, ["nope"])])
                took = time.perf_counter() - t
                for _ in range(30):
                    await asyncio.sleep(0.005)
                    if len(fast.requests) == 2:
                        break
                assert len(fast.requests) == 2 and slow.requests == []  # not held up by the slow one
            return slow, fast, d, took

    slow, fast, d, took = asyncio.run(main())
    assert took < 0.05
    assert len(slow.requests) == 1 and len(fast.requests) == 2
    assert d.delivered == 4  # slow, fast x2, stdout
    assert [(x.notifier, x.alert.id[-1]) for x in d.dead_letters.list()] == [("nope", "4")]


def test_dispatcher_submit_from_another_thread_and_queue_full() -> None:
    async def main() -> Dispatcher:
        with Receiver(delay=0.05) as rx:
            d = Dispatcher([WebhookNotifier("hook", rx.url)], default=["hook"], retry=FAST, queue_size=2)
            async with d:
                th = threading.Thread(target=d.submit, args=([alert(i) for i in range(6)],))
                th.start()
                th.join()
                await asyncio.sleep(0.01)
            return d

    d = asyncio.run(main())
    full = [x for x in d.dead_letters.list() if "queue full" in x.error]
    assert full and d.delivered + len(full) == 6


# -- e-mail --------------------------------------------------------------------------------


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture
def smtp_server(tmp_path: Path) -> Iterator[tuple[int, list[Any], Path]]:
    aiosmtpd = pytest.importorskip("aiosmtpd.controller")
    from aiosmtpd.smtp import AuthResult, LoginPassword

    cert, key = _self_signed(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    received: list[Any] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            received.append((session.authenticated, envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
            return "250 OK"

    def auth(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and data.login == b"alerts" and data.password == b"pw"
        return AuthResult(success=ok, handled=False)

    with socket.socket() as probe:  # the controller checks readiness by connecting: no port 0
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ctrl = aiosmtpd.Controller(
        Handler(), hostname="127.0.0.1", port=port, tls_context=server_ctx, require_starttls=True,
        authenticator=auth, auth_required=False, auth_require_tls=True,
    )
    ctrl.start()
    try:
        yield port, received, cert
    finally:
        ctrl.stop()


def _client_ctx(cert: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(cert))
    ctx.check_hostname = False  # the server is reached as 127.0.0.1, the certificate names localhost
    return ctx


def test_email_over_starttls_with_login(smtp_server: tuple[int, list[Any], Path]) -> None:
    port, received, cert = smtp_server
    n = EmailNotifier("mail", host="127.0.0.1", port=port, sender="auditkeep@example.org",
                      recipients=["sec@example.org"], username="alerts", password="pw", ssl_context=_client_ctx(cert))
    assert asyncio.run(deliver(n, alert(), FAST, InMemoryDeadLetters()))
    [(authed, sender, rcpts, content)] = received
    assert authed and sender == "auditkeep@example.org" and rcpts == ["sec@example.org"]
    text = content.decode()
    assert "Subject: [auditkeep] HIGH: Brute force" in text
    assert "5 matching events for actor.id=alice" in text and f"X-Auditkeep-Alert-Id: {alert().id}" in text


def test_email_bad_password_is_dead_lettered_without_retry(smtp_server: tuple[int, list[Any], Path]) -> None:
    port, received, cert = smtp_server
    dead = InMemoryDeadLetters()
    n = EmailNotifier("mail", host="127.0.0.1", port=port, sender="a@example.org", recipients=["b@example.org"],
                      username="alerts", password="wrong", ssl_context=_client_ctx(cert))
    assert not asyncio.run(deliver(n, alert(), FAST, dead))
    assert received == [] and dead.list()[0].attempts == 1 and "535" in dead.list()[0].error


def test_email_refuses_untrusted_certificate(smtp_server: tuple[int, list[Any], Path]) -> None:
    port, received, _ = smtp_server
    dead = InMemoryDeadLetters()
    n = EmailNotifier("mail", host="127.0.0.1", port=port, sender="a@example.org", recipients=["b@example.org"])
    assert not asyncio.run(deliver(n, alert(), RetryPolicy(attempts=1), dead))
    assert received == [] and "SSL" in dead.list()[0].error.upper()


def test_email_configuration_errors() -> None:
    with pytest.raises(ValueError):
        EmailNotifier("m", host="h", sender="a@b", recipients=[])
    with pytest.raises(ValueError):
        EmailNotifier("m", host="h", sender="a@b", recipients=["c@d"], starttls=False, username="u")
