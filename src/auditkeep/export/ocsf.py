"""Events as OCSF 1.8.0 records (https://schema.ocsf.io/1.8.0/).

Each event maps to one class, chosen by the first rule that fits (the table in
``docs/exports.md``): Authentication 3002, Account Change 3001, Process Activity 1007, File
System Activity 1001, Network Activity 4001, Entity Management 3004, else API Activity 6003.
The activity comes from the action's verb; the auditkeep fields OCSF has no place for
(tenant, log index, leaf hash, metadata) go under ``unmapped.auditkeep``.
"""

from __future__ import annotations

import functools
import posixpath
import re
from typing import Any

from auditkeep import __version__
from auditkeep.model.event import Event
from auditkeep.model.timefmt import parse_rfc3339

SCHEMA_VERSION = "1.8.0"

API_ACTIVITY = 6003
AUTHENTICATION = 3002
ACCOUNT_CHANGE = 3001
ENTITY_MANAGEMENT = 3004
PROCESS_ACTIVITY = 1007
FILE_ACTIVITY = 1001
NETWORK_ACTIVITY = 4001

CLASS_NAMES = {
    API_ACTIVITY: "API Activity",
    AUTHENTICATION: "Authentication",
    ACCOUNT_CHANGE: "Account Change",
    ENTITY_MANAGEMENT: "Entity Management",
    PROCESS_ACTIVITY: "Process Activity",
    FILE_ACTIVITY: "File System Activity",
    NETWORK_ACTIVITY: "Network Activity",
}
CATEGORY_NAMES = {1: "System Activity", 3: "Identity & Access Management", 4: "Network Activity", 6: "Application Activity"}

SEVERITY_IDS = {"debug": 1, "info": 1, "low": 2, "medium": 3, "high": 4, "critical": 5}
STATUS_IDS = {"success": 1, "failure": 2, "denied": 2, "error": 2, "unknown": 0}
STATUS_NAMES = {0: "Unknown", 1: "Success", 2: "Failure"}
USER_TYPE_IDS = {"user": 1, "system": 3, "service": 4, "agent": 99}

# verbs (the action's words, lower case) -> activity ids, per class
_CRUD = {
    **dict.fromkeys(("create", "add", "post", "insert", "new", "register", "put_new"), 1),
    **dict.fromkeys(("get", "read", "list", "describe", "watch", "view", "head", "select", "query", "search", "show", "export", "download"), 2),
    **dict.fromkeys(("update", "patch", "modify", "put", "set", "change", "edit", "replace", "rotate", "write", "upload"), 3),
    **dict.fromkeys(("delete", "remove", "deletecollection", "destroy", "drop", "revoke", "purge", "erase"), 4),
}
_AUTH = {
    **dict.fromkeys(("login", "logon", "signin", "sign_in", "assumerole", "authenticate", "auth"), 1),
    **dict.fromkeys(("logout", "logoff", "signout", "sign_out"), 2),
}
_ACCOUNT = {
    **dict.fromkeys(("create", "add", "register"), 1),
    **dict.fromkeys(("enable", "activate"), 2),
    **dict.fromkeys(("password_change", "changepassword", "chauthtok"), 3),
    **dict.fromkeys(("password_reset", "resetpassword"), 4),
    **dict.fromkeys(("disable", "deactivate", "suspend"), 5),
    **dict.fromkeys(("delete", "remove", "del"), 6),
    **dict.fromkeys(("attach", "attachuserpolicy", "putuserpolicy"), 7),
    **dict.fromkeys(("detach", "detachuserpolicy", "deleteuserpolicy"), 8),
    "lock": 9,
    "unlock": 12,
}
_ENTITY = {**_CRUD, "move": 5, "rename": 5, "enable": 8, "disable": 9, "activate": 10, "deactivate": 11, "suspend": 12, "resume": 13}
_PROCESS = {"execve": 1, "execveat": 1, "exec": 1, "spawn": 1, "launch": 1, "start": 1, "kill": 2, "tkill": 2, "tgkill": 2,
            "exit": 2, "end": 2, "stop": 2, "terminate": 2, "ptrace": 3, "setuid": 5, "setresuid": 5, "setreuid": 5}  # fmt: skip
