"""The PostgreSQL frontend/backend protocol v3: the few messages the gateway reads or writes.

A regular message is a type byte, a big-endian int32 length (counting itself, not the type
byte) and a body. The first message of a connection has no type byte: an int32 length and
an int32 code (protocol 3.0, SSLRequest, GSSENCRequest, CancelRequest).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from auditkeep.errors import TransportError

PROTOCOL_3 = 196608  # 3 << 16
SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102
MAX_STARTUP = 10_000  # the server's own limit on a startup packet

MAX_MESSAGE = 64 * 1024 * 1024  # a message the gateway must read whole (a query, a masked row)
_I32 = struct.Struct("!i")


class ProtocolViolation(TransportError):
    """Bytes that are not the PostgreSQL protocol: the session ends."""
_I16 = struct.Struct("!h")
_HEADER = struct.Struct("!ci")


def message(kind: bytes, body: bytes = b"") -> bytes:
    return kind + _I32.pack(len(body) + 4) + body


def cstring(data: bytes, pos: int) -> tuple[str, int]:
    """The NUL-terminated string at ``pos`` and the position after it; ValueError if cut."""
    end = data.index(b"\x00", pos)
    return data[pos:end].decode("utf-8", "replace"), end + 1


@dataclass
class Startup:
    code: int
    params: dict[str, str]
    raw: bytes


def parse_startup(packet: bytes) -> Startup:
    """A whole first packet (length included); ValueError when malformed."""
    if len(packet) < 8:
        raise ValueError("startup packet too short")
    (code,) = _I32.unpack_from(packet, 4)
    params: dict[str, str] = {}
    if code == PROTOCOL_3 or (code >> 16) == 3:
        pos = 8
        while pos < len(packet) and packet[pos] != 0:
            key, pos = cstring(packet, pos)
            value, pos = cstring(packet, pos)
            params[key] = value
    return Startup(code, params, packet)


def error_response(message_text: str, sqlstate: str = "42501", severity: str = "ERROR", detail: str | None = None) -> bytes:
    """An ErrorResponse the client shows like the server's own."""
    fields = [b"S" + severity.encode(), b"V" + severity.encode(), b"C" + sqlstate.encode(), b"M" + message_text.encode()]
    if detail:
        fields.append(b"D" + detail.encode())
    return message(b"E", b"\x00".join(fields) + b"\x00\x00")


def error_fields(data: bytes) -> dict[str, str]:
    """The fields of an ErrorResponse or NoticeResponse body, by their one-letter codes."""
    out: dict[str, str] = {}
    pos = 0
    while pos < len(data) and data[pos] != 0:
        code = chr(data[pos])
        end = data.find(b"\x00", pos + 1)
        if end < 0:
            break
        out[code] = data[pos + 1 : end].decode("utf-8", "replace")
        pos = end + 1
    return out


def command_rows(tag: str) -> int | None:
    """Rows affected from a CommandComplete tag (``INSERT 0 5``, ``UPDATE 3``, ``SELECT 2``)."""
    parts = tag.split()
    if len(parts) >= 2 and parts[-1].isdigit() and parts[0] in {
        "INSERT", "UPDATE", "DELETE", "SELECT", "MERGE", "MOVE", "FETCH", "COPY",
    }:  # fmt: skip
        return int(parts[-1])
    return None


@dataclass
class ParseMsg:
    name: str
    query: str
    param_types: tuple[int, ...]


def parse_parse(body: bytes) -> ParseMsg:
    name, pos = cstring(body, 0)
    query, pos = cstring(body, pos)
    (n,) = _I16.unpack_from(body, pos)
    types = struct.unpack_from(f"!{n}I", body, pos + 2) if n > 0 else ()
    return ParseMsg(name, query, tuple(types))


_BINARY_INTS = {21: "!h", 23: "!i", 20: "!q", 26: "!I", 700: "!f", 701: "!d"}
TEXT_TYPES = frozenset({25, 1043, 1042, 19, 705, 114, 3802})


