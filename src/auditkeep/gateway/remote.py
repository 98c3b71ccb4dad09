"""Approvals through a server's ``/v1/approvals``: the :class:`~auditkeep.gateway.approvals.Approvals`
interface for a gateway (and ``auditkeep gateway approve``) given ``--server URL --key KEY``.

Filing and waiting need a key with the ``ingest`` scope (a gateway's key); listing and
deciding need ``admin``. The approver is the key itself, so ``approver`` arguments are
ignored here (the server records the key's name or id).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx
import msgspec

from auditkeep.client.client import http_headers
from auditkeep.client.reads import raise_for_status
from auditkeep.gateway.approvals import Approval, ApprovalConflict, SelfApproval

_approval = msgspec.json.Decoder(Approval)


class _List(msgspec.Struct):
    approvals: list[Approval]
    next_cursor: str | None = None


_list = msgspec.json.Decoder(_List)
_any = msgspec.json.Decoder()
LONG_POLL = 25  # seconds one GET waits on the server


class RemoteApprovals:
    """See the module docstring. ``tls_verify`` is a CA bundle path or a bool."""

    def __init__(self, url: str, api_key: str, *, timeout: float = 10.0, tls_verify: bool | str = True) -> None:
        self._http = httpx.Client(base_url=url.rstrip("/"), headers=http_headers(api_key), timeout=timeout, verify=tls_verify)
        self._timeout = timeout

    def close(self) -> None:
        self._http.close()

    @staticmethod
    def _params(tenant: str | None, **extra: str) -> dict[str, str]:
        out = {k: v for k, v in extra.items() if v}
        if tenant:
            out["tenant"] = tenant
        return out

    def _check(self, r: httpx.Response) -> None:
        if r.status_code in (403, 409):
            try:
                body = _any.decode(r.content)
            except msgspec.DecodeError:
                body = None
            if isinstance(body, dict):
                message = str(body.get("error", ""))
                if r.status_code == 409:
                    raise _conflict(message, str(body.get("current", "decided")))
                if body.get("kind") == "self_approval":
                    raise SelfApproval(message)
        raise_for_status(r.status_code, r.content, r.headers.get("retry-after"))

    def request(
        self,
        tenant: str,
        *,
        gateway: str,
        requester: str,
        action: str,
        summary: str,
        timeout: float,
        rule: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> Approval:
        body = {"gateway": gateway, "requester": requester, "action": action, "summary": summary,
                "timeout": timeout, "rule": rule, "details": dict(details or {})}  # fmt: skip
        r = self._http.post("/v1/approvals", content=msgspec.json.encode(body), params=self._params(tenant))
        self._check(r)
        return _approval.decode(r.content)

    def get(self, approval_id: str, tenant: str | None = None, wait: int = 0) -> Approval:
        params = self._params(tenant, wait=str(wait) if wait else "")
        timeout = self._timeout + wait
        r = self._http.get(f"/v1/approvals/{quote(approval_id, safe='')}", params=params, timeout=timeout)
        self._check(r)
        return _approval.decode(r.content)

    def find(
        self, tenant: str | None = None, status: str | None = None, limit: int = 100, cursor: str | None = None
    ) -> tuple[list[Approval], str | None]:
        params = self._params(tenant, status=status or "", limit=str(limit), cursor=cursor or "")
        r = self._http.get("/v1/approvals", params=params)
        self._check(r)
        got = _list.decode(r.content)
        return got.approvals, got.next_cursor

    def _decide(self, verb: str, approval_id: str, tenant: str | None, note: str | None) -> Approval:
        body = msgspec.json.encode({"note": note}) if note else b""
        r = self._http.post(f"/v1/approvals/{quote(approval_id, safe='')}/{verb}", content=body, params=self._params(tenant))
        self._check(r)
        return _approval.decode(r.content)

    def approve(self, approval_id: str, approver: str, *, tenant: str | None = None, note: str | None = None) -> Approval:
        return self._decide("approve", approval_id, tenant, note)

    def reject(self, approval_id: str, approver: str, *, tenant: str | None = None, note: str | None = None) -> Approval:
        return self._decide("reject", approval_id, tenant, note)

    def wait(self, approval_id: str, timeout: float, tenant: str | None = None) -> Approval:
        """Long-poll until decided, for at most ``timeout`` seconds and never past the
        request's expiry by more than a second (the server then records the expiry)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            req = self.get(approval_id, tenant, wait=max(0, min(LONG_POLL, int(left))))
            if req.final:
                return req
            now = time.time_ns()
            if now >= req.expires_ns + 200_000_000:  # the server records the expiry on this read
                return self.get(approval_id, tenant)
            if time.monotonic() >= deadline and req.expires_ns - now > 2_000_000_000:
                return req  # the caller gave up long before the request expires
            if left < 1:
                time.sleep(max(0.05, min(0.25, deadline - time.monotonic())))


def _conflict(message: str, current: str) -> ApprovalConflict:
    exc = ApprovalConflict("", current, "decided")
    exc.args = (message,)
    return exc
