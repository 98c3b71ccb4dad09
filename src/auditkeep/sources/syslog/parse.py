"""One syslog message of either format, told apart by its header."""

from __future__ import annotations

import re
from datetime import tzinfo

from auditkeep.sources.syslog.message import SyslogMessage
from auditkeep.sources.syslog.rfc3164 import parse_rfc3164
from auditkeep.sources.syslog.rfc5424 import parse_rfc5424

# "<PRI>VERSION " opens RFC 5424; anything else is BSD syslog.
_IS_5424 = re.compile(rb"<\d{1,3}>[1-9]\d{0,2} ")


def parse_syslog(
    data: bytes, received_ns: int | None = None, tz: tzinfo | None = None
) -> SyslogMessage:
    """Parse one message (framing removed); :class:`SourceError` if it cannot be read.

    ``received_ns`` (when the message arrived) supplies the year BSD timestamps omit;
    ``tz`` is the zone of timestamps written without an offset (UTC by default).
    """
    data = data.rstrip(b"\r\n\x00")
    if _IS_5424.match(data):
        return parse_rfc5424(data, tz)
    return parse_rfc3164(data, received_ns, tz)
