"""``auditkeep serve`` over a store created with ``init --encrypt``: keys, ingest, search
and the search projection work, and no file of the data directory holds event plaintext."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from http_server_support import Server, event

MARKS = ("ZvServerActor31", "ZvServerReason32", "ZvServerMeta33")


def test_serve_an_encrypted_store(tmp_path: Path) -> None:
    data = tmp_path / "data"
    init = subprocess.run(
        [sys.executable, "-m", "auditkeep.cli.main", "init", "--encrypt", "--data", str(data)],
        capture_output=True, text=True, timeout=120,
    )
    assert init.returncode == 0 and "aes-256-gcm" in init.stdout, init.stderr
    srv = Server(data)
    try:
        key = srv.key("default", "ingest,read")  # API keys are documents: sealed too
        evs = [event(i, actor={"id": MARKS[0] if i % 2 else f"u{i}", "type": "user"}, reason=MARKS[1],
                     metadata={"k": MARKS[2]}) for i in range(10)]
        with srv.client(key) as c:
            r = c.post("/v1/events", json=evs)
            assert r.status_code in (200, 201), r.text
            r = c.get("/v1/events", params={"actor": MARKS[0]})
            assert r.status_code == 200 and len(r.json()["events"]) == 5, r.text
            r = c.get("/v1/events", params={"text": MARKS[1].lower(), "action": "doc.read"})
            assert len(r.json()["events"]) == 10, r.text
            r = c.get("/v1/events", params={"text": MARKS[1][:5] + "*"})
            assert r.status_code == 422 and "prefix" in r.text
        deadline = time.monotonic() + 10
        found: list[str] = []
        while time.monotonic() < deadline:
            found = [f"{p.name}:{m}" for p in data.iterdir() if p.is_file()
                     for m in MARKS if m.encode() in p.read_bytes()]
            if not found:
                break
            time.sleep(0.5)
        assert found == []
    finally:
        srv.stop()
    assert "Traceback" not in srv.output(), srv.output()
