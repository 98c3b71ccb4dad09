"""The alert API through a real `auditkeep serve` subprocess, with a real webhook receiver
and a real SMTP server (STARTTLS, login) receiving what fired from events ingested over
HTTP: authentication, tenant isolation, the lifecycle and its audit events, rules through
the API, dead letters."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from alerts_live_support import SECRET, Serve, SmtpServer, WebhookReceiver, wait_for

RULES = """\
rules:
  - id: secret-read
    name: Production secret read
    severity: high
    match: {action: secrets.read, resource.id: {prefix: "prod/"}}
    group_by: [actor.id]
    notify: [hook, mail]
  - id: brute
    name: Repeated failed logins
    kind: threshold
    match: {action: user.login, outcome: failure}
    group_by: [actor.id]
    threshold: {count: 3, window: 5m}
  - id: export
    name: Data export
    match: {action: data.export}
    notify: [flaky]
"""
BROKEN = """\
id: broken
kind: sequence
window: 10m
steps: nope
"""
WEBHOOK_SECRET_ENV = "AK_TEST_HOOK_SECRET"
SMTP_PASSWORD_ENV = "AK_TEST_SMTP_PASSWORD"


@dataclass
class Live:
    serve: Serve
    hook: WebhookReceiver
    flaky: WebhookReceiver
    smtp: SmtpServer
    acme_ingest: str
    acme_read: str
    acme_admin: str
    globex_read: str
    globex_admin: str

    def client(self, key: str | None) -> httpx.Client:
        return self.serve.client(key)

    def ingest(self, events: list[dict[str, Any]], key: str | None = None) -> list[dict[str, Any]]:
        with self.client(key or self.acme_ingest) as c:
            r = c.post("/v1/events", json=events)
            assert r.status_code == 200, r.text
            return list(r.json()["receipts"])

    def alerts(self, key: str, **params: str) -> list[dict[str, Any]]:
        with self.client(key) as c:
            r = c.get("/v1/alerts", params=params)
            assert r.status_code == 200, r.text
            return list(r.json()["alerts"])

    def wait_alert(self, rule: str, group: str | None = None) -> dict[str, Any]:
        found: list[dict[str, Any]] = []

        def check() -> bool:
            found[:] = [a for a in self.alerts(self.acme_read, rule=rule) if group is None or a["group_key"] == group]
            return bool(found)

        wait_for(check, what=f"an alert of {rule}")
        return found[0]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("alerts-api")
    rules = tmp / "rules"
    rules.mkdir()
    (rules / "main.yml").write_text(RULES)
    (rules / "broken.yml").write_text(BROKEN)
    hook, flaky, smtp = WebhookReceiver(), WebhookReceiver(secret=None, fail=1, status=400), SmtpServer(tmp)
    config = tmp / "auditkeep.toml"
    config.write_text(
        f'data = "{tmp / "data"}"\nrules_dir = "{rules}"\n'
        "[alerts]\npoll_interval = 0.1\nrules_interval = 0.1\nretry_base = 0.05\ndefault_notify = [\"hook\"]\n"
        f'[[alerts.notifiers]]\ntype = "webhook"\nname = "hook"\nurl = "{hook.url}"\nsecret_env = "{WEBHOOK_SECRET_ENV}"\n'
        f'[[alerts.notifiers]]\ntype = "webhook"\nname = "flaky"\nurl = "{flaky.url}"\n'
        f'[[alerts.notifiers]]\ntype = "email"\nname = "mail"\nhost = "127.0.0.1"\nport = {smtp.port}\n'
        f'username = "{SmtpServer.USER}"\npassword_env = "{SMTP_PASSWORD_ENV}"\nsender = "auditkeep@example.org"\n'
        f'recipients = ["secops@example.org"]\nca_file = "{smtp.cert}"\n'
    )
    serve = Serve(tmp, config, {WEBHOOK_SECRET_ENV: SECRET, SMTP_PASSWORD_ENV: SmtpServer.PASSWORD})
    try:
        yield Live(
            serve, hook, flaky, smtp,
            acme_ingest=serve.key("acme", "ingest"), acme_read=serve.key("acme", "read"),
            acme_admin=serve.key("acme", "admin"), globex_read=serve.key("globex", "read"),
            globex_admin=serve.key("globex", "admin"),
        )
    finally:
        serve.stop()
        hook.close()
        flaky.close()
        smtp.close()
    output = serve.output()
    assert "Traceback" not in output, output
    # secrets never reach the log
    assert SECRET not in output and SmtpServer.PASSWORD not in output


def test_ingested_event_fires_to_webhook_and_mail(live: Live) -> None:
    [receipt] = live.ingest([{"actor": {"id": "alice", "type": "user"}, "action": "secrets.read",
                              "resource": {"type": "secret", "id": "prod/db-password"}, "outcome": "success"}])
    alert = live.wait_alert("secret-read", "actor.id=alice")
    assert alert["tenant"] == "acme" and alert["severity"] == "high" and alert["status"] == "open"
    assert alert["event_ids"] == [receipt["id"]] and alert["group_key"] == "actor.id=alice"
    # the webhook got it signed (the receiver checks X-Auditkeep-Signature with the secret)
    wait_for(lambda: live.hook.ids()[alert["id"]] == 1, what="the webhook delivery")
    assert live.hook.bad_signatures == 0
    headers, body, _ = next(p for p in live.hook.posts if p[1]["id"] == alert["id"])
    assert headers["X-Auditkeep-Signature"].startswith("sha256=") and body["rule_id"] == "secret-read"
    # and the mail went out over STARTTLS with a login
    wait_for(lambda: any(alert["id"].encode() in m[3] for m in live.smtp.messages), what="the e-mail")
    authed, sender, rcpts, content = next(m for m in live.smtp.messages if alert["id"].encode() in m[3])
    assert authed and sender == "auditkeep@example.org" and rcpts == ["secops@example.org"]
    assert b"Subject: [auditkeep] HIGH: Production secret read" in content
    # GET /v1/alerts/{id} shows both deliveries done
    with live.client(live.acme_read) as c:
        wait_for(lambda: {d["notifier"]: d["status"] for d in c.get(f"/v1/alerts/{alert['id']}").json()["deliveries"]}
                 == {"hook": "delivered", "mail": "delivered"}, what="delivery marks")


def test_threshold_over_http_ingest(live: Live) -> None:
    live.ingest([{"actor": {"id": "mallory"}, "action": "user.login", "outcome": "failure"} for _ in range(3)])
    alert = live.wait_alert("brute")
    assert alert["count"] == 3 and alert["group_key"] == "actor.id=mallory"
    wait_for(lambda: live.hook.ids()[alert["id"]] == 1, what="the webhook delivery")


def test_authentication_scopes_and_tenant_isolation(live: Live) -> None:
    live.ingest([{"actor": {"id": "bob"}, "action": "secrets.read", "resource": {"id": "prod/api-key"}}])
    alert = live.wait_alert("secret-read", "actor.id=bob")
    with live.client(None) as c:
        assert c.get("/v1/alerts").status_code == 401
        assert c.get("/v1/rules").status_code == 401
    with live.client(live.acme_ingest) as c:
        assert c.get("/v1/alerts").status_code == 403  # ingest scope cannot read
    with live.client(live.globex_read) as c:
        assert c.get("/v1/alerts").json()["alerts"] == []
        assert c.get(f"/v1/alerts/{alert['id']}").status_code == 404
        assert c.get("/v1/alerts", params={"tenant": "acme"}).status_code == 403
    with live.client(live.globex_admin) as c:
        assert c.post(f"/v1/alerts/{alert['id']}/ack").status_code == 404
    with live.client(live.acme_read) as c:
        assert c.post(f"/v1/alerts/{alert['id']}/ack").status_code == 403  # changing needs admin
        assert c.get("/v1/alerts", params={"status": "bogus"}).status_code == 422
        assert c.get("/v1/alerts", params={"cursor": "not-a-cursor"}).status_code == 422
    # the admin key for all tenants reaches acme by naming it
    with live.client(live.serve.admin) as c:
        ids = [a["id"] for a in c.get("/v1/alerts", params={"tenant": "acme", "limit": "1000"}).json()["alerts"]]
        assert alert["id"] in ids


def test_lifecycle_transitions_and_their_audit_events(live: Live) -> None:
    live.ingest([{"actor": {"id": "carol"}, "action": "secrets.read", "resource": {"id": "prod/tls-key"}}])
    aid = live.wait_alert("secret-read", "actor.id=carol")["id"]
    admin_id = live.acme_admin.split("_")[1]
    with live.client(live.acme_admin) as c:
        r = c.post(f"/v1/alerts/{aid}/ack", json={"note": "looking into it"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["status"] == "acknowledged" and body["acknowledged_by"] == admin_id
        assert body["history"][0]["note"] == "looking into it"
        again = c.post(f"/v1/alerts/{aid}/ack")
        assert again.status_code == 409 and again.json()["current"] == "acknowledged"
        assert c.post(f"/v1/alerts/{aid}/resolve", content=b"{not json", headers={"Content-Type": "application/json"}).status_code == 400
        assert c.post(f"/v1/alerts/{aid}/resolve", json={"note": "x" * 3000}).status_code == 422
        assert c.post(f"/v1/alerts/{aid}/resolve", json={"note": "rotated the key"}).json()["status"] == "resolved"
        assert c.post(f"/v1/alerts/{aid}/resolve").status_code == 409
        assert c.post(f"/v1/alerts/{aid}/ack").status_code == 409
        assert c.post("/v1/alerts/0123456789abcdef0123456789abcdef/ack").status_code == 404
    assert [a["id"] for a in live.alerts(live.acme_read, status="resolved")] == [aid]
    # every step is in the tenant's log, found by search
    with live.client(live.acme_read) as c:
        def logged() -> dict[str, dict[str, Any]]:
            r = c.get("/v1/events", params={"action": "auditkeep.alert.*", "limit": "1000"})
            return {e["event"]["action"]: e["event"] for e in r.json()["events"] if e["event"]["metadata"]["alert_id"] == aid}

        wait_for(lambda: len(logged()) == 3, what="the alert's events in search")
        events = logged()
    assert events["auditkeep.alert.fired"]["actor"]["id"] == "auditkeep.alerts"
    assert events["auditkeep.alert.acknowledged"]["actor"]["id"] == admin_id
    assert events["auditkeep.alert.acknowledged"]["metadata"]["note"] == "looking into it"
    resolved = events["auditkeep.alert.resolved"]["metadata"]
    assert (resolved["from"], resolved["to"], resolved["note"]) == ("acknowledged", "resolved", "rotated the key")


def test_rules_through_the_api(live: Live) -> None:
    with live.client(live.acme_read) as c:
        listed = c.get("/v1/rules").json()
    assert {"secret-read", "brute", "export"} <= {r["id"] for r in listed["rules"]}
    [err] = [e for e in listed["errors"] if e["file"].endswith("broken.yml")]
    assert err["line"] == 4 and "steps" in err["reason"]  # the rest keep running (tests above)

    rule = "id: acme-wire\nname: Large wire transfer\nmatch:\n  action: payment.wire\n  metadata.amount: {gte: 10000}\n"
    with live.client(live.acme_read) as c:
        assert c.post("/v1/rules", content=rule, headers={"Content-Type": "application/yaml"}).status_code == 403
    with live.client(live.acme_admin) as c:
        r = c.post("/v1/rules", content=rule, headers={"Content-Type": "application/yaml"})
        assert r.status_code == 201, r.text
        assert r.json()["rule_set"] == "acme-wire" and not r.json()["replaced"]
        bad = c.post("/v1/rules", content="id: x\nkind: threshold\nmatch: {action: a}\nthreshold: {count: -1, window: 5m}\n",
                     headers={"Content-Type": "application/yaml"})
        assert bad.status_code == 422 and bad.json()["errors"][0]["line"] == 4
        assert "body:4" in bad.json()["error"]
        js = c.post("/v1/rules", json={"id": "acme-json", "match": {"action": "vault.unseal"}})
        assert js.status_code == 201 and js.json()["rules"][0]["source"] == "api"
        assert c.post("/v1/rules", content=b"id: secret-read\nmatch: {action: a}\n",
                      headers={"Content-Type": "application/yaml"}).status_code == 409
        assert c.post("/v1/rules", content=b"x" * 70_000, headers={"Content-Type": "application/yaml"}).status_code == 413
        assert c.post("/v1/rules", content=b"id: a", headers={"Content-Type": "image/png"}).status_code == 415
        assert c.delete("/v1/rules/secret-read").status_code == 409
        assert c.delete("/v1/rules/nothing-here").status_code == 404
    with live.client(live.globex_read) as c:  # the tenant's rules are its own
        assert "acme-wire" not in {r["id"] for r in c.get("/v1/rules").json()["rules"]}

    live.ingest([{"actor": {"id": "dave"}, "action": "payment.wire", "metadata": {"amount": 25000}}])
    alert = live.wait_alert("acme-wire")
    wait_for(lambda: live.hook.ids()[alert["id"]] == 1, what="the webhook delivery")
    with live.client(live.acme_admin) as c:
        assert c.delete("/v1/rules/acme-wire").json() == {"removed": ["acme-wire"]}
        assert c.delete("/v1/rules/acme-json").status_code == 200
        assert {"acme-wire", "acme-json"}.isdisjoint(r["id"] for r in c.get("/v1/rules").json()["rules"])
    with live.client(live.acme_read) as c:
        r = c.get("/v1/events", params={"action": "auditkeep.rules.*", "limit": "100"})
        assert {e["event"]["action"] for e in r.json()["events"]} == {"auditkeep.rules.put", "auditkeep.rules.delete"}


def test_dead_letters_are_listed_and_resent(live: Live) -> None:
    live.ingest([{"actor": {"id": "erin"}, "action": "data.export"}])
    alert = live.wait_alert("export")
    letter_id = f"{alert['id']}:flaky"
    with live.client(live.acme_admin) as c:
        def letters() -> list[dict[str, Any]]:
            return list(c.get("/v1/alerts/dead-letters").json()["dead_letters"])

        wait_for(lambda: any(d["id"] == letter_id for d in letters()), what="the dead letter")
        [letter] = [d for d in letters() if d["id"] == letter_id]
        assert letter["notifier"] == "flaky" and "HTTP 400" in letter["error"]
        r = c.post(f"/v1/alerts/dead-letters/{letter_id}/resend")
        assert r.status_code == 202 and r.json()["queued"]["id"] == letter_id
        assert c.post(f"/v1/alerts/dead-letters/{letter_id}/resend").status_code == 404
    wait_for(lambda: live.flaky.ids()[alert["id"]] == 1, what="the re-sent delivery")
    with live.client(live.globex_admin) as c:
        assert c.get("/v1/alerts/dead-letters").json()["dead_letters"] == []
    with live.client(live.acme_read) as c:
        assert c.get("/v1/alerts/dead-letters").status_code == 403


def test_openapi_lists_the_alert_operations(live: Live) -> None:
    with live.client(None) as c:
        paths = c.get("/openapi.json").json()["paths"]
    for path in ("/v1/alerts", "/v1/alerts/{alert_id}", "/v1/alerts/{alert_id}/ack", "/v1/alerts/{alert_id}/resolve",
                 "/v1/alerts/dead-letters", "/v1/alerts/dead-letters/{letter_id}/resend", "/v1/rules", "/v1/rules/{rule_id}"):
        assert path in paths, path
    assert json.dumps(paths["/v1/rules"]["post"]).count("application/yaml") == 1
