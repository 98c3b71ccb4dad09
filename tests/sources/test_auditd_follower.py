"""Following a real audit.log on disk: batches, commits, restarts, rotation, truncation."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from auditkeep.sources.auditd import AuditdFollower, Batch, UserDirectory


def event_lines(serial: int, sec: int = 1700000000, proctitle: bool = True) -> list[str]:
    hdr = f"msg=audit({sec}.{serial % 1000:03d}:{serial})"
    lines = [
        f"type=SYSCALL {hdr}: arch=c000003e syscall=59 success=yes exit=0 items=1 ppid=1 "
        f'pid={serial} auid=1000 uid=1000 ses=3 comm="cat" exe="/usr/bin/cat" key="exec"',
        f'type=CWD {hdr}: cwd="/home/alice"',
        f'type=PATH {hdr}: item=0 name="/usr/bin/cat" inode=2512 dev=08:01 mode=0100755 ouid=0 '
        "ogid=0 rdev=00:00 nametype=NORMAL",
    ]
    if proctitle:
        lines.append(f"type=PROCTITLE {hdr}: proctitle=636174002F6574632F706173737764")
    return lines


def append(path: Path, lines: list[str]) -> None:
    with path.open("a") as f:
        f.write("".join(line + "\n" for line in lines))


def seqs(batch: Batch) -> list[int]:
    return [e.metadata["auditd"]["sequence"] for e in batch.events]  # type: ignore[index]


def follower(tmp_path: Path, **kw: object) -> AuditdFollower:
    return AuditdFollower(
        tmp_path / "audit.log",
        tmp_path / "state" / "auditd.json",
        host="testhost",
        users=UserDirectory(None, None),
        poll_interval=0.01,
        **kw,  # type: ignore[arg-type]
    )


def drain(fol: AuditdFollower, commit: bool = True) -> tuple[list[int], list[Batch]]:
    """Read to the end of the log (not following), committing each batch."""
    out: list[int] = []
    batches = []
    for batch in fol.batches(follow=False):
        out += seqs(batch)
        batches.append(batch)
        if commit:
            batch.commit()
    return out, batches


def test_reads_then_resumes_after_commit(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    append(log, [x for s in range(1, 6) for x in event_lines(s)])
    got, _ = drain(follower(tmp_path))
    assert got == [1, 2, 3, 4, 5]
    state = json.loads((tmp_path / "state" / "auditd.json").read_text())
    assert state["offset"] == log.stat().st_size
    # A second run finds nothing new; then only what was appended.
    assert drain(follower(tmp_path))[0] == []
    append(log, event_lines(6))
    assert drain(follower(tmp_path))[0] == [6]


def test_unit_batch_api_unpacks(tmp_path: Path) -> None:
    append(tmp_path / "audit.log", event_lines(1))
    for events, commit in follower(tmp_path).batches(follow=False):
        assert len(events) == 1
        commit()


def test_crash_before_commit_redelivers_only_the_uncommitted(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    append(log, [x for s in range(1, 11) for x in event_lines(s)])
    fol = follower(tmp_path, batch_size=3)
    it = fol.batches(follow=False)
    first = next(it)
    first.commit()
    second = next(it)  # delivered to nobody: the process dies here
    assert seqs(first) == [1, 2, 3] and seqs(second) == [4, 5, 6]
    it.close()
    del it
    got, _ = drain(follower(tmp_path, batch_size=3))
    assert got == [4, 5, 6, 7, 8, 9, 10]
    assert len(got) == len(set(got))


def test_open_event_spanning_a_commit_is_neither_lost_nor_doubled(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    # Event 1 is open (no PROCTITLE yet); event 2 after it is complete.
    append(log, [*event_lines(1, proctitle=False), *event_lines(2)])
    fol = follower(tmp_path, timeout=3600.0)
    it = fol.batches(follow=True)
    batch = next(it)
    assert seqs(batch) == [2]
    batch.commit()
    it.close()  # stopped (or killed) with event 1 still open
    state = json.loads((tmp_path / "state" / "auditd.json").read_text())
    assert state["offset"] == 0  # resume at the open event's first line
    assert len(state["delivered"]) == 1
    append(log, [event_lines(1)[-1], *event_lines(3)])
    got, _ = drain(follower(tmp_path, timeout=3600.0))
    assert sorted(got) == [1, 3]  # 2 is not delivered again
    full = [e for b in drain(follower(tmp_path))[1] for e in b.events]
    assert full == []


def test_rotation_while_running(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    append(log, [x for s in (1, 2) for x in event_lines(s)])
    fol = follower(tmp_path)
    it = fol.batches(follow=True)
    got: list[int] = []
    b = next(it)
    got += seqs(b)
    b.commit()
    # auditd rotates: the old file gets one more event, is renamed, a new file starts.
    append(log, event_lines(3))
    os.rename(log, tmp_path / "audit.log.1")
    append(log, event_lines(4))
    while len(got) < 4:
        b = next(it)
        got += seqs(b)
        b.commit()
    fol.stop()
    assert list(it) == []
    assert got == [1, 2, 3, 4]
    state = json.loads((tmp_path / "state" / "auditd.json").read_text())
    assert state["ino"] == log.stat().st_ino


def test_rotation_while_stopped(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    append(log, [x for s in (1, 2) for x in event_lines(s)])
    assert drain(follower(tmp_path))[0] == [1, 2]
    append(log, event_lines(3))
    os.rename(log, tmp_path / "audit.log.1")
    append(log, event_lines(4))
    append(tmp_path / "audit.log.1.gz", ["not read"])
    assert drain(follower(tmp_path))[0] == [3, 4]


def test_two_rotations_while_stopped_read_in_order(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    append(log, event_lines(1))
    assert drain(follower(tmp_path))[0] == [1]
    append(log, event_lines(2))
    os.rename(log, tmp_path / "audit.log.1")
    append(log, event_lines(3))
    os.rename(tmp_path / "audit.log.1", tmp_path / "audit.log.2")
    os.rename(log, tmp_path / "audit.log.1")
    st2 = (tmp_path / "audit.log.2").stat()
    os.utime(tmp_path / "audit.log.1", ns=(st2.st_mtime_ns + 10**9, st2.st_mtime_ns + 10**9))
    append(log, event_lines(4))
    assert drain(follower(tmp_path))[0] == [2, 3, 4]


def test_copytruncate_starts_over(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    append(log, [x for s in (1, 2, 3) for x in event_lines(s)])
    assert drain(follower(tmp_path))[0] == [1, 2, 3]
    with log.open("w"):
        pass  # truncated in place
    append(log, event_lines(4))
    assert drain(follower(tmp_path))[0] == [4]


def test_garbage_and_oversized_lines_go_to_errors(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    with log.open("wb") as f:
        f.write(("\n".join(event_lines(1)) + "\n").encode())
        f.write(b"\x00\xffgarbage\n")
        f.write(b"type=EXECVE msg=audit(1700000000.002:2): argc=1 a0=" + b"41" * 400_000 + b"\n")
        f.write(("\n".join(event_lines(3)) + "\n").encode())
    got, batches = drain(follower(tmp_path, max_line_bytes=4096))
    assert got == [1, 3]
    errors = [e for b in batches for e in b.errors]
    assert len(errors) == 2
    assert all(len(e.raw) <= 4096 for e in errors)
    # Not quarantined twice after a restart.
    assert [e for b in drain(follower(tmp_path))[1] for e in b.errors] == []


def test_lost_events_are_reported_with_the_batch(tmp_path: Path) -> None:
    append(tmp_path / "audit.log", [x for s in (1, 2, 10) for x in event_lines(s)])
    _, batches = drain(follower(tmp_path))
    assert sum(b.lost for b in batches) == 7


def test_restart_without_commit_redelivers_everything(tmp_path: Path) -> None:
    append(tmp_path / "audit.log", [x for s in (1, 2) for x in event_lines(s)])
    assert drain(follower(tmp_path), commit=False)[0] == [1, 2]
    assert drain(follower(tmp_path))[0] == [1, 2]


def test_late_commit_does_not_move_back(tmp_path: Path) -> None:
    append(tmp_path / "audit.log", [x for s in range(1, 5) for x in event_lines(s)])
    batches: list[Batch] = list(follower(tmp_path, batch_size=2).batches(follow=False))
    batches[1].commit()
    batches[0].commit()  # late: ignored
    assert drain(follower(tmp_path))[0] == []


def test_start_at_end(tmp_path: Path) -> None:
    append(tmp_path / "audit.log", event_lines(1))
    fol = follower(tmp_path, start_at_end=True)
    it = fol.batches(follow=True)
    # The follower opens the file on the first next(); the writer comes a little later.
    writer = threading.Timer(0.3, append, (tmp_path / "audit.log", event_lines(2)))
    writer.start()
    try:
        b = next(it)
    finally:
        writer.join()
    assert seqs(b) == [2]
    it.close()


def test_missing_file_waits_then_reads(tmp_path: Path) -> None:
    fol = follower(tmp_path)
    it = fol.batches(follow=True)
    fol_gen = iter(it)
    append(tmp_path / "audit.log", event_lines(1))
    assert seqs(next(fol_gen)) == [1]
    fol.stop()
    assert list(fol_gen) == []


def test_corrupt_state_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "auditd.json").write_text("{nope")
    with pytest.raises(RuntimeError, match="unreadable"):
        next(follower(tmp_path).batches(follow=False))


def test_copytruncate_while_running(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    append(log, [x for s in (1, 2) for x in event_lines(s)])
    fol = follower(tmp_path)
    it = fol.batches(follow=True)
    b = next(it)
    assert seqs(b) == [1, 2]
    b.commit()
    with log.open("w"):
        pass
    append(log, event_lines(3))
    b = next(it)
    assert seqs(b) == [3]
    b.commit()
    fol.stop()
    assert list(it) == []
    assert drain(follower(tmp_path))[0] == []
