"""The start of a session: TLS negotiation with the client, the connection to the upstream
server, authentication passed through message by message, and the roles of the user who
logged in (for the guardrails), before the two pumps take over."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from auditkeep.gateway.postgres import wire
from auditkeep.gateway.postgres.events import SessionInfo, session_start
from auditkeep.gateway.postgres.wire import _I32, MAX_MESSAGE, ProtocolViolation

if TYPE_CHECKING:
    from auditkeep.gateway.postgres.server import Gateway

log = logging.getLogger("auditkeep.gateway.postgres")

ROLE_QUERY = (
    "SELECT r.rolname FROM pg_catalog.pg_roles r "
    "WHERE pg_catalog.pg_has_role(current_user, r.oid, 'member') AND r.rolname <> current_user"
)


class SessionStartup:
    """The start-up half of :class:`~auditkeep.gateway.postgres.session.Session` (its base)."""

    gw: Gateway
    c_reader: asyncio.StreamReader
    c_writer: asyncio.StreamWriter
    s_reader: asyncio.StreamReader | None
    s_writer: asyncio.StreamWriter | None
    info: SessionInfo
    txn: str
    _started: bool

    async def _first_packet(self) -> bytes:
        head = await self.c_reader.readexactly(4)
        (n,) = _I32.unpack(head)
        if not 8 <= n <= wire.MAX_STARTUP:
            raise ProtocolViolation(f"startup packet of {n} bytes")
        return head + await self.c_reader.readexactly(n - 4)

    async def _negotiate(self) -> wire.Startup | None:
        """SSLRequest, GSSENCRequest, CancelRequest, then the startup message."""
        tls_done = False
        while True:
            packet = await self._first_packet()
            st = wire.parse_startup(packet)
            if st.code == wire.SSL_REQUEST and not tls_done:
                if self.gw.tls is None:
                    self.c_writer.write(b"N")
                    await self.c_writer.drain()
                    continue
                self.c_writer.write(b"S")
                await self.c_writer.drain()
                await self.c_writer.start_tls(self.gw.tls)
                tls_done = self.info.tls = True
                continue
            if st.code == wire.GSSENC_REQUEST:
                self.c_writer.write(b"N")
                await self.c_writer.drain()
                continue
            if st.code == wire.CANCEL_REQUEST:
                await self.gw.forward_cancel(packet)
                return None
            if (st.code >> 16) != 3:
                self.c_writer.write(wire.error_response("unsupported frontend protocol", "0A000", "FATAL"))
                await self.c_writer.drain()
                return None
            if self.gw.tls is not None and self.gw.require_tls and not tls_done:
                self.c_writer.write(wire.error_response("this gateway requires TLS (sslmode=require)", "28000", "FATAL"))
                await self.c_writer.drain()
                return None
            return st

    async def _connect_and_authenticate(self, st: wire.Startup) -> bool:
        info = self.info
        info.user = st.params.get("user", "")
        info.database = st.params.get("database", info.user)
        info.application = st.params.get("application_name", "")
        try:
            self.s_reader, self.s_writer = await asyncio.wait_for(self.gw.open_upstream(), self.gw.connect_timeout)
        except (TimeoutError, OSError) as exc:
            msg = f"the gateway cannot reach the database server: {exc or type(exc).__name__}"
            self.c_writer.write(wire.error_response(msg, "08006", "FATAL"))
            await self.c_writer.drain()
            self.gw.emit(session_start(info, "error", msg, "08006"))
            self.gw.metrics.sessions.labels("error").inc()
            return False
        assert self.s_writer is not None
        self.s_writer.write(st.raw)
        await self.s_writer.drain()
        # Authentication passes through: the gateway never sees a password it keeps.
        while True:
            kind, body = await self._read_server()
            if kind == b"R":
                code = _I32.unpack_from(body, 0)[0]
                self.c_writer.write(wire.message(kind, body))
                await self.c_writer.drain()
                if code in (2, 3, 5, 7, 9, 10, 11):  # the client answers these
                    await self._relay_client_message()
                continue
            if kind == b"E":
                fields = wire.error_fields(body)
                self.c_writer.write(wire.message(kind, body))
                await self.c_writer.drain()
                self.gw.emit(session_start(info, "failure", fields.get("M"), fields.get("C")))
                self.gw.metrics.sessions.labels("failure").inc()
                return False
            if kind == b"K":
                info.backend_pid = _I32.unpack_from(body, 0)[0]
            if kind == b"Z":
                self.txn = chr(body[0]) if body else "I"
                if self.gw.wants_roles:
                    info.roles = await self._lookup_roles()
                self.c_writer.write(wire.message(kind, body))
                await self.c_writer.drain()
                self._started = True
                self.gw.metrics.active.inc()
                self.gw.metrics.sessions.labels("success").inc()
                self.gw.emit(session_start(info))
                return True
            self.c_writer.write(wire.message(kind, body))

    async def _read_server(self) -> tuple[bytes, bytes]:
        assert self.s_reader is not None
        head = await self.s_reader.readexactly(5)
        kind = head[:1]
        (n,) = _I32.unpack_from(head, 1)
        if not 4 <= n <= MAX_MESSAGE:
            raise ProtocolViolation(f"server message {kind!r} of {n} bytes")
        return kind, await self.s_reader.readexactly(n - 4)

    async def _relay_client_message(self) -> None:
        assert self.s_writer is not None
        head = await self.c_reader.readexactly(5)
        (n,) = _I32.unpack_from(head, 1)
        if head[:1] != b"p" or not 4 <= n <= 1 << 20:
            raise ProtocolViolation("expected a password message")
        self.s_writer.write(head + await self.c_reader.readexactly(n - 4))
        await self.s_writer.drain()

    async def _lookup_roles(self) -> frozenset[str]:
        """The roles the user is a member of, asked on the session before the client gets it."""
        assert self.s_writer is not None
        self.s_writer.write(wire.query(ROLE_QUERY))
        await self.s_writer.drain()
        roles: set[str] = set()
        while True:
            kind, body = await self._read_server()
            if kind == b"D":
                values = wire.parse_data_row(body)
                if values and values[0] is not None:
                    roles.add(values[0].decode("utf-8", "replace"))
            elif kind == b"Z":
                return frozenset(roles)
