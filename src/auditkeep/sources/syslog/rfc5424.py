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
# Values: [^"\\]*(?:\\.[^"\\]*)* is "any run of characters, a backslash escaping the next",
# written unrolled because Python's re is much faster on it than on (?:[^"\\]|\\.)*.
_VALUE = rb'[^"\\]*(?:\\.[^"\\]*)*'
_SD_PARAM = re.compile(rb'\s+([^\s\]="]+)="(' + _VALUE + rb')"', re.S)
_SD_ELEMENT = re.compile(rb'\[([^\s\]="]+)((?:\s+[^\s\]="]+="' + _VALUE + rb'")*)\s*\]', re.S)
_UNESCAPE = re.compile(r'\\(["\\\]])')
_NAIVE_TIME = re.compile(r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?")
BOM = b"\xef\xbb\xbf"


def parse_rfc5424(data: bytes, tz: tzinfo | None = None) -> SyslogMessage:
    """Parse one RFC 5424 message (without framing); :class:`SourceError` if malformed."""
    m = _HEADER.match(data)
    if m is None:
        raise SourceError(SOURCE, "not an RFC 5424 header (<PRI>VERSION TIMESTAMP HOST ...)", data)
    pri_b, version, ts_b, host_b, app_b, procid_b, msgid_b = m.groups()
    pri = int(pri_b)
    if pri > 191:
        raise SourceError(SOURCE, f"PRI {pri} out of range (0-191)", data)
    ts_raw = None if ts_b == b"-" else ts_b.decode("ascii", "backslashreplace")
    host = None if host_b == b"-" else host_b.decode("utf-8", "backslashreplace")
    app = None if app_b == b"-" else app_b.decode("utf-8", "backslashreplace")
    procid = None if procid_b == b"-" else procid_b.decode("utf-8", "backslashreplace")
    msgid = None if msgid_b == b"-" else msgid_b.decode("utf-8", "backslashreplace")
    time_ns: int | None = None
    time_text: str | None = None
    if ts_raw is not None:
        time_ns, complete = _timestamp(ts_raw, tz, data)
        if complete:
            time_text = ts_raw
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
        version=int(version),
        timestamp=ts_raw,
        time_text=time_text,
    )


def _timestamp(text: str, tz: tzinfo | None, data: bytes) -> tuple[int, bool]:
    """(nanoseconds, True if ``text`` is complete RFC 3339 with an offset)."""
    try:
        return parse_rfc3339(text), True
    except ValueError:
        pass
    m = _NAIVE_TIME.fullmatch(text)
    if m is not None:
        try:
            y, mo, d, h, mi, sec = (int(x) for x in m.groups()[:6])
            return local_to_ns(y, mo, d, h, mi, sec, m.group(7) or "", tz), False
        except ValueError:
            pass
    raise SourceError(SOURCE, f"invalid timestamp {text[:64]!r}", data)


def _structured_data(data: bytes, pos: int, sd: dict[str, SDParams]) -> int:
    while data[pos : pos + 1] == b"[":
        m = _SD_ELEMENT.match(data, pos)
        if m is None:
            if _SD_ID.match(data, pos) is None:
                raise SourceError(SOURCE, "structured data element without an SD-ID", data)
            raise SourceError(SOURCE, "unterminated structured data element", data)
        sd_id = m.group(1).decode("utf-8", "backslashreplace")
        params = sd.setdefault(sd_id, {})  # a repeated SD-ID adds to the first
        body = m.group(2)
        if body:
            for raw_name, raw_value in _SD_PARAM.findall(body):
                name = raw_name.decode("utf-8", "backslashreplace")
                value = raw_value.decode("utf-8", "backslashreplace")
                if "\\" in value:
                    value = _UNESCAPE.sub(r"\1", value)
                old = params.get(name)
                if old is None:
                    params[name] = value
                elif isinstance(old, list):
                    old.append(value)
                else:
                    params[name] = [old, value]
        pos = m.end()
    return pos