def binary_param(value: bytes, type_oid: int) -> object:
    """A parameter sent in binary, as text or a number when its type is a common one."""
    fmt = _BINARY_INTS.get(type_oid)
    if fmt is not None and struct.calcsize(fmt) == len(value):
        return struct.unpack(fmt, value)[0]
    if type_oid == 16 and len(value) == 1:
        return value != b"\x00"
    if type_oid in TEXT_TYPES:
        return value[1:].decode("utf-8", "replace") if type_oid == 3802 and value[:1] == b"\x01" else value.decode("utf-8", "replace")
    if type_oid == 2950 and len(value) == 16:
        h = value.hex()
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
    return None


@dataclass
class BindMsg:
    portal: str
    statement: str
    params: list[bytes | None]
    param_formats: list[int]
    result_formats: list[int]


def parse_bind(body: bytes) -> BindMsg:
    portal, pos = cstring(body, 0)
    statement, pos = cstring(body, pos)
    (nf,) = _I16.unpack_from(body, pos)
    pos += 2
    formats = list(struct.unpack_from(f"!{nf}h", body, pos)) if nf else []
    pos += 2 * nf
    (np,) = _I16.unpack_from(body, pos)
    pos += 2
    params: list[bytes | None] = []
    for _ in range(np):
        (ln,) = _I32.unpack_from(body, pos)
        pos += 4
        if ln < 0:
            params.append(None)
        else:
            if pos + ln > len(body):
                raise ValueError("bind parameter runs past the message")
            params.append(body[pos : pos + ln])
            pos += ln
    (nr,) = _I16.unpack_from(body, pos)
    pos += 2
    results = list(struct.unpack_from(f"!{nr}h", body, pos)) if nr else []
    return BindMsg(portal, statement, params, formats, results)


def param_format(formats: list[int], i: int) -> int:
    if not formats:
        return 0
    return formats[0] if len(formats) == 1 else (formats[i] if i < len(formats) else 0)


@dataclass(frozen=True)
class Column:
    name: str
    type_oid: int
    format: int


def parse_row_description(body: bytes) -> list[Column]:
    (n,) = _I16.unpack_from(body, 0)
    pos = 2
    cols: list[Column] = []
    for _ in range(n):
        name, pos = cstring(body, pos)
        _table, _attr, type_oid, _size, _mod, fmt = struct.unpack_from("!ihihih", body, pos)
        pos += 18
        cols.append(Column(name, type_oid, fmt))
    return cols


def parse_data_row(body: bytes) -> list[bytes | None]:
    (n,) = _I16.unpack_from(body, 0)
    pos = 2
    out: list[bytes | None] = []
    for _ in range(n):
        (ln,) = _I32.unpack_from(body, pos)
        pos += 4
        if ln < 0:
            out.append(None)
        else:
            out.append(body[pos : pos + ln])
            pos += ln
    return out


def data_row(values: list[bytes | None]) -> bytes:
    parts = [_I16.pack(len(values))]
    for v in values:
        if v is None:
            parts.append(_I32.pack(-1))
        else:
            parts.append(_I32.pack(len(v)))
            parts.append(v)
    return message(b"D", b"".join(parts))


def query(sql: str) -> bytes:
    return message(b"Q", sql.encode() + b"\x00")


def parse_msg(sql: str, name: str = "") -> bytes:
    return message(b"P", name.encode() + b"\x00" + sql.encode() + b"\x00" + _I16.pack(0))


def bind_msg(portal: str = "", statement: str = "") -> bytes:
    return message(b"B", portal.encode() + b"\x00" + statement.encode() + b"\x00" + _I16.pack(0) + _I16.pack(0) + _I16.pack(0))


def execute_msg(portal: str = "", max_rows: int = 0) -> bytes:
    return message(b"E", portal.encode() + b"\x00" + _I32.pack(max_rows))


SYNC = message(b"S")
I32 = _I32
HEADER = _HEADER


def refusal_sql(message: str) -> str:
    """A statement that makes the server refuse with ``message`` (SQLSTATE 42501): a denied
    statement is replaced by it, so the server answers and the client sees an ordinary error."""
    quoted = message.replace("'", "''")
    return (
        "DO LANGUAGE plpgsql $auditkeep$BEGIN RAISE EXCEPTION USING ERRCODE = '42501', "
        f"MESSAGE = '{quoted}'; END$auditkeep$"
    )
