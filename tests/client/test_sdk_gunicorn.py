"""``LazyClient`` under real gunicorn: 2 worker processes of 6 threads each, the app
imported once in the master (``--preload``) and forked. One client (one spool slot) per
process that records, whatever the threads; every event delivered."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sdk_server import AuditServer, free_port

APP = '''
import os
import threading
import auditkeep

log = auditkeep.LazyClient(os.environ["AK_URL"], os.environ["AK_KEY"], spool_dir=os.environ["AK_SPOOL"])
assert not log.started  # nothing made at import, in the master

def app(environ, start_response):
    n = environ["PATH_INFO"].rsplit("/", 1)[-1]
    log.record(action="page.view", actor={"id": "visitor"}, resource={"type": "page", "id": n},
               metadata={"pid": os.getpid(), "thread": threading.get_ident()})
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]
'''


@pytest.fixture
def server(tmp_path: Path) -> Iterator[AuditServer]:
    srv = AuditServer(tmp_path / "server" / "data")
    srv.start()
    yield srv
    srv.stop()


def test_one_client_per_worker_process_under_threads(tmp_path: Path, server: AuditServer) -> None:
    key = server.create_key("web", "ingest,read")
    (tmp_path / "auditapp.py").write_text(APP)
    spool = tmp_path / "spool"
    port = free_port()
    gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent)) or "gunicorn"
    env = {**os.environ, "AK_URL": server.url, "AK_KEY": key, "AK_SPOOL": str(spool), "PYTHONPATH": str(tmp_path)}
    out = (tmp_path / "gunicorn.log").open("wb")
    proc = subprocess.Popen(
        [gunicorn, "--preload", "--workers", "2", "--threads", "6", "--worker-class", "gthread",
         "--bind", f"127.0.0.1:{port}", "--graceful-timeout", "20", "--no-control-socket", "auditapp:app"],
        cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
    )
    requests = 120
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url + "/warmup", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "gunicorn.log").read_text()
                time.sleep(0.1)

        def hit(i: int) -> str:
            with httpx.Client(timeout=30) as c:
                r = c.get(f"{url}/page/{i}")
            assert r.status_code == 200
            return r.text

        with ThreadPoolExecutor(24) as pool:
            pids = set(pool.map(hit, range(requests)))
    finally:
        proc.send_signal(signal.SIGTERM)  # workers exit; each client delivers what it holds
        proc.wait(60)
        out.close()
    log = (tmp_path / "gunicorn.log").read_text()
    assert "Traceback" not in log, log
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as c:
        deadline = time.monotonic() + 30
        while True:
            events = c.get("/v1/events", params={"tenant": "web", "action": "page.view", "limit": 1000}).json()["events"]
            if len(events) >= requests + 1 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    recorded_pids = {e["event"]["metadata"]["pid"] for e in events}
    # (the warm-up request may have been sent more than once: a timeout under load is retried)
    pages = sorted(e["event"]["resource"]["id"] for e in events if e["event"]["resource"]["id"] != "warmup")
    assert pages == sorted(str(i) for i in range(requests))  # each once
    assert len(pids) >= 1 and recorded_pids == {int(p) for p in pids} | recorded_pids
    assert len({e["event"]["metadata"]["thread"] for e in events}) > len(recorded_pids)  # many threads...
    slots = sorted(p.name for p in spool.iterdir() if p.name.startswith("slot-"))
    assert len(slots) == len(recorded_pids) <= 2, slots  # ... one client (and spool slot) per process
