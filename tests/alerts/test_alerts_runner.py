"""The alert runner in-process over a real ledger (SQLite and PostgreSQL), a real webhook
receiver and the rule directory on disk: every rule kind end to end, replay after a crash
without duplicates, deliveries and dead letters, malformed rule files and hot reload."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from alerts_live_support import SECRET, WebhookReceiver, wait_for

from auditkeep.alerts.backtest import simulate, stored_events
from auditkeep.alerts.catalog import RuleCatalog, RuleConflict, RuleSetError
from auditkeep.alerts.runner import CURSOR, AlertRunner, open_leaf
from auditkeep.alerts.service import AlertService
from auditkeep.alerts.state import (
    ALERTS,
    DELIVERIES,
    FIRED,
    SETTLED_META,
    AlertBook,
    fired_event_id,
)
from auditkeep.config import Settings, load_settings
from auditkeep.ledger import Ledger
from auditkeep.model.timefmt import format_rfc3339, parse_rfc3339

T0 = parse_rfc3339("2024-05-01T12:00:00Z")
MIN = 60 * 1_000_000_000

RULES = """
rules:
  - id: secret-read
    name: Secret read
    match: {action: secrets.read}
  - id: brute
    name: Repeated failed logins
    kind: threshold
    match: {action: user.login, outcome: failure}
    group_by: [actor.id]
    threshold: {count: 3, window: 5m}
  - id: burst-then-success
    name: Failures then success
    kind: sequence
    group_by: [actor.id]
    window: 10m
    steps:
      - {match: {action: user.login, outcome: failure}, count: 2}
      - {match: {action: user.login, outcome: success}}
  - id: silent-host
    name: Host went silent
    kind: absence
    match: {source.service: agent}
    group_by: [source.host]
    after: 15m
  - id: first-admin-action
    name: First admin action
    kind: anomaly
    detector: new_action
    match: {category: admin}
    params: {learning_period: 0, lookback: 30d}
---
title: Retention shortened
id: 0f5b3a8e-3c1d-4a51-9a8c-2f1e6d7c9b10
logsource: {product: auditkeep}
detection:
  selection:
    action|endswith: '.retention.update'
  condition: selection
