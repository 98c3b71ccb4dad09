"""Linux audit (auditd) source: parse audit.log lines, group them into events, map them.

* :func:`parse_line` — one line -> :class:`AuditRecord` (native fields, decoded);
* :class:`Reassembler` — records -> :class:`RecordGroup` events, lost-event counting;
* :func:`map_group` — a group -> :class:`auditkeep.model.Event`;
* :class:`AuditdDecoder` / :func:`decode_log` — the three together over lines;
* :class:`AuditdFollower` — follows a live audit.log across rotation and restarts.

Anything that cannot be parsed or mapped comes out as
:class:`auditkeep.sources.base.SourceError`, never an exception from the stream.
"""

from auditkeep.sources.auditd.decoder import AuditdDecoder, DecodedLog, decode_log
from auditkeep.sources.auditd.follower import AuditdFollower, Batch
from auditkeep.sources.auditd.grouping import Reassembler, RecordGroup
from auditkeep.sources.auditd.interpret import (
    arch_name,
    decode_sockaddr,
    enrich,
    errno_name,
    interpret,
    result,
    rule_keys,
    syscall_name,
)
from auditkeep.sources.auditd.mapping import event_id, map_group
from auditkeep.sources.auditd.parser import MAX_LINE_BYTES, SOURCE, AuditRecord, parse_line
from auditkeep.sources.auditd.users import UserDirectory

__all__ = [
    "MAX_LINE_BYTES",
    "SOURCE",
    "AuditRecord",
    "AuditdDecoder",
    "AuditdFollower",
    "Batch",
    "DecodedLog",
    "Reassembler",
    "RecordGroup",
    "UserDirectory",
    "arch_name",
    "decode_log",
    "decode_sockaddr",
    "enrich",
    "errno_name",
    "event_id",
    "interpret",
    "map_group",
    "parse_line",
    "result",
    "rule_keys",
    "syscall_name",
]
