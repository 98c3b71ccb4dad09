"""Under TLS the console's cookies are Secure (and still HttpOnly, SameSite=Strict)."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
from console_support import PASSWORD, add_user, auditkeep
from http_server_support import Server
from test_server_tls import _cert


def test_cookies_are_secure_under_tls(tmp_path: Path) -> None:
    ca = _cert(tmp_path / "ca", "test ca", ca=True)
    _cert(tmp_path / "server", "127.0.0.1", ca)
    trust = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
    data = tmp_path / "data"
    assert auditkeep(data, "init", process=False).returncode == 0
    add_user(data, "acme", "tess", "viewer")
    srv = Server(data, args=("--tls-cert", str(tmp_path / "server.crt"), "--tls-key", str(tmp_path / "server.key")), verify=trust)
    try:
        with httpx.Client(base_url=srv.url, verify=trust, follow_redirects=False) as c:
            r = c.get("/ui/login")
            login_cookie = r.headers["set-cookie"]
            assert "Secure" in login_cookie and "HttpOnly" in login_cookie and "SameSite=strict" in login_cookie
            r = c.post("/ui/login", data={"csrf": c.cookies["ak_login"], "tenant": "acme", "username": "tess", "password": PASSWORD})
            assert r.status_code == 303, r.text
            session = next(v for k, v in r.headers.multi_items() if k == "set-cookie" and v.startswith("ak_session="))
            assert "Secure" in session and "HttpOnly" in session and "SameSite=strict" in session and "Path=/ui/" in session
            assert c.get("/ui/search").status_code == 200
    finally:
        srv.stop()
