"""Sign-in under attack, over plain HTTP against a real server (and on the real store): the
lockout holds under concurrent guesses, one address is throttled across accounts, and ended
sessions are swept."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from console_support import PASSWORD, add_user, auditkeep
from http_server_support import Server

from auditkeep.config import Settings, open_ledger
from auditkeep.console import sessions as sessions_mod
from auditkeep.console.sessions import Session, SessionStore
from auditkeep.console.throttle import BURST, LoginThrottle
from auditkeep.console.users import MAX_FAILURES, LoginRefused, UserStore
from auditkeep.store.base import Doc


def _post_login(url: str, username: str, password: str, tenant: str = "acme") -> httpx.Response:
    with httpx.Client(base_url=url, follow_redirects=False, timeout=60) as c:
        csrf = c.get("/ui/login").cookies["ak_login"]
        return c.post("/ui/login", data={"csrf": csrf, "tenant": tenant, "username": username, "password": password})


def _reasons(srv: Server, username: str, want: int) -> list[str]:
    deadline = time.monotonic() + 30
    with srv.client(srv.admin) as c:
        while True:
            r = c.get("/v1/events", params={"tenant": "acme", "action": "auditkeep.console.login", "limit": 1000})
            assert r.status_code == 200, r.text
            found = [rec["event"] for rec in r.json()["events"] if rec["event"]["actor"]["id"] == username]
            if len(found) >= want or time.monotonic() > deadline:
                return [e.get("reason", "") for e in found if e["outcome"] == "failure"]
            time.sleep(0.1)


@pytest.fixture(scope="module")
def fresh_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of its own: the throttle is per process, and these tests spend it."""
    data = tmp_path_factory.mktemp("console-sec") / "data"
    assert auditkeep(data, "init", process=False).returncode == 0
    add_user(data, "acme", "alice", "admin")
    add_user(data, "acme", "rita", "viewer")
    srv = Server(data)
    yield srv
    srv.stop()
    assert "Traceback" not in srv.output(), srv.output()


def test_concurrent_wrong_passwords_get_no_more_than_the_limit(fresh_server: Server) -> None:
    """Guesses sent at once each read the failure count; counted by a compare-and-swap in the
    store, only MAX_FAILURES of them are checked before the account locks."""
    n = 3 * MAX_FAILURES
    with ThreadPoolExecutor(n) as pool:
        answers = list(pool.map(lambda _: _post_login(fresh_server.url, "rita", "not the password").status_code, range(n)))
    assert answers == [401] * n
    reasons = _reasons(fresh_server, "rita", n)
    assert len(reasons) == n
    checked = [r for r in reasons if r.startswith("wrong password")]
    assert len(checked) == MAX_FAILURES, reasons
    assert reasons.count("wrong password; account locked") == 1
    assert reasons.count("locked") == n - MAX_FAILURES
    # and the right password is refused while locked
    assert _post_login(fresh_server.url, "rita", PASSWORD).status_code == 401


def test_ended_sessions_are_swept_at_sign_in(fresh_server: Server) -> None:
    lg = open_ledger(Settings(data=str(fresh_server.data)), create=False, background=False)
    try:
        store = SessionStore(lg.store)
        long_ago = time.time_ns() - 10 * 3600 * 1_000_000_000
        old = Session(tenant="acme", username="alice", csrf="x", created_ns=long_ago,
                      expires_ns=long_ago + sessions_mod.LIFETIME_S * 1_000_000_000, last_ns=long_ago)  # fmt: skip
        lg.store.doc_put(Doc(sessions_mod.COLLECTION, "f" * 64, "acme", long_ago, "active", sessions_mod._encode.encode(old)))
        assert lg.store.doc_get(sessions_mod.COLLECTION, "f" * 64) is not None
        r = _post_login(fresh_server.url, "alice", PASSWORD)
        assert r.status_code == 303, r.text
        assert lg.store.doc_get(sessions_mod.COLLECTION, "f" * 64) is None
        # the new session is live and kept
        assert store.check(r.cookies["ak_session"]) is None
    finally:
        lg.close()


def test_one_address_is_throttled_across_accounts(fresh_server: Server) -> None:
    """Wrong passwords spread over many (unknown) accounts never lock one, but the address
    runs out of tries: then even the right password gets 429 with Retry-After."""
    for i in range(BURST):
        r = _post_login(fresh_server.url, f"nobody{i}", "not the password")
        if r.status_code == 429:
            break
        assert r.status_code == 401
    r = _post_login(fresh_server.url, "alice", PASSWORD)
    assert r.status_code == 429
    assert int(r.headers["retry-after"]) > 0
    assert "Too many failed sign-ins" in r.text
    assert "ak_session" not in r.cookies


def test_throttle_memory_is_bounded() -> None:
    t = LoginThrottle(burst=2, per_minute=1, max_clients=100)
    for i in range(1000):
        t.failed(f"10.0.{i // 256}.{i % 256}")
    assert len(t) == 100
    t.failed("192.0.2.1")
    assert t.allowed("192.0.2.1")
    t.failed("192.0.2.1")
    assert not t.allowed("192.0.2.1")
    assert t.allowed("192.0.2.2")


