"""Full-queue and full-spool policies, close and atexit, with the server unreachable.

"Unreachable" is a port on 127.0.0.1 where nothing listens: connections are refused, as
when the server is down.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from auditkeep.client import Client, ClientClosedError, Undelivered
from auditkeep.client.spool import Spool


def dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def wait_for(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


EV: dict[str, Any] = {"actor": {"id": "alice"}, "action": "doc.read"}


def test_drop_newest_counts_and_calls_back() -> None:
    dropped: list[Undelivered] = []
    client = Client(dead_url(), "ak_x_y", batch_size=5, max_queue=10, flush_interval=0.01,
                    on_full="drop_newest", on_drop=dropped.append)  # fmt: skip
    try:
        client.record(**EV)
        wait_for(lambda: client.stats().failing)
        ids = [client.record(**EV) for _ in range(30)]
        st = client.stats()
        assert st.dropped == len(dropped) > 0
        assert st.queued <= 10
        assert {d.reason for d in dropped} == {"queue_full"}
        assert [d.id for d in dropped] == ids[-len(dropped):]  # the newest go
        assert all(b'"doc.read"' in d.event for d in dropped)
    finally:
        client.close(timeout=0)


def test_block_waits_then_drops_when_spool_is_full(tmp_path: Path) -> None:
    dropped: list[Undelivered] = []
    client = Client(dead_url(), "ak_x_y", spool_dir=tmp_path, spool_max_bytes=2000, batch_size=5,
                    max_queue=10, flush_interval=0.01, block_timeout=0.3, on_drop=dropped.append)  # fmt: skip
    try:
        slow = 0.0
        for _ in range(200):
            t0 = time.monotonic()
            client.record(**EV)  # never raises, however full
            slow = max(slow, time.monotonic() - t0)
            if dropped:
                break
        assert dropped and dropped[0].reason == "timeout"
        assert slow >= 0.3
        st = client.stats()
        assert st.spooled > 0 and st.spool_bytes <= 2000 and st.dropped == len(dropped)
    finally:
        client.close(timeout=0)


def test_block_resumes_when_room_appears(tmp_path: Path) -> None:
    # With room in the spool, a full memory queue drains to disk and nobody is dropped.
    dropped: list[Undelivered] = []
    client = Client(dead_url(), "ak_x_y", spool_dir=tmp_path, batch_size=5, max_queue=10,
                    flush_interval=0.01, block_timeout=5.0, on_drop=dropped.append)  # fmt: skip
    try:
        for _ in range(300):
            client.record(**EV)
        wait_for(lambda: client.stats().spooled == 300)
        assert dropped == [] and client.stats().queued == 0
    finally:
        client.close(timeout=0)


def test_close_spools_what_is_queued_and_a_new_client_finds_it(tmp_path: Path) -> None:
    url = dead_url()
    client = Client(url, "ak_x_y", spool_dir=tmp_path, flush_interval=60)
    for _ in range(7):
        client.record(**EV)
    assert client.flush(timeout=0.2) is False  # cannot be delivered
    client.close(timeout=0.5)
    with pytest.raises(ClientClosedError):
        client.record(**EV)
    client.close()  # idempotent
    spool = Spool(tmp_path, 1 << 20)
    try:
        got = []
        while (rec := spool.peek()) is not None:
            got.extend(rec.events)
            spool.ack(rec)
        assert len(got) == 7
    finally:
        spool.close()


def test_without_a_spool_close_reports_what_is_lost() -> None:
    dropped: list[Undelivered] = []
    client = Client(dead_url(), "ak_x_y", flush_interval=60, on_drop=dropped.append)
    for _ in range(3):
        client.record(**EV)
    client.close(timeout=0.2)
    assert [d.reason for d in dropped] == ["closed"] * 3
    assert client.stats().dropped == 3


def test_callback_errors_stay_in_the_sdk() -> None:
    def explode(_: Undelivered) -> None:
        raise RuntimeError("callback bug")

    client = Client(dead_url(), "ak_x_y", max_queue=1, flush_interval=60, on_full="drop_newest", on_drop=explode)
    try:
        client.record(**EV)
        client.record(**EV)  # dropped; the callback raises; record() does not
        assert client.stats().dropped == 1
    finally:
        client.close(timeout=0)


def test_atexit_spools_events_of_an_unclosed_client(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import auditkeep
        c = auditkeep.Client({dead_url()!r}, "ak_x_y", spool_dir={str(tmp_path)!r},
                             flush_interval=60, close_timeout=0.5)
        for i in range(5):
            c.record(actor={{"id": "a"}}, action="exit.test")
        del c  # dropped without close(); the interpreter then exits normally
        import gc; gc.collect()
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=30)
    spool = Spool(tmp_path, 1 << 20)
    try:
        rec = spool.peek()
        assert rec is not None and len(rec.events) == 5
    finally:
        spool.close()


def test_a_forked_child_is_told_to_make_its_own_client(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import os, sys
        import auditkeep
        from auditkeep.client import ClientClosedError
        c = auditkeep.Client({dead_url()!r}, "ak_x_y", spool_dir={str(tmp_path)!r}, close_timeout=0.2)
        pid = os.fork()
        if pid == 0:
            try:
                c.record(actor={{"id": "a"}}, action="fork.test")
            except ClientClosedError as exc:
                os._exit(0 if "forked" in str(exc) else 3)
            os._exit(4)
        _, status = os.waitpid(pid, 0)
        c.record(actor={{"id": "a"}}, action="fork.test")  # the parent's client still works
        c.close()
        sys.exit(os.waitstatus_to_exitcode(status))
        """
    )
    done = subprocess.run([sys.executable, "-W", "ignore::DeprecationWarning", "-c", script], timeout=30)
    assert done.returncode == 0


def test_async_block_waits_without_blocking_the_loop() -> None:
    import asyncio

    from auditkeep.client import AsyncClient

    async def main() -> tuple[list[Undelivered], int]:
        dropped: list[Undelivered] = []
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        client = AsyncClient(dead_url(), "ak_x_y", batch_size=2, max_queue=4, flush_interval=0.01,
                             block_timeout=0.3, on_drop=dropped.append)  # fmt: skip
        task = asyncio.create_task(ticker())
        try:
            while not dropped:
                await client.record(**EV)
            assert await client.flush(timeout=0.1) is False
        finally:
            task.cancel()
            await client.aclose(timeout=0)
        return dropped, ticks

    dropped, ticks = asyncio.run(main())
    assert dropped[0].reason == "timeout"
    assert ticks >= 10  # the loop kept running while record() waited for room
