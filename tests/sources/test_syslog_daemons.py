"""Syslog from real senders into ``auditkeep serve``, counting every message:

* rsyslog (with the project's own ``deploy/syslog/rsyslog-auditkeep.conf``) sending over
  TLS at a steady rate while ``serve`` is stopped with SIGTERM and started again: every
  message rsyslog sent is stored once (none cut at shutdown, rsyslog's resend after the
  reconnect merged), and no message text starts with the separator space;
* a burst of UDP datagrams far larger than the receive buffer: received + reported
  dropped == sent, as ``source.dropped`` events and as a metric.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from daemons_support import RSYSLOGD, Rsyslog, SteadySender, SyslogNg, syslog_ng_binary
from sources_e2e_support import Server, free_port
from test_e2e_collect_syslog import _self_signed

# CI installs rsyslog (.ci/run) and must run these; elsewhere they skip without it.
needs_rsyslog = pytest.mark.skipif(
    not Path(RSYSLOGD).exists() and os.environ.get("CI") != "true",
    reason="rsyslogd is not installed (apt-get install rsyslog rsyslog-gnutls)",
)


# CI unpacks syslog-ng (.ci/run) and must run these; elsewhere they skip without it.
needs_syslog_ng = pytest.mark.skipif(
    syslog_ng_binary() is None and os.environ.get("CI") != "true",
    reason="syslog-ng is not available (apt-get download syslog-ng-core; see .ci/run)",
)


def _dropped(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["action"] == "source.dropped"]


@needs_rsyslog
def test_rsyslog_over_tls_through_a_server_restart(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    port = free_port()
    env = {"AUDITKEEP_SYSLOG_TENANT": "hosts", "AUDITKEEP_SYSLOG_TLS_CERT": str(cert),
           "AUDITKEEP_SYSLOG_TLS_KEY": str(key)}
    args = ("--syslog", f"tls://127.0.0.1:{port}")
    data = tmp_path / "data"
    first = Server(data, env, args)
    rsyslog = Rsyslog(tmp_path / "rsyslog", port, ca=cert)
    count, rate = 1500, 500.0
    sender = SteadySender(rsyslog.input_port, count, rate, "rstls")
    second: Server | None = None
    try:
        sender.start()
        first.wait_for("hosts", 300, timeout=30, action="syslog.app")
        assert first.stop() in (0, -15)  # SIGTERM while rsyslog writes 500 messages a second
        assert "Traceback" not in first.output(), first.output()
        second = Server(data, env, args)
        second.admin = first.admin  # the admin key is printed on the first start only
        sender.join(30)
        assert sender.sent == count
        got = second.wait_for("hosts", count, timeout=60, action="syslog.app")
        time.sleep(1.5)  # a message stored twice would show now
        got = second.search("hosts", action="syslog.app")
        everything = second.search("hosts")
        with second.client() as c:
            quarantined = c.get("/v1/quarantine", params={"tenant": "hosts"}).json()["items"]
    finally:
        rsyslog.stop()
        if second is not None:
            second.stop()
        first.stop()
    seqs = sorted(int(m.group(1)) for e in got if (m := re.fullmatch(r"rstls seq=(\d+)", e["reason"])))
    # The text is exactly what the application wrote: no separator space in front of it.
    assert len(seqs) == len(got), [e["reason"] for e in got if not re.fullmatch(r"rstls seq=\d+", e["reason"])][:3]
    lost = sum(int(e["metadata"]["count"]) for e in _dropped(everything))
    missing = sorted(set(range(count)) - set(seqs))
    # Every message rsyslog sent is stored, or counted in a source.dropped event ...
    assert len(missing) <= lost, f"{len(missing)} messages lost without a trace: {missing[:10]}\n{rsyslog.output()}"
    # ... and with the drain at shutdown none is cut, and none is stored twice.
    assert missing == [] and lost == 0
    twice = [e for e in got if seqs.count(int(e["reason"].split("=")[1])) > 1]
    assert len(seqs) == len(set(seqs)) == count, f"stored twice: {twice}"
    assert quarantined == []
    assert {e["source"]["service"] for e in got} == {"app"} and {e["metadata"]["syslog"]["procid"] for e in got} == {"77"}


@needs_syslog_ng
def test_syslog_ng_over_tls_through_a_server_restart(tmp_path: Path) -> None:
    """syslog-ng with the project's deploy/syslog/syslog-ng-auditkeep.conf (its TLS variant):
    RFC 5424 with octet counting, every message stored once through a restart of serve."""
    cert, key = _self_signed(tmp_path)
    port = free_port()
    env = {"AUDITKEEP_SYSLOG_TENANT": "hosts", "AUDITKEEP_SYSLOG_TLS_CERT": str(cert),
           "AUDITKEEP_SYSLOG_TLS_KEY": str(key)}
    args = ("--syslog", f"tls://127.0.0.1:{port}")
    data = tmp_path / "data"
    first = Server(data, env, args)
    daemon: SyslogNg | None = None
    count, rate = 1000, 400.0
    second: Server | None = None
    try:
        daemon = SyslogNg(tmp_path / "syslog-ng", port, ca=cert)
        sender = SteadySender(daemon.input_port, count, rate, "sngtls")
        sender.start()
        first.wait_for("hosts", 200, timeout=30, action="syslog.app")
        assert first.stop() in (0, -15)  # SIGTERM while syslog-ng writes
        assert "Traceback" not in first.output(), first.output()
        second = Server(data, env, args)
        second.admin = first.admin
        sender.join(30)
        assert sender.sent == count
        got = second.wait_for("hosts", count, timeout=60, action="syslog.app")
        time.sleep(1.5)  # a message stored twice would show now
        got = second.search("hosts", action="syslog.app")
        everything = second.search("hosts")
    finally:
        if daemon is not None:
            daemon.stop()
        if second is not None:
            second.stop()
        first.stop()
    seqs = sorted(int(m.group(1)) for e in got if (m := re.fullmatch(r"sngtls seq=(\d+)", e["reason"])))
    assert len(seqs) == len(got), [e["reason"] for e in got if not re.fullmatch(r"sngtls seq=\d+", e["reason"])][:3]
    lost = sum(int(e["metadata"]["count"]) for e in _dropped(everything))
    missing = sorted(set(range(count)) - set(seqs))
    assert missing == [] and lost == 0, f"{len(missing)} missing: {missing[:10]}\n{daemon and daemon.output()}"
    assert len(seqs) == len(set(seqs)) == count
    assert {e["source"]["service"] for e in got} == {"app"}


def test_udp_burst_every_datagram_is_stored_or_counted(tmp_path: Path) -> None:
    """The settings file gives ``syslog`` as the comma-separated string the docs show, and a
    receive buffer far too small for the burst."""
    udp, tcp = free_port(socket.SOCK_DGRAM), free_port()
    data = tmp_path / "data"
    data.parent.mkdir(parents=True, exist_ok=True)
    conf = tmp_path / "auditkeep.toml"
    conf.write_text(
        f'syslog = "udp://127.0.0.1:{udp},tcp://127.0.0.1:{tcp}"\n'
        'syslog_tenant = "burst"\n'
        "syslog_udp_buffer = 16384\n"
    )
    srv = Server(data, {"AUDITKEEP_CONFIG": str(conf)})
    sent = 6000
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for i in range(sent):
                s.sendto(f"<14>1 2024-05-01T12:00:00.{i:06d}Z web1 burst - - - datagram {i}".encode(), ("127.0.0.1", udp))
        deadline = time.monotonic() + 60
        while True:
            got = srv.search("burst", action="syslog.burst")
            dropped = _dropped(srv.search("burst"))
            lost = sum(int(e["metadata"]["count"]) for e in dropped)
            if len(got) + lost >= sent or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        with srv.client() as c:
            metrics = c.get("/metrics").text
        with socket.create_connection(("127.0.0.1", tcp)) as c:  # the TCP listener of the same string
            c.sendall(b"<14>1 2024-05-01T13:00:00Z web1 burst - - - over tcp\n")
        assert len(srv.wait_for("burst", len(got) + 1, action="syslog.burst")) == len(got) + 1
    finally:
        assert srv.stop(signal.SIGTERM) in (0, -15)
    assert "Traceback" not in srv.output(), srv.output()
    texts = {e["reason"] for e in got}
    assert len(texts) == len(got)  # nothing stored twice
    print("udp burst:", sent, "sent,", len(got), "stored,", lost, "dropped")
    assert lost > 0, "the burst should have overflowed a 16 KiB receive buffer"
    assert len(got) + lost == sent, (len(got), lost)
    causes = {e["metadata"]["cause"] for e in dropped}
    assert any("receive buffer" in c for c in causes), causes
    kernel = re.search(r'auditkeep_syslog_lost_messages_total\{cause="kernel"\} (\d+)', metrics)
    assert kernel is not None and int(kernel.group(1)) == lost, metrics
    assert f'auditkeep_source_lost_records_total{{source="syslog"}} {lost}.0' in metrics