def test_lockout_counts_each_concurrent_guess_once_on_the_store(tmp_path: Path) -> None:
    lg = open_ledger(Settings(data=str(tmp_path / "data")), background=False)
    try:
        users = UserStore(lg.store)
        users.add("acme", "bob", "viewer", PASSWORD)
        reasons: list[str] = []
        lock = threading.Lock()
        start = threading.Barrier(12)

        def guess(_: Any) -> None:
            start.wait()
            try:
                users.authenticate("acme", "bob", "not the password")
            except LoginRefused as exc:
                with lock:
                    reasons.append(exc.reason)

        with ThreadPoolExecutor(12) as pool:
            list(pool.map(guess, range(12)))
        assert reasons.count("wrong password") == MAX_FAILURES - 1, reasons
        assert reasons.count("wrong password; account locked") == 1
        assert reasons.count("locked") == 12 - MAX_FAILURES
        user = users.get("acme", "bob")
        assert user is not None and user.locked_until_ns > time.time_ns() and user.failed == 0
    finally:
        lg.close()


def test_sweep_deletes_only_ended_sessions(tmp_path: Path) -> None:
    lg = open_ledger(Settings(data=str(tmp_path / "data")), background=False)
    try:
        store = SessionStore(lg.store)
        live, _ = store.create("acme", "alice")
        now = time.time_ns()
        hour = 3600 * 1_000_000_000
        for i, (created, last) in enumerate([(now - 9 * hour, now - 9 * hour), (now - 2 * hour, now - hour)]):
            s = Session(tenant="acme", username="u", csrf="x", created_ns=created, expires_ns=created + 8 * hour, last_ns=last)
            lg.store.doc_put(Doc(sessions_mod.COLLECTION, f"{i:064d}", "acme", created, "active", sessions_mod._encode.encode(s)))
        assert store.sweep(now, page=1) == 2  # paged one at a time
        assert lg.store.doc_count(sessions_mod.COLLECTION) == 1
        assert store.check(live) is None
    finally:
        lg.close()


def test_clear_totp_secrets_of_older_records_are_sealed_at_start(tmp_path: Path) -> None:
    import msgspec
    import pyotp

    from auditkeep.console import users as users_mod

    data = tmp_path / "data"
    assert auditkeep(data, "init", process=False).returncode == 0
    add_user(data, "acme", "olda", "viewer")
    secret = pyotp.random_base32()
    lg = open_ledger(Settings(data=str(data)), create=False, background=False)
    try:  # a record as written before secrets were sealed: the secret in clear
        doc = lg.store.doc_get(users_mod.COLLECTION, "acme/olda")
        assert doc is not None
        legacy = msgspec.json.decode(doc.data)
        legacy["totp_secret"] = secret
        lg.store.doc_put(Doc(doc.collection, doc.id, doc.tenant, doc.created_ns, doc.status, msgspec.json.encode(legacy)))
    finally:
        lg.close()
    srv = Server(data)
    try:
        lg = open_ledger(Settings(data=str(data)), create=False, background=False)
        try:
            stored = lg.store.doc_get(users_mod.COLLECTION, "acme/olda")
            assert stored is not None
            assert secret.encode() not in stored.data and b'"totp_sealed":"v1.' in stored.data
        finally:
            lg.close()
        assert (data / "console.key").stat().st_mode & 0o077 == 0
        with httpx.Client(base_url=srv.url, follow_redirects=False) as c:
            csrf = c.get("/ui/login").cookies["ak_login"]
            r = c.post("/ui/login", data={"csrf": csrf, "tenant": "acme", "username": "olda", "password": PASSWORD,
                                          "code": pyotp.TOTP(secret).now()})  # fmt: skip
            assert r.status_code == 303, r.text
    finally:
        srv.stop()
    # another key is refused: the store's secrets are sealed under the first one
    (data / "console.key").unlink()
    r = auditkeep(data, "users", "totp", "-t", "acme", "-u", "olda")
    assert r.returncode != 0 and "not the key this store's console secrets are sealed under" in (r.stderr + r.stdout)


def test_a_sealed_secret_opens_only_for_its_account_and_key() -> None:
    from auditkeep.console.secretbox import SecretBox, SecretUnreadable

    box = SecretBox(bytes(range(32)))
    sealed = box.seal("JBSWY3DPEHPK3PXP", "acme/tom")
    assert "JBSWY3DPEHPK3PXP" not in sealed and box.open(sealed, "acme/tom") == "JBSWY3DPEHPK3PXP"
    with pytest.raises(SecretUnreadable):
        box.open(sealed, "acme/mallory")  # copied into another account's record
    with pytest.raises(SecretUnreadable):
        SecretBox(bytes(32)).open(sealed, "acme/tom")
    with pytest.raises(SecretUnreadable):
        box.open(sealed[:-4] + "AAAA", "acme/tom")
