"""Realistic synthetic audit events for benchmarks (~500 bytes each, varied)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

ACTIONS = [
    ("user.login", "authentication"),
    ("user.logout", "authentication"),
    ("user.password.change", "configuration"),
    ("db.query", "data_access"),
    ("db.update", "data_change"),
    ("k8s.pods.create", "data_change"),
    ("k8s.secrets.get", "data_access"),
    ("k8s.pods.exec", "admin"),
    ("file.read", "data_access"),
    ("role.grant", "authorization"),
    ("api.request", "data_access"),
    ("config.update", "configuration"),
]
OUTCOMES = ["success"] * 8 + ["failure", "denied"]
SERVICES = ["billing", "payments", "auth", "inventory", "search", "reports"]
METHODS = ["GET", "POST", "PUT", "DELETE"]
WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo", "lima", "mike"]


BASE_NS = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z


def make_event(rng: random.Random, i: int, actors: int = 2000, spacing_ns: int = 1_000_000) -> dict[str, Any]:
    action, category = rng.choice(ACTIONS)
    actor = rng.randrange(actors)
    t = BASE_NS + i * spacing_ns + rng.randrange(spacing_ns)
    secs, ns = divmod(t, 1_000_000_000)
    import time as _t

    stamp = _t.strftime("%Y-%m-%dT%H:%M:%S", _t.gmtime(secs)) + f".{ns:09d}Z"
    return {
        "time": stamp,
        "actor": {
            "id": f"user-{actor}",
            "type": "user" if actor % 10 else "service",
            "name": f"User Number {actor}",
            "ip": f"10.{actor % 256}.{(actor // 256) % 256}.{rng.randrange(1, 255)}",
            "session_id": f"s-{rng.getrandbits(48):012x}",
        },
        "action": action,
        "category": category,
        "resource": {"type": rng.choice(["table", "pod", "bucket", "document"]), "id": f"r-{rng.randrange(50000)}"},
        "outcome": rng.choice(OUTCOMES),
        "source": {
            "service": rng.choice(SERVICES),
            "host": f"node-{rng.randrange(40)}",
            "request_id": f"req-{rng.getrandbits(64):016x}",
        },
        "metadata": {
            "http": {"method": rng.choice(METHODS), "path": f"/api/v1/{rng.choice(WORDS)}/{rng.randrange(1000)}", "status": rng.choice([200, 201, 204, 400, 403, 500])},
            "latency_ms": rng.randrange(1, 2000),
            "note": " ".join(rng.choice(WORDS) for _ in range(4)),
        },
    }


def events(n: int, seed: int = 7, actors: int = 2000, span_days: float = 30.0) -> Iterator[dict[str, Any]]:
    """``n`` events spread evenly over ``span_days`` from 2026-01-01."""
    rng = random.Random(seed)
    spacing = max(1, int(span_days * 86400e9 / max(n, 1)))
    for i in range(n):
        yield make_event(rng, i, actors, spacing)
