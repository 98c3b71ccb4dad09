"""Nothing lost: the server goes down, the application is killed (SIGKILL) and restarted,
the server comes back — every spooled event arrives exactly once and the log verifies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import msgspec
from sdk_server import AuditServer

from auditkeep.client import Client
from auditkeep.client.framing import read_frame
from auditkeep.client.spool import SpoolBatch

APP = Path(__file__).with_name("sdk_app.py")


def run_app(server: AuditServer, key: str, spool: Path, action: str, count: int, ids: Path, mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(APP), server.url, key, str(spool), action, str(count), str(ids), mode],
        stdout=subprocess.PIPE,
        text=True,
    )


def spooled_ids(spool: Path) -> list[str]:
    """Every event id in the spool's segments, read without consuming anything."""
    out: list[str] = []
    for seg in sorted(spool.glob("slot-*/*.seg")):
        fd = os.open(seg, os.O_RDONLY)
        try:
            size, offset = os.fstat(fd).st_size, 0
            while (got := read_frame(fd, offset, size)) is not None:
                batch = msgspec.json.decode(got.payload, type=SpoolBatch)
                out.extend(msgspec.json.decode(e)["id"] for e in batch.events)
                offset = got.end
        finally:
            os.close(fd)
    return out


def read_ids(path: Path) -> list[str]:
    return [line for line in path.read_text().split("\n") if len(line) == 36]


def logged_ids(client: Client, action: str) -> list[str]:
    out: list[str] = []
    cursor = None
    while True:
        page = client.search(action=action, order="oldest", limit=1000, cursor=cursor)
        out.extend(r.event.id or "" for r in page.items)
        if page.next_cursor is None:
            return out
        cursor = page.next_cursor


def test_server_down_app_killed_restarted_server_back(tmp_path: Path) -> None:
    server = AuditServer(tmp_path / "data")
    key = server.create_key("t", "ingest,read")
    spool = tmp_path / "spool"
    action = "sdk.outage"
    server.start()
    try:
        # 1. Normal delivery.
        first = run_app(server, key, spool, action, 50, tmp_path / "ids-a", "deliver")
        first.communicate(timeout=60)
        assert first.returncode == 0
        delivered_a = read_ids(tmp_path / "ids-a")

        # 2. The server goes away; the app records, spools, and is killed mid-stream.
        server.stop()
        app = run_app(server, key, spool, action, 200, tmp_path / "ids-b", "spool-and-hang")
        try:
            assert app.stdout is not None
            assert app.stdout.readline().strip() == "SPOOLED"
            with open(tmp_path / "ids-b") as f:  # let it record (and spool) a little more
                while len(f.read().split()) < 30:
                    pass
        finally:
            app.send_signal(signal.SIGKILL)
            app.wait(30)
            if app.stdout is not None:
                app.stdout.close()
        recorded_b = read_ids(tmp_path / "ids-b")
        durable_b = spooled_ids(spool)
        assert set(recorded_b[:200]) <= set(durable_b)  # all acknowledged as spooled
        assert set(durable_b) <= set(recorded_b)
        assert len(durable_b) == len(set(durable_b))

        # 3. The server is back; the restarted app drains the old spool, then its own events.
        server.start()
        third = run_app(server, key, spool, action, 30, tmp_path / "ids-c", "deliver")
        third.communicate(timeout=60)
        assert third.returncode == 0
        delivered_c = read_ids(tmp_path / "ids-c")
        assert spooled_ids(spool) == []

        with Client(server.url, key) as reader:
            in_log = logged_ids(reader, action)
        counts = Counter(in_log)
        assert max(counts.values()) == 1  # exactly once
        assert set(in_log) == set(delivered_a) | set(durable_b) | set(delivered_c)
    finally:
        server.stop()
    report = server.verify()
    assert report["ok"] is True