_FILE = {
    **dict.fromkeys(("creat", "mkdir", "mkdirat", "mknod", "mknodat", "link", "linkat", "symlink", "symlinkat"), 1),
    **dict.fromkeys(("read", "readlink", "readlinkat"), 2),
    **dict.fromkeys(("write", "truncate", "ftruncate"), 3),
    **dict.fromkeys(("unlink", "unlinkat", "rmdir"), 4),
    **dict.fromkeys(("rename", "renameat", "renameat2"), 5),
    **dict.fromkeys(("chmod", "fchmod", "fchmodat", "utime", "utimes", "utimensat"), 6),
    **dict.fromkeys(("chown", "fchown", "fchownat", "lchown", "setxattr", "lsetxattr", "fsetxattr"), 7),
    **dict.fromkeys(("stat", "lstat", "fstat", "statx", "newfstatat", "access", "faccessat"), 8),
    **dict.fromkeys(("getxattr", "lgetxattr", "fgetxattr"), 9),
    "mount": 12,
    **dict.fromkeys(("umount", "umount2"), 13),
    **dict.fromkeys(("open", "openat", "openat2"), 14),
}
_NETWORK = {"connect": 1, "accept": 1, "accept4": 1, "close": 2, "shutdown": 2, "sendto": 6, "sendmsg": 6,
            "sendmmsg": 6, "recvfrom": 6, "recvmsg": 6, "recvmmsg": 6, "bind": 7, "listen": 7}  # fmt: skip
_ACCOUNT_NOUNS = ("user", "account", "users", "accounts", "loginprofile", "serviceaccounts", "password", "acct")
_ACCOUNT_RESOURCES = ("user", "account", "aws::iam::user", "serviceaccounts", "serviceaccount")
_ENTITY_CATEGORIES = ("admin", "configuration")
_CAMEL = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z0-9]+")


def words(action: str) -> list[str]:
    """The action's words in lower case: ``aws.iam.CreateUser`` -> aws, iam, create, user;
    ``auditd.syscall.execve`` -> auditd, syscall, execve; ``auditd.user_chauthtok`` -> ...,
    user, chauthtok."""
    out: list[str] = []
    for seg in action.split("."):
        for part in seg.replace("-", "_").split("_"):
            out.extend(w.lower() for w in _CAMEL.findall(part)) if any(c.isupper() for c in part) else out.append(part.lower())
    return [w for w in out if w]


def _verb(ws: list[str], table: dict[str, int]) -> int:
    """The activity of the last word the table knows (verbs come after nouns in dotted
    actions: user.password.change), else 99 (Other)."""
    joined = "_".join(ws[-2:])
    if joined in table:
        return table[joined]
    for w in reversed(ws):
        if w in table:
            return table[w]
    for w in ws:  # AWS names: CreateUser -> create, user
        if w in table:
            return table[w]
    return 99


def classify(ev: Event) -> tuple[int, int]:
    """(class_uid, activity_id) of an event."""
    rtype = (ev.resource.type or "").lower() if ev.resource else ""
    return _classify(ev.action, ev.category, rtype, _pid(ev) is not None)


@functools.lru_cache(maxsize=4096)
def _classify(action: str, category: str | None, rtype: str, has_pid: bool) -> tuple[int, int]:
    """The class from what decides it (cached: a log holds few distinct actions)."""
    ws = words(action)
    last = ws[-1] if ws else ""
    joined = "_".join(ws)
    if "login_profile" in joined:  # AWS CreateLoginProfile, UpdateLoginProfile: a password
        return ACCOUNT_CHANGE, {1: 1, 3: 3, 4: 6}.get(_verb(ws, _CRUD), 99)
    authish = category == "authentication" or any(w in _AUTH for w in ws)
    if authish and not (rtype in _ACCOUNT_RESOURCES and last in _ACCOUNT and category != "authentication"):
        return AUTHENTICATION, _verb(ws, _AUTH)
    if rtype in _ACCOUNT_RESOURCES or (any(w in _ACCOUNT_NOUNS for w in ws) and _verb(ws, _ACCOUNT) != 99):
        activity = _verb(ws, _ACCOUNT)
        if activity != 99 or rtype in _ACCOUNT_RESOURCES:
            return ACCOUNT_CHANGE, activity
    # the verb first (a connect names the socket's file for a UNIX socket), then the resource
    if last in _PROCESS and has_pid:
        return PROCESS_ACTIVITY, _PROCESS[last]
    if last in _NETWORK:
        return NETWORK_ACTIVITY, _NETWORK[last]
    if last in _FILE:
        return FILE_ACTIVITY, _FILE[last]
    if rtype in ("executable", "process") and has_pid:
        return PROCESS_ACTIVITY, 99
    if rtype in ("socket", "connection"):
        return NETWORK_ACTIVITY, 99
    if rtype in ("file", "directory"):
        return FILE_ACTIVITY, 99
    if category in _ENTITY_CATEGORIES:
        return ENTITY_MANAGEMENT, _verb(ws, _ENTITY)
    activity = _verb(ws, _CRUD)
    return API_ACTIVITY, activity if activity <= 4 else 99