level: high
"""


def ev(minute: float, actor: str, action: str, **extra: Any) -> dict[str, Any]:
    return {"actor": {"id": actor, "type": "user"}, "action": action,
            "time": format_rfc3339(T0 + int(minute * MIN)), **extra}


def scenario() -> list[dict[str, Any]]:
    return [
        ev(0, "agent-1", "agent.heartbeat", source={"service": "agent", "host": "web-1"}),
        ev(1, "mallory", "user.login", outcome="failure"),
        ev(1.5, "mallory", "user.login", outcome="failure"),
        ev(2, "mallory", "user.login", outcome="success"),     # sequence completes
        ev(2.5, "mallory", "user.login", outcome="failure"),   # third failure: threshold
        ev(3, "alice", "secrets.read", resource={"type": "secret", "id": "prod/db"}),
        ev(4, "alice", "billing.retention.update", category="admin", outcome="success"),
    ]


class Rig:
    def __init__(self, ledger: Ledger, tmp: Path, receiver: WebhookReceiver, **alerts: Any) -> None:
        self.ledger = ledger
        self.rules = tmp / "rules"
        self.rules.mkdir(exist_ok=True)
        self.receiver = receiver
        self.settings = self._settings(tmp, alerts)
        self.runners: list[AlertRunner] = []

    def _settings(self, tmp: Path, alerts: dict[str, Any]) -> Settings:
        s = load_settings(env={}, overrides={"data": str(tmp / "data"), "rules_dir": str(self.rules)})
        s.alerts.notifiers = [{"type": "webhook", "name": "hook", "url": self.receiver.url, "secret": SECRET}]
        s.alerts.default_notify = ["hook"]
        s.alerts.retry_base = 0.01
        s.alerts.rules_interval = 0.01
        for k, v in alerts.items():
            setattr(s.alerts, k, v)
        return s

    def runner(self) -> AlertRunner:
        r = AlertService(self.ledger, self.settings).make_runner()
        self.runners.append(r)
        return r

    def drain(self, runner: AlertRunner, now_ns: int | None = None) -> None:
        """Step until the runner has read everything, its own fired events included."""
        while runner.step(now_ns) > 0:
            runner.flush()
        runner.flush()
        while runner.step() > 0:
            runner.flush()

    def close(self) -> None:
        for r in self.runners:
            r.close()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver()
    yield r
    r.close()


@pytest.fixture
def rig(make_ledger: Callable[..., Ledger], tmp_path: Path, receiver: WebhookReceiver) -> Iterator[Rig]:
    r = Rig(make_ledger(background=False), tmp_path, receiver)
    yield r
    r.close()


def fired_events(ledger: Ledger, tenant: str) -> list[dict[str, Any]]:
    size = ledger.head(tenant).size
    return [msgspec.to_builtins(r.event) for r in ledger.records(0, size, tenant) if r.event.action == FIRED]


def test_every_rule_kind_end_to_end(rig: Rig, receiver: WebhookReceiver) -> None:
    (rig.rules / "rules.yml").write_text(RULES)
    rig.ledger.append(scenario(), "acme")
    runner = rig.runner()
    rig.drain(runner, now_ns=T0 + 5 * MIN)  # the host spoke at minute 0: not silent yet
    book = AlertBook(rig.ledger)
    fired = {a.rule_id for a in book.find("acme")[0]}
    assert fired == {"secret-read", "brute", "burst-then-success", "first-admin-action", "0f5b3a8e-3c1d-4a51-9a8c-2f1e6d7c9b10"}
    rig.drain(runner, now_ns=T0 + 20 * MIN)  # 20 minutes after its last event
    alerts = {a.rule_id: a for a in book.find("acme")[0]}
    assert "silent-host" in alerts and "web-1" in alerts["silent-host"].group_key
    assert alerts["brute"].group_key == "actor.id=mallory" and alerts["brute"].count == 3

    # each alert is in the tenant's log once, under an id derived from the alert id
    logged = fired_events(rig.ledger, "acme")
    ids = {a.id for a in alerts.values()}
    assert sorted(e["metadata"]["alert_id"] for e in logged) == sorted(ids)
    assert all(e["id"] == fired_event_id(e["metadata"]["alert_id"]) for e in logged)
    # and delivered once, signed, to the webhook; the store knows it was delivered
    wait_for(lambda: set(receiver.ids()) == ids, what="webhook deliveries")
    assert max(receiver.ids().values()) == 1 and receiver.bad_signatures == 0
    wait_for(lambda: rig.ledger.store.doc_count(DELIVERIES, status="delivered") == len(alerts), what="delivery marks")
    # the cursor covers the log, fired events included, with the engine state beside it
    tid = rig.ledger.tenant_id("acme")
    rig.drain(runner)
    runner.close()
    position, state = rig.ledger.store.cursor(CURSOR, tid)
    assert position == rig.ledger.head("acme").size and state
    # every route has an outcome: a restart has nothing to resend, and knows it from a watermark
    assert int(rig.ledger.store.meta(SETTLED_META) or 0) > 0 and book.pending() == []


def test_alert_events_do_not_feed_back(rig: Rig) -> None:
    (rig.rules / "all.yml").write_text("id: everything\nname: Every event\nmatch: {actor.id: {exists: true}}\n")
    rig.ledger.append([ev(i, f"u{i}", "doc.read") for i in range(5)], "acme")
    runner = rig.runner()
    for _ in range(5):
        rig.drain(runner)
    assert rig.ledger.store.doc_count(ALERTS) == 5
    assert len(fired_events(rig.ledger, "acme")) == 5 and rig.ledger.head("acme").size == 10


def test_restart_mid_window_neither_loses_nor_duplicates(rig: Rig, receiver: WebhookReceiver) -> None:
    (rig.rules / "rules.yml").write_text(RULES)
    rig.settings.alerts.save_interval = 0.0  # save after every step
    events = scenario()
    first = rig.runner()
    rig.ledger.append(events[:2], "acme")  # one failure: the threshold window is open
    rig.drain(first)
    saved = rig.ledger.store.cursor(CURSOR, rig.ledger.tenant_id("acme"))
    assert saved[0] == 2 and saved[1]
    # the rest is processed, alerts stored and sent, but the process "dies" before saving
    rig.settings.alerts.save_interval = 3600.0
    rig.ledger.append(events[2:], "acme")
    rig.drain(first)
    before = {a.id for a in AlertBook(rig.ledger).find("acme")[0]}
    wait_for(lambda: set(receiver.ids()) == before, what="first deliveries")
    first.notifications.stop()
    first._started = False
    assert rig.ledger.store.cursor(CURSOR, rig.ledger.tenant_id("acme")) == saved

    second = rig.runner()  # restores the snapshot taken mid-window and replays
    rig.drain(second)
    after = {a.id for a in AlertBook(rig.ledger).find("acme")[0]}
    assert after == before and "brute" in {a.rule_id for a in AlertBook(rig.ledger).find("acme")[0]}
    time.sleep(0.3)
    assert max(receiver.ids().values()) == 1
    assert len(fired_events(rig.ledger, "acme")) == len(before)

    # an uninterrupted run over the same log raises exactly these alerts
    rules = second.catalog.rules_for("acme")
    size = rig.ledger.head("acme").size
    assert {a.id for a in simulate(rules, stored_events(rig.ledger, "acme", 0, size))} == before


def test_dead_letter_then_resend(make_ledger: Callable[..., Ledger], tmp_path: Path) -> None:
    receiver = WebhookReceiver(fail=1, status=400)  # a 4xx is not retried: a dead letter at once
    rig = Rig(make_ledger(background=False), tmp_path, receiver)
    try:
        (rig.rules / "r.yml").write_text("id: secret-read\nmatch: {action: secrets.read}\n")
        rig.ledger.append([ev(0, "alice", "secrets.read")], "acme")
        runner = rig.runner()
        rig.drain(runner)
        book = AlertBook(rig.ledger)
        wait_for(lambda: len(book.dead_letters()) == 1, what="a dead letter")
        [letter] = book.dead_letters("acme")
        assert letter.notifier == "hook" and "HTTP 400" in letter.error and book.dead_letters("other") == []
        [alert] = book.find("acme")[0]
        assert [d.status for d in book.deliveries(alert)] == ["dead"]
        book.requeue(letter.id, "acme")  # as the API or `auditkeep alerts resend` does
        assert book.dead_letters() == []
        def resent() -> bool:
            # a running runner steps on; it notices the request at its next rules check
            # (settings.rules_interval), which one step right after the requeue may precede
            runner.step()
            return receiver.ids()[alert.id] == 1

        wait_for(resent, what="the re-sent delivery")
        wait_for(lambda: [d.status for d in book.deliveries(alert)] == ["delivered"], what="delivered mark")
    finally:
        rig.close()
        receiver.close()


def test_pending_deliveries_are_sent_after_a_restart(rig: Rig, receiver: WebhookReceiver) -> None:
    (rig.rules / "r.yml").write_text("id: secret-read\nmatch: {action: secrets.read}\n")
    rig.settings.alerts.notifiers[0]["url"] = "http://127.0.0.1:9/nothing-listens-here"
    rig.settings.alerts.retry_attempts = 50
    rig.settings.alerts.retry_base = 0.2
    rig.ledger.append([ev(0, "alice", "secrets.read")], "acme")
    first = rig.runner()
    rig.drain(first)
    first.notifications.stop(timeout=0.1)  # dies while still retrying
    first._started = False
    book = AlertBook(rig.ledger)
    [alert] = book.find("acme")[0]
    assert [d.status for d in book.deliveries(alert)] == ["pending"]
    rig.settings.alerts.notifiers[0]["url"] = receiver.url
    second = rig.runner()
    rig.drain(second)
    wait_for(lambda: receiver.ids()[alert.id] == 1, what="delivery after restart")


BAD = """\
rules:
  - id: good-in-bad-file
    match: {action: never.happens}
  - id: broken
    kind: threshold
    match: {action: user.login}
    treshold: {count: 5, window: 5m}
