"""`auditkeep rules check/test/backtest/list` and `auditkeep alerts list/show/ack/resolve/
dead-letters/resend`, run as a user runs them (subprocesses over a real data directory)."""

from __future__ import annotations

import getpass
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alerts_live_support import WebhookReceiver, auditkeep, wait_for

from auditkeep.alerts.service import AlertService
from auditkeep.alerts.state import ALERTS, AlertBook
from auditkeep.config import load_settings
from auditkeep.ledger import Ledger
from auditkeep.model.timefmt import format_rfc3339

GOOD = """\
rules:
  - id: brute
    name: Repeated failed logins
    kind: threshold
    match: {action: user.login, outcome: failure}
    group_by: [actor.id]
    threshold: {count: 3, window: 5m}
  - id: secret-read
    name: Secret read
    match: {action: secrets.read}
"""
BAD = """\
rules:
  - id: fine
    match: {action: ok}
  - id: broken
    kind: threshold
    match: {action: user.login}
    treshold: {count: 5, window: 5m}
"""


def login(actor: str, outcome: str, t: str) -> dict[str, Any]:
    return {"actor": {"id": actor}, "action": "user.login", "outcome": outcome, "time": t}


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    d = tmp_path / "rules"
    d.mkdir()
    (d / "good.yml").write_text(GOOD)
    return d


def test_rules_check_reports_file_line_and_reason(tmp_path: Path, rules: Path) -> None:
    ok = auditkeep(["rules", "check", str(rules / "good.yml")], tmp_path)
    assert ok.returncode == 0 and "2 rule(s) loaded, 0 refused" in ok.stdout
    (rules / "bad.yml").write_text(BAD)
    bad = auditkeep(["rules", "check", str(rules)], tmp_path)
    assert bad.returncode == 2
    assert f"{rules / 'bad.yml'}:7: rule 'broken': unknown key 'treshold'" in bad.stderr
    assert "3 rule(s) loaded, 1 refused" in bad.stdout
    as_json = json.loads(auditkeep(["rules", "check", str(rules), "--json"], tmp_path).stdout)
    assert [e["line"] for e in as_json["errors"]] == [7] and len(as_json["rules"]) == 3