_seconds: dict[str, int] = {}  # "YYYY-MM-DDTHH:MM:SS" -> ms since the epoch


def _ms(text: str | None) -> int | None:
    """Milliseconds since the epoch of a stored time. Times that follow each other share
    their second, so the ``YYYY-MM-DDTHH:MM:SS.fffZ`` form adds its milliseconds to the
    second, parsed once, instead of parsing all of it (a fifth of an OCSF export)."""
    if not text:
        return None
    n = len(text)
    if n > 20 and text[-1] == "Z" and text[19] == ".":
        frac = text[20:-1]
        if frac.isascii() and frac.isdigit() and len(frac) <= 9:
            secs = _seconds.get(text[:19])
            if secs is None:
                secs = parse_rfc3339(text[:19] + "Z") // 1_000_000
                if len(_seconds) >= 4096:
                    _seconds.clear()
                _seconds[text[:19]] = secs
            return secs + int(frac[:3].ljust(3, "0"))
    return parse_rfc3339(text) // 1_000_000


def _user(ev: Event) -> dict[str, Any]:
    a = ev.actor
    user: dict[str, Any] = {"uid": a.id}
    if a.name:
        user["name"] = a.name
    if a.type:
        user["type_id"] = USER_TYPE_IDS[a.type]
        if a.type == "agent":
            user["type"] = "Agent"
    return user


def _actor(ev: Event) -> dict[str, Any]:
    actor: dict[str, Any] = {"user": _user(ev)}
    if ev.actor.session_id:
        actor["session"] = {"uid": ev.actor.session_id}
    if ev.source and ev.source.service:
        actor["app_name"] = ev.source.service
    return actor


def _src_endpoint(ev: Event) -> dict[str, Any]:
    """Where the request came from: the actor's address; failing that the reporting host,
    failing that ``unknown`` (the class requires the object and one of its names)."""
    if ev.actor.ip:
        return {"ip": ev.actor.ip}
    if ev.source and ev.source.host:
        return {"hostname": ev.source.host}
    return {"name": "unknown"}


def _device(ev: Event) -> dict[str, Any]:
    host = ev.source.host if ev.source and ev.source.host else None
    return {"type_id": 0, "hostname": host} if host else {"type_id": 0, "name": "unknown"}


def _meta(ev: Event) -> dict[str, Any]:
    return ev.metadata or {}


def _process(ev: Event) -> dict[str, Any]:
    m = _meta(ev)
    proc: dict[str, Any] = {}
    path = m.get("exe") if ev.resource is None or ev.resource.type != "executable" else ev.resource.name
    if isinstance(path, str) and path:
        proc["path"] = path
        proc["name"] = posixpath.basename(path)
    elif ev.resource and (ev.resource.name or ev.resource.id):
        proc["name"] = ev.resource.name or ev.resource.id
    cmd = m.get("argv") or m.get("proctitle")
    if isinstance(cmd, str) and cmd:
        proc["cmd_line"] = cmd
    pid = _pid(ev)
    if pid is not None:
        proc["pid"] = pid
    return proc


def _pid(ev: Event) -> int | None:
    """The process id the source recorded (a process is only known by one)."""
    pid = _meta(ev).get("pid")
    if isinstance(pid, (str, int)) and str(pid).isdigit() and int(pid) < 2**31:
        return int(pid)
    return None


def _file(ev: Event) -> dict[str, Any]:
    m = _meta(ev)
    paths = m.get("paths")
    path = ev.resource.name or ev.resource.id if ev.resource else None
    if not path and isinstance(paths, list) and paths and isinstance(paths[0], str):
        path = paths[0]
    path = path or "unknown"
    return {"name": posixpath.basename(path) or path, "path": path, "type_id": 2 if ev.resource and ev.resource.type == "directory" else 0}


def _endpoint_from(value: str) -> dict[str, Any]:
    host, sep, port = value.rpartition(":")
    if sep and port.isdigit() and int(port) < 65536:
        return {"ip": host.strip("[]"), "port": int(port)} if _looks_ip(host.strip("[]")) else {"hostname": host, "port": int(port)}
    return {"ip": value} if _looks_ip(value) else {"name": value}


