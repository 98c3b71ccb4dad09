"""Client IP behind trusted proxies; routes; outcomes from status codes."""

from __future__ import annotations

import re

import pytest

from auditkeep.integrations import Route, TrustedProxies, client_ip, outcome_for

TRUSTED = TrustedProxies(["10.0.0.0/8", "127.0.0.1", "2001:db8::/32"])


@pytest.mark.parametrize(
    ("peer", "xff", "expected"),
    [
        ("203.0.113.9", None, "203.0.113.9"),
        # An untrusted peer's header is the client's own claim: ignored.
        ("203.0.113.9", "1.2.3.4", "203.0.113.9"),
        # Through our proxy: the right-most address that is not ours.
        ("10.0.0.2", "198.51.100.7", "198.51.100.7"),
        ("10.0.0.2", "6.6.6.6, 198.51.100.7, 10.1.2.3", "198.51.100.7"),
        ("127.0.0.1", "6.6.6.6,198.51.100.7", "198.51.100.7"),
        # Every hop ours: the left-most is the client.
        ("10.0.0.2", "10.9.9.9, 10.0.0.3", "10.9.9.9"),
        # Ports, brackets, IPv6, v4-mapped peers.
        ("10.0.0.2", "198.51.100.7:4711", "198.51.100.7"),
        ("10.0.0.2", "[2001:db9::1]:443", "2001:db9::1"),
        ("2001:db8::5", "2001:db9::1", "2001:db9::1"),
        ("::ffff:10.0.0.2", "198.51.100.7", "198.51.100.7"),
        # Garbage stops the walk at the last hop we could read.
        ("10.0.0.2", "198.51.100.7, nonsense, 10.0.0.9", "10.0.0.9"),
        ("10.0.0.2", "nonsense", "10.0.0.2"),
        (None, "1.2.3.4", None),
        ("not-an-ip", None, None),
    ],
)
def test_client_ip(peer: str | None, xff: str | None, expected: str | None) -> None:
    assert client_ip(peer, xff, TRUSTED) == expected


def test_no_trusted_proxies_means_the_peer() -> None:
    assert client_ip("10.0.0.2", "198.51.100.7", TrustedProxies()) == "10.0.0.2"


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(200, "success"), (204, "success"), (302, "success"), (401, "denied"), (403, "denied"),
     (400, "failure"), (404, "failure"), (422, "failure"), (500, "error"), (503, "error")],
)  # fmt: skip
def test_outcome_for(status: int, outcome: str) -> None:
    assert outcome_for(status) == outcome


def test_routes() -> None:
    r = Route("/admin/*", ["post", "DELETE"])
    assert r.matches("POST", "/admin/users/1") and r.matches("delete", "/admin/x")
    assert not r.matches("GET", "/admin/users") and not r.matches("POST", "/api/admin")
    assert Route("/api/*").matches("PATCH", "/api/v1")
    rx = Route(re.compile(r"/invoices/\d+"), ["PUT"])
    assert rx.matches("PUT", "/invoices/42") and not rx.matches("PUT", "/invoices/42/x")
    with pytest.raises(TypeError):
        Route("/admin/*", "POST")  # a string is not a list of methods
