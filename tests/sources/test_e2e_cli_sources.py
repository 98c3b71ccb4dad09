"""``auditkeep ingest --format`` for CloudTrail, auditd and Kubernetes files with the real
samples and with malformed input, and ``auditkeep quarantine list/show/retry/drop``, over a
real data directory. Most runs call the CLI's ``main()`` in this process (a subprocess spends
about a second importing auditkeep); every command also runs as a real process below
(``process=True``)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
import sources_e2e_support

from auditkeep.config import load_settings, open_ledger


def cli(*args: str, data: Path, process: bool = False, **kw: Any) -> Any:
    return sources_e2e_support.cli(*args, data=data, in_process=not process, **kw)


def _ok(*args: str, data: Path, **kw: Any) -> str:
    got = cli(*args, data=data, **kw)
    assert got.returncode == 0, got.stderr.decode()
    assert b"Traceback" not in got.stderr, got.stderr.decode()
    return got.stdout.decode()


def _ingest(path: Path, fmt: str, tenant: str, data: Path, **kw: Any) -> dict[str, Any]:
    return dict(json.loads(_ok("ingest", str(path), "--format", fmt, "--tenant", tenant, "--json", data=data, **kw)))


def _quarantine(data: Path, *args: str, process: bool = False) -> list[dict[str, Any]]:
    text = _ok("quarantine", "list", "--json", "--limit", "1000", *args, data=data, process=process)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _events(data: Path, tenant: str) -> list[dict[str, Any]]:
    lg = open_ledger(load_settings(overrides={"data": str(data)}), create=False, background=False)
    try:
        size = lg.head(tenant).size
        return [msgspec_builtins(r.event) for r in lg.records(0, size, tenant)]
    finally:
        lg.close()


def msgspec_builtins(ev: Any) -> dict[str, Any]:
    import msgspec

    out: dict[str, Any] = msgspec.to_builtins(ev)
    return out


def test_cloudtrail_plain_gzip_and_lines(tmp_path: Path, testdata: Path) -> None:
    data = tmp_path / "data"
    src = testdata / "cloudtrail" / "ec2_proxy_s3_exfiltration_2020-09-14011940.json"
    records = [json.loads(line) for line in src.read_text().splitlines() if line.strip()]  # JSON Lines
    plain = _ingest(src, "cloudtrail", "aws", data)
    assert plain["events"] == len(records) and plain["quarantined"] == 0
    zipped = tmp_path / "trail.json.gz"  # as CloudTrail delivers: a gzip'd {"Records": [...]}
    zipped.write_bytes(gzip.compress(json.dumps({"Records": records}).encode()))
    again = _ingest(zipped, "cloudtrail", "aws", data)
    # Same eventIDs: the gzip copy is the same events, stored once, and the summary says so.
    assert again["events"] == len(records) and again["tree_size"] == plain["tree_size"]
    assert (again["stored"], again["existing"]) == (0, len(records))
    text = _ok("ingest", str(src), "--format", "cloudtrail", "--tenant", "aws", data=data)
    assert "ingested 0 new event(s)" in text and f"{len(records)} event(s) were already in the log" in text
    lines = tmp_path / "trail.jsonl"
    lines.write_text("\n".join(json.dumps(r) for r in records[:5]) + "\n" + '{"eventSource": "s3.amazonaws.com", "eventN\n')
    got = _ingest(lines, "cloudtrail", "other", data)
    assert got["events"] == 5 and got["quarantined"] == 1
    events = _events(data, "aws")
    assert {e["action"].split(".")[0] for e in events} == {"aws"}
    assert all("cloudtrail" in e["metadata"] for e in events)
    q = _quarantine(data, "--source", "cloudtrail")
    assert len(q) == 1 and q[0]["tenant"] == "other" and q[0]["reason_class"] == "malformed"


def test_auditd_files_and_serial_gaps(tmp_path: Path, testdata: Path) -> None:
    data = tmp_path / "data"
    d = testdata / "auditd"
    total = 0
    # (out_of_order.log holds the events of normal.log reordered: the same ids, stored once)
    for f in [d / "go-libaudit" / "normal.log", d / "sh_arp_cache_2020-11-10074812.log", d / "go-libaudit" / "out_of_order.log"]:
        got = _ingest(f, "auditd", "host", data)
        assert got["events"] > 0 and got["quarantined"] == 0, f
        if f.name != "out_of_order.log":
            total += got["events"]
    # A file's serial gaps are not lost events: it may be an excerpt. go-libaudit's
    # lost_messages.log misses 9 serials; importing it records no source.dropped event.
    got = cli("ingest", str(d / "go-libaudit" / "lost_messages.log"), "--format", "auditd", "--tenant", "lost", "--json", data=data)
    assert got.returncode == 0, got.stderr.decode()
    assert json.loads(got.stdout)["lost"] == 0
    assert "9 serial number(s) missing" in got.stderr.decode() and "not recorded as lost" in got.stderr.decode()
    events = _events(data, "lost")
    assert events and not [e for e in events if e["action"] == "source.dropped"]
    # OTRF's excerpt of a host's log, with serials 2,389,867 apart: nothing lost either
    otrf = _ingest(d / "sh_binary_padding_dd_2020-11-10081941.log", "auditd", "otrf", data)
    assert otrf["lost"] == 0 and not [e for e in _events(data, "otrf") if e["action"] == "source.dropped"]
    host = _events(data, "host")
    assert len(host) == total and all(e["action"].startswith("auditd.") for e in host)
    _ok("verify", data=data, process=True)


def test_auditd_ingest_names_no_host_unless_told(tmp_path: Path, testdata: Path) -> None:
    """Lines without node= get no source.host (never this machine's name), or --host."""
    import socket

    data = tmp_path / "data"
    log = testdata / "auditd" / "go-libaudit" / "normal.log"
    _ingest(log, "auditd", "plain", data)
    plain = _events(data, "plain")
    assert plain and all("host" not in (e.get("source") or {}) for e in plain)
    assert socket.gethostname() not in json.dumps(plain)
    _ok("ingest", str(log), "--format", "auditd", "--tenant", "named", "--host", "web-7", data=data)
    named = _events(data, "named")
    assert [e["source"]["host"] for e in named] == ["web-7"] * len(plain)
    # the event ids depend on the machine named, not on the machine that imports
    assert {e["id"] for e in named}.isdisjoint({e["id"] for e in plain})


def test_kubernetes_file_malformed_lines_and_quarantine_commands(tmp_path: Path, testdata: Path) -> None:
    data = tmp_path / "data"
    good = (testdata / "kubernetes" / "audit2rbac-demo.log").read_bytes()
    n_good = len([x for x in good.splitlines() if x.strip()])
    bad_lines = [
        b'{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"a1","verb":"ge',  # truncated JSON
        json.dumps({"kind": "Event", "apiVersion": "audit.k8s.io/v9", "verb": "get", "user": {"username": "u"}}).encode(),
        bytes(range(1, 256)).replace(b"\n", b"") * 3,  # binary garbage
        b'{"kind":"Event","apiVersion":"audit.k8s.io/v1","verb":"get","user":{"username":"u"},"x":"'
        + b"a" * 10_000_000 + b'"}',  # a 10 MB line
    ]
    log = tmp_path / "audit.log"
    log.write_bytes(good + b"\n".join(bad_lines) + b"\n")
    got = _ingest(log, "kubernetes", "k8s", data)
    assert got["events"] == n_good and got["quarantined"] == 4

    records = _quarantine(data, "--source", "kubernetes")
    assert len(records) == 4 and {r["tenant"] for r in records} == {"k8s"}
    assert {r["reason_class"] for r in records} == {"malformed", "unsupported", "too_large"}
    big = next(r for r in records if r["size"] > 1024 * 1024)
    assert big["truncated"] and "more than" in big["reason"]
    # show: the bytes exactly as received
    trunc = next(r for r in records if r["size"] == len(bad_lines[0]))
    shown = cli("quarantine", "show", trunc["id"], data=data)
    assert shown.returncode == 0 and shown.stdout == bad_lines[0]
    assert trunc["reason"].encode() in shown.stderr
    as_json = json.loads(_ok("quarantine", "show", trunc["id"][:10], "--json", data=data))
    assert as_json["id"] == trunc["id"] and as_json["raw"]

    # retry without a fix: still refused, still there (exit 2), attempts counted
    again = cli("quarantine", "retry", trunc["id"], data=data, process=True)
    assert again.returncode == 2 and b"still refused" in again.stdout
    assert next(r for r in _quarantine(data) if r["id"] == trunc["id"])["attempts"] == 1
    # drop
    _ok("quarantine", "drop", trunc["id"], data=data, process=True)
    assert trunc["id"] not in {r["id"] for r in _quarantine(data)}
    missing = cli("quarantine", "show", "0123456789abcdef", data=data)
    assert missing.returncode != 0 and b"no quarantined record" in missing.stderr
    assert cli("quarantine", "retry", data=data).returncode == 2  # neither ids nor --all


def test_retry_after_a_fix_ingests_and_leaves_quarantine(tmp_path: Path, testdata: Path) -> None:
    """Events the ledger refused under a tight limit go in once the limit is raised."""
    data = tmp_path / "data"
    log = testdata / "kubernetes" / "audit2rbac-demo.log"
    n = len([x for x in log.read_bytes().splitlines() if x.strip()])
    tight = {"AUDITKEEP_LIMITS_MAX_EVENT_BYTES": "1500"}
    got = _ingest(log, "kubernetes", "k8s", data, extra_env=tight)
    assert got["quarantined"] > 0 and got["events"] + got["quarantined"] == n
    refused = _quarantine(data)
    assert all("refused by the ledger" in r["reason"] and r["context"] == {"form": "event"} for r in refused)
    still = cli("quarantine", "retry", "--all", data=data, extra_env=tight)
    assert still.returncode == 2
    out = _ok("quarantine", "retry", "--all", "--json", data=data)
    results = [json.loads(line) for line in out.splitlines()]
    assert len(results) == got["quarantined"] and all(r["ok"] for r in results)
    assert _quarantine(data) == []
    assert len(_events(data, "k8s")) == n
    _ok("verify", data=data)


@pytest.mark.parametrize("fmt", ["otlp-json", "syslog"])
def test_other_formats_read_files(tmp_path: Path, fmt: str) -> None:
    data = tmp_path / "data"
    path = tmp_path / "input"
    if fmt == "otlp-json":
        rec = {"attributes": [{"key": "audit.action", "value": {"stringValue": "doc.read"}},
                              {"key": "audit.actor.id", "value": {"stringValue": "alice"}}]}
        path.write_text(json.dumps({"resourceLogs": [{"scopeLogs": [{"logRecords": [rec, {"attributes": []}]}]}]}))
    else:
        path.write_bytes(b"<34>1 2024-05-01T12:00:00Z web1 su - ID47 - 'su root' failed\n<13>Oct 11 22:14:15 host app: hi\n<999>bad\n")
    got = _ingest(path, fmt, "t", data)
    assert got["events"] == (1 if fmt == "otlp-json" else 2) and got["quarantined"] == 1


def test_quarantined_bytes_pass_the_secret_detectors(tmp_path: Path) -> None:
    """A record refused for its form keeps no secret in plain text: not in the quarantine,
    not in log.db, not in its WAL."""
    data = tmp_path / "data"
    secret = "hunter2-0f9e8d7c"
    bad = tmp_path / "bad.log"
    bad.write_bytes(
        b'{"kind":"Event","apiVersion":"audit.k8s.io/v1","requestURI":"/login?password=' + secret.encode()
        + b'","headers":{"Authorization":"Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"\n'
    )
    got = _ingest(bad, "kubernetes", "k8s", data, process=True)
    assert got["quarantined"] == 1
    [rec] = _quarantine(data, process=True)
    shown = cli("quarantine", "show", rec["id"], data=data, process=True).stdout
    assert b"password=[REDACTED:password]" in shown and secret.encode() not in shown
    assert b"eyJzdWIiOiIxIn0" not in shown
    for name in ("log.db", "log.db-wal"):
        path = data / name
        if path.exists():
            assert secret.encode() not in path.read_bytes(), name
