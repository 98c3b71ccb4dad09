"""Interpretation of auditd field values: names for numbers, results, contexts, sockaddrs.

Two views are offered:

* :func:`enrich` adds, beside the native fields, the upper-case interpreted fields that
  auditd's own ENRICHED log format writes (``ARCH``, ``SYSCALL``, ``AUID``, ``UID``...), so
  that detection rules written for either format match (Sigma's auditd rules test
  ``SYSCALL: execve`` as well as ``a0: ...``).
* :func:`interpret` returns the fully interpreted view of one record, field for field as
  go-libaudit's ``auparse`` presents it (the form Elastic's auditd tools show).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping

from auditkeep.sources.auditd.parser import AuditRecord, decode_hex, is_hex
from auditkeep.sources.auditd.syscalls import SYSCALL_TABLES
from auditkeep.sources.auditd.tables import (
    ARCHES,
    ERRNO_NAMES,
    GID_FIELDS,
    SIGNAL_NAMES,
    UID_FIELDS,
)
from auditkeep.sources.auditd.users import UserDirectory

UNSET_IDS = frozenset({"4294967295", "-1"})
_ARCH_LE = 0x40000000  # __AUDIT_ARCH_LE
_FAMILIES = frozenset({1, 2, 10, 16})  # AF_UNIX, AF_INET, AF_INET6, AF_NETLINK
_EMPTY_VALUES = frozenset({"", "?", "?,", "(null)"})
_CONTEXT_PARTS = ("_user", "_role", "_domain", "_level", "_category")
_DEC = re.compile(r"-?\d+")


def arch_name(value: str) -> str | None:
    """``c000003e`` -> ``x86_64``; None if unknown."""
    try:
        return ARCHES.get(int(value, 16))
    except ValueError:
        return None


def syscall_name(arch: str | None, number: str) -> str | None:
    """The syscall's name for an architecture (a name as :func:`arch_name` gives it)."""
    if arch is None or not number.isdigit():
        return None
    table = SYSCALL_TABLES.get(arch)
    return None if table is None else table.get(int(number))


def errno_name(exit_value: str) -> str | None:
    """``-13`` -> ``EACCES``; None for a non-negative or unknown value."""
    if _DEC.fullmatch(exit_value) is None or not exit_value.startswith("-"):
        return None
    return ERRNO_NAMES.get(-int(exit_value))


def signal_name(value: str) -> str | None:
    return SIGNAL_NAMES.get(int(value)) if value.isdigit() else None


def is_unset_id(value: str | None) -> bool:
    """auid and ses are ``4294967295`` (or ``-1``) until a login sets them."""
    return value in UNSET_IDS


def result(fields: Mapping[str, str]) -> str | None:
    """``success`` or ``fail`` from a ``success=`` (syscalls) or ``res=`` field; else None."""
    value = fields.get("success")
    if value is None:
        value = fields.get("res")
    if value is None:
        return None
    v = value.lower()
    return "success" if v in ("yes", "1") or v.startswith("suc") else "fail"


def rule_keys(fields: Mapping[str, str]) -> list[str]:
    """The audit rule keys (``-k``) of a record: none for ``(null)``, several split on 0x01."""
    key = fields.get("key")
    if key is None or key in _EMPTY_VALUES:
        return []
    if "=" in key and "\x01" not in key:
        key = key.split("=", 1)[1]  # old form: key="key=net"
    return [k for k in key.split("\x01") if k]


def split_context(prefix: str, value: str) -> dict[str, str]:
    """An SELinux context ``user:role:domain:level:category`` as ``<prefix>_user``... fields."""
    return {
        prefix + name: part for name, part in zip(_CONTEXT_PARTS, value.split(":", 4), strict=False)
    }


def is_big_endian(arch: str | None) -> bool | None:
    """Whether the architecture of an ``arch=`` value (``80000015``: ppc64) stores numbers
    big-endian; None when ``arch`` is not a number. The kernel's AUDIT_ARCH_* values carry
    a flag for little-endian machines (0x40000000)."""
    if not arch:
        return None
    try:
        return not (int(arch, 16) & _ARCH_LE)
    except ValueError:
        return None