def _looks_ip(text: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _network(ev: Event, out: dict[str, Any]) -> None:
    sock = _meta(ev).get("socket")
    peer: dict[str, Any] | None = None
    if isinstance(sock, dict) and isinstance(sock.get("addr"), str) and _looks_ip(sock["addr"]):
        peer = {"ip": sock["addr"]}
        port = sock.get("port")
        if isinstance(port, (str, int)) and str(port).isdigit() and int(port) < 65536:
            peer["port"] = int(port)
    elif ev.resource and ev.resource.name:
        peer = _endpoint_from(ev.resource.name)
    local = _device(ev)
    local.pop("type_id")
    ingress = isinstance(sock, dict) and sock.get("direction") == "ingress"
    if peer is not None:
        out["src_endpoint"], out["dst_endpoint"] = (peer, local) if ingress else (local, peer)
        out["connection_info"] = {"direction_id": 1 if ingress else 2}
    else:
        out["src_endpoint"] = local


def _resources(ev: Event) -> list[dict[str, Any]] | None:
    r = ev.resource
    if r is None:
        return None
    if not (r.id or r.name):
        return None  # the object needs a name or a uid
    return [{k: v for k, v in (("type", r.type), ("uid", r.id), ("name", r.name)) if v}]


def to_ocsf(ev: Event, *, tenant: str | None = None, index: int | None = None, leaf_hash: str | None = None) -> dict[str, Any]:
    """One OCSF record for an event (``tenant``, ``index`` and ``leaf_hash`` name the entry)."""
    class_uid, activity_id = classify(ev)
    category_uid = class_uid // 1000
    when = _ms(ev.time) or _ms(ev.received_at) or 0
    status_id = STATUS_IDS.get(ev.outcome or "unknown", 0)
    out: dict[str, Any] = {
        "class_uid": class_uid,
        "class_name": CLASS_NAMES[class_uid],
        "category_uid": category_uid,
        "category_name": CATEGORY_NAMES[category_uid],
        "activity_id": activity_id,
        "type_uid": class_uid * 100 + activity_id,
        "time": when,
        "severity_id": SEVERITY_IDS.get(ev.severity or "", 0),
        "status_id": status_id,
        "status": STATUS_NAMES[status_id],
        "message": ev.action,
        "metadata": {
            "product": {"name": "auditkeep", "vendor_name": "auditkeep", "version": __version__},
            "version": SCHEMA_VERSION,
            "log_name": tenant or ev.tenant or "default",
            "event_code": ev.action,
        },
    }
    if activity_id == 99:
        out["activity_name"] = ev.action
    if ev.severity:
        out["severity"] = ev.severity.capitalize()
    if ev.reason:
        out["status_detail"] = ev.reason
    md = out["metadata"]
    if ev.id:
        md["uid"] = ev.id
    if ev.time:
        md["original_time"] = ev.time
    if ev.received_at:
        md["logged_time"] = _ms(ev.received_at)
    if ev.source and ev.source.trace_id:
        md["correlation_uid"] = ev.source.trace_id
    actor = _actor(ev)
    if class_uid == AUTHENTICATION:
        out["user"] = _user(ev)
        out["actor"] = actor
        out["src_endpoint"] = _src_endpoint(ev)
    elif class_uid == ACCOUNT_CHANGE:
        r = ev.resource
        target = {k: v for k, v in (("uid", r.id), ("name", r.name)) if v} if r else {}
        out["user"] = target or _user(ev)
        out["actor"] = actor
    elif class_uid == PROCESS_ACTIVITY:
        out["actor"], out["device"], out["process"] = actor, _device(ev), _process(ev)
    elif class_uid == FILE_ACTIVITY:
        out["actor"], out["device"], out["file"] = actor, _device(ev), _file(ev)
    elif class_uid == NETWORK_ACTIVITY:
        out["actor"] = actor
        _network(ev, out)
    elif class_uid == ENTITY_MANAGEMENT:
        r = ev.resource
        entity = {k: v for k, v in (("uid", r.id), ("name", r.name), ("type", r.type)) if v} if r else {}
        out["entity"] = entity if ("uid" in entity or "name" in entity) else {"name": ev.action, **entity}
        out["actor"] = actor
    else:
        api: dict[str, Any] = {"operation": ev.action}
        if ev.source and ev.source.service:
            api["service"] = {"name": ev.source.service}
        if ev.source and ev.source.request_id:
            api["request"] = {"uid": ev.source.request_id}
        out["api"] = api
        out["actor"] = actor
        out["src_endpoint"] = _src_endpoint(ev)
        if ev.actor.user_agent:
            out["http_request"] = {"user_agent": ev.actor.user_agent}
    resources = _resources(ev)
    if resources is not None and class_uid == API_ACTIVITY:
        out["resources"] = resources
    extra: dict[str, Any] = {"category": ev.category} if ev.category else {}
    if index is not None:
        extra["index"] = index
    if leaf_hash is not None:
        extra["leaf_hash"] = leaf_hash
    if ev.outcome:
        extra["outcome"] = ev.outcome
    if ev.metadata:
        extra["metadata"] = ev.metadata
    if extra:
        out["unmapped"] = {"auditkeep": extra}
    return out
