"""BSD syslog (RFC 3164): ``<PRI>Mmm dd hh:mm:ss HOSTNAME TAG[PID]: MSG``, and its variants.

RFC 3164 accepts anything as a message, and so does this parser: each part is read when
it is there. No PRI means user.notice (13, as the RFC says a relay must assume). The year,
which BSD timestamps omit, is inferred from the time of reception (see
:func:`.timeparse.infer_year`) and the time read in the configured zone (UTC by default).
Also read: an RFC 3339 timestamp in place of the BSD one, a year after the day
(``Oct 11 2023 22:14:15``), fractional seconds, no hostname (the TAG follows the time).
"""

from __future__ import annotations

import re
import time
from datetime import tzinfo

from auditkeep.model.timefmt import parse_rfc3339
from auditkeep.sources.base import SourceError
from auditkeep.sources.syslog.message import SOURCE, SyslogMessage
from auditkeep.sources.syslog.timeparse import MONTHS, infer_year, local_to_ns

_PRI = re.compile(rb"<(\d{1,3})>")
_BSD_TIME = re.compile(
    rb"([A-Za-z]{3}) +(\d{1,2}) +(?:(\d{4}) +)?(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?: +|$)"
)
_ISO_TIME = re.compile(
    rb"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    rb"([Zz]|[+-]\d{2}:\d{2})?(?: +|$)"
)
_TAG = re.compile(rb"([^\s\[\]:]{1,64})(?:\[([^\]\s]{0,128})\])?:(?: |$)")
_WORD = re.compile(rb"(\S+) +")


def parse_rfc3164(
    data: bytes, received_ns: int | None = None, tz: tzinfo | None = None
) -> SyslogMessage:
    """Parse a BSD syslog message; :class:`SourceError` only for an impossible PRI."""
    pos = 0
    pri = 13
    m = _PRI.match(data)
    if m is not None:
        pri = int(m.group(1))
        if pri > 191:
            raise SourceError(SOURCE, f"PRI {pri} out of range (0-191)", data)
        pos = m.end()
    rest = data[pos:]
    time_ns, ts_text, rest = _timestamp(rest, received_ns, tz)
    host: str | None = None
    if time_ns is not None:
        # HOSTNAME follows the timestamp, unless the next word is already the TAG.
        wm = _WORD.match(rest)
        if wm is not None and not _is_tag(wm.group(1)):
            host = wm.group(1).decode("utf-8", "backslashreplace")
            rest = rest[wm.end() :]
    app: str | None = None
    procid: str | None = None
    tm = _TAG.match(rest)
    if tm is not None:
        app = tm.group(1).decode("utf-8", "backslashreplace")
        if tm.group(2):
            procid = tm.group(2).decode("utf-8", "backslashreplace")
        rest = rest[tm.end() :]
    return SyslogMessage(
        format="rfc3164",
        facility=pri >> 3,
        severity=pri & 7,
        time_ns=time_ns,
        hostname=host,
        app_name=app,
        procid=procid,
        msgid=None,
        msg=rest.decode("utf-8", "backslashreplace"),
        raw=data,
        timestamp=ts_text,
    )


def _is_tag(word: bytes) -> bool:
    return word.endswith(b":") or b"[" in word


def _timestamp(
    rest: bytes, received_ns: int | None, tz: tzinfo | None
) -> tuple[int | None, str | None, bytes]:
    m = _BSD_TIME.match(rest)
    if m is not None:
        month = MONTHS.get(m.group(1).decode("ascii").lower())
        if month is not None:
            day = int(m.group(2))
            try:
                if m.group(3) is not None:
                    year = int(m.group(3))
                else:
                    ref = received_ns if received_ns is not None else time.time_ns()
                    year = infer_year(month, day, ref, tz)
                ns = local_to_ns(
                    year, month, day, int(m.group(4)), int(m.group(5)), int(m.group(6)),
                    (m.group(7) or b"").decode("ascii"), tz,
                )  # fmt: skip
            except ValueError:
                return None, None, rest  # not a real date: leave it in the message
            return ns, m.group(0).decode("ascii").strip(), rest[m.end() :]
    m = _ISO_TIME.match(rest)
    if m is not None:
        text = m.group(0).decode("ascii").strip()
        try:
            if m.group(8) is not None:
                ns = parse_rfc3339(text)
            else:
                y, mo, d, h, mi, sec = (int(x) for x in m.groups()[:6])
                ns = local_to_ns(y, mo, d, h, mi, sec, (m.group(7) or b"").decode("ascii"), tz)
        except ValueError:
            return None, None, rest
        return ns, text, rest[m.end() :]
    return None, None, rest
