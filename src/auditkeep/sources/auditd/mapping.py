"""Map one grouped auditd event (:class:`.grouping.RecordGroup`) to an :class:`Event`.

The rules (documented for users in ``docs/sources/auditd.md``):

* **primary record** — the first record that is neither SYSCALL nor auxiliary (PATH, CWD,
  EXECVE, PROCTITLE, SOCKADDR...); else the SYSCALL record; else the first record.
* **action** — ``auditd.syscall.<name>`` when the primary record is SYSCALL (the syscall
  named for its ``arch``, or its number when unknown), else ``auditd.<type in lower case>``:
  ``auditd.user_login``, ``auditd.avc``, ``auditd.config_change``...
* **actor** — the login user ``auid``; for an authentication event with ``auid`` unset,
  the account named in ``acct``; else ``uid``. ``id`` and ``name`` are the account name
  when the log names it (the ENRICHED format's ``AUID="alice"``, ``UID="root"``) or the
  passwd lookup knows it, else ``id`` is the number; type ``user`` when a login (auid) or
  account is known, ``system`` otherwise. ``ses`` -> ``session_id``; ``addr`` -> ``ip``
  when it is an address.
* **resource** — the program of a successful execve (``exe``); the file a failed execve
  refused (its first PATH); the account of an authentication or account-management event
  (``acct``, else ``id``); else the first PATH; else the SOCKADDR peer.
* **outcome** — AVC/AppArmor denial -> ``denied``; ``success=``/``res=`` -> ``success`` or
  ``failure``; else ``unknown``.
* **id** — a UUIDv5 of (node, timestamp, serial): reading a log twice gives the same ids.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from auditkeep.model import DEFAULT_LIMITS, Event, Limits, ValidationError, convert_event
from auditkeep.model.timefmt import format_rfc3339
from auditkeep.model.validate import validate_event
from auditkeep.sources.auditd.execve import merge_execve
from auditkeep.sources.auditd.grouping import RecordGroup
from auditkeep.sources.auditd.interpret import (
    UNSET_IDS,
    arch_name,
    decode_sockaddr,
    enrich,
    errno_name,
    is_big_endian,
    result,
    rule_keys,
    syscall_name,
)
from auditkeep.sources.auditd.parser import SOURCE, AuditRecord
from auditkeep.sources.auditd.tables import (
    OPEN_WRITE_FLAGS,
    SYSCALL_CATEGORIES,
    TYPE_CATEGORIES,
)
from auditkeep.sources.auditd.users import UserDirectory
from auditkeep.sources.base import SourceError

ID_NAMESPACE = uuid.UUID("3f9c1d52-6a0e-5b8f-9d41-7c2e8b1a4f60")
"""The UUIDv5 namespace of auditd event ids."""

AUXILIARY_TYPES = frozenset({
    "PATH", "CWD", "EXECVE", "PROCTITLE", "SOCKADDR", "BPRM_FCAPS", "CAPSET", "FD_PAIR",
    "OBJ_PID", "MMAP", "IPC", "IPC_SET_PERM", "SOCKETCALL", "MQ_OPEN", "MQ_SENDRECV",
    "MQ_NOTIFY", "MQ_GETSETATTR", "AVC_PATH", "EOE", "KERNEL_OTHER",
})  # fmt: skip
_AUTH_CATEGORY = "authentication"
_ACCOUNT_CATEGORIES = frozenset({"authentication", "admin"})
_EMPTY = frozenset({"", "?", "(null)", "unset"})
# Which way a syscall's SOCKADDR points (go-libaudit's directions): the peer of an accept or
# a receive is where the data came from; that of a connect or a send, where it goes.
_DIRECTIONS = {
    **dict.fromkeys(("accept", "accept4", "recvfrom", "recvmsg", "recvmmsg"), "ingress"),
    **dict.fromkeys(("connect", "sendto", "sendmsg", "sendmmsg"), "egress"),
}
_ACTION_BAD = re.compile(r"[^A-Za-z0-9_-]+")
_encoder = msgspec.json.Encoder()

Getter = Callable[[str], str | None]


def event_id(node: str, sec: int, frac: str, serial: int) -> str:
    """The deterministic id of the auditd event (node, ``sec.frac``, serial)."""
    return str(uuid.uuid5(ID_NAMESPACE, f"auditd\x00{node}\x00{sec}.{frac}\x00{serial}"))


def primary_record(records: list[AuditRecord]) -> AuditRecord:
    syscall: AuditRecord | None = None
    for r in records:
        if r.type == "SYSCALL":
            if syscall is None:
                syscall = r
        elif r.type not in AUXILIARY_TYPES:
            return r
    return syscall if syscall is not None else records[0]


def action_for(record: AuditRecord) -> str:
    if record.type == "SYSCALL":
        number = record.fields.get("syscall", "")
        name = syscall_name(arch_name(record.fields.get("arch", "")), number)
        part = name or _ACTION_BAD.sub("_", number).strip("_") or "unknown"
        return "auditd.syscall." + part
    return "auditd." + (_ACTION_BAD.sub("_", record.type.lower()).strip("_") or "unknown")


def map_group(
    group: RecordGroup,
    *,
    host: str | None = None,
    users: UserDirectory | None = None,
    limits: Limits = DEFAULT_LIMITS,
    validate: bool = True,
) -> Event:
    """The Event for one auditd event; :class:`SourceError` if it cannot be one.

    ``host`` names the machine when the log lines carry no ``node=``. The event is built
    within ``limits`` (strings cut, fields and records bounded, each cut noted in
    ``metadata.truncated``) and its size checked; ``validate`` also runs
    :func:`auditkeep.model.validate_event` here, so that anything the model would refuse
    goes to quarantine with its raw lines rather than failing a whole batch in the ledger.
    """
    try:
        fields = _event_fields(group, host, users, limits)
        ev = convert_event(fields)
        if validate:
            validate_event(ev, limits)
        size = len(_encoder.encode(ev))
        if size > limits.max_event_bytes:
            raise ValidationError(
                f"event of {size} bytes exceeds the limit of {limits.max_event_bytes}"
            )
    except ValidationError as exc:
        raise SourceError(SOURCE, f"cannot map event: {exc}", _raw(group)) from None
    return ev


def _raw(group: RecordGroup) -> bytes:
    return b"\n".join(r.raw.rstrip(b"\r\n") for r in group.records)


class _Clipper:
    """Applies the string, key and array limits, noting every cut in ``truncated``."""

    def __init__(self, limits: Limits) -> None:
        self.max_string = limits.max_string
        self.max_keys = limits.max_keys
        self.max_array = limits.max_array
        self.truncated: list[str] = []

    def text(self, value: str, where: str) -> str:
        if len(value) <= self.max_string:
            return value
        self.truncated.append(f"{where}: {len(value)} characters")
        return value[: self.max_string]

    def record(self, d: dict[str, str], where: str) -> dict[str, str]:
        m = self.max_string
        if max(map(len, d)) > m:
            for k in [k for k in d if len(k) > m]:
                self.truncated.append(f"{where}: dropped a field named {k[:64]!r}...")
                del d[k]
        if max(map(len, d.values())) > m:
            for k, v in d.items():
                if len(v) > m:
                    d[k] = self.text(v, f"{where}.{k}")
        if len(d) > self.max_keys:
            self.truncated.append(f"{where}: {len(d)} fields, kept {self.max_keys}")
            d = dict(list(d.items())[: self.max_keys])
        return d


def _event_fields(
    group: RecordGroup, host: str | None, users: UserDirectory | None, limits: Limits
) -> dict[str, Any]:
    records, incomplete = merge_execve(group.records)
    clip = _Clipper(limits)
    clip.truncated += incomplete
    if len(records) > limits.max_array:
        clip.truncated.append(f"auditd.records: {len(records)} records, kept {limits.max_array}")
        records = records[: limits.max_array]
    native: list[dict[str, str]] = []
    for i, r in enumerate(records):
        d = r.as_dict()
        enrich(r, d, users)
        native.append(clip.record(d, f"auditd.records[{i}]"))

    primary = primary_record(records)
    syscall = next((r for r in records if r.type == "SYSCALL"), None)
    pf = primary.fields

    # Field lookups prefer the primary record, then the syscall record, then any other.
    merged: dict[str, str] = {}
    for r in reversed(records):
        merged.update(r.fields)
    if syscall is not None:
        merged.update(syscall.fields)
    merged.update(pf)
    get = merged.get

    action = action_for(primary)
    scname = action[len("auditd.syscall.") :] if primary.type == "SYSCALL" else None
    category = _category(primary, scname)
    outcome, reason = _outcome(records, primary, syscall)

    meta: dict[str, Any] = {}
    node = group.node or host
    actor = {k: clip.text(v, f"actor.{k}") for k, v in _actor(get, category, users, meta).items()}
    ev: dict[str, Any] = {
        "id": event_id(group.node or host or "", group.sec, group.frac, group.serial),
        "time": format_rfc3339(group.time_ns),
        "actor": actor,
        "action": action,
        "category": category,
        "outcome": outcome,
    }
    if reason is not None:
        ev["reason"] = clip.text(reason, "reason")
    source: dict[str, str] = {"service": "auditd"}
    if node:
        source["host"] = clip.text(node, "source.host")
    ev["source"] = source
    severity = _severity(primary.type, outcome, category)
    if severity is not None:
        ev["severity"] = severity

    # A summary of the process and its objects beside the full records.
    for name in (
        "exe",
        "comm",
        "cwd",
        "pid",
        "ppid",
        "tty",
        "terminal",
        "hostname",
        "uid",
        "euid",
        "auid",
        "proctitle",
        "op",
    ):
        v = get(name)
        if v is not None and v not in ("?", "(null)", ""):
            meta[name] = clip.text(v, name)
    if syscall is not None:
        sf = syscall.fields
        arch = arch_name(sf.get("arch", ""))
        if arch is not None:
            meta["arch"] = arch
        scn = syscall_name(arch, sf.get("syscall", ""))
        meta["syscall"] = clip.text(scn or sf.get("syscall", ""), "syscall")
        exit_value = sf.get("exit")
        if exit_value is not None:
            meta["exit"] = clip.text(exit_value, "exit")
            err = errno_name(exit_value)
            if err is not None:
                meta["errno"] = err
    path_records = _path_records(records)
    paths = [r.fields["name"] for r in path_records if "name" in r.fields]
    if paths:
        meta["paths"] = [clip.text(p, "paths") for p in paths[: limits.max_array]]
    execve = next((r for r in records if r.type == "EXECVE"), None)
    if execve is not None:
        argv = _argv(execve.fields)
        if argv:
            meta["argv"] = clip.text(argv, "argv")
    keys = [k for r in records for k in rule_keys(r.fields)]
    if keys:
        meta["keys"] = [clip.text(k, "keys") for k in dict.fromkeys(keys)][: limits.max_array]
    sockaddr = _sockaddr(records, syscall)
    if sockaddr is not None:
        socket = {k: clip.text(v, "socket") for k, v in sockaddr.items()}
        direction = _DIRECTIONS.get(scname or "")
        if direction is not None:
            socket["direction"] = direction
        meta["socket"] = socket
    resource = _resource(records, path_records, primary, scname, get, sockaddr, users)
    if resource is not None:
        ev["resource"] = {k: clip.text(v, f"resource.{k}") for k, v in resource.items()}
    meta["auditd"] = {"sequence": group.serial, "records": native}
    if clip.truncated:
        meta["truncated"] = clip.truncated[: limits.max_array]
    ev["metadata"] = meta
    return ev


def _actor(
    get: Getter, category: str, users: UserDirectory | None, meta: dict[str, Any]
) -> dict[str, str]:
    actor: dict[str, str]
    auid = get("auid")
    acct = get("acct")
    if auid is not None and auid not in UNSET_IDS and auid != "?":
        actor = _user(auid, get("AUID"), users)
        actor["type"] = "user"
    elif category == _AUTH_CATEGORY and acct is not None and acct not in _EMPTY:
        actor = {"id": acct[:1024], "type": "user", "name": acct}
    else:
        uid = get("uid")
        actor = _user(uid, get("UID"), users) if uid is not None and uid != "?" else {"id": "system"}
        actor["type"] = "system"
    ses = get("ses")
    if ses is not None and ses not in UNSET_IDS and ses != "?":
        actor["session_id"] = ses
    addr = get("addr")
    if addr is not None and addr not in ("?", ""):
        try:
            actor["ip"] = str(ipaddress.ip_address(addr))
        except ValueError:
            meta["addr"] = addr
    return actor


def _user(uid: str, named: str | None, users: UserDirectory | None) -> dict[str, str]:
    """An account by number: its name as the log gives it (``named``: the ENRICHED format's
    upper-case field, resolved on the machine that wrote the log), else as the passwd
    lookup gives it, else the number alone."""
    name = named if named is not None and named not in _EMPTY else None
    if name is None and users is not None:
        name = users.user(uid)
    if name:
        return {"id": name[:1024], "name": name}
    return {"id": uid[:1024] or "unknown"}


def _category(primary: AuditRecord, scname: str | None) -> str:
    if scname is None:
        return TYPE_CATEGORIES.get(primary.type, "system")
    cat = SYSCALL_CATEGORIES.get(scname, "system")
    if cat == "data_access" and scname in ("open", "openat"):
        # The flags argument: a1 for open(path, flags), a2 for openat(dirfd, path, flags).
        flags = primary.fields.get("a1" if scname == "open" else "a2", "")
        try:
            if int(flags, 16) & OPEN_WRITE_FLAGS:
                cat = "data_change"
        except ValueError:
            pass
    return cat


def _outcome(
    records: list[AuditRecord], primary: AuditRecord, syscall: AuditRecord | None
) -> tuple[str, str | None]:
    for r in records:
        f = r.fields
        if "seresult" in f:
            perms = f.get("seperms", "").replace(",", " ")
            what = f" {{ {perms} }}" if perms else ""
            tclass = f" for {f['tclass']}" if "tclass" in f else ""
            reason = f"avc: {f['seresult']}{what}{tclass}"
            return ("denied" if f["seresult"] == "denied" else "success"), reason
        if "apparmor" in f:
            verdict = f["apparmor"].upper()
            op = f" {f['operation']}" if "operation" in f else ""
            reason = f"apparmor: {verdict}{op}"
            return ("denied" if verdict == "DENIED" else "success"), reason
    res = result(primary.fields)
    if res is None and syscall is not None:
        res = result(syscall.fields)
    if res is None:
        return "unknown", None
    if res == "success":
        return "success", None
    exit_value = (syscall or primary).fields.get("exit")
    return "failure", errno_name(exit_value) if exit_value is not None else None


def _severity(rtype: str, outcome: str, category: str) -> str | None:
    if rtype.startswith("ANOM_") or rtype.startswith("RESP_"):
        return "high"
    if outcome == "denied":
        return "medium"
    if outcome == "failure" and category == _AUTH_CATEGORY:
        return "low"
    return "info"


def _path_records(records: list[AuditRecord]) -> list[AuditRecord]:
    """The PATH records in the order of their ``item=`` numbers, whatever order they came in."""
    paths = [r for r in records if r.type == "PATH"]
    return sorted(paths, key=lambda r: int(i) if (i := r.fields.get("item", "")).isdigit() and len(i) < 6 else 0)


def _resource(
    records: list[AuditRecord],
    paths: list[AuditRecord],
    primary: AuditRecord,
    scname: str | None,
    get: Getter,
    sockaddr: dict[str, str] | None,
    users: UserDirectory | None,
) -> dict[str, str] | None:
    cwd = get("cwd")
    if scname in ("execve", "execveat"):
        # After a successful execve, exe is the new program. After a failed one the
        # process is still the caller (exe=/usr/bin/bash); the file it was refused is the
        # first PATH record.
        if result(next(r for r in records if r.type == "SYSCALL").fields) == "success":
            exe = get("exe")
            if exe:
                return {"type": "executable", "name": exe}
        else:
            refused = _first_path(paths, cwd, ("NORMAL", "UNKNOWN"))
            if refused is not None:
                return {"type": "executable", "name": refused}
    if TYPE_CATEGORIES.get(primary.type) in _ACCOUNT_CATEGORIES:
        account = _account(primary.fields, users)
        if account is not None:
            return {"type": "account", "name": account}
    path = _first_path(paths, cwd, ("NORMAL", "CREATE", "DELETE", "UNKNOWN"))
    if path is not None:
        return {"type": "file", "name": path}
    if sockaddr is not None:
        if "addr" in sockaddr:
            return {"type": "socket", "name": f"{sockaddr['addr']}:{sockaddr.get('port', '')}"}
        if "path" in sockaddr:
            return {"type": "socket", "name": sockaddr["path"]}
    return None


def _first_path(paths: list[AuditRecord], cwd: str | None, kinds: tuple[str, ...]) -> str | None:
    """The name of the first PATH record of one of ``kinds``, made absolute with ``cwd``."""
    for r in paths:
        name = r.fields.get("name")
        if not name or name == "(null)":
            continue
        if r.fields.get("nametype", "NORMAL") in kinds:
            if cwd and not name.startswith("/"):
                name = posixpath.normpath(posixpath.join(cwd, name))
            return name
    return None


def _account(fields: Mapping[str, str], users: UserDirectory | None) -> str | None:
    """The account an authentication or account-management record is about: ``acct``
    (a name), else ``id`` (a uid: its name as the log or the passwd lookup gives it)."""
    acct = fields.get("acct")
    if acct is not None and acct not in _EMPTY:
        return acct
    uid = fields.get("id")
    if uid is None or uid in _EMPTY or uid in UNSET_IDS:
        return None
    named = fields.get("ID")
    if named is not None and named not in _EMPTY:
        return named
    return (users.user(uid) if users is not None else None) or uid


def _sockaddr(records: list[AuditRecord], syscall: AuditRecord | None) -> dict[str, str] | None:
    """The event's SOCKADDR decoded in the byte order of the machine that wrote it."""
    sock = next((r for r in records if r.type == "SOCKADDR" and "saddr" in r.fields), None)
    if sock is None:
        return None
    big = is_big_endian(syscall.fields.get("arch")) if syscall is not None else None
    return decode_sockaddr(sock.fields["saddr"], big)


def _argv(fields: Mapping[str, str]) -> str:
    args: list[str] = []
    i = 0
    while True:
        v = fields.get(f"a{i}")
        if v is None:
            break
        args.append(v)
        i += 1
    return " ".join(args)
