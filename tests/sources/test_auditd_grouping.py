"""Grouping records into events: order, interleaving, end-of-event rules, lost events."""

from __future__ import annotations

from pathlib import Path

import pytest

from auditkeep.sources.auditd import AuditRecord, Reassembler, RecordGroup, parse_line
from auditkeep.sources.base import SourceError


def _records(path: Path) -> list[AuditRecord]:
    return [parse_line(line) for line in path.read_bytes().split(b"\n") if line.strip()]


def _run(
    records: list[AuditRecord], **kw: object
) -> tuple[list[RecordGroup], list[SourceError], int]:
    r = Reassembler(**kw)  # type: ignore[arg-type]
    groups: list[RecordGroup] = []
    errors: list[SourceError] = []
    for rec in records:
        for out in r.push(rec):
            (errors if isinstance(out, SourceError) else groups).append(out)  # type: ignore[arg-type]
    groups.extend(r.close())
    return groups, errors, r.take_lost()


def _shape(groups: list[RecordGroup]) -> list[tuple[int, int]]:
    return [(g.serial, len(g.records)) for g in groups]


# The expectations are go-libaudit's for the same files (reassembler_test.go), with the
# same window of 5 events.
EXPECTED = {
    "normal.log": ([(58, 2), (59, 5), (60, 5), (61, 4), (62, 1)], 0),
    "lost_messages.log": ([(49, 2), (59, 5), (60, 5), (61, 4), (62, 1)], 9),
    "out_of_order.log": ([(58, 2), (59, 5), (60, 5), (61, 4), (62, 1)], 0),
    "rollover.log": ([(4294967294, 1), (4294967295, 1), (0, 1), (1, 1), (2, 1)], 0),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_go_libaudit_reassembly_files(testdata: Path, name: str) -> None:
    groups, errors, lost = _run(_records(testdata / "auditd" / "go-libaudit" / name), window=5)
    shape, want_lost = EXPECTED[name]
    assert _shape(groups) == shape
    assert errors == []
    assert lost == want_lost
    for g in groups:
        assert {r.serial for r in g.records} == {g.serial}
        assert {(r.sec, r.frac) for r in g.records} == {(g.sec, g.frac)}


def test_out_of_order_keeps_each_record_with_its_event(testdata: Path) -> None:
    groups, _, _ = _run(
        _records(testdata / "auditd" / "go-libaudit" / "out_of_order.log"), window=5
    )
    by_serial = {g.serial: [r.type for r in g.records] for g in groups}
    # PATH item=1 of 60 arrives after 61's SYSCALL; SOCKADDR and CWD of 61 after that.
    assert by_serial[60] == ["SYSCALL", "EXECVE", "CWD", "PATH", "PATH"]
    assert by_serial[61] == ["SYSCALL", "SOCKADDR", "CWD", "PATH"]


@pytest.mark.parametrize(
    "name", ["sh_arp_cache_2020-11-10074812.log", "sh_binary_padding_dd_2020-11-10081941.log"]
)
def test_otrf_files_group_by_proctitle(testdata: Path, name: str) -> None:
    records = _records(testdata / "auditd" / name)
    r = Reassembler()
    emitted: list[RecordGroup] = []
    for rec in records:
        emitted.extend(g for g in r.push(rec) if isinstance(g, RecordGroup))
    # Every event ends with its PROCTITLE, so all are out before the input ends.
    assert r.pending == 0
    assert [len(g.records) for g in emitted] == [6] * len(emitted)
    assert sum(len(g.records) for g in emitted) == len(records)
    assert all(g.records[-1].type == "PROCTITLE" for g in emitted)


def rec(
    serial: int, rtype: str = "SYSCALL", node: str | None = None, sec: int = 100
) -> AuditRecord:
    prefix = f"node={node} " if node else ""
    return parse_line(f"{prefix}type={rtype} msg=audit({sec}.000:{serial}): pid=1".encode())


def test_eoe_closes_an_event() -> None:
    r = Reassembler(window=100)
    assert r.push(rec(1)) == []
    assert r.push(rec(1, "PATH")) == []
    out = r.push(rec(1, "EOE"))
    assert _shape(out) == [(1, 2)]  # type: ignore[arg-type]
    assert r.pending == 0


def test_user_space_types_wait_and_only_daemon_records_close_at_once() -> None:
    r = Reassembler(window=100)
    # auditd's own records never share a serial with the kernel's: complete at once
    assert _shape(r.push(rec(5, "DAEMON_START", sec=1))) == [(5, 1)]  # type: ignore[arg-type]
    # a user-space message may be followed by the records of the syscall that sent it
    for i, t in enumerate(("USER_LOGIN", "USER_AUTH", "CRED_ACQ", "USYS_CONFIG", "ADD_USER")):
        assert r.push(rec(10 + i, t)) == []
    assert r.pending == 5
    assert _shape(r.close()) == [(10, 1), (11, 1), (12, 1), (13, 1), (14, 1)]
    # LOGIN and CONFIG_CHANGE share their serial with a SYSCALL record: they wait for it.
    r = Reassembler(window=100)
    assert r.push(rec(7, "LOGIN")) == []
    assert r.push(rec(7, "SYSCALL")) == []
    assert _shape(r.push(rec(7, "PROCTITLE"))) == [(7, 3)]  # type: ignore[arg-type]
    assert r.push(rec(8, "CONFIG_CHANGE")) == []
    assert r.pending == 1


def _lines(text: str) -> list[AuditRecord]:
    return [parse_line(line.strip()) for line in text.strip().splitlines()]


# A systemd message sent while its sendto was audited: the SERVICE_START line is go-libaudit's
# (audit-rhel7.log); the SYSCALL, SOCKADDR and PROCTITLE records that the kernel writes for
# the audited sendto follow with the same serial.
SERVICE_START_SHARED = """
type=SERVICE_START msg=audit(1481076983.864:6): pid=1 uid=0 auid=4294967295 ses=4294967295 subj=system_u:system_r:init_t:s0 msg='unit=auditd comm="systemd" exe="/usr/lib/systemd/systemd" hostname=? addr=? terminal=? res=success'
type=SYSCALL msg=audit(1481076983.864:6): arch=c000003e syscall=44 success=yes exit=104 a0=2e a1=7ffd1e1d7d60 a2=68 a3=0 items=0 ppid=0 pid=1 auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="systemd" exe="/usr/lib/systemd/systemd" subj=system_u:system_r:init_t:s0 key=(null)
type=SOCKADDR msg=audit(1481076983.864:6): saddr=100000000000000000000000
type=PROCTITLE msg=audit(1481076983.864:6): proctitle=2F7573722F6C69622F73797374656D642F73797374656D64002D2D73797374656D002D2D646573657269616C697A65003138
type=SYSCALL msg=audit(1481076983.900:7): arch=c000003e syscall=2 success=yes exit=3 a0=7f5c a1=0 a2=1b6 a3=0 items=1 ppid=1 pid=420 auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="auditd" exe="/usr/sbin/auditd" key=(null)
"""


def test_a_user_space_record_keeps_the_syscall_records_of_its_serial() -> None:
    groups, errors, lost = _run(_lines(SERVICE_START_SHARED))
    assert errors == [] and lost == 0
    assert [[r.type for r in g.records] for g in groups] == [
        ["SERVICE_START", "SYSCALL", "SOCKADDR", "PROCTITLE"],
        ["SYSCALL"],
    ]


def test_records_in_reverse_order_wait_for_their_syscall(testdata: Path) -> None:
    """PROCTITLE, PATH..., then SYSCALL: an OTRF atomic-red-team event, its records reversed."""
    records = _records(testdata / "auditd" / "sh_binary_padding_dd_2020-11-10081941.log")[:6]
    assert [r.type for r in records] == ["SYSCALL", "EXECVE", "CWD", "PATH", "PATH", "PROCTITLE"]
    r = Reassembler()
    out = [o for rec_ in reversed(records) for o in r.push(rec_)]
    assert [o for o in out if isinstance(o, SourceError)] == []
    assert _shape(out) == [(records[0].serial, 6)]  # type: ignore[arg-type]
    assert r.pending == 0  # complete at its SYSCALL, not at the input's end
    # PROCTITLE before a PATH the SYSCALL announced: the event waits for the PATH too
    r = Reassembler()
    order = [records[0], records[5], records[1], records[2], records[3]]
    assert [o for rec_ in order for o in r.push(rec_)] == []
    assert _shape(r.push(records[4])) == [(records[0].serial, 6)]  # type: ignore[arg-type]


def test_window_flushes_old_events() -> None:
    r = Reassembler(window=3)
    r.push(rec(10))
    assert r.push(rec(13)) == []  # 3 later: still inside the window
    out = r.push(rec(14))
    assert _shape(out) == [(10, 1)]  # type: ignore[arg-type]


def test_timeout_flushes_with_an_injected_clock() -> None:
    now = [1000.0]
    r = Reassembler(window=100, timeout=2.0, clock=lambda: now[0])
    r.push(rec(1))
    now[0] += 1.0
    assert r.flush_expired() == []
    now[0] += 1.5
    assert _shape(r.flush_expired()) == [(1, 1)]


def test_max_pending_bounds_memory() -> None:
    r = Reassembler(window=10_000, max_pending=3)
    out = []
    for s in range(1, 6):
        out.extend(r.push(rec(s)))
    assert _shape(out) == [(1, 1), (2, 1)]  # type: ignore[arg-type]
    assert r.pending == 3


def test_late_record_becomes_a_source_error() -> None:
    r = Reassembler(window=100)
    r.push(rec(1))
    r.push(rec(1, "PROCTITLE"))
    out = r.push(rec(1, "PATH"))
    assert len(out) == 1 and isinstance(out[0], SourceError)
    assert b"type=PATH" in out[0].raw


def test_nodes_are_grouped_and_counted_apart() -> None:
    r = Reassembler(window=2)
    records = [
        rec(1, node="a"),
        rec(1, node="b"),
        rec(2, node="a"),
        rec(5, node="b"),
        rec(3, node="a"),
    ]
    out = [g for x in records for g in r.push(x)]
    out += r.close()
    assert sorted((g.node, g.serial) for g in out if isinstance(g, RecordGroup)) == [
        ("a", 1),
        ("a", 2),
        ("a", 3),
        ("b", 1),
        ("b", 5),
    ]
    assert r.take_lost() == 3  # b: 2, 3, 4
    assert r.take_lost() == 0


def test_gaps_fill_when_late_serials_arrive() -> None:
    r = Reassembler(window=5)
    for s in (1, 2, 4, 3, 5):
        r.push(rec(s))
    r.close()
    assert r.take_lost() == 0


def test_lost_counted_once_the_window_passes() -> None:
    r = Reassembler(window=5)
    r.push(rec(1))
    r.push(rec(3))
    assert r.take_lost() == 0  # 2 may still come
    r.push(rec(20))
    assert r.take_lost() == 1 + 11  # 2 and 4..14: more than 5 behind 20
    r.close()
    assert r.take_lost() == 5  # 15..19, once the input ends


def test_counter_restart_is_not_a_loss() -> None:
    r = Reassembler(window=5)
    for s in (90001, 90002, 90003):
        r.push(rec(s, sec=100))
    # A reboot: serials start again.
    for s in (1, 2, 3):
        r.push(rec(s, sec=200))
    r.close()
    assert r.take_lost() == 0


def test_same_serial_different_time_is_a_different_event() -> None:
    r = Reassembler(window=5)
    r.push(rec(7, sec=100))
    r.push(rec(7, "PROCTITLE", sec=100))
    out = r.push(rec(7, sec=500))  # after a reboot, not a late record
    assert out == []
    assert r.pending == 1


def test_daemon_records_do_not_count_as_gaps() -> None:
    r = Reassembler(window=5)
    r.push(rec(10))
    r.push(rec(9000, "DAEMON_START"))
    r.push(rec(11))
    r.close()
    assert r.take_lost() == 0


def test_serial_state_round_trip() -> None:
    r = Reassembler(window=5)
    r.push(rec(10))
    r.push(rec(12))
    state = r.serial_state()
    r2 = Reassembler(window=5)
    r2.restore_serial_state(state)
    r2.push(rec(11))  # fills the gap remembered across the restart
    r2.push(rec(14))
    r2.close()
    assert r2.take_lost() == 1  # 13
