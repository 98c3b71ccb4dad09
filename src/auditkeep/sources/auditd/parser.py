"""Parse one line of a Linux ``audit.log`` into an :class:`AuditRecord`.

A line looks like::

    node=web1 type=SYSCALL msg=audit(1490995752.404:20614537): arch=c000003e syscall=44 ...

Field values are kept under their native names, decoded the way auparse decodes them:
quotes removed; hex-encoded values of the fields auditd escapes (``exe``, ``name``,
``proctitle``, EXECVE arguments...) turned back into text; a user-space ``msg='...'`` opened
up into its own fields. auditd's ENRICHED format (interpreted fields after a 0x1d byte) is
read as well. Nothing is interpreted here beyond decoding: see :mod:`.interpret`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from auditkeep.sources.auditd.tables import ESCAPED_FIELDS
from auditkeep.sources.base import SourceError

SOURCE = "auditd"
MAX_LINE_BYTES = 64 * 1024
"""Default bound on a line. The kernel caps a record near 8 KiB; the ENRICHED format and
long EXECVE arguments split over several records stay well below this."""

_HEADER = re.compile(
    r"(?:node=(?P<node>\S+) )?type=(?P<type>\S+) msg=audit\("
    r"(?P<sec>\d{1,12})\.(?P<frac>\d{1,9}):(?P<serial>\d{1,10})\):?"
)
# key=value, where value is "quoted", 'quoted' (a nested message) or a bare token. The key
# must start the text or follow a space, '(', ',' or '{' so that text inside values is
# skipped.
_KV = re.compile(r"""(?:(?<=[\s(,{])|^)([A-Za-z0-9_-]+(?:\[\d+\])?)=("[^"]*"?|'[^']*'?|[^\s"']*)""")
_HEX = re.compile(r"[0-9A-F]+")
_HEX_ANY_CASE = re.compile(r"[0-9A-Fa-f]+")
_KEY = re.compile(r"[A-Za-z0-9_-]+")
_KEYS_SEEN: set[str] = set()  # field names already checked: there are few of them
_AVC = re.compile(r"avc:\s+(\w+)\s+\{\s*([^}]*?)\s*\}\s+for\s+")
_EXECVE_ARG = re.compile(r"a(\d+)(?:\[(\d+)\]|_len)?")
_LOGIN_OLD_NEW = re.compile(r"\b(old|new) (auid|ses)=")
_LEGACY_PAM_TAIL = re.compile(r"(\S),(?=\s|$)")


@dataclass(slots=True)
class AuditRecord:
    """One line of audit.log: the header, the decoded fields and the raw bytes."""

    type: str
    sec: int
    frac: str  # the fraction as written (milliseconds in practice), kept for the event id
    serial: int
    node: str | None
    fields: dict[str, str]
    raw: bytes
    position: tuple[int, int, int, int] | None = field(default=None)
    """(device, inode, offset, read order) of the line when read from a file."""
    execve_args: dict[int, dict[int, str]] | None = field(default=None)
    """EXECVE only: each argument's pieces as written (``a1[0]``, ``a1[1]``... or the
    whole ``a1`` as piece -1), so that an argument split over several records of one event
    can be put back together (see :func:`.execve.merge_execve`)."""
    execve_lens: dict[int, int] | None = field(default=None)
    """EXECVE only: the lengths in bytes the kernel announced (``a1_len``) for split
    arguments."""

    @property
    def time_ns(self) -> int:
        return self.sec * 1_000_000_000 + int(self.frac.ljust(9, "0")[:9])

    def as_dict(self) -> dict[str, str]:
        """The record as the detection engine sees it: ``type`` plus every native field."""
        out = {**self.fields, "type": self.type}
        if self.node is not None:
            out["node"] = self.node
        return out


def parse_line(line: bytes | str, max_bytes: int = MAX_LINE_BYTES) -> AuditRecord:
    """Parse one audit.log line; :class:`SourceError` if it is not an audit record."""
    raw = _to_bytes(line) if isinstance(line, str) else line
    if len(raw) > max_bytes:
        raise SourceError(
            SOURCE, f"line of {len(raw)} bytes exceeds the limit of {max_bytes}", raw[:max_bytes]
        )
    # Always from the bytes, so that the text holds no lone surrogate whatever came in.
    text = raw.decode("utf-8", "backslashreplace")
    text = text.strip("\r\n\x00 ")
    m = _HEADER.match(text)
    if m is None:
        raise SourceError(SOURCE, "not an audit record (no type=... msg=audit(TIME:SERIAL))", raw)
    node, rtype, sec, frac, serial_text = m.groups()
    serial = int(serial_text)
    if serial > 0xFFFFFFFF:
        raise SourceError(SOURCE, "serial number out of range", raw)
    body, _, enriched = text[m.end() :].partition("\x1d")
    args: _Args | None = None
    try:
        if rtype == "EXECVE":
            fields, args = _parse_execve(body)
        else:
            fields = _parse_body(rtype, body)
    except (ValueError, IndexError) as exc:  # defensive: the tokenizer itself should not fail
        raise SourceError(SOURCE, f"unparsable fields: {exc}", raw) from None
    if enriched:
        for km in _KV.finditer(enriched):
            fields.setdefault(km.group(1), _unquote(km.group(2)))
    rec = AuditRecord(rtype, int(sec), frac, serial, node, fields, raw)
    if args is not None:
        rec.execve_args, rec.execve_lens = args.parts, args.lens or None
    return rec


def _to_bytes(line: str) -> bytes:
    try:
        return line.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that stands for no byte
        return line.encode("utf-8", "surrogatepass")


@dataclass(slots=True)
class _Args:
    """The arguments of one EXECVE record, as written: pieces by index, announced lengths."""

    parts: dict[int, dict[int, str]] = field(default_factory=dict)
    lens: dict[int, int] = field(default_factory=dict)


def _parse_execve(body: str) -> tuple[dict[str, str], _Args]:
    fields: dict[str, str] = {}
    args = _Args()
    _tokenize(body, fields, args)
    # Arguments in index order, each put together from its pieces of this record.
    for n in sorted(args.parts):
        fields["a" + str(n)] = execve_argument(args.parts[n])[0]
    return fields, args


def _parse_body(rtype: str, body: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    special = True
    if rtype == "AVC" or rtype == "USER_AVC":
        am = _AVC.search(body)
        if am is not None:
            # "avc:  denied  { read write } for ..." has no key of its own; these two names
            # are the ones go-libaudit gives it.
            fields["seresult"] = am.group(1)
            fields["seperms"] = ",".join(am.group(2).split())
            body = body[: am.start()] + " " + body[am.end() :]
    elif rtype == "LOGIN":
        # Old kernels: "old auid=4294967295 new auid=0" (the same key twice).
        body = _LOGIN_OLD_NEW.sub(r"\1_\2=", body)
    elif rtype in ("CRED_DISP", "USER_START", "USER_END"):
        # Old PAM: "... exe="/usr/sbin/crond" (hostname=?, addr=?, terminal=cron res=success)'"
        i = body.find(" (hostname=")
        if i != -1:
            tail = body[i + 2 :].rstrip("'").rstrip(")")
            body = body[:i] + " " + _LEGACY_PAM_TAIL.sub(r"\1", tail) + "'"
    else:
        special = False
    if special:
        _tokenize(body, fields)
        return fields
    if "'" in body or not _split_fields(body, fields):
        fields.clear()
        _tokenize(body, fields)
    return fields


def _split_fields(body: str, fields: dict[str, str]) -> bool:
    """The common case, fast: space-separated ``key=value`` tokens, a quoted value without
    spaces. False (``fields`` part-filled) when the line needs the full tokenizer."""
    escaped = ESCAPED_FIELDS
    known = _KEYS_SEEN
    for tok in body.split():
        key, eq, value = tok.partition("=")
        if not eq:
            continue  # a bare word ("avc:", "login"): no field
        if key not in known:
            if _KEY.fullmatch(key) is None:
                return False
            if len(known) < 4096:
                known.add(key)
        if '"' in value:
            if len(value) < 2 or value[0] != '"' or value[-1] != '"' or '"' in value[1:-1]:
                return False  # a quoted value with spaces in it, or stray quotes
            value = value[1:-1]
        elif value and key in escaped:
            value = _escaped_value(key, value)
        if key not in fields:
            fields[key] = value
    return True


def _tokenize(text: str, fields: dict[str, str], args: _Args | None = None) -> None:
    escaped = ESCAPED_FIELDS
    for key, value in _KV.findall(text):
        q = value[:1]
        if q == "'" and key == "msg":
            # A user-space message: its fields are the event's, but the kernel-supplied
            # fields outside it (pid, uid, auid, ses, subj) are trusted and never replaced.
            inner: dict[str, str] = {}
            _tokenize(value[1:-1] if value.endswith("'") and len(value) > 1 else value[1:], inner)
            for ik, iv in inner.items():
                if ik in fields:
                    fields.setdefault("msg_" + ik, iv)
                else:
                    fields[ik] = iv
            continue
        if args is not None and key[0] == "a" and key != "argc":
            am = _EXECVE_ARG.fullmatch(key)
            if am is not None:
                n = int(am.group(1))
                if key.endswith("_len"):
                    if value.isdigit() and len(value) < 12:
                        args.lens[n] = int(value)
                    continue
                part = int(am.group(2)) if am.group(2) is not None else -1
                args.parts.setdefault(n, {})[part] = value
                continue
        if key in fields:
            continue  # a repeated key: the first one stands
        if q == '"' or q == "'":
            fields[key] = value[1:-1] if len(value) > 1 and value[-1] == q else value[1:]
        elif key in escaped and value:
            fields[key] = _escaped_value(key, value)
        else:
            fields[key] = value


def _unquote(value: str) -> str:
    if value[:1] in ('"', "'"):
        return value[1:-1] if len(value) > 1 and value[-1] == value[0] else value[1:]
    return value


def is_hex(value: str) -> bool:
    """True when ``value`` is how the kernel hex-encodes text: upper-case, even length."""
    return len(value) % 2 == 0 and _HEX.fullmatch(value) is not None


def _is_encoded(value: str) -> bool:
    """True for the unquoted value of an escaped field: the writer quotes plain text, so an
    unquoted value is hex. Other writers than the kernel (audit tools, forwarders) use
    lower-case digits, so both cases are read."""
    return len(value) % 2 == 0 and _HEX_ANY_CASE.fullmatch(value) is not None


def decode_hex(value: str) -> bytes:
    return bytes.fromhex(value)


def _text(data: bytes) -> str:
    # Invalid UTF-8 is kept visible as \xNN rather than dropped or replaced.
    return data.decode("utf-8", "backslashreplace")


def _escaped_value(key: str, value: str) -> str:
    if value[:1] in ('"', "'"):
        return _unquote(value)
    if value and _is_encoded(value):
        data = decode_hex(value)
        if key == "key":
            return _text(data)  # several keys are joined by 0x01; see interpret.rule_keys
        # proctitle and the like hold NUL-separated words: show them space-separated.
        return _text(data.rstrip(b"\x00")).replace("\x00", " ")
    return value


def execve_argument(pieces: dict[int, str]) -> tuple[str, int]:
    """One EXECVE argument from its pieces as written (by piece index; -1 for a whole
    ``aN``): its text, and its length as written (hex digits, or characters between the
    quotes), which is what the kernel's ``aN_len`` counts. The pieces are joined as bytes
    before they are decoded, so a character split between two pieces survives; the text
    stops at a NUL, as the argument does."""
    ordered = [pieces[i] for i in sorted(pieces)]
    data = b"".join(_piece_bytes(p) for p in ordered)
    nul = data.find(b"\x00")
    written = sum(len(_unquote(p)) if p[:1] in ('"', "'") else len(p) for p in ordered)
    return _text(data if nul == -1 else data[:nul]), written


def _piece_bytes(value: str) -> bytes:
    if value[:1] in ('"', "'"):
        return _unquote(value).encode()
    if value and _is_encoded(value):
        return decode_hex(value)
    return value.encode()
