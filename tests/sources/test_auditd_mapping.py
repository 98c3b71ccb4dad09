"""auditd events mapped to the Event model."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditkeep.model import Limits, validate_event
from auditkeep.sources.auditd import (
    AuditdDecoder,
    Reassembler,
    RecordGroup,
    UserDirectory,
    decode_log,
    map_group,
    parse_line,
)
from auditkeep.sources.base import SourceError

ALL_LOGS = [
    "go-libaudit/auparse/audit-rhel6.log",
    "go-libaudit/auparse/audit-rhel7.log",
    "go-libaudit/auparse/audit-ubuntu14.log",
    "go-libaudit/auparse/audit-ubuntu16.log",
    "go-libaudit/auparse/audit-ubuntu17.log",
    "go-libaudit/auparse/test2.log",
    "go-libaudit/auparse/test3.log",
    "go-libaudit/normal.log",
    "go-libaudit/lost_messages.log",
    "go-libaudit/out_of_order.log",
    "go-libaudit/rollover.log",
    "sh_arp_cache_2020-11-10074812.log",
    "sh_binary_padding_dd_2020-11-10081941.log",
]


@pytest.fixture
def users(tmp_path: Path) -> UserDirectory:
    passwd = tmp_path / "passwd"
    passwd.write_text("root:x:0:0:root:/root:/bin/bash\nwardog:x:1000:1000::/home/wardog:/bin/sh\n")
    return UserDirectory(passwd, None)


def group_of(lines: list[bytes]) -> RecordGroup:
    r = Reassembler(window=1000)
    out = [g for line in lines for g in r.push(parse_line(line))]
    (g,) = out + r.close()
    assert isinstance(g, RecordGroup)
    return g


@pytest.mark.parametrize("name", ALL_LOGS)
def test_every_sample_event_maps_and_validates(testdata: Path, name: str) -> None:
    with (testdata / "auditd" / name).open("rb") as f:
        log = decode_log(f, AuditdDecoder(window=5, host="collector"))
    assert log.events
    records = 0
    for ev in log.events:
        validate_event(ev)
        meta = ev.metadata
        assert meta is not None
        native = meta["auditd"]["records"]
        assert meta["auditd"]["sequence"] >= 0
        assert all("type" in r for r in native)
        records += len(native)
        assert ev.id is not None and ev.time is not None
    # Nothing vanished: every non-blank line is in an event or a quarantined error.
    lines = [x for x in (testdata / "auditd" / name).read_bytes().split(b"\n") if x.strip()]
    assert records + len(log.errors) == len(lines)


def test_execve_event(testdata: Path, users: UserDirectory) -> None:
    path = testdata / "auditd" / "sh_binary_padding_dd_2020-11-10081941.log"
    (ev,) = decode_log(path.read_bytes().splitlines(), AuditdDecoder(users=users, host="h1")).events
    assert ev.action == "auditd.syscall.execve"
    assert ev.time == "2020-11-10T08:19:44.965Z"
    assert ev.actor.id == "wardog" and ev.actor.name == "wardog" and ev.actor.type == "user"
    assert ev.actor.session_id == "104"
    assert ev.outcome == "success"
    assert ev.category == "system"
    assert ev.source is not None and ev.source.host == "h1" and ev.source.service == "auditd"
    assert ev.resource is not None and ev.resource.name == "/bin/dd"
    meta = ev.metadata
    assert meta is not None
    assert meta["argv"] == "dd if=/dev/zero bs=1 count=1"
    assert meta["proctitle"] == "dd if=/dev/zero bs=1 count=1"
    assert meta["exe"] == "/bin/dd" and meta["comm"] == "dd" and meta["cwd"] == "/home/wardog"
    assert meta["paths"] == ["/bin/dd", "/lib64/ld-linux-x86-64.so.2"]
    records = meta["auditd"]["records"]
    assert [r["type"] for r in records] == ["SYSCALL", "EXECVE", "CWD", "PATH", "PATH", "PROCTITLE"]
    # What a Sigma rule for "service: auditd" tests: native names, decoded values.
    execve = records[1]
    assert (execve["a0"], execve["a1"], execve["a2"]) == ("dd", "if=/dev/zero", "bs=1")
    assert records[0]["SYSCALL"] == "execve" and records[0]["syscall"] == "59"
    assert records[0]["AUID"] == "wardog"
    assert meta["auditd"]["sequence"] == 93777


def test_ids_are_deterministic(testdata: Path) -> None:
    data = (testdata / "auditd" / "sh_arp_cache_2020-11-10074812.log").read_bytes().splitlines()
    a = [e.id for e in decode_log(data, AuditdDecoder(host="h")).events]
    b = [e.id for e in decode_log(data, AuditdDecoder(host="h")).events]
    c = [e.id for e in decode_log(data, AuditdDecoder(host="other")).events]
    assert a == b and len(set(a)) == len(a) == 2
    assert set(a).isdisjoint(c)  # without node=, the host is part of the id


def test_avc_denial(testdata: Path) -> None:
    lines = (testdata / "auditd" / "go-libaudit" / "auparse" / "test2.log").read_bytes()
    g = group_of([x for x in lines.splitlines() if b":293)" in x])
    ev = map_group(g)
    assert ev.action == "auditd.avc"
    assert ev.outcome == "denied"
    assert ev.category == "authorization"
    assert ev.reason == "avc: denied { read } for dir"
    assert ev.severity == "medium"
    assert ev.actor.id == "890" and ev.actor.type == "system"  # auid unset
    assert ev.resource is not None
    assert (ev.resource.type, ev.resource.name) == ("file", "/var/spool/postfix/maildrop")
    assert ev.metadata is not None and ev.metadata["errno"] == "EACCES"


def test_failed_login_names_the_account_and_address(testdata: Path) -> None:
    line = (testdata / "auditd" / "go-libaudit" / "auparse" / "audit-ubuntu16.log").read_bytes()
    ev = map_group(group_of([line.splitlines()[0]]))
    assert ev.action == "auditd.user_login"
    assert ev.category == "authentication"
    assert ev.outcome == "failure"
    assert ev.severity == "low"
    assert ev.actor.id == "(invalid user)" and ev.actor.type == "user"
    assert ev.actor.ip == "179.38.151.221"


def test_successful_login_uses_auid_and_session(testdata: Path, users: UserDirectory) -> None:
    line = (testdata / "auditd" / "go-libaudit" / "auparse" / "audit-ubuntu16.log").read_bytes()
    ev = map_group(group_of([line.splitlines()[1]]), users=users)
    assert ev.outcome == "success"
    assert ev.actor.id == "1001"  # not in our passwd file: the number
    assert ev.actor.session_id == "36"
    assert ev.actor.ip == "72.83.230.100"


def test_open_for_write_is_a_change() -> None:
    base = "type=SYSCALL msg=audit(5.000:1): arch=c000003e syscall=2 success=yes exit=3 a0=1 a1={} auid=0 uid=0"
    read = map_group(group_of([base.format("0").encode()]))
    write = map_group(group_of([base.format("241").encode()]))  # O_WRONLY|O_CREAT|O_TRUNC
    assert (read.action, read.category) == ("auditd.syscall.open", "data_access")
    assert write.category == "data_change"


def test_unknown_syscall_and_odd_type_give_valid_actions() -> None:
    ev = map_group(
        group_of(
            [b"type=SYSCALL msg=audit(5.000:1): arch=c000003e syscall=9999 success=no exit=-1"]
        )
    )
    assert ev.action == "auditd.syscall.9999"
    assert ev.outcome == "failure" and ev.reason == "EPERM"
    ev2 = map_group(group_of([b"type=WEIRD[42] msg=audit(5.000:2): x=1"]))
    assert ev2.action == "auditd.weird_42"
    validate_event(ev2)


def test_login_event_action_is_the_login_not_the_syscall() -> None:
    g = group_of(
        [
            b"type=LOGIN msg=audit(5.000:9): pid=1 uid=0 old-auid=4294967295 auid=1000 tty=(none) old-ses=4294967295 ses=4 res=1",
            b"type=SYSCALL msg=audit(5.000:9): arch=c000003e syscall=1 success=yes exit=4 auid=1000 uid=0 ses=4",
            b'type=PROCTITLE msg=audit(5.000:9): proctitle="sshd"',
        ]
    )
    ev = map_group(g)
    assert ev.action == "auditd.login"
    assert ev.category == "authentication"
    assert ev.actor.id == "1000" and ev.actor.session_id == "4"


def test_bad_addr_stays_in_metadata() -> None:
    ev = map_group(
        group_of(
            [
                b"type=USER_AUTH msg=audit(5.000:3): pid=1 uid=0 auid=4294967295 ses=4294967295 "
                b'msg=\'op=PAM:authentication acct="bob" exe="/usr/sbin/sshd" hostname=h addr=not-an-ip terminal=ssh res=failed\''
            ]
        )
    )
    assert ev.actor.ip is None
    assert ev.metadata is not None and ev.metadata["addr"] == "not-an-ip"
    assert ev.actor.id == "bob"


def test_long_values_are_clipped_and_noted() -> None:
    long = "x" * 20000
    args = " ".join(f'a{i}="{c}"' for i, c in enumerate("abc"))
    g = group_of(
        [
            f'type=EXECVE msg=audit(5.000:4): argc=4 {args} a3="{long}"'.encode(),
        ]
    )
    limits = Limits()
    ev = map_group(g, limits=limits)
    validate_event(ev)
    meta = ev.metadata
    assert meta is not None
    assert len(meta["auditd"]["records"][0]["a3"]) == limits.max_string
    assert any("a3" in t and "20000" in t for t in meta["truncated"])


def test_too_many_fields_are_bounded() -> None:
    args = " ".join(f'a{i}="v{i}"' for i in range(200))
    ev = map_group(group_of([f"type=EXECVE msg=audit(5.000:5): argc=200 {args}".encode()]))
    validate_event(ev)
    assert ev.metadata is not None
    assert len(ev.metadata["auditd"]["records"][0]) == 64
    assert ev.metadata["argv"].endswith("v199")


def test_event_over_the_byte_limit_is_a_source_error() -> None:
    lines = [
        f'type=PATH msg=audit(5.000:6): item={i} name="{"p" * 4000}{i}"'.encode() for i in range(40)
    ]
    with pytest.raises(SourceError) as info:
        map_group(group_of(lines))
    assert "exceeds" in info.value.reason
    assert info.value.raw.count(b"\n") == 39  # every record's line is kept


def test_events_encode_to_json(testdata: Path) -> None:
    path = testdata / "auditd" / "go-libaudit" / "auparse" / "audit-rhel7.log"
    for ev in decode_log(path.read_bytes().splitlines()).events:
        msgspec.json.encode(ev)


def test_overlong_field_name_is_dropped_and_noted() -> None:
    name = "k" * 9000
    ev = map_group(group_of([f'type=CWD msg=audit(5.000:7): {name}=1 cwd="/"'.encode()]))
    validate_event(ev)
    assert ev.metadata is not None
    assert name not in ev.metadata["auditd"]["records"][0]
    assert any("dropped a field" in t for t in ev.metadata["truncated"])


def test_text_input_with_lone_surrogates_gives_valid_text() -> None:
    rec = parse_line('type=CWD msg=audit(5.000:8): cwd="/tmp/\udcff"')
    ev = map_group(group_of([rec.raw]))
    validate_event(ev)
    assert rec.fields["cwd"] == "/tmp/\\xff"


_value = st.one_of(
    st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=30).map(
        lambda s: s.encode().hex().upper()
    ),
    st.from_regex(r"[A-Za-z0-9/._:-]{0,20}", fullmatch=True),
    st.from_regex(r'"[A-Za-z0-9/._:=-]{0,20}"', fullmatch=True),
)
_fields = st.dictionaries(
    st.from_regex(r"[a-z][a-z0-9_-]{0,10}", fullmatch=True), _value, max_size=12
)


@settings(max_examples=100, deadline=None)  # 200 before: cut for the suite's time
@given(
    st.lists(
        st.tuples(
            st.sampled_from(
                [
                    "SYSCALL",
                    "PATH",
                    "CWD",
                    "EXECVE",
                    "USER_LOGIN",
                    "AVC",
                    "PROCTITLE",
                    "SOCKADDR",
                    "X_UNKNOWN",
                ]
            ),
            _fields,
        ),
        min_size=1,
        max_size=6,
    )
)
def test_built_within_the_model_without_validating(
    records: list[tuple[str, dict[str, str]]],
) -> None:
    lines = [
        f"type={t} msg=audit(1700000000.123:42): " + " ".join(f"{k}={v}" for k, v in f.items())
        for t, f in records
    ]
    log = decode_log([x.encode() for x in lines], AuditdDecoder(validate=False, host="h"))
    for ev in log.events:
        validate_event(ev)
    kept = [r for e in log.events for r in e.metadata["auditd"]["records"]]
    # an event's EXECVE records become one record
    execve_lines = sum(1 for t, _ in records if t == "EXECVE")
    execve_refused = sum(1 for e in log.errors for x in e.raw.split(b"\n") if x.startswith(b"type=EXECVE"))
    merged = execve_lines - execve_refused - sum(1 for r in kept if r["type"] == "EXECVE")
    assert len(kept) + len(log.errors) + merged == len(lines)
