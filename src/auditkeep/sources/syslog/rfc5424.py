"""RFC 5424 syslog messages.

``<PRI>VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP SD [SP MSG]``

Lenient where senders commonly stray and nothing is lost by it: fields longer than the RFC
allows, a lower-case ``t``/``z`` in the timestamp, a timestamp without its offset (read in
the configured time zone), a missing space before the MSG. A message whose structure cannot
be read (an unterminated structured-data element, a bad PRI) is a :class:`SourceError`.
"""

from __future__ import annotations

import re
from datetime import tzinfo

from auditkeep.model.timefmt import parse_rfc3339
from auditkeep.sources.base import SourceError
from auditkeep.sources.syslog.message import SOURCE, SDParams, SyslogMessage
from auditkeep.sources.syslog.timeparse import local_to_ns

_HEADER = re.compile(rb"<(\d{1,3})>([1-9]\d{0,2}) (\S+) (\S+) (\S+) (\S+) (\S+) ?")
# An SD-ELEMENT: [SD-ID *(SP PARAM-NAME="PARAM-VALUE")]; names exclude = SP ] and ".
_SD_ID = re.compile(rb'\[([^\s\]="]+)')
_SD_PARAM = re.compile(rb'\s+([^\s\]="]+)="((?:[^"\\]|\\.)*)"', re.S)
_SD_END = re.compile(rb"\s*\]")
_UNESCAPE = re.compile(r'\\(["\\\]])')
_NAIVE_TIME = re.compile(r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?")
BOM = b"\xef\xbb\xbf"


def parse_rfc5424(data: bytes, tz: tzinfo | None = None) -> SyslogMessage:
    """Parse one RFC 5424 message (without framing); :class:`SourceError` if malformed."""
    m = _HEADER.match(data)
    if m is None:
        raise SourceError(SOURCE, "not an RFC 5424 header (<PRI>VERSION TIMESTAMP HOST ...)", data)
    pri = int(m.group(1))
    if pri > 191:
        raise SourceError(SOURCE, f"PRI {pri} out of range (0-191)", data)
    ts_raw, host, app, procid, msgid = (_nil(m.group(i)) for i in range(3, 8))
    time_ns: int | None = None
    if ts_raw is not None:
        time_ns = _timestamp(ts_raw, tz, data)
    pos = m.end()
    sd: dict[str, SDParams] = {}
    if data[pos : pos + 1] == b"-":
        pos += 1
    elif data[pos : pos + 1] == b"[":
        pos = _structured_data(data, pos, sd)
    else:
        raise SourceError(SOURCE, "structured data is neither '-' nor '[...]'", data)
    if data[pos : pos + 1] == b" ":
        pos += 1
    body = data[pos:]
    if body.startswith(BOM):
        body = body[3:]
    return SyslogMessage(
        format="rfc5424",
        facility=pri >> 3,
        severity=pri & 7,
        time_ns=time_ns,
        hostname=host,
        app_name=app,
        procid=procid,
        msgid=msgid,
        msg=body.decode("utf-8", "backslashreplace"),
        raw=data,
        sd=sd,
        version=int(m.group(2)),
        timestamp=ts_raw,
    )


def _nil(value: bytes) -> str | None:
    return None if value == b"-" else value.decode("utf-8", "backslashreplace")


def _timestamp(text: str, tz: tzinfo | None, data: bytes) -> int:
    try:
        return parse_rfc3339(text)
    except ValueError:
        pass
    m = _NAIVE_TIME.fullmatch(text)
    if m is not None:
        try:
            y, mo, d, h, mi, sec = (int(x) for x in m.groups()[:6])
            return local_to_ns(y, mo, d, h, mi, sec, m.group(7) or "", tz)
        except ValueError:
            pass
    raise SourceError(SOURCE, f"invalid timestamp {text[:64]!r}", data)


def _structured_data(data: bytes, pos: int, sd: dict[str, SDParams]) -> int:
    while data[pos : pos + 1] == b"[":
        m = _SD_ID.match(data, pos)
        if m is None:
            raise SourceError(SOURCE, "structured data element without an SD-ID", data)
        sd_id = m.group(1).decode("utf-8", "backslashreplace")
        params = sd.setdefault(sd_id, {})  # a repeated SD-ID adds to the first
        pos = m.end()
        while True:
            pm = _SD_PARAM.match(data, pos)
            if pm is None:
                break
            name = pm.group(1).decode("utf-8", "backslashreplace")
            value = _UNESCAPE.sub(r"\1", pm.group(2).decode("utf-8", "backslashreplace"))
            old = params.get(name)
            if old is None:
                params[name] = value
            elif isinstance(old, list):
                old.append(value)
            else:
                params[name] = [old, value]
            pos = pm.end()
        end = _SD_END.match(data, pos)
        if end is None:
            raise SourceError(SOURCE, f"unterminated structured data element [{sd_id}", data)
        pos = end.end()
    return pos