def decode_sockaddr(value: str, big_endian: bool | None = None) -> dict[str, str]:
    """A SOCKADDR record's ``saddr`` (hex of a struct sockaddr) as family, addr, port, path.

    ``sa_family`` is in the byte order of the machine that made the record: pass
    ``big_endian`` from the event's ``arch`` (:func:`is_big_endian`). Without it, little
    endian is assumed unless only the big-endian reading names a known family. Ports and
    addresses are in network order on every machine. Families other than unix, ipv4 and
    ipv6 keep the raw ``saddr``. Malformed input gives what could be read, never an error.
    """
    if len(value) < 4 or not is_hex(value.upper()):
        return {"saddr": value}
    data = decode_hex(value.upper())
    family = int.from_bytes(data[0:2], "big" if big_endian else "little")
    if big_endian is None and family not in _FAMILIES:
        swapped = int.from_bytes(data[0:2], "big")
        if swapped in _FAMILIES:
            family = swapped
    if family == 1:
        path = data[2:]
        if path[:1] == b"\x00" and path.strip(b"\x00"):
            return {"family": "unix", "path": "@" + _cstr(path[1:])}  # abstract socket
        return {"family": "unix", "path": _cstr(path)}
    if family == 2 and len(data) >= 8:
        port = int.from_bytes(data[2:4], "big")
        return {"family": "ipv4", "addr": str(ipaddress.IPv4Address(data[4:8])), "port": str(port)}
    if family == 10 and len(data) >= 24:
        port = int.from_bytes(data[2:4], "big")
        flow = int.from_bytes(data[4:8], "big")
        out = {"family": "ipv6", "addr": str(ipaddress.IPv6Address(data[8:24])), "port": str(port)}
        if flow:
            out["flow"] = str(flow)
        return out
    if family == 16:
        return {"family": "netlink", "saddr": value}
    return {"family": str(family), "saddr": value}


def _cstr(data: bytes) -> str:
    nul = data.find(b"\x00")
    return (data if nul == -1 else data[:nul]).decode("utf-8", "backslashreplace")


def enrich(record: AuditRecord, out: dict[str, str], users: UserDirectory | None = None) -> None:
    """Add auditd's ENRICHED upper-case fields to ``out`` where the line did not carry them.

    ``ARCH`` and ``SYSCALL`` name the architecture and the syscall; ``AUID``, ``UID``... hold
    ``unset`` or the account name (group name for the gid fields) when ``users`` can resolve
    it. A value that cannot be interpreted adds nothing.
    """
    fields = record.fields
    arch = fields.get("arch")
    if arch is not None:
        name = arch_name(arch)
        if name is not None:
            out.setdefault("ARCH", name)
            sc = fields.get("syscall")
            if sc is not None:
                scn = syscall_name(name, sc)
                if scn is not None:
                    out.setdefault("SYSCALL", scn)
    for f in UID_FIELDS:
        v = fields.get(f)
        if v is None:
            continue
        up = f.upper()
        if up in out:
            continue
        if v in UNSET_IDS:
            out[up] = "unset"
        elif users is not None:
            n = users.user(v)
            if n is not None:
                out[up] = n
    if users is not None:
        for f in GID_FIELDS:
            v = fields.get(f)
            if v is not None and f.upper() not in out:
                n = users.group(v)
                if n is not None:
                    out[f.upper()] = n


def interpret(record: AuditRecord) -> dict[str, str]:
    """The interpreted view of one record, as go-libaudit's auparse gives it.

    Empty and unknown values (``?``, ``(null)``) are left out; ``success``/``res`` become
    ``result``; ``auid``/``old-auid``/``ses`` read ``unset`` when unset; ``subj`` and
    ``obj`` are split into their SELinux parts; ``arch``, ``syscall``, ``exit`` and ``sig``
    are named; a SOCKADDR's ``saddr`` is decoded; ``key`` moves to :func:`rule_keys`.
    Enriched (upper-case) fields are not part of this view.
    """
    out: dict[str, str] = {}
    for k, v in record.fields.items():
        if v in _EMPTY_VALUES or k[:1].isupper():
            continue
        out[k] = v
    for k in ("auid", "old-auid", "ses"):
        if out.get(k) in UNSET_IDS:
            out[k] = "unset"
    for k in ("subj", "obj"):
        ctx = out.pop(k, None)
        if ctx is not None:
            out.update(split_context(k, ctx))
    res = result(record.fields)
    out.pop("success", None)
    out.pop("res", None)
    if res is not None:
        out["result"] = res
    exit_value = out.get("exit")
    if exit_value is not None:
        name = errno_name(exit_value)
        if name is not None:
            out["exit"] = name
    out.pop("key", None)
    rtype = record.type
    if rtype in ("SYSCALL", "SECCOMP"):
        arch = arch_name(out.get("arch", ""))
        if arch is not None:
            out["arch"] = arch
            scn = syscall_name(arch, out.get("syscall", ""))
            if scn is not None:
                out["syscall"] = scn
        if rtype == "SECCOMP":
            sig = signal_name(out.get("sig", ""))
            if sig is not None:
                out["sig"] = sig
    elif rtype == "SOCKADDR":
        saddr = out.pop("saddr", None)
        if saddr is not None:
            out.update(decode_sockaddr(saddr))
    return out
