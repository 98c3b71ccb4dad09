"""syslog source: RFC 5424 and RFC 3164 messages over UDP, TCP and TLS.

* :func:`parse_syslog` — one message (either format) -> :class:`SyslogMessage`;
* :func:`map_syslog` — a message -> :class:`auditkeep.model.Event`;
* :class:`Deframer` — RFC 6587 framing of a byte stream (octet counting or LF/NUL);
* :func:`start_syslog_servers` — asyncio UDP/TCP/TLS listeners that batch to a sink.

A message that cannot be parsed or mapped is a :class:`auditkeep.sources.base.SourceError`.
"""

from auditkeep.sources.syslog.framing import DEFAULT_MAX_SIZE, Deframer
from auditkeep.sources.syslog.mapping import audit_params, default_action, map_syslog
from auditkeep.sources.syslog.message import (
    FACILITY_NAMES,
    SEVERITY_NAMES,
    SEVERITY_TO_MODEL,
    SOURCE,
    SyslogMessage,
)
from auditkeep.sources.syslog.parse import parse_syslog
from auditkeep.sources.syslog.rfc3164 import parse_rfc3164
from auditkeep.sources.syslog.rfc5424 import parse_rfc5424
from auditkeep.sources.syslog.server import (
    Listener,
    Sink,
    SyslogServers,
    server_ssl_context,
    start_syslog_servers,
)

__all__ = [
    "DEFAULT_MAX_SIZE",
    "FACILITY_NAMES",
    "SEVERITY_NAMES",
    "SEVERITY_TO_MODEL",
    "SOURCE",
    "Deframer",
    "Listener",
    "Sink",
    "SyslogMessage",
    "SyslogServers",
    "audit_params",
    "default_action",
    "map_syslog",
    "parse_rfc3164",
    "parse_rfc5424",
    "parse_syslog",
    "server_ssl_context",
    "start_syslog_servers",
]
