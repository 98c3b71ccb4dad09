"""Every way a key is refused, key administration over HTTP and the CLI, and the rate limit."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from http_server_support import KEY_RE, Server, event


def _refused(server: Server, headers: dict[str, str], reason_part: str) -> None:
    with server.client() as c:
        r = c.get("/v1/events", headers=headers)
    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert reason_part in r.json()["error"]


def test_missing_malformed_unknown_keys(server: Server) -> None:
    _refused(server, {}, "missing")
    _refused(server, {"Authorization": "Basic dXNlcjpwYXNz"}, "Bearer")
    _refused(server, {"Authorization": "Bearer"}, "Bearer")
    _refused(server, {"Authorization": "Bearer not-a-key"}, "malformed")
    _refused(server, {"Authorization": "Bearer ak_abcdefghijkl_short"}, "malformed")
    real = server.key("authz", "read")
    keyid = real.split("_")[1]
    _refused(server, {"Authorization": f"Bearer ak_{keyid}_{'A' * 43}"}, "unknown")
    _refused(server, {"Authorization": f"Bearer ak_aaaaaaaaaaaa_{'A' * 43}"}, "unknown")


def test_revoked_and_expired_keys(server: Server) -> None:
    key = server.key("authz", "read")
    keyid = key.split("_")[1]
    with server.client(key) as c:
        assert c.get("/v1/events").status_code == 200
    with server.client(server.admin) as c:
        r = c.delete(f"/v1/keys/{keyid}")
        assert r.status_code == 200 and r.json()["revoked"]
    _refused(server, {"Authorization": f"Bearer {key}"}, "revoked")

    for ahead in (1, 3, 10):  # a key that expires soon: on a loaded machine 1 s can pass before it is made
        soon = (datetime.now(UTC) + timedelta(seconds=ahead)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        with server.client(server.admin) as c:
            made = c.post("/v1/keys", json={"tenant": "authz", "scopes": "read", "expires": soon})
        if made.status_code == 201:
            break
        assert made.status_code == 422 and "must be in the future" in made.text, made.text
    short = str(made.json()["key"])
    time.sleep(max(0.0, (datetime.strptime(soon, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC) - datetime.now(UTC)).total_seconds()) + 0.1)
    _refused(server, {"Authorization": f"Bearer {short}"}, "expired")


def test_wrong_scope_and_wrong_tenant(server: Server) -> None:
    reader = server.key("authz", "read")
    writer = server.key("authz", "ingest")
    with server.client(reader) as c:
        r = c.post("/v1/events", json=event(0))
        assert r.status_code == 403 and "ingest" in r.json()["error"]
        r = c.get("/v1/events", params={"tenant": "other"})
        assert r.status_code == 403
        r = c.get("/v1/events", headers={"X-Auditkeep-Tenant": "other"})
        assert r.status_code == 403
        assert c.get("/v1/events", params={"tenant": "authz"}).status_code == 200
        assert c.get("/v1/logs/other/checkpoint").status_code == 403
        assert c.get("/metrics").status_code == 403
        assert c.post("/v1/keys", json={"scopes": "read"}).status_code == 403
    with server.client(writer) as c:
        assert c.get("/v1/events").status_code == 403
        assert c.post("/v1/events", json=event(0), params={"tenant": "other"}).status_code == 403
        r = c.post("/v1/events", json=event(0, tenant="other"))
        assert r.status_code == 422 and r.json()["field"] == "tenant"
        assert c.post("/v1/events", json=event(0)).status_code == 200


def test_key_admin_over_http(server: Server) -> None:
    with server.client(server.admin) as c:
        r = c.post("/v1/keys", json={"tenant": "adm", "scopes": ["admin"], "name": "tenant admin"})
        assert r.status_code == 201
        tenant_admin = r.json()["key"]
        assert c.post("/v1/keys", json={"tenant": "adm", "scopes": "bogus"}).status_code == 422
        assert c.post("/v1/keys", json={"scopes": "read"}).status_code == 422
        assert c.post("/v1/keys", content=b"{", headers={"content-type": "application/json"}).status_code == 400
        listed = c.get("/v1/keys", params={"tenant": "adm"}).json()["keys"]
        assert [k["name"] for k in listed] == ["tenant admin"]
        assert all("secret" not in str(k) and "sha256" not in str(k) for k in listed)
    with server.client(tenant_admin) as c:
        r = c.post("/v1/keys", json={"scopes": "read"})
        assert r.status_code == 201 and r.json()["tenant"] == "adm"
        assert c.post("/v1/keys", json={"tenant": "*", "scopes": "read"}).status_code == 403
        assert c.post("/v1/keys", json={"tenant": "zzz", "scopes": "read"}).status_code == 403
        assert {k["tenant"] for k in c.get("/v1/keys").json()["keys"]} == {"adm"}
        assert c.get("/v1/keys", params={"tenant": "authz"}).status_code == 403
        admin_id = server.admin.split("_")[1]
        assert c.delete(f"/v1/keys/{admin_id}").status_code == 404
        # the key changes are in the tenant's own log, with the key id as actor and no secret
        r = c.get("/v1/events", params={"action": "auditkeep.key.*", "order": "oldest"})
        evs = [e["event"] for e in r.json()["events"]]
        assert [e["action"] for e in evs][:2] == ["auditkeep.key.create", "auditkeep.key.create"]
        assert evs[1]["actor"]["id"] == tenant_admin.split("_")[1]
        assert tenant_admin.split("_", 2)[2] not in r.text


def _cli(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "auditkeep.cli.main", "keys", *args, "--data", str(server.data)],
        capture_output=True, text=True, timeout=60, check=False,
    )


def test_cli_keys_work_on_the_store_beside_a_running_server(server: Server) -> None:
    made = _cli(server, "create", "--tenant", "cli", "--scopes", "ingest,read", "--expires", "90d", "--name", "app")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert KEY_RE.fullmatch(token)
    keyid = token.split("_")[1]
    listed = _cli(server, "list", "--tenant", "cli", "--json")
    assert keyid in listed.stdout and token.split("_", 2)[2] not in listed.stdout
    with server.client(token) as c:
        assert c.post("/v1/events", json=event(0)).status_code == 200
        created = c.get("/v1/events", params={"action": "auditkeep.key.create"}).json()["events"]
        assert created and created[0]["event"]["resource"]["id"] == keyid
    assert _cli(server, "revoke", keyid).returncode == 0
    deadline = time.monotonic() + 5
    status = 200
    while time.monotonic() < deadline and status != 401:
        with server.client(token) as c:
            status = c.get("/v1/events").status_code
        time.sleep(0.1)
    assert status == 401
    assert _cli(server, "revoke", "aaaaaaaaaaaa").returncode != 0
    bad = _cli(server, "create", "--tenant", "cli", "--scopes", "write")
    assert bad.returncode != 0 and "unknown scope" in bad.stderr


def test_rate_limit_answers_429_with_retry_after(make_server: Callable[..., Server]) -> None:
    srv = make_server(env={"AUDITKEEP_RATE_LIMIT": "2"})
    key = srv.key("rl", "read")
    with srv.client(key) as c:
        codes = [c.get("/v1/events") for _ in range(8)]
    limited = [r for r in codes if r.status_code == 429]
    assert limited, [r.status_code for r in codes]
    assert int(limited[0].headers["retry-after"]) >= 1
    assert "rate limit" in limited[0].json()["error"]
    time.sleep(1.1)
    with srv.client(key) as c:
        assert c.get("/v1/events").status_code == 200


def test_first_start_prints_an_admin_key_once(make_server: Callable[..., Server]) -> None:
    srv = make_server()
    assert srv.admin and "shown only this once" in srv.output()
    data = srv.data
    srv.stop()
    again = make_server(data=data)
    assert again.admin == ""  # not printed on a later start
    with again.client(srv.admin) as c:
        assert c.get("/v1/keys").status_code == 200


def test_the_last_admin_key_for_all_tenants_cannot_be_revoked(make_server: Callable[..., Server]) -> None:
    """Revoking it (even by itself) would lock administration out: 409, and exit 2 on the CLI."""
    srv = make_server()
    first = srv.admin.split("_")[1]
    with srv.client(srv.admin) as c:
        r = c.delete(f"/v1/keys/{first}")
        assert r.status_code == 409 and "last admin key" in r.json()["error"], r.text
        assert c.get("/v1/keys").status_code == 200  # still works
        # a tenant's admin key or an all-tenant reader does not count
        assert c.post("/v1/keys", json={"tenant": "t", "scopes": "admin"}).status_code == 201
        assert c.post("/v1/keys", json={"tenant": "*", "scopes": "read"}).status_code == 201
        assert c.delete(f"/v1/keys/{first}").status_code == 409
        second = c.post("/v1/keys", json={"tenant": "*", "scopes": "admin"}).json()["key"]
        assert c.delete(f"/v1/keys/{first}").status_code == 200
    cli = _cli(srv, "revoke", second.split("_")[1])
    assert cli.returncode == 2 and cli.stderr.startswith("error: ") and "last admin key" in cli.stderr
    with srv.client(second) as c:
        assert c.get("/v1/keys").status_code == 200


def test_a_key_for_all_tenants_must_name_the_tenant(server: Server) -> None:
    """It got `{"events": []}` (the tenant "default") and 404 on an alert of another tenant."""
    key = server.key("spans", "ingest,read")
    with server.client(key) as c:
        assert c.post("/v1/events", json=event(0)).status_code == 200
    with server.client(server.admin) as c:
        for method, path in (("GET", "/v1/events"), ("GET", "/v1/alerts"), ("POST", "/v1/alerts/0123456789abcdef/ack"),
                             ("GET", "/v1/checkpoints/latest"), ("POST", "/v1/events")):
            r = c.request(method, path, json=event(0) if method == "POST" else None)
            assert r.status_code == 400, (path, r.text)
            assert r.json()["error"].startswith("this key spans tenants: pass tenant="), r.text
        r = c.get("/v1/events", params={"tenant": "spans", "action": "doc.read"})
        assert r.status_code == 200 and len(r.json()["events"]) == 1
        r = c.get("/v1/events", headers={"X-Auditkeep-Tenant": "spans"}, params={"action": "doc.read"})
        assert r.status_code == 200 and len(r.json()["events"]) == 1
