"""Answer classification, poison isolation by splitting, backoff with jitter, Retry-After."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import msgspec
import pytest

from auditkeep.client.backoff import Backoff, parse_retry_after
from auditkeep.client.delivery import deliver
from auditkeep.client.transport import Answer, Kind, classify


def answer(status: int, body: object = None, headers: dict[str, str] | None = None, count: int = 10) -> Answer:
    content = msgspec.json.encode(body) if body is not None else b""
    return classify(status, httpx.Headers(headers or {}), content, count)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (200, Kind.OK),
        (408, Kind.RETRY),
        (429, Kind.RETRY),
        (500, Kind.RETRY),
        (503, Kind.RETRY),
        (401, Kind.STUCK),
        (403, Kind.STUCK),
        (404, Kind.STUCK),
        (415, Kind.STUCK),
        (400, Kind.REFUSED),
        (409, Kind.REFUSED),
        (413, Kind.REFUSED),
        (422, Kind.REFUSED),
    ],
)
def test_classify(status: int, kind: Kind) -> None:
    assert answer(status).kind is kind


def test_classify_reads_retry_after_and_position() -> None:
    a = answer(429, {"error": "slow down"}, {"Retry-After": "3"})
    assert a.retry_after == 3.0 and a.detail == "slow down"
    b = answer(422, {"error": "bad", "position": 4, "field": "action", "reason": "x"})
    assert b.position == 4
    assert answer(422, {"position": 99}).position is None  # out of range: not trusted
    assert answer(422, {"position": True}).position is None
    assert answer(422, "not an object").position is None


class Server:
    """A scripted stand-in for the transport: refuses events containing b"poison"."""

    def __init__(self, fail_after: int | None = None, use_position: bool = True) -> None:
        self.requests: list[list[bytes]] = []
        self.accepted: list[bytes] = []
        self.fail_after = fail_after
        self.use_position = use_position

    def __call__(self, tenant: str | None, events: list[bytes]) -> Answer:
        self.requests.append(list(events))
        if self.fail_after is not None and len(self.requests) > self.fail_after:
            return Answer(Kind.RETRY, 503, "down", 1.0)
        for i, e in enumerate(events):
            if b"poison" in e:
                return Answer(Kind.REFUSED, 409, "conflict", None, i if self.use_position else None)
        self.accepted.extend(events)
        return Answer(Kind.OK, 200)


EVENTS = [b"e%d" % i for i in range(10)]


@pytest.mark.parametrize("use_position", [True, False])
def test_poison_events_are_isolated(use_position: bool) -> None:
    batch = [*EVENTS[:3], b"poison-1", *EVENTS[3:7], b"poison-2", *EVENTS[7:]]
    server = Server(use_position=use_position)
    out = deliver(server, None, batch)
    assert out.failure is None and out.remaining == []
    assert [e for e, _ in out.refused] == [b"poison-1", b"poison-2"]
    assert sorted(server.accepted) == sorted(EVENTS)
    assert out.delivered == len(EVENTS)
    if use_position:
        assert len(server.requests) == 3  # cut at each named position, then sent whole


def test_a_failure_mid_split_keeps_everything_not_yet_delivered() -> None:
    batch = [b"poison", *EVENTS]
    server = Server(fail_after=1, use_position=False)
    out = deliver(server, None, batch)
    assert out.failure is not None and out.failure.kind is Kind.RETRY
    assert out.delivered == 0
    assert out.remaining == batch  # in order


def test_a_lone_poison_event_is_refused() -> None:
    out = deliver(Server(), "acme", [b"poison"])
    assert [e for e, _ in out.refused] == [b"poison"] and out.delivered == 0


def test_backoff_grows_with_equal_jitter_and_resets() -> None:
    b = Backoff(base=0.1, cap=2.0, rng=random.Random(1))
    delays = [b.next_delay() for _ in range(8)]
    nominal = [min(2.0, 0.1 * 2**i) for i in range(8)]
    for d, n in zip(delays, nominal, strict=True):
        assert n / 2 <= d <= n
    assert b.next_delay(retry_after=15.0) == 15.0  # the server's word counts
    assert b.next_delay(retry_after=1e9) == 20.0  # within reason: ten times the cap
    b.reset()
    assert b.next_delay() <= 0.1


def test_parse_retry_after() -> None:
    assert parse_retry_after(None) is None
    assert parse_retry_after("") is None
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("-5") == 0.0
    assert parse_retry_after("soon") is None
    when = datetime.now(UTC) + timedelta(seconds=60)
    got = parse_retry_after(format_datetime(when, usegmt=True))
    assert got is not None and 55 <= got <= 61
