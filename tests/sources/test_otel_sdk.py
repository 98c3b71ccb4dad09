"""The OpenTelemetry SDK's own OTLP/HTTP log exporter (protobuf, and gzip) into a real
``auditkeep serve``: records are stored, refusals are quarantined, and every refusal of
the attribute convention gets the same class (``invalid``)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from sources_e2e_support import Server

GOOD = {"audit.action": "invoice.approve", "audit.actor.id": "alice", "audit.outcome": "success"}
# Each breaks the convention in another way; all are the sender's field values, read fine.
REFUSED = [
    {"audit.action": "invoice.approve", "audit.actor.id": "alice", "audit.outcome": "maybe"},
    {"audit.actor.id": "alice", "audit.outcome": "success"},  # no audit.action
    {"audit.action": "invoice.approve"},  # no actor
    {"audit.action": "not dotted", "audit.actor.id": "alice"},
    {"audit.action": "invoice.approve", "audit.actor.id": "alice", "audit.actor.ip": "nowhere"},
    {"audit.action": "invoice.approve", "audit.actor.id": "alice", "audit.id": "not-a-uuid"},
    {"audit.action": "invoice.approve", "audit.actor.id": "alice", "audit.category": "misc"},
]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path / "data")
    yield srv
    srv.stop()
    assert "Traceback" not in srv.output(), srv.output()


def _provider(server: Server, key: str, compression: Compression) -> LoggerProvider:
    provider = LoggerProvider(resource=Resource.create({"service.name": "billing", "host.name": "app-1"}))
    exporter = OTLPLogExporter(
        endpoint=server.url + "/v1/logs", headers={"Authorization": f"Bearer {key}"}, compression=compression
    )
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    return provider


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip], ids=["plain", "gzip"])
def test_sdk_exporter_records_and_refusals(server: Server, compression: Compression) -> None:
    key = server.key("otel", "ingest")
    provider = _provider(server, key, compression)
    logger = provider.get_logger("billing.audit", "1.0")
    try:
        for i in range(5):
            attrs: dict[str, Any] = {**GOOD, "invoice": i}
            logger.emit(timestamp=time.time_ns(), body=f"approved invoice {i}", attributes=attrs)
        for bad in REFUSED:
            logger.emit(timestamp=time.time_ns(), body="refused", attributes=bad)
        assert provider.force_flush(10_000)
    finally:
        provider.shutdown()
    got = server.wait_for("otel", 5)
    assert len(got) == 5 and {e["actor"]["id"] for e in got} == {"alice"}
    assert {e["source"]["service"] for e in got} == {"billing"}
    assert sorted(e["metadata"]["otel"]["attributes"]["invoice"] for e in got) == [0, 1, 2, 3, 4]
    with server.client() as admin:
        items = admin.get("/v1/quarantine", params={"tenant": "otel", "source": "otlp"}).json()["items"]
        metrics = admin.get("/metrics").text
    assert len(items) == len(REFUSED)
    reasons = {i["reason"]: i["reason_class"] for i in items}
    assert any("audit.outcome 'maybe'" in r for r in reasons) and any("audit.action is missing" in r for r in reasons)
    assert set(reasons.values()) == {"invalid"}, reasons
    assert f'auditkeep_quarantined_records_total{{reason="invalid",source="otlp"}} {len(REFUSED)}.0' in metrics
