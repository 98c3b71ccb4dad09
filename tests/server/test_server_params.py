"""Query and path parameters out of what the stores hold: a 4xx naming the parameter, on both
stores, and the tenant's search keeps working afterwards."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from http_server_support import Server, event

BAD_TIMES = ["9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "99999999999d"]


def _refused(r: httpx.Response, name: str) -> None:
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    body = r.json()
    assert body.get("field") == name or name in body["error"], body


@pytest.fixture(scope="module")
def c(store_server: Server) -> Iterator[httpx.Client]:
    key = store_server.key("t1", "ingest,read")
    with store_server.client(key) as client:
        r = client.post("/v1/events", json=[event(0, metadata={"a": "1"})])
        assert r.status_code == 200, r.text
        yield client


@pytest.mark.parametrize("name", ["since", "until", "received_since", "received_until"])
@pytest.mark.parametrize("value", BAD_TIMES)
def test_time_parameters_out_of_range(c: httpx.Client, name: str, value: str) -> None:
    _refused(c.get("/v1/events", params={name: value}), name)


def test_an_event_dated_past_2262_is_refused_and_search_keeps_working(c: httpx.Client) -> None:
    r = c.post("/v1/events", json=[event(1, time="9999-12-31T23:59:59.999999999Z")])
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "time"
    r = c.post("/v1/events", json=[event(1, time="0001-01-01T00:00:00Z")])
    assert r.status_code == 422 and r.json()["field"] == "time"
    r = c.get("/v1/events", params={"action": "doc.read"})
    assert r.status_code == 200 and len(r.json()["events"]) == 1


def test_other_parameters(c: httpx.Client) -> None:
    _refused(c.get("/v1/checkpoints/9223372036854775808"), "tree_size")
    _refused(c.get("/v1/checkpoints/\u00b2"), "tree_size")
    _refused(c.get("/v1/events?metadata=a%00=1"), "metadata")
    _refused(c.get("/v1/events?text=a%00b"), "text")
    _refused(c.get("/v1/events", params={"limit": "9" * 30}), "limit")
    _refused(c.get("/v1/proofs/inclusion", params={"index": "92233720368547758080"}), "index")
    assert c.get("/v1/events", params={"metadata": "a=1\x00"}).json()["events"] == []
    assert len(c.get("/v1/events", params={"since": "1h", "metadata": "a=1"}).json()["events"]) == 1
