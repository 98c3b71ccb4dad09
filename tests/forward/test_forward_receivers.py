"""``auditkeep serve`` forwarding to real receivers started here — Splunk HEC and a signed
webhook (HTTPS, checked against the receiver's CA), syslog over TLS, NATS JetStream (a private nats-server) — while they are
stopped and started again mid-stream and the server itself is killed with SIGKILL and
restarted: every event arrives at every receiver (at least once), and a dead target holds up
nobody."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest
from http_server_support import Server, event
from receivers import HttpReceiver, NatsServer, SyslogReceiver, free_port, self_signed

TOKEN = "hec-token-for-tests"
SECRET = "webhook-secret-for-tests"


def _config(tmp: Path, http: HttpReceiver, syslog: SyslogReceiver, nats: NatsServer, ca: Path) -> str:
    common = 'tenants = ["fw"]\nactions = ["doc.*"]\nbatch = 100\nretry_max_delay = 0.5\n'
    return f"""
[[forward]]
name = "hec"
type = "splunk_hec"
url = "https://127.0.0.1:{http.port}/hec"
ca_file = "{ca}"
token_env = "FW_HEC_TOKEN"
format = "ocsf"
{common}
[[forward]]
name = "hook"
type = "webhook"
url = "https://127.0.0.1:{http.port}/hook"
ca_file = "{ca}"
secret_env = "FW_HOOK_SECRET"
{common}
[[forward]]
name = "syslog"
type = "syslog"
address = "127.0.0.1:{syslog.port}"
ca_file = "{ca}"
format = "cef"
confirm_after = 0.5
{common}
[[forward]]
name = "nats"
type = "nats"
servers = "{nats.url}"
subject = "fwtest.events"
stream = "FWTEST"
timeout = 2.0
{common}
[[forward]]
name = "file"
type = "file"
path = "{tmp / 'forwarded.jsonl'}"
{common}
[[forward]]
name = "dead"
type = "webhook"
url = "http://127.0.0.1:{free_port()}/nobody"
secret_env = "FW_HOOK_SECRET"
timeout = 1.0
{common}
"""


def _ingest(srv: Server, key: str, start: int, n: int) -> list[str]:
    ids: list[str] = []
    with srv.client(key) as c:
        for s in range(start, start + n, 100):
            r = c.post("/v1/events", json=[event(i) for i in range(s, min(start + n, s + 100))])
            assert r.status_code == 200, r.text
            ids += [x["id"] for x in r.json()["receipts"]]
    return ids


def _metric(text: str, name: str, target: str) -> float:
    m = re.search(rf'^{name}(?:_total)?{{target="{target}"}} ([0-9.e+]+)$', text, re.M)
    assert m is not None, (name, target)
    return float(m.group(1))


@pytest.mark.skipif(not NatsServer.available(), reason="nats-server is not installed (.ci/run installs it)")
def test_every_event_reaches_every_receiver_through_outages_and_kill_9(tmp_path: Path) -> None:
    cert, key_file = self_signed(tmp_path)
    http = HttpReceiver(TOKEN, SECRET, tls=(cert, key_file))
    syslog = SyslogReceiver(cert, key_file)
    nats = NatsServer(tmp_path / "nats")
    http.start()
    syslog.start()
    nats.start()
    (tmp_path / "auditkeep.toml").write_text(_config(tmp_path, http, syslog, nats, cert))
    env = {"FW_HEC_TOKEN": TOKEN, "FW_HOOK_SECRET": SECRET}
    servers: list[Server] = []
    try:
        srv = Server(tmp_path / "data", env=env)
        servers.append(srv)
        admin = srv.admin
        key = srv.key("fw", "ingest,read")
        want = _ingest(srv, key, 0, 300)
        # every receiver goes away mid-stream (NATS killed with SIGKILL), events keep coming
        http.stop()
        syslog.stop()
        nats.kill()
        want += _ingest(srv, key, 300, 300)
        time.sleep(1.5)
        http.start()
        syslog.start()
        nats.start()
        want += _ingest(srv, key, 600, 300)
        # the server dies with SIGKILL, mid-stream; a new one resumes at the saved cursors
        srv.stop(signal.SIGKILL)
        srv = Server(tmp_path / "data", env=env)
        servers.append(srv)
        want += _ingest(srv, key, 900, 300)

        expected = set(want)
        assert len(expected) == 1200

        def counts() -> dict[str, set[str]]:
            import json

            lines = (tmp_path / "forwarded.jsonl").read_text().splitlines()
            return {
                "hec": set(http.ids["/hec"]),
                "hook": set(http.ids["/hook"]),
                "syslog": set(syslog.ids),
                "nats": set(nats.ids("FWTEST")),
                "file": {json.loads(x)["event"]["id"] for x in lines},
            }

        deadline = time.monotonic() + 120
        got = counts()
        while any(v != expected for v in got.values()) and time.monotonic() < deadline:
            time.sleep(0.5)
            got = counts()
        for name, ids in got.items():
            assert ids == expected, (name, len(expected - ids), len(ids - expected))
        assert not http.bad  # every HEC request had its token, every webhook its valid signature
        assert len(nats.ids("FWTEST")) == 1200  # JetStream dropped repeats by Nats-Msg-Id
        with srv.client(admin) as c:
            text = c.get("/metrics").text
        for name in ("hec", "hook", "syslog", "nats", "file"):
            assert _metric(text, "auditkeep_forward_lag", name) == 0
        assert _metric(text, "auditkeep_forward_failures", "dead") > 0
        assert _metric(text, "auditkeep_forward_lag", "dead") > 0
    finally:
        for s in servers:
            s.stop()
        http.stop()
        syslog.stop()
        nats.kill()
    for s in servers[1:]:
        assert "Traceback" not in s.output(), s.output()
