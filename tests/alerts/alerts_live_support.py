"""Real peers for the alert runner tests: an HTTP webhook receiver that checks signatures,
an SMTP server with STARTTLS and login (aiosmtpd), and `auditkeep` subprocesses."""

from __future__ import annotations

import datetime
import json
import os
import ssl
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from auditkeep.alerts.notify import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature
from server_harness import ServeProcess, free_port, run_cli

SECRET = "s3cret-for-tests"


def wait_for(check: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class WebhookReceiver:
    """Records every POST (headers, JSON body, arrival time); answers ``status`` for the
    first ``fail`` requests. A bad signature is counted and refused with 401."""

    def __init__(self, secret: str | None = SECRET, fail: int = 0, status: int = 503) -> None:
        self.secret = secret
        self.fail = fail
        self.status = status
        self.posts: list[tuple[dict[str, str], dict[str, Any], float]] = []
        self.bad_signatures = 0
        self._lock = threading.Lock()
        recv = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                arrived = time.time()
                headers = dict(self.headers.items())
                if recv.secret is not None and not verify_signature(
                    recv.secret, headers.get(TIMESTAMP_HEADER, ""), body, headers.get(SIGNATURE_HEADER, "")
                ):
                    with recv._lock:
                        recv.bad_signatures += 1
                    self.send_response(401)
                    self.end_headers()
                    return
                with recv._lock:
                    failing = recv.fail > 0
                    if failing:
                        recv.fail -= 1
                    else:
                        recv.posts.append((headers, json.loads(body), arrived))
                self.send_response(recv.status if failing else 200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def ids(self) -> Counter[str]:
        with self._lock:
            return Counter(str(body["id"]) for _, body, _ in self.posts)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def self_signed(tmp: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, and its key (PEM files)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    san = x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(san, critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "smtp-cert.pem", tmp / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


class SmtpServer:
    """aiosmtpd on 127.0.0.1 requiring STARTTLS; login ``alerts`` / ``password``."""

    USER = "alerts"
    PASSWORD = "smtp-pass-for-tests"

    def __init__(self, tmp: Path) -> None:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult, LoginPassword

        self.cert, key = self_signed(tmp)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, key)
        self.messages: list[tuple[bool, str, list[str], bytes]] = []
        messages = self.messages

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                messages.append((bool(session.authenticated), envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
                return "250 OK"

        def auth(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
            ok = isinstance(data, LoginPassword) and data.login == self.USER.encode() and data.password == self.PASSWORD.encode()
            return AuthResult(success=ok, handled=False)

        self.port = free_port()  # the controller checks readiness by connecting: no port 0
        self.controller = Controller(
            Handler(), hostname="127.0.0.1", port=self.port, tls_context=context, require_starttls=True,
            authenticator=auth, auth_required=True, auth_require_tls=True,
        )
        self.controller.start()

    def close(self) -> None:
        self.controller.stop()


def auditkeep(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 60,
              process: bool = True) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """Run the CLI in a subprocess (as a user would), without a settings file of the caller;
    with ``process=False`` its main() in this process (for repeats of a command a test
    already ran as a process: a process spends ~0.5 s of CPU importing auditkeep)."""
    full = {**os.environ, "COLUMNS": "200", **(env or {})}
    full.pop("AUDITKEEP_CONFIG", None)
    if not process:
        got = run_cli(args, env=full, cwd=cwd)
        return subprocess.CompletedProcess(got.args, got.returncode, got.stdout.decode(), got.stderr.decode())
    return subprocess.run([sys.executable, "-m", "auditkeep.cli.main", *args], cwd=cwd, env=full,
                          capture_output=True, text=True, timeout=timeout, check=False)


class Serve(ServeProcess):
    """`auditkeep serve` over ``config`` (a TOML file) on a free port; ``admin`` is the key
    printed at first start."""

    def __init__(self, cwd: Path, config: Path, env: dict[str, str] | None = None) -> None:
        full = {**os.environ, "AUDITKEEP_RATE_LIMIT": "0", **(env or {})}
        full.pop("AUDITKEEP_CONFIG", None)
        port = free_port()
        super().__init__(
            ["--config", str(config), "--log-level", "warning"],
            log=cwd / f"serve-{port}.log",
            env=full,
            cwd=cwd,
            port=port,
            name="serve",
        )
        self.start()
