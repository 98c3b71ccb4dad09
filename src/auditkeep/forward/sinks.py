"""Where forwarded events go: files with rotation, Splunk HEC, a signed webhook, syslog over
TLS, NATS JetStream.

A sink's ``send`` takes a batch of (record, formatted bytes) and returns once the receiver
has taken it (an HTTP 2xx, a JetStream ack, an fsync), or raises. Syslog has no
acknowledgement: its sink reports instead which sends survived ``confirm_after`` seconds on
a connection that is still open (``confirmed``); the forwarder saves its cursor only past
those, so a receiver that dies takes nothing with it that is not sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import os
import socket
import ssl
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import httpx
import msgspec

from auditkeep.config import ForwardSettings
from auditkeep.errors import TransportError
from auditkeep.forward.syslog5424 import frame, message
from auditkeep.ledger.reader import Record
from auditkeep.model.timefmt import parse_rfc3339

log = logging.getLogger("auditkeep.forward")

Item = tuple[Record, bytes]
_json = msgspec.json.Encoder()
_decode = msgspec.json.Decoder()


class SinkError(TransportError, RuntimeError):
    """The receiver did not take a batch (it is sent again)."""


class Sink(Protocol):
    deferred: bool  # True: acknowledgement comes later, through confirmed()

    def send(self, items: Sequence[Item]) -> None: ...
    def confirmed(self, sent_at: float, generation: int) -> bool: ...
    def generation(self) -> int: ...
    def close(self) -> None: ...


class _Immediate:
    deferred = False

    def confirmed(self, sent_at: float, generation: int) -> bool:
        return True

    def generation(self) -> int:
        return 0

    def close(self) -> None:
        return None


class FileSink(_Immediate):
    """One record a line; past ``max_bytes`` the file becomes ``path.1`` (``path.1`` becomes
    ``path.2``...; ``keep`` are kept). Each batch is fsynced before it counts as sent."""

    def __init__(self, path: str, max_bytes: int, keep: int) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.keep = keep
        self.path.parent.mkdir(parents=True, exist_ok=True)
        drop_torn_line(self.path)
        self._f = open(self.path, "ab")  # noqa: SIM115 - held open, closed in close()

    def send(self, items: Sequence[Item]) -> None:
        data = b"".join(body + b"\n" for _, body in items)
        self._f.write(data)
        self._f.flush()
        os.fsync(self._f.fileno())
        if self._f.tell() >= self.max_bytes:
            self._rotate()

    def _rotate(self) -> None:
        self._f.close()
        for i in range(self.keep - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{i}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{i + 1}"))
        if self.keep > 0:
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink()
        self._f = open(self.path, "ab")  # noqa: SIM115

    def close(self) -> None:
        self._f.close()


def drop_torn_line(path: Path, chunk: int = 1 << 16) -> int:
    """Cut ``path`` back to its last newline; the bytes cut. A process killed while writing
    a batch leaves part of a line, and appending after it would glue the next record to it
    (both then unreadable as JSON Lines). Those bytes belong to a batch that was not fsynced,
    so it never counted as sent: the forwarder sends it again from its cursor."""
    try:
        f = open(path, "r+b")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return 0
    with f:
        size = os.fstat(f.fileno()).st_size
        end = size
        while end > 0:
            start = max(0, end - chunk)
            f.seek(start)
            nl = f.read(end - start).rfind(b"\n")
            if nl >= 0:
                end = start + nl + 1
                break
            end = start
        if end == size:
            return 0
        f.truncate(end)
        f.flush()
        os.fsync(f.fileno())
    log.warning("forward file %s: dropped %d bytes of a line cut short (sent again from the cursor)", path, size - end)
    return size - end


def _verify(ca_file: str | None) -> ssl.SSLContext | bool:
    return ssl.create_default_context(cafile=ca_file) if ca_file else True


def _secret(env_name: str | None, what: str) -> str:
    value = os.environ.get(env_name or "")
    if not env_name or not value:
        raise ValueError(f"{what}: set {env_name or 'the named environment variable'} (token_env/secret_env names it)")
    return value


class HecSink(_Immediate):
    """Splunk HTTP Event Collector: one JSON object per event, concatenated, ``Authorization:
    Splunk <token>``; the batch counts as sent on a 2xx with ``code`` 0."""

    def __init__(self, url: str, token: str, fmt: str, ca_file: str | None, timeout: float) -> None:
        self.url = url
        self.fmt = fmt
        self._client = httpx.Client(verify=_verify(ca_file), timeout=timeout, headers={"Authorization": f"Splunk {token}"})

    def send(self, items: Sequence[Item]) -> None:
        buf = bytearray()
        for rec, body in items:
            event: Any = body.decode() if self.fmt == "cef" else msgspec.Raw(body)
            when = rec.event.time or rec.event.received_at
            obj = {
                "time": round(parse_rfc3339(when) / 1e9, 6) if when else None,
                "host": rec.event.source.host if rec.event.source and rec.event.source.host else "auditkeep",
                "source": "auditkeep",
                "sourcetype": f"auditkeep:{self.fmt}",
                "event": event,
                "fields": {"tenant": rec.tenant, "event_id": rec.event.id or "", "index": str(rec.index)},
            }
            _json.encode_into(obj, buf, -1)
        _post(self._client, self.url, bytes(buf), {"Content-Type": "application/json"}, hec=True)

    def close(self) -> None:
        self._client.close()


class WebhookSink(_Immediate):
    """A POST of the batch as JSON Lines, signed: ``X-Auditkeep-Signature: sha256=<hex of
    HMAC-SHA256(secret, timestamp + "." + body)>`` with the ``X-Auditkeep-Timestamp`` it
    covers (so a receiver can refuse replays)."""

    def __init__(self, url: str, secret: str, ca_file: str | None, timeout: float) -> None:
        self.url = url
        self._secret = secret.encode()
        self._client = httpx.Client(verify=_verify(ca_file), timeout=timeout)

    def send(self, items: Sequence[Item]) -> None:
        body = b"".join(b + b"\n" for _, b in items)
        ts = str(int(time.time()))
        sig = hmac.new(self._secret, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
        headers = {"Content-Type": "application/x-ndjson", "X-Auditkeep-Timestamp": ts, "X-Auditkeep-Signature": f"sha256={sig}"}
        _post(self._client, self.url, body, headers)

    def close(self) -> None:
        self._client.close()


def _post(client: httpx.Client, url: str, body: bytes, headers: dict[str, str], hec: bool = False) -> None:
    try:
        r = client.post(url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        raise SinkError(f"{type(exc).__name__}: {exc}") from None
    if not 200 <= r.status_code < 300:
        raise SinkError(f"HTTP {r.status_code}")
    if hec:
        try:
            code = _decode.decode(r.content).get("code", 0)
        except (msgspec.DecodeError, AttributeError):
            code = 0
        if code != 0:
            raise SinkError(f"HEC code {code}")


class SyslogSink:
    """RFC 5424 over TLS with octet counting; acknowledged by survival (see module doc)."""

    deferred = True

    def __init__(self, address: str, ca_file: str | None, timeout: float, confirm_after: float) -> None:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"syslog address must be host:port, got {address!r}")
        self.host, self.port = host.strip("[]"), int(port)
        self.ctx = ssl.create_default_context(cafile=ca_file)
        self.timeout = timeout
        self.confirm_after = confirm_after
        self._sock: ssl.SSLSocket | None = None
        self._gen = 0

    def generation(self) -> int:
        return self._gen

    def _connect(self) -> ssl.SSLSocket:
        if self._sock is None:
            raw = socket.create_connection((self.host, self.port), timeout=self.timeout)
            try:
                self._sock = self.ctx.wrap_socket(raw, server_hostname=self.host)
            except BaseException:
                raw.close()
                raise
            self._gen += 1
        return self._sock

    def send(self, items: Sequence[Item]) -> None:
        try:
            sock = self._connect()
            sock.sendall(b"".join(frame(message(rec, body)) for rec, body in items))
        except OSError as exc:
            self._drop()
            raise SinkError(f"syslog {self.host}:{self.port}: {exc}") from None

    def confirmed(self, sent_at: float, generation: int) -> bool:
        """Whether what was sent at ``sent_at`` on connection ``generation`` is taken: the
        connection is still open (a receiver that died reset or closed it) and the send is
        ``confirm_after`` seconds old. Raises SinkError when the connection was lost."""
        if generation != self._gen or self._sock is None:
            raise SinkError("syslog connection lost before the send was confirmed")
        if not self._alive():
            self._drop()
            raise SinkError("syslog receiver closed the connection")
        return time.monotonic() - sent_at >= self.confirm_after

    def _alive(self) -> bool:
        sock = self._sock
        if sock is None:
            return False
        try:
            sock.setblocking(False)
            try:
                data = sock.recv(1)
            finally:
                sock.setblocking(True)
                sock.settimeout(self.timeout)
        except (ssl.SSLWantReadError, BlockingIOError):
            return True
        except OSError:
            return False
        return bool(data)  # b"": the receiver closed; a syslog receiver sends nothing else

    def _drop(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None

    def close(self) -> None:
        self._drop()


class NatsSink(_Immediate):
    """JetStream publishes with ``Nats-Msg-Id`` = the event id, so the stream drops a
    message sent twice (within its duplicate window); the batch counts as sent when every
    publish is acknowledged."""

    def __init__(self, servers: str, subject: str, stream: str | None, timeout: float) -> None:
        self.servers = [s.strip() for s in servers.split(",") if s.strip()]
        self.subject = subject
        self.stream = stream
        self.timeout = timeout
        self._loop = asyncio.new_event_loop()
        self._nc: Any = None
        self._js: Any = None

    def _run(self, coro: Any) -> Any:
        return self._loop.run_until_complete(asyncio.wait_for(coro, self.timeout * 3))

    async def _connect(self) -> Any:
        import nats
        from nats.js.errors import NotFoundError

        if self._nc is None or self._nc.is_closed:
            self._nc = await nats.connect(
                servers=self.servers, allow_reconnect=False, connect_timeout=self.timeout, max_reconnect_attempts=0
            )
            self._js = self._nc.jetstream(timeout=self.timeout)
            if self.stream:
                try:
                    await self._js.stream_info(self.stream)
                except NotFoundError:
                    await self._js.add_stream(name=self.stream, subjects=[self.subject])
        return self._js

    async def _send(self, items: Sequence[Item]) -> None:
        js = await self._connect()
        subject = self.subject
        await asyncio.gather(
            *(js.publish(subject, body, headers={"Nats-Msg-Id": rec.event.id or f"{rec.tenant}/{rec.index}"}) for rec, body in items)
        )

    def send(self, items: Sequence[Item]) -> None:
        try:
            self._run(self._send(items))
        except Exception as exc:  # nats raises many kinds; all mean "not taken"
            self._run_close()
            raise SinkError(f"nats: {type(exc).__name__}: {exc}") from None

    def _run_close(self) -> None:
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None and not nc.is_closed:
            with contextlib.suppress(Exception):  # closing a dead connection: nothing more to do
                self._loop.run_until_complete(asyncio.wait_for(nc.close(), self.timeout))

    def close(self) -> None:
        self._run_close()
        self._loop.close()


def build_sink(t: ForwardSettings) -> Sink:
    """The sink of a target (ValueError names what is missing)."""
    if t.type == "file":
        if not t.path:
            raise ValueError(f"forward {t.name!r}: a file target needs path")
        return FileSink(t.path, t.max_bytes, t.keep)
    if t.type in ("splunk_hec", "webhook"):
        if not t.url or not t.url.startswith(("http://", "https://")):
            raise ValueError(f"forward {t.name!r}: url must be an http:// or https:// URL")
        if t.type == "splunk_hec":
            return HecSink(t.url, _secret(t.token_env, f"forward {t.name!r}"), t.format, t.ca_file, t.timeout)
        return WebhookSink(t.url, _secret(t.secret_env, f"forward {t.name!r}"), t.ca_file, t.timeout)
    if t.type == "syslog":
        if not t.address:
            raise ValueError(f"forward {t.name!r}: a syslog target needs address (host:port)")
        return SyslogSink(t.address, t.ca_file, t.timeout, t.confirm_after)
    if t.type == "nats":
        return NatsSink(t.servers, t.subject, t.stream, t.timeout)
    raise ValueError(f"forward {t.name!r}: type must be file, splunk_hec, webhook, syslog or nats")
