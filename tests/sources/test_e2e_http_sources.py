"""Sources over HTTP against a real server: the Kubernetes audit webhook with the real
samples, OTLP/HTTP (protobuf, JSON, gzip), malformed input of every kind, the capture
policy and redaction on SDK events, the quarantine listing and its metrics."""

from __future__ import annotations

import copy
import gzip
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as pb_service
from opentelemetry.proto.common.v1 import common_pb2 as pb_common
from opentelemetry.proto.logs.v1 import logs_pb2 as pb_logs
from opentelemetry.proto.resource.v1 import resource_pb2 as pb_resource
from sources_e2e_support import Server

POLICY = """
capture:
  rules:
    - name: noise
      level: none
      actions: ["noise.*"]
    - name: secrets-without-content
      level: metadata
      sources: [kubernetes]
      actions: ["k8s.secrets.*"]
redaction:
  fields:
    - {path: metadata.customer.phone, action: mask, keep_last: 4}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("e2e-http")
    policy = root / "policy.yaml"
    policy.write_text(POLICY)
    srv = Server(
        root / "data",
        {"AUDITKEEP_POLICY_FILE": str(policy), "AUDITKEEP_KUBERNETES_STAGE_TIMEOUT": "1.5"},
    )
    yield srv
    assert srv.stop() in (0, -15)
    assert "Traceback" not in srv.output(), srv.output()


def _lines(path: Path) -> list[bytes]:
    return [line for line in path.read_bytes().splitlines() if line.strip()]


def _event_list(items: list[Any]) -> dict[str, Any]:
    return {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": items}


def _falco_items(testdata: Path) -> list[Any]:
    items = []
    for f in sorted((testdata / "kubernetes" / "falco-traces").glob("*.json")):
        for line in _lines(f):
            items.append(json.loads(line))
    return items


# --------------------------------------------------------------------------- Kubernetes


def test_webhook_falco_and_audit2rbac(server: Server, testdata: Path) -> None:
    key = server.key("k8s", "ingest")
    falco = _falco_items(testdata)
    rbac = [json.loads(x) for x in _lines(testdata / "kubernetes" / "audit2rbac-demo.log")]
    with server.client(key) as c:
        r = c.post("/v1/sources/kubernetes", params={"cluster": "demo"}, json=_event_list(falco))
        assert r.status_code == 200, r.text
        first = r.json()
        r = c.post("/v1/sources/kubernetes", params={"cluster": "demo"}, json=_event_list(rbac))
        assert r.status_code == 200, r.text
        second = r.json()
    assert first["tenant"] == "k8s"
    # Every item is accounted for: appended, held for its final stage, dropped by the policy or quarantined.
    assert first["accepted"] + first["held"] + first["dropped"] + len(first["quarantined"]) == len(falco)
    reasons = " | ".join(first["reasons"])
    assert "kind 0 is not Event" in reasons  # fal_01_003.json, a deliberately broken trace
    assert "already exists with different content" in reasons  # two edited copies of one request
    assert first["held"] == 2  # two exec/attach traces that stop at ResponseStarted
    assert second["accepted"] == len(rbac) and not second["quarantined"]

    # The held stages are released after the stage timeout, marked as incomplete.
    got = server.wait_for("k8s", first["accepted"] + 2 + len(rbac), timeout=20)
    assert len(got) == first["accepted"] + 2 + len(rbac)
    incomplete = [e for e in got if e["metadata"].get("final_stage_missing")]
    assert len(incomplete) == 2 and {e["action"] for e in incomplete} <= {"k8s.pods.exec", "k8s.pods.attach"}

    # Searchable, with the native event kept whole under metadata.k8s.
    exec_line = json.loads(_lines(testdata / "kubernetes" / "falco-traces" / "exec_pod.json")[0])
    hits = server.search("k8s", action="k8s.pods.exec")
    native = [e for e in hits if e["metadata"]["k8s"]["auditID"] == exec_line["auditID"]]
    assert native and native[0]["metadata"]["k8s"]["requestURI"] == exec_line["requestURI"]
    assert native[0]["source"]["host"] == "demo"
    listing = server.search("k8s", actor="system:admin")
    assert len(listing) >= len([x for x in rbac if x["user"]["username"] == "system:admin"])

    # The API server retries a batch it is unsure of: nothing is stored twice.
    before = len(server.search("k8s"))
    with server.client(key) as c:
        again = c.post("/v1/sources/kubernetes", params={"cluster": "demo"}, json=_event_list(rbac)).json()
    assert [x["index"] for x in again["receipts"]] == [x["index"] for x in second["receipts"]]
    assert len(server.search("k8s")) == before


def test_webhook_stage_merging_and_policy(server: Server, testdata: Path) -> None:
    key = server.key("stages", "ingest")
    base = json.loads(_lines(testdata / "kubernetes" / "audit2rbac-demo.log")[0])
    received = {**copy.deepcopy(base), "stage": "RequestReceived", "auditID": "11111111-2222-4333-8444-555555555555"}
    received.pop("responseStatus", None)
    complete = {**copy.deepcopy(base), "auditID": received["auditID"]}
    secret = {**copy.deepcopy(base), "auditID": "21111111-2222-4333-8444-555555555555",
              "objectRef": {"resource": "secrets", "namespace": "default", "name": "db", "apiVersion": "v1"},
              "verb": "get", "responseObject": {"kind": "Secret", "data": {"password": "c2VjcmV0"}}}
    with server.client(key) as c:
        r1 = c.post("/v1/sources/kubernetes", json=_event_list([received])).json()
        assert (r1["accepted"], r1["held"]) == (0, 1)
        r2 = c.post("/v1/sources/kubernetes", json=_event_list([complete, secret])).json()
        assert (r2["accepted"], r2["held"]) == (2, 0)
        # A single Event (not a list) is accepted too.
        single = {**copy.deepcopy(base), "auditID": "31111111-2222-4333-8444-555555555555"}
        assert c.post("/v1/sources/kubernetes", json=single).json()["accepted"] == 1
    got = server.wait_for("stages", 3)
    merged = [e for e in got if e["source"]["request_id"] == received["auditID"]]
    assert len(merged) == 1 and merged[0]["metadata"]["k8s"]["stage"] == "ResponseComplete"
    # The policy's metadata level removed the secret's response body before hashing.
    sec = next(e for e in got if e["action"] == "k8s.secrets.get")
    assert "responseObject" not in sec["metadata"]["k8s"]
    assert "metadata.k8s.responseObject" in sec["metadata"]["_dropped"]


def test_webhook_malformed_input(server: Server) -> None:
    key = server.key("bad", "ingest")
    with server.client(key) as c:
        cases = {
            "truncated": b'{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[{"kind":"Ev',
            "wrong api": json.dumps({"kind": "EventList", "apiVersion": "audit.k8s.io/v2", "items": []}).encode(),
            "garbage": bytes(range(256)) * 4,
        }
        ids = []
        for name, body in cases.items():
            r = c.post("/v1/sources/kubernetes", content=body, headers={"Content-Type": "application/json"})
            assert r.status_code == 400, (name, r.text)
            assert r.json()["quarantined"], name
            ids += r.json()["quarantined"]
        # A 10 MB event inside a list: the list is read, that item is quarantined.
        huge = {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "auditID": "x", "verb": "get",
                "user": {"username": "u"}, "requestObject": {"blob": "a" * 10_000_000}}
        body = json.dumps(_event_list([huge])).encode()
        r = c.post("/v1/sources/kubernetes", content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 200, r.text
        assert r.json()["accepted"] == 0 and "more than" in r.json()["reasons"][0]
        # Past the body limit: refused with 413 before it is read, never a 500.
        r = c.post("/v1/sources/kubernetes", content=b"x" * (11 * 1024 * 1024),
                   headers={"Content-Type": "application/json"})
        assert r.status_code == 413
        listed = c.get("/v1/quarantine", params={"tenant": "bad", "source": "kubernetes"})
        assert listed.status_code == 403  # listing needs the admin scope
    with server.client() as admin:
        items = admin.get("/v1/quarantine", params={"tenant": "bad", "source": "kubernetes"}).json()
    assert {i["id"] for i in items["items"]} >= set(ids)
    classes = {i["reason_class"] for i in items["items"]}
    assert {"malformed", "unsupported", "too_large"} <= classes
    truncated = [i for i in items["items"] if i["size"] > 1024 * 1024]
    assert truncated and all(i["truncated"] for i in truncated)


def test_webhook_auth(server: Server) -> None:
    with server.client("ak_aaaaaaaaaaaa_" + "A" * 43) as c:
        assert c.post("/v1/sources/kubernetes", json=_event_list([])).status_code == 401
    reader = server.key("k8s", "read")
    with server.client(reader) as c:
        assert c.post("/v1/sources/kubernetes", json=_event_list([])).status_code == 403


# --------------------------------------------------------------------------- OpenTelemetry


def _attr(k: str, v: str) -> pb_common.KeyValue:
    return pb_common.KeyValue(key=k, value=pb_common.AnyValue(string_value=v))


def _otlp_request(n: int, bad: int = 0, start: int = 0) -> pb_service.ExportLogsServiceRequest:
    records = []
    for i in range(start, start + n):
        records.append(pb_logs.LogRecord(
            time_unix_nano=1_700_000_000_000_000_000 + i,
            body=pb_common.AnyValue(string_value=f"login {i}"),
            attributes=[_attr("audit.action", "user.login"), _attr("audit.actor.id", f"user-{i}"),
                        _attr("audit.outcome", "success"), _attr("note", "Authorization: Bearer abcdef0123456789xyz")],
        ))
    for i in range(bad):
        records.append(pb_logs.LogRecord(body=pb_common.AnyValue(string_value=f"no action {i}"),
                                         attributes=[_attr("audit.actor.id", "x")]))
    return pb_service.ExportLogsServiceRequest(resource_logs=[pb_logs.ResourceLogs(
        resource=pb_resource.Resource(attributes=[_attr("service.name", "billing")]),
        scope_logs=[pb_logs.ScopeLogs(log_records=records)])])


def test_otlp_protobuf_json_and_gzip(server: Server) -> None:
    key = server.key("otel", "ingest")
    pb = {"Content-Type": "application/x-protobuf"}
    with server.client(key) as c:
        r = c.post("/v1/logs", content=_otlp_request(3).SerializeToString(), headers=pb)
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-protobuf")
        assert r.content == b""  # full success: the empty response
        r = c.post("/v1/logs", content=_otlp_request(2, bad=1, start=3).SerializeToString(), headers=pb)
        resp = pb_service.ExportLogsServiceResponse.FromString(r.content)
        assert r.status_code == 200 and resp.partial_success.rejected_log_records == 1
        assert "audit.action is missing" in resp.partial_success.error_message
        zipped = gzip.compress(_otlp_request(4, start=5).SerializeToString())
        r = c.post("/v1/logs", content=zipped, headers={**pb, "Content-Encoding": "gzip"})
        assert r.status_code == 200
        body = {"resourceLogs": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "api"}}]},
                                  "scopeLogs": [{"logRecords": [
                                      {"timeUnixNano": "1700000000000000000",
                                       "attributes": [{"key": "audit.action", "value": {"stringValue": "doc.read"}},
                                                      {"key": "audit.actor.id", "value": {"stringValue": "json-user"}}]},
                                      {"attributes": [{"key": "audit.action", "value": {"stringValue": "doc.read"}}]}]}]}]}
        r = c.post("/v1/logs", json=body)
        assert r.status_code == 200 and r.json()["partialSuccess"]["rejectedLogRecords"] == "1"
        # Unreadable requests: 400 with a Status in the request's encoding, and quarantined.
        r = c.post("/v1/logs", content=b"\xff\xff\xff garbage", headers=pb)
        assert r.status_code == 400 and r.headers["content-type"].startswith("application/x-protobuf")
        r = c.post("/v1/logs", content=b'{"resourceLogs": [', headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and "malformed" in r.json()["message"]
        r = c.post("/v1/logs", content=b"text", headers={"Content-Type": "text/plain"})
        assert r.status_code == 415
        # An exporter's retry of the same records stores nothing twice (ids come from the records).
        r = c.post("/v1/logs", content=_otlp_request(3).SerializeToString(), headers=pb)
        assert r.status_code == 200
    got = server.wait_for("otel", 3 + 2 + 4 + 1)
    logins = [e for e in got if e["action"] == "user.login"]
    assert len(logins) == 9 and {e["source"]["service"] for e in logins} == {"billing"}
    # Redaction applies to every source: the bearer token in an attribute is gone.
    note = logins[0]["metadata"]["otel"]["attributes"]["note"]
    assert "abcdef0123456789xyz" not in note and "[REDACTED:bearer_token]" in note
    assert "metadata.otel.attributes.note" in logins[0]["metadata"]["_redacted"]
    with server.client() as admin:
        items = admin.get("/v1/quarantine", params={"tenant": "otel"}).json()["items"]
    assert {i["source"] for i in items} == {"otlp"} and len(items) == 4


# --------------------------------------------------------------------------- SDK events


def test_sdk_events_pass_policy_and_redaction(server: Server) -> None:
    key = server.key("app", "ingest")
    events = [
        {"actor": {"id": "alice"}, "action": "invoice.approve",
         "metadata": {"customer": {"phone": "+44 20 7946 0958"}, "note": "key AKIAIOSFODNN7EXAMPLE used"}},
        {"actor": {"id": "bot"}, "action": "noise.heartbeat"},
        {"actor": {"id": "bob"}, "action": "invoice.read"},
    ]
    with server.client(key) as c:
        r = c.post("/v1/events", json=events)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["dropped"] == 1 and len(body["receipts"]) == 2  # one receipt per kept event
    got = server.wait_for("app", 2)
    assert sorted(e["action"] for e in got) == ["invoice.approve", "invoice.read"]
    approve = next(e for e in got if e["action"] == "invoice.approve")
    assert approve["metadata"]["note"] == "key [REDACTED:aws_access_key] used"
    assert approve["metadata"]["customer"]["phone"].endswith("0958")
    assert approve["metadata"]["customer"]["phone"].startswith("[REDACTED:masked]")
    assert approve["metadata"]["_redacted"] == ["metadata.customer.phone", "metadata.note"]


def test_metrics_count_sources_and_quarantine(server: Server) -> None:
    time.sleep(0.2)
    with server.client() as c:
        text = c.get("/metrics").text
    lines = [x for x in text.splitlines() if not x.startswith("#")]
    assert any(x.startswith('auditkeep_quarantined_records_total{reason="malformed",source="kubernetes"}') for x in lines)
    assert any(x.startswith('auditkeep_quarantine_records{source="otlp"}') for x in lines)
    assert any(x.startswith('auditkeep_source_events_total{source="kubernetes",tenant="k8s"}') for x in lines)
    assert any(x.startswith('auditkeep_policy_dropped_events_total{source="api"} 1.0') for x in lines)
