"""The on-disk spool: order, restart, bounds, torn writes, damage, slots."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from auditkeep.client.framing import HEADER_SIZE, MAGIC, frame, read_frame
from auditkeep.client.spool import Spool


def ev(i: int, pad: int = 0) -> bytes:
    return b'{"n":%d,"p":"%s"}' % (i, b"x" * pad)


def drain(spool: Spool) -> list[bytes]:
    out: list[bytes] = []
    while (rec := spool.peek()) is not None:
        out.extend(rec.events)
        spool.ack(rec)
    return out


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("slot-*/*.seg"))


def test_fifo_with_tenants(tmp_path: Path) -> None:
    s = Spool(tmp_path, 1 << 20)
    assert s.empty() and s.peek() is None
    assert s.append(None, [ev(1), ev(2)])
    assert s.append("acme", [ev(3)])
    first = s.peek()
    assert first is not None and first.tenant is None and first.events == [ev(1), ev(2)]
    assert s.peek() is first  # the same record until acknowledged
    s.ack(first)
    second = s.peek()
    assert second is not None and second.tenant == "acme" and second.events == [ev(3)]
    s.ack(second)
    assert s.empty() and s.peek() is None and s.pending_bytes == 0
    assert s.spooled_events == 3
    s.close()
    assert segments(tmp_path) == []  # delivered segments are deleted


def test_reached_tracks_flush_positions(tmp_path: Path) -> None:
    s = Spool(tmp_path, 1 << 20)
    s.append(None, [ev(1)])
    after_first = s.tail()
    s.append(None, [ev(2)])
    after_second = s.tail()
    assert not s.reached(after_first)
    rec = s.peek()
    assert rec is not None
    s.ack(rec)
    assert s.reached(after_first) and not s.reached(after_second)
    drain(s)
    assert s.reached(after_second)
    s.close()


def test_undelivered_batches_survive_a_restart(tmp_path: Path) -> None:
    s = Spool(tmp_path, 1 << 20)
    for i in range(5):
        assert s.append(None, [ev(i)])
    rec = s.peek()
    assert rec is not None
    s.ack(rec)  # delivered before the "crash"
    s.close()
    s2 = Spool(tmp_path, 1 << 20)
    assert drain(s2) == [ev(i) for i in range(1, 5)]
    s2.append(None, [ev(9)])
    s2.close()
    s3 = Spool(tmp_path, 1 << 20)
    assert drain(s3) == [ev(9)]
    s3.close()


def test_without_close_the_cursor_may_lag_but_nothing_is_lost(tmp_path: Path) -> None:
    s = Spool(tmp_path, 1 << 20)
    for i in range(3):
        s.append(None, [ev(i)])
    rec = s.peek()
    assert rec is not None
    s.ack(rec)
    # No close(): the process dies. The lock goes with it; the files stay.
    os.close(s._own.lock_fd)
    s2 = Spool(tmp_path, 1 << 20)
    got = drain(s2)
    assert got[-2:] == [ev(1), ev(2)] and len(got) in (2, 3)
    s2.close()


def test_full_spool_refuses_whole_batches(tmp_path: Path) -> None:
    s = Spool(tmp_path, 2000, segment_bytes=700)
    accepted = 0
    while s.append(None, [ev(accepted, pad=100)]):
        accepted += 1
    assert 5 <= accepted < 20
    assert s.pending_bytes <= 2000
    assert len(segments(tmp_path)) > 1  # rolled over
    # Delivering makes room again.
    rec = s.peek()
    assert rec is not None
    s.ack(rec)
    got = [rec.events[0]]
    assert s.append(None, [ev(99, pad=100)])
    got += drain(s)
    assert got == [ev(i, pad=100) for i in range(accepted)] + [ev(99, pad=100)]
    s.close()
    assert segments(tmp_path) == []


def test_torn_write_is_skipped_not_misread(tmp_path: Path) -> None:
    s = Spool(tmp_path, 1 << 20)
    for i in range(3):
        s.append(None, [ev(i, pad=50)])
    s.close()
    (seg,) = segments(tmp_path)
    size = seg.stat().st_size
    os.truncate(seg, size - 20)  # the last record was cut short by a crash
    s2 = Spool(tmp_path, 1 << 20)
    assert drain(s2) == [ev(0, pad=50), ev(1, pad=50)]
    assert s2.corrupt_bytes > 0
    # The spool goes on working after the damage.
    s2.append(None, [ev(7)])
    assert drain(s2) == [ev(7)]
    s2.close()


def test_torn_header_is_skipped(tmp_path: Path) -> None:
    s = Spool(tmp_path, 1 << 20)
    s.append(None, [ev(0)])
    s.close()
    (seg,) = segments(tmp_path)
    with seg.open("ab") as f:
        f.write(MAGIC + b"\x10")  # a crash after five bytes of the next record
    s2 = Spool(tmp_path, 1 << 20)
    assert drain(s2) == [ev(0)]
    assert s2.corrupt_bytes == len(MAGIC) + 1
    s2.close()


def test_damage_in_the_middle_skips_only_that_record(tmp_path: Path) -> None:
    s = Spool(tmp_path, 1 << 20)
    for i in range(3):
        s.append(None, [ev(i, pad=30)])
    s.close()
    (seg,) = segments(tmp_path)
    data = bytearray(seg.read_bytes())
    one = len(data) // 3
    data[one + HEADER_SIZE + 5] ^= 0xFF  # flip a bit in the second record's payload
    seg.write_bytes(bytes(data))
    s2 = Spool(tmp_path, 1 << 20)
    assert drain(s2) == [ev(0, pad=30), ev(2, pad=30)]
    assert s2.corrupt_bytes == one
    s2.close()


def test_damaged_length_does_not_mislead_the_reader(tmp_path: Path) -> None:
    s = Spool(tmp_path, 1 << 20)
    for i in range(3):
        s.append(None, [ev(i)])
    s.close()
    (seg,) = segments(tmp_path)
    data = bytearray(seg.read_bytes())
    data[4] = 0x01  # the first record's length now points into the second record
    seg.write_bytes(bytes(data))
    s2 = Spool(tmp_path, 1 << 20)
    assert drain(s2) == [ev(1), ev(2)]
    s2.close()


def test_read_frame_scans_past_garbage(tmp_path: Path) -> None:
    path = tmp_path / "f"
    good = frame(b"payload")
    path.write_bytes(b"garbage" + MAGIC + b"junkjunkjunk" + good)
    fd = os.open(path, os.O_RDONLY)
    try:
        got = read_frame(fd, 0, path.stat().st_size)
        assert got is not None and got.payload == b"payload" and got.skipped == 7 + 4 + 12
        assert read_frame(fd, got.end, path.stat().st_size) is None
    finally:
        os.close(fd)


def test_damaged_cursor_means_resend_not_loss(tmp_path: Path) -> None:
    s = Spool(tmp_path, 1 << 20)
    s.append(None, [ev(0)])
    s.append(None, [ev(1)])
    rec = s.peek()
    assert rec is not None
    s.ack(rec)
    s.close()
    (cursor,) = tmp_path.glob("slot-*/cursor")
    cursor.write_bytes(b"\x00" * 5)
    s2 = Spool(tmp_path, 1 << 20)
    assert drain(s2) == [ev(0), ev(1)]
    s2.close()


def test_each_live_process_gets_its_own_slot_and_orphans_are_adopted(tmp_path: Path) -> None:
    a = Spool(tmp_path, 1 << 20)
    b = Spool(tmp_path, 1 << 20)  # another process on the same directory
    assert a._own.path != b._own.path
    a.append(None, [ev(1)])
    b.append(None, [ev(2)])
    b.close()  # b's process ends with a batch undelivered
    a.close()
    c = Spool(tmp_path, 1 << 20)  # takes slot-0 and adopts slot-1
    c.append(None, [ev(3)])
    got = drain(c)
    assert sorted(got) == [ev(1), ev(2), ev(3)]
    assert got[-1] == ev(3)  # the adopted batches go first: they are older
    c.close()


@pytest.mark.parametrize("max_bytes", [64, 10])
def test_batch_larger_than_the_spool_is_refused(tmp_path: Path, max_bytes: int) -> None:
    s = Spool(tmp_path, max_bytes)
    assert not s.append(None, [ev(1, pad=100)])
    assert s.empty()
    s.close()