def test_rules_test_over_a_file_of_events(tmp_path: Path, rules: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(json.dumps(e) for e in [
        login("eve", "failure", "2024-05-01T12:00:00Z"),
        login("eve", "failure", "2024-05-01T12:01:00Z"),
        login("bob", "failure", "2024-05-01T12:01:30Z"),
        login("eve", "failure", "2024-05-01T12:02:00Z"),
        {"actor": {"id": "bob"}, "action": "secrets.read", "time": "2024-05-01T12:03:00Z"},
    ]) + "\n")
    r = auditkeep(["rules", "test", str(rules / "good.yml"), "--events", str(events)], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "2 alert(s) from 2 rule(s) over 5 event(s)" in r.stdout
    assert "actor.id=eve" in r.stdout and "3 matching events for actor.id=eve within 5m" in r.stdout
    found = [json.loads(line) for line in auditkeep(["rules", "test", str(rules), "--events", str(events), "--json"], tmp_path).stdout.splitlines()]
    assert [(a["rule_id"], a["first_index"], a["last_index"]) for a in found] == [("brute", 0, 3), ("secret-read", 4, 4)]
    # a bad event names its line; nothing runs
    events.write_text(json.dumps(login("eve", "failure", "2024-05-01T12:00:00Z")) + '\n{"actor": {}, "action": "x"}\n')
    bad = auditkeep(["rules", "test", str(rules), "--events", str(events)], tmp_path)
    assert bad.returncode == 2 and "line 2" in bad.stderr


def test_rules_test_with_a_source_format(tmp_path: Path, rules: Path) -> None:
    try:
        from auditkeep.sources.formats import FORMATS
    except ModuleNotFoundError:
        FORMATS = {}
    if "kubernetes" not in FORMATS:
        pytest.skip("the Kubernetes source parser is not installed (auditkeep.sources.formats)")
    (rules / "k8s.yml").write_text(
        "title: Secret listed\nid: k8s-secret-list\nlogsource: {product: kubernetes, service: audit}\n"
        "detection:\n  sel: {verb: list, objectRef.resource: secrets}\n  condition: sel\nlevel: medium\n"
    )
    raw = {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata", "auditID": "a1", "stage": "ResponseComplete",
           "requestURI": "/api/v1/secrets", "verb": "list", "user": {"username": "mallory"}, "sourceIPs": ["10.0.0.9"],
           "objectRef": {"resource": "secrets", "apiVersion": "v1"}, "responseStatus": {"code": 200},
           "requestReceivedTimestamp": "2024-05-01T12:00:00.000000Z", "stageTimestamp": "2024-05-01T12:00:00.100000Z"}
    events = tmp_path / "audit.jsonl"
    events.write_text(json.dumps(raw) + "\n")
    r = auditkeep(["rules", "test", str(rules / "k8s.yml"), "--events", str(events), "--format", "kubernetes", "--json"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert [json.loads(line)["rule_id"] for line in r.stdout.splitlines()] == ["k8s-secret-list"]
    # A record that cannot be mapped is reported and the others are still tested (as ingest
    # does): truncated JSON and an event without a verb, between two that map.
    second = dict(raw, auditID="a2", user={"username": "eve"})
    events.write_text("\n".join([json.dumps(raw), '{"kind":"Event","apiVersion":"audit.k8s.io/v1","verb":"li',
                                 json.dumps(dict(raw, auditID="a3", verb=None)), json.dumps(second)]) + "\n")
    r = auditkeep(["rules", "test", str(rules / "k8s.yml"), "--events", str(events), "--format", "kubernetes", "--json"], tmp_path)
    assert r.returncode == 0, r.stderr
    found = [json.loads(line) for line in r.stdout.splitlines()]
    assert [a["rule_id"] for a in found] == ["k8s-secret-list", "k8s-secret-list"]
    skipped = [line for line in r.stderr.splitlines() if line.startswith("skipped a record that cannot be mapped")]
    assert len(skipped) == 2
    assert "malformed JSON" in skipped[0] and '{"kind":"Event","apiVersion":"audit.k8s.io/v1","verb":"li' in skipped[0]
    assert "verb is missing" in skipped[1]
    table = auditkeep(["rules", "test", str(rules / "k8s.yml"), "--events", str(events), "--format", "kubernetes"], tmp_path)
    assert table.returncode == 0 and "2 alert(s) from 1 rule(s) over 2 event(s)" in table.stdout


def test_rules_backtest_over_stored_history_stores_nothing(tmp_path: Path, rules: Path) -> None:
    data = tmp_path / "data"
    with Ledger.open(data, background=False) as lg:
        now = time.time_ns()
        lg.append([login("old", "failure", format_rfc3339(now - 60 * 10**9 + i)) for i in range(3)], "acme")
        time.sleep(0.05)
        cut = format_rfc3339(time.time_ns())
        time.sleep(0.05)
        lg.append([login("new", "failure", format_rfc3339(time.time_ns() + i)) for i in range(3)], "acme")
        lg.append([{"actor": {"id": "new"}, "action": "secrets.read"}], "acme")
        size = lg.head("acme").size
    r = auditkeep(["rules", "backtest", str(rules / "good.yml"), "--since", "30d", "--tenant", "acme", "--data", str(data)], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "3 alert(s) from 2 rule(s) over log index 0..6 of acme" in r.stdout
    lines = auditkeep(["rules", "backtest", str(rules), "--since", cut, "--tenant", "acme", "--data", str(data), "--json"], tmp_path).stdout
    found = [json.loads(line) for line in lines.splitlines()]
    assert sorted((a["rule_id"], a["group_key"]) for a in found) == [("brute", "actor.id=new"), ("secret-read", "")]
    with Ledger.open(data, background=False, create=False) as lg:
        assert lg.head("acme").size == size and lg.store.doc_count(ALERTS) == 0


@pytest.fixture
def fired(tmp_path: Path, rules: Path) -> Iterator[tuple[Path, list[str]]]:
    """A data directory holding two alerts of tenant acme (raised by a runner in-process);
    the ``hook`` notifier is gone for good, so their deliveries are dead letters."""
    receiver = WebhookReceiver(secret=None, fail=10, status=410)
    data = tmp_path / "data"
    lg = Ledger.open(data, background=False)
    s = load_settings(env={}, overrides={"data": str(data), "rules_dir": str(rules)})
    s.alerts.notifiers = [{"type": "webhook", "name": "hook", "url": receiver.url}]
    s.alerts.default_notify = ["hook"]
    runner = AlertService(lg, s).make_runner()
    lg.append([login("eve", "failure", format_rfc3339(time.time_ns() + i)) for i in range(3)], "acme")
    lg.append([{"actor": {"id": "eve"}, "action": "secrets.read"}], "acme")
    while runner.step():
        runner.flush()
    book = AlertBook(lg)
    wait_for(lambda: len(book.dead_letters()) == 2, what="two dead letters")
    runner.close()
    ids = [a.id for a in book.find("acme")[0]]
    lg.close()
    yield data, ids
    receiver.close()


# The first run of each command is a process; repeats run in this process (process=False).
def test_alerts_list_show_ack_resolve(tmp_path: Path, fired: tuple[Path, list[str]]) -> None:
    data, ids = fired
    listed = auditkeep(["alerts", "list", "--data", str(data)], tmp_path)
    assert listed.returncode == 0 and all(i in listed.stdout for i in ids) and "2 alert(s)" in listed.stdout
    rows = [json.loads(line) for line in auditkeep(["alerts", "list", "--json", "--status", "open", "--data", str(data)], tmp_path, process=False).stdout.splitlines()]
    assert sorted(r["id"] for r in rows) == sorted(ids)
    target = next(r for r in rows if r["rule_id"] == "brute")["id"]

    ack = auditkeep(["alerts", "ack", target, "--note", "on it", "--data", str(data)], tmp_path)
    me = f"cli:{getpass.getuser()}"
    assert ack.returncode == 0 and f"is now acknowledged (by {me})" in ack.stdout
    again = auditkeep(["alerts", "ack", target, "--data", str(data)], tmp_path, process=False)
    assert again.returncode == 2 and "is acknowledged; it cannot become acknowledged" in again.stderr
    # an id prefix, as for `quarantine show` (the ids are as long as the list shows them)
    short = target[:10]
    assert auditkeep(["alerts", "resolve", short, "--note", "password reset", "--data", str(data)], tmp_path).returncode == 0
    assert auditkeep(["alerts", "ack", "ffffffffffffffffffffffffffffffff", "--data", str(data)], tmp_path, process=False).returncode == 2

    shown = auditkeep(["alerts", "show", short, "--data", str(data)], tmp_path)
    assert "Repeated failed logins" in shown.stdout and f"acknowledged by {me}" in shown.stdout
    assert "resolved by" in shown.stdout and "password reset" in shown.stdout and "hook: dead" in shown.stdout
    detail = json.loads(auditkeep(["alerts", "show", target, "--json", "--data", str(data)], tmp_path, process=False).stdout)
    assert [h["status"] for h in detail["history"]] == ["acknowledged", "resolved"]
    with Ledger.open(data, background=False, create=False) as lg:
        events = [r.event for r in lg.records(0, lg.head("acme").size, "acme") if r.event.action.startswith("auditkeep.alert.")]
    assert [(e.action, e.actor.id) for e in events if e.action != "auditkeep.alert.fired"] == [
        ("auditkeep.alert.acknowledged", me), ("auditkeep.alert.resolved", me)]


def test_dead_letters_and_resend(tmp_path: Path, fired: tuple[Path, list[str]]) -> None:
    data, ids = fired
    listed = auditkeep(["alerts", "dead-letters", "--data", str(data)], tmp_path)
    assert listed.returncode == 0 and "2 dead letter(s)" in listed.stdout and "HTTP 410" in listed.stdout
    letters = [json.loads(line) for line in auditkeep(["alerts", "dead-letters", "--json", "--data", str(data)], tmp_path, process=False).stdout.splitlines()]
    assert sorted(d["alert_id"] for d in letters) == sorted(ids)
    assert auditkeep(["alerts", "resend", "--data", str(data)], tmp_path, process=False).returncode == 2
    r = auditkeep(["alerts", "resend", letters[0]["id"], "--data", str(data)], tmp_path)
    assert r.returncode == 0 and "1 delivery(ies) queued again" in r.stdout
    assert "1 dead letter(s)" in auditkeep(["alerts", "dead-letters", "--data", str(data)], tmp_path, process=False).stdout
    with Ledger.open(data, background=False, create=False) as lg:
        assert [a.id for a, _ in AlertBook(lg).pending()] == [letters[0]["alert_id"]]


def test_rules_list_shows_file_rules_and_refusals(tmp_path: Path, rules: Path) -> None:
    (rules / "bad.yml").write_text(BAD)
    data = tmp_path / "data"
    Ledger.open(data, background=False).close()
    r = auditkeep(["rules", "list", "--data", str(data)], tmp_path, env={"AUDITKEEP_RULES_DIR": str(rules)})
    assert r.returncode == 0 and "3 rule(s), 1 refused" in r.stdout and "brute" in r.stdout
    assert "bad.yml:7" in r.stderr
