"""Real receivers for the forwarding tests, each stoppable and restartable on its port:
an HTTP receiver (Splunk HEC and a signed webhook), a TLS syslog listener (RFC 5425 octet
counting), and a private NATS JetStream server (nats-server, killed with SIGKILL)."""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import hmac
import json
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from server_harness import free_port


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (it is its own CA) and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    import ipaddress

    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "recv.crt", folder / "recv.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return cert_path, key_path


class HttpReceiver:
    """``/hec``: Splunk HEC (checks ``Authorization: Splunk <token>``); ``/hook``: JSON Lines
    with an HMAC signature it checks. Collects event ids (with repeats) per path."""

    def __init__(self, token: str, secret: str, tls: tuple[Path, Path] | None = None) -> None:
        self.port = free_port()
        self.tls = tls  # (certificate, key): serve HTTPS
        self.token = token
        self.secret = secret.encode()
        self.ids: dict[str, list[str]] = {"/hec": [], "/hook": []}
        self.bad: list[str] = []
        self.sizes: list[int] = []  # body bytes of each request taken
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                ids = outer._take(self.path, dict(self.headers), body)
                if ids is None:
                    self.send_response(401)
                    self.end_headers()
                    return
                with outer.lock:
                    outer.ids[self.path].extend(ids)
                    outer.sizes.append(len(body))
                out = b'{"text":"Success","code":0}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        class Quiet(ThreadingHTTPServer):
            allow_reuse_address = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                return  # a forwarder that hung up mid-answer (it sends the batch again)

        self._server = Quiet(("127.0.0.1", self.port), Handler)
        if self.tls is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*self.tls)
            self._server.socket = ctx.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def _take(self, path: str, headers: dict[str, str], body: bytes) -> list[str] | None:
        if path == "/hec":
            if headers.get("Authorization") != f"Splunk {self.token}":
                self.bad.append("hec auth")
                return None
            out, text, pos = [], body.decode(), 0
            dec = json.JSONDecoder()
            while pos < len(text):
                obj, pos = dec.raw_decode(text, pos)
                out.append(obj["fields"]["event_id"])
                assert obj["sourcetype"] == "auditkeep:ocsf" and obj["event"]["metadata"]["uid"] == obj["fields"]["event_id"]
            return out
        ts, sig = headers.get("X-Auditkeep-Timestamp", ""), headers.get("X-Auditkeep-Signature", "")
        want = "sha256=" + hmac.new(self.secret, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(sig, want) or abs(time.time() - int(ts)) > 300:
            self.bad.append("hook signature")
            return None
        return [json.loads(line)["event"]["id"] for line in body.splitlines() if line]

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)


_SD_ID = re.compile(rb'\[auditkeep@32473 id="([^"]*)"')


class SyslogReceiver:
    """A TLS listener reading RFC 5425 octet-counted RFC 5424 messages; ``stop`` drops every
    connection at once, with whatever it had not parsed yet (as a crash would)."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.port = free_port()
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.ids: list[str] = []
        self.messages: list[bytes] = []
        self.lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._running = False

    def start(self) -> None:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen()
        s.settimeout(0.1)
        self._listener = s
        self._running = True
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def _accept(self, s: socket.socket) -> None:
        while self._running and self._listener is s:
            try:
                conn, _ = s.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                tls = self.ctx.wrap_socket(conn, server_side=True)
            except (OSError, ssl.SSLError):
                conn.close()
                continue
            with self.lock:
                self._conns.append(tls)
            threading.Thread(target=self._read, args=(tls,), daemon=True).start()

    def _read(self, conn: ssl.SSLSocket) -> None:
        buf = b""
        try:
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
                while True:
                    sp = buf.find(b" ")
                    if sp < 0:
                        break
                    n = int(buf[:sp])
                    if len(buf) < sp + 1 + n:
                        break
                    msg, buf = buf[sp + 1 : sp + 1 + n], buf[sp + 1 + n :]
                    m = _SD_ID.search(msg)
                    with self.lock:
                        self.messages.append(msg)
                        if m:
                            self.ids.append(m.group(1).decode())
        except (OSError, ValueError):
            return

    def stop(self) -> None:
        self._running = False
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self.lock:
            conns, self._conns = self._conns, []
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            c.close()


class NatsServer:
    """A private nats-server with JetStream, on a port and store directory of its own."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.folder = folder
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"nats://127.0.0.1:{self.port}"

    @staticmethod
    def available() -> bool:
        return shutil.which("nats-server") is not None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["nats-server", "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(self.folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("nats-server did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def ids(self, stream: str) -> list[str]:
        """The event ids of every message the stream holds (in order)."""
        import asyncio

        import nats

        async def read() -> list[str]:
            nc = await nats.connect(self.url)
            try:
                js = nc.jetstream()
                info = await js.stream_info(stream)
                out = []
                for seq in range(info.state.first_seq, info.state.last_seq + 1):
                    msg = await js.get_msg(stream, seq)
                    out.append(json.loads(msg.data)["event"]["id"])
                return out
            finally:
                await nc.close()

        return asyncio.run(read())