"""


def test_malformed_rule_file_is_reported_and_the_rest_keeps_firing(rig: Rig) -> None:
    (rig.rules / "good.yml").write_text("id: secret-read\nmatch: {action: secrets.read}\n")
    (rig.rules / "bad.yml").write_text(BAD)
    (rig.rules / "syntax.yml").write_text("id: oops\nmatch: {action: [unclosed\n")
    runner = rig.runner()
    rig.ledger.append([ev(0, "alice", "secrets.read")], "acme")
    rig.drain(runner)
    assert [a.rule_id for a in AlertBook(rig.ledger).find("acme")[0]] == ["secret-read"]
    errors = {Path(e.file or "").name: e for e in rig.runners[0].catalog.file_errors}
    assert errors["bad.yml"].line == 7 and errors["bad.yml"].rule_id == "broken" and "treshold" in errors["bad.yml"].reason
    assert errors["syntax.yml"].line is not None and errors["syntax.yml"].line >= 2
    assert "good-in-bad-file" in {r.id for r in runner.catalog.file_rules}

    # hot reload: fix one file, break the good one; the untouched rules keep running
    (rig.rules / "syntax.yml").write_text("id: oops\nmatch: {action: audit.export}\n")
    (rig.rules / "good.yml").write_text("id: secret-read\nmatch: {action: secrets.read\n")
    time.sleep(0.05)
    rig.ledger.append([ev(1, "bob", "audit.export"), ev(2, "bob", "secrets.read")], "acme")
    rig.drain(runner)
    assert sorted(a.rule_id for a in AlertBook(rig.ledger).find("acme")[0]) == ["oops", "secret-read"]
    assert {Path(e.file or "").name for e in runner.catalog.file_errors} == {"bad.yml", "good.yml"}


def test_api_rule_sets_apply_to_their_tenant_only(rig: Rig) -> None:
    (rig.rules / "file.yml").write_text("id: from-file\nmatch: {action: secrets.read}\n")
    catalog = RuleCatalog(rig.ledger.store, rig.rules)
    set_id, created, rules = catalog.put("acme", b"id: api-export\nname: Export\nmatch: {action: data.export}\n")
    assert (set_id, created, [r.id for r in rules]) == ("api-export", True, ["api-export"])
    assert {r.id for r in catalog.rules_for("acme")} == {"from-file", "api-export"}
    assert {r.id for r in catalog.rules_for("globex")} == {"from-file"}
    with pytest.raises(RuleSetError) as bad:
        catalog.put("acme", b"id: x\nkind: threshold\nmatch: {action: a}\nthreshold: {count: 0, window: 5m}\n")
    assert bad.value.errors and bad.value.errors[0].line == 4
    with pytest.raises(RuleConflict):
        catalog.put("acme", b"id: from-file\nmatch: {action: x}\n")
    with pytest.raises(RuleSetError):
        catalog.put("acme", b"a: &x [1]\nb: *x\n")  # aliases are refused in posted bodies

    # the runner of the same store picks the change up (another process would, through meta)
    runner = rig.runner()
    rig.ledger.append([ev(0, "alice", "data.export")], "acme")
    rig.ledger.append([ev(0, "alice", "data.export")], "globex")
    rig.drain(runner)
    book = AlertBook(rig.ledger)
    assert [a.rule_id for a in book.find("acme")[0]] == ["api-export"] and book.find("globex")[0] == []
    assert catalog.delete("acme", "api-export") == ["api-export"]
    assert {r.id for r in catalog.rules_for("acme")} == {"from-file"}


def test_runner_reads_events_as_ledger_readers_do(make_ledger: Callable[..., Ledger]) -> None:
    """The runner decodes leaves itself (cheaper than Event structs); personal fields,
    committed as salted hashes, must still reach the rules opened."""
    ledger = make_ledger(background=False)
    ledger.append([
        {"actor": {"id": "alice", "name": "Alice A.", "ip": "10.1.2.3", "user_agent": "curl/8"}, "action": "user.login",
         "metadata": {"email": "alice@example.org", "n": 1.5, "deep": {"list": [1, "x", None]}}},
        {"actor": {"id": "svc"}, "action": "db.query", "outcome": "success"},
    ], "acme")
    tid = ledger.tenant_id("acme")
    mine = [open_leaf(e) for e in ledger.store.entries(tid, 0, 2)]
    assert mine == [msgspec.to_builtins(r.event) for r in ledger.records(0, 2, "acme")]
    assert mine[0]["actor"]["ip"] == "10.1.2.3" and mine[0]["metadata"]["email"] == "alice@example.org"


def test_a_second_runner_stands_by_and_takes_over(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Of two services on one store one runs; the other takes the lease when it stops."""
    from auditkeep.alerts import service as service_mod
    from auditkeep.alerts.service import AlertService
    from auditkeep.config import Settings, open_ledger

    monkeypatch.setattr(service_mod, "STANDBY_RETRY", 0.1)
    settings = Settings(data=str(tmp_path / "data"))
    ledger = open_ledger(settings, create=True, background=False)
    one, two = AlertService(ledger, settings), AlertService(ledger, settings)
    try:
        one.start_or_stand_by()
        two.start_or_stand_by()
        assert one.runner is not None and two.runner is None
        one.stop()
        deadline = time.monotonic() + 5
        while two.runner is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert two.runner is not None
    finally:
        one.stop()
        two.stop()
        ledger.close()
