"""A tenant without rules: the runner passes over its events without opening them, and keeps
the same clock (first event, watermark, latest time) as an engine that processed each one,
so rules added later start from the same history."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from auditkeep.alerts.engine import Engine
from auditkeep.alerts.runner import CURSOR, open_leaf
from auditkeep.alerts.service import AlertService
from auditkeep.alerts.state import is_own_event
from auditkeep.config import load_settings
from auditkeep.ledger import Ledger
from auditkeep.model.event import Submitter
from auditkeep.model.timefmt import format_rfc3339, parse_rfc3339

T0 = parse_rfc3339("2024-05-01T12:00:00Z")
MIN = 60 * 1_000_000_000


def ev(minute: float | None, actor: str, action: str = "doc.read", **extra: Any) -> dict[str, Any]:
    e: dict[str, Any] = {"actor": {"id": actor, "type": "user", "ip": "203.0.113.7"}, "action": action, **extra}
    if minute is not None:
        e["time"] = format_rfc3339(T0 + int(minute * MIN))
    return e


def clock_of(snapshot: bytes) -> dict[str, Any]:
    doc = msgspec.json.decode(snapshot)
    return {k: doc[k] for k in ("processed", "watermarks", "last_time", "first_time")}


def test_no_rules_keeps_the_clock_of_a_full_pass_and_rules_added_later_see_it(
    make_ledger: Callable[..., Ledger], tmp_path: Path
) -> None:
    lg = make_ledger(background=False)
    rules = tmp_path / "rules"
    rules.mkdir()
    settings = load_settings(env={}, overrides={"data": str(tmp_path / "data"), "rules_dir": str(rules)})
    settings.alerts.rules_interval = 0.01  # rules read again at the next step after this
    # out of order, one without a time of its own, and an alert event of the runner's own
    lg.append([ev(5, "a"), ev(2, "b"), ev(None, "c"), ev(9, "d"), ev(7, "e")], "acme")
    lg.append_own([ev(30, "runner", "auditkeep.alert.fired")], "acme", Submitter("server"))
    lg.append([ev(8, "f")], "acme")

    runner = AlertService(lg, settings).make_runner()
    try:
        while runner.step() > 0:
            pass
        engine = runner.tenants["acme"].engine
        assert engine.idle
        size = lg.head("acme").size
        assert runner.tenants["acme"].position == size == 7

        # what the engine would hold had it opened and processed every event
        full = Engine()
        for entry in lg.store.entries(lg.tenant_id("acme"), 0, size):
            event = open_leaf(entry)
            if not is_own_event(str(event["action"])):
                full.process("acme", entry.index, event)
        assert clock_of(engine.snapshot()) == clock_of(full.snapshot())
        assert clock_of(engine.snapshot())["first_time"] == {"acme": T0 + 5 * MIN}
        assert clock_of(engine.snapshot())["last_time"] == {"acme": T0 + 8 * MIN}  # not the own event's 30
        assert runner.events == 6 and engine.stats.events == 6

        # a rule added now evaluates the events after it, the engine no longer idle
        (rules / "r.yml").write_text("id: any-read\nname: Any read\nmatch: {action: doc.read}\n")
        lg.append([ev(10, "g")], "acme")
        time.sleep(0.02)
        while runner.step() > 0:
            runner.flush()
        assert not runner.tenants["acme"].engine.idle
        assert runner.alerts == 1 and runner.tenants["acme"].engine.stats.evaluations == 1
        runner.close()
        position, state = lg.store.cursor(CURSOR, lg.tenant_id("acme"))
        assert position == lg.head("acme").size
        assert state is not None and clock_of(state)["first_time"] == {"acme": T0 + 5 * MIN}
    finally:
        runner.close()
