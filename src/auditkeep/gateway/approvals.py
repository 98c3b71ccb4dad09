"""Approval requests: an action a guardrail put on hold until another person decides.

Both gateways (PostgreSQL, MCP) use this module the same way::

    book = ApprovalBook(ledger)                       # embedded: --data DIR / --db URL
    req = book.request("acme", gateway="postgres", requester="alice", action="db.query",
                       summary="DROP TABLE invoices", rule="ddl-review", timeout=300)
    final = book.wait(req.id, timeout=300)            # blocks (run it in a thread)
    if final.status != "approved": ...                # "rejected" or "expired": refuse

and someone else runs ``auditkeep gateway approve ID`` (or ``POST /v1/approvals/{id}/approve``).
:class:`~auditkeep.gateway.remote.RemoteApprovals` offers the same calls against a server.

Storage: two document collections, no tables of their own.

- ``gateway_approvals``: the request (id, tenant, requester, what is asked, expiry); its
  ``status`` column mirrors the decision for listings.
- ``gateway_approval_decisions``: the decision, inserted with ``doc_insert``. Insert-unless-
  exists is atomic in both stores, so the first decision wins across processes and nodes:
  an approval racing an expiry (or a second approver) gets :class:`ApprovalConflict`.

States: ``pending`` → ``approved`` | ``rejected`` | ``expired``. A pending request past its
expiry reads as ``expired`` (the waiter records the expiry when its wait ends; a reader
that finds one records it too). The requester cannot approve or reject their own request
(:class:`SelfApproval`), nor can the key that filed it.

Every request and every decision is appended, durably, to the tenant's log as an
``auditkeep.approval.requested`` / ``.approved`` / ``.rejected`` / ``.expired`` event.
``summary`` goes into those events as given: a gateway redacts it first.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Literal, Protocol

import msgspec

from auditkeep.errors import UserError
from auditkeep.ledger.ledger import Ledger, NotFound
from auditkeep.model.timefmt import format_rfc3339
from auditkeep.store.base import Doc, Store

COLLECTION = "gateway_approvals"
DECISIONS = "gateway_approval_decisions"
STATUSES: tuple[str, ...] = ("pending", "approved", "rejected", "expired")
REQUESTED = "auditkeep.approval.requested"
APPROVED = "auditkeep.approval.approved"
REJECTED = "auditkeep.approval.rejected"
EXPIRED = "auditkeep.approval.expired"
SERVICE = "auditkeep-gateway"
SYSTEM_ACTOR = "auditkeep.gateway"
MAX_SUMMARY = 4000
MAX_NOTE = 2000
MAX_TEXT = 200
MAX_TIMEOUT = 7 * 86400.0
POLL_INTERVAL = 0.25  # seconds between store reads of a waiter (decisions made elsewhere)

Status = Literal["pending", "approved", "rejected", "expired"]


class Approval(msgspec.Struct, kw_only=True):
    """One approval request as stored and shown."""

    id: str
    tenant: str
    gateway: str  # which gateway asked: "postgres", "mcp"
    requester: str  # the person (or agent) whose action waits
    action: str  # what the held action is, e.g. "db.query", "mcp.tools.call"
    summary: str  # what an approver is shown (the statement, the tool call), redacted
    rule: str | None = None  # the guardrail rule that asked for review
    requested_by: str | None = None  # the API key (or process) that filed it
    details: dict[str, Any] = msgspec.field(default_factory=dict)
    status: Status = "pending"
    created: str = ""
    expires: str = ""
    expires_ns: int = 0
    decided_by: str | None = None
    decided_at: str | None = None
    note: str | None = None

    @property
    def final(self) -> bool:
        return self.status != "pending"


class Decision(msgspec.Struct, kw_only=True):
    status: Status
    by: str
    at: str
    note: str | None = None


class ApprovalNotFound(NotFound):
    """No such approval request (in this tenant)."""


class ApprovalConflict(UserError):
    """The request is not pending any more (HTTP 409); ``current`` is its state."""

    def __init__(self, approval_id: str, current: str, wanted: str) -> None:
        super().__init__(f"approval {approval_id} is {current}; it cannot be {wanted}")
        self.current = current


class SelfApproval(UserError):
    """The decider is the requester (or the key that filed the request) (HTTP 403)."""


class Approvals(Protocol):
    """What a gateway and the ``auditkeep gateway`` commands need: the embedded
    :class:`ApprovalBook` and the remote :class:`~auditkeep.gateway.remote.RemoteApprovals`."""

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
    ) -> Approval: ...

    def get(self, approval_id: str, tenant: str | None = None) -> Approval: ...

    def find(
        self, tenant: str | None = None, status: str | None = None, limit: int = 100, cursor: str | None = None
    ) -> tuple[list[Approval], str | None]: ...

    def approve(self, approval_id: str, approver: str, *, tenant: str | None = None, note: str | None = None) -> Approval: ...

    def reject(self, approval_id: str, approver: str, *, tenant: str | None = None, note: str | None = None) -> Approval: ...

    def wait(self, approval_id: str, timeout: float, tenant: str | None = None) -> Approval: ...


_approval = msgspec.json.Decoder(Approval)
_decision = msgspec.json.Decoder(Decision)
_encode = msgspec.json.Encoder()


def same_identity(a: str | None, b: str | None) -> bool:
    """Whether two identities name the same person: case-insensitive, ignoring a
    ``cli:`` or ``user:`` prefix (the CLI records its login as ``cli:<login>``)."""
    if not a or not b:
        return False

    def norm(s: str) -> str:
        s = s.strip().lower()
        for p in ("cli:", "user:"):
            if s.startswith(p):
                s = s[len(p) :]
        return s

    return norm(a) == norm(b)


def plausible_id(approval_id: str) -> bool:
    return len(approval_id) == 32 and all(c in "0123456789abcdef" for c in approval_id)


def _check_text(value: str, name: str, limit: int = MAX_TEXT) -> str:
    from auditkeep.model.errors import ValidationError

    if not isinstance(value, str) or not value.strip():
        raise ValidationError("must be a non-empty string", name)
    if len(value) > limit:
        raise ValidationError(f"longer than {limit} characters", name)
    return value


class ApprovalBook:
    """Approval requests of every tenant in ``ledger.store``; see the module docstring."""

    def __init__(self, ledger: Ledger, now_ns: Callable[[], int] = time.time_ns) -> None:
        self.ledger = ledger
        self.store: Store = ledger.store
        self._now = now_ns
        self._changed = threading.Condition()  # decisions made in this process wake waiters

    # -- filing ------------------------------------------------------------------------

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
        requested_by: str | None = None,
    ) -> Approval:
        """File a pending request that expires ``timeout`` seconds from now; the
        ``requested`` event is durable when this returns."""
        from auditkeep.ledger.ledger import check_tenant
        from auditkeep.model.errors import ValidationError

        check_tenant(tenant)
        for value, name in ((gateway, "gateway"), (requester, "requester"), (action, "action")):
            _check_text(value, name)
        if rule is not None:
            _check_text(rule, "rule")
        if not isinstance(summary, str):
            raise ValidationError("must be a string", "summary")
        if not 0 < timeout <= MAX_TIMEOUT:
            raise ValidationError(f"must be between 0 and {int(MAX_TIMEOUT)} seconds", "timeout")
        now = self._now()
        expires_ns = now + int(timeout * 1e9)
        req = Approval(
            id=uuid.uuid4().hex,
            tenant=tenant,
            gateway=gateway,
            requester=requester,
            action=action,
            summary=summary[:MAX_SUMMARY],
            rule=rule,
            requested_by=requested_by,
            details=dict(details or {}),
            created=format_rfc3339(now),
            expires=format_rfc3339(expires_ns),
            expires_ns=expires_ns,
        )
        self.ledger.append_own([requested_event(req)], tenant, self.ledger.submitter)
        self.store.doc_put(Doc(COLLECTION, req.id, tenant, now, "pending", _encode.encode(req)))
        return req

    # -- reading -----------------------------------------------------------------------

    def get(self, approval_id: str, tenant: str | None = None) -> Approval:
        """The request with its current state (recording its expiry if it just passed)."""
        doc = self.store.doc_get(COLLECTION, approval_id) if plausible_id(approval_id) else None
        if doc is None or (tenant is not None and doc.tenant != tenant):
            raise ApprovalNotFound(f"no approval request {approval_id}")
        return self._current(doc)

    def _current(self, doc: Doc) -> Approval:
        req = _approval.decode(doc.data)
        if req.status != "pending":
            return req
        dec = self.store.doc_get(DECISIONS, req.id)
        if dec is not None:
            return self._apply(req, _decision.decode(dec.data), doc.created_ns)
        if self._now() >= req.expires_ns:
            return self.expire(req.id)
        return req

    def find(
        self, tenant: str | None = None, status: str | None = None, limit: int = 100, cursor: str | None = None
    ) -> tuple[list[Approval], str | None]:
        """Newest first; ``status`` filters on the current state; ``cursor`` continues."""
        from auditkeep.model.errors import ValidationError

        if status is not None and status not in STATUSES:
            raise ValidationError(f"must be one of {', '.join(STATUSES)}", "status")
        before: int | None = None
        if cursor:
            if not cursor.isdigit() or len(cursor) > 20:
                raise ValidationError("not a cursor returned by a previous page", "cursor")
            before = int(cursor)
        # Stored "pending" may have become expired or decided: read pending ones whole.
        stored = None if status in (None, "pending") else status
        out: list[Approval] = []
        while len(out) < limit:
            page = self.store.doc_list(COLLECTION, tenant=tenant, status=stored, before_ns=before, limit=200)
            for doc in page:
                before = doc.created_ns
                req = self._current(doc)
                if status is None or req.status == status:
                    out.append(req)
                    if len(out) == limit:
                        return out, str(before)
            if len(page) < 200:
                break
        return out, None

    # -- deciding ----------------------------------------------------------------------

    def approve(
        self, approval_id: str, approver: str, *, tenant: str | None = None, note: str | None = None,
        approver_key: str | None = None, approver_type: str = "user",
    ) -> Approval:
        return self.decide(approval_id, "approved", approver, tenant=tenant, note=note,
                           approver_key=approver_key, approver_type=approver_type)  # fmt: skip

    def reject(
        self, approval_id: str, approver: str, *, tenant: str | None = None, note: str | None = None,
        approver_key: str | None = None, approver_type: str = "user",
    ) -> Approval:
        return self.decide(approval_id, "rejected", approver, tenant=tenant, note=note,
                           approver_key=approver_key, approver_type=approver_type)  # fmt: skip

    def decide(
        self,
        approval_id: str,
        to: Literal["approved", "rejected"],
        approver: str,
        *,
        tenant: str | None = None,
        note: str | None = None,
        approver_key: str | None = None,
        approver_type: str = "user",
    ) -> Approval:
        """Approve or reject a pending request. :class:`SelfApproval` when ``approver`` is
        the requester (or ``approver_key`` filed it); :class:`ApprovalConflict` when it is
        decided or expired already. The decision event is durable when this returns."""
        from auditkeep.model.errors import ValidationError

        _check_text(approver, "approver")
        if note is not None and len(note) > MAX_NOTE:
            raise ValidationError(f"a note is at most {MAX_NOTE} characters", "note")
        req = self.get(approval_id, tenant)
        if same_identity(approver, req.requester) or (approver_key is not None and approver_key == req.requested_by):
            raise SelfApproval(f"{approver} requested approval {req.id}; another person must decide it")
        if req.final:
            raise ApprovalConflict(req.id, req.status, to)
        event = decision_event(req, to, approver, approver_type, note)
        return self._settle(req, Decision(status=to, by=approver, at=event["time"], note=note), event)

    def expire(self, approval_id: str) -> Approval:
        """Record that a pending request's time ran out (a decision made first wins)."""
        doc = self.store.doc_get(COLLECTION, approval_id)
        if doc is None:
            raise ApprovalNotFound(f"no approval request {approval_id}")
        req = _approval.decode(doc.data)
        if req.final:
            return req
        event = expired_event(req, format_rfc3339(self._now()))
        try:
            return self._settle(req, Decision(status="expired", by=SYSTEM_ACTOR, at=event["time"]), event)
        except ApprovalConflict:
            return self.get(approval_id)

    def _settle(self, req: Approval, dec: Decision, event: dict[str, Any]) -> Approval:
        now = self._now()
        if dec.status != "expired" and now >= req.expires_ns:
            self.expire(req.id)
            raise ApprovalConflict(req.id, "expired", dec.status)
        # The claim: whoever inserts the decision first has decided.
        if not self.store.doc_insert(Doc(DECISIONS, req.id, req.tenant, now, dec.status, _encode.encode(dec))):
            got = self.store.doc_get(DECISIONS, req.id)
            current = _decision.decode(got.data).status if got is not None else "decided"
            raise ApprovalConflict(req.id, current, dec.status)
        self.ledger.append_own([event], req.tenant, self.ledger.submitter)
        out = self._apply(req, dec, None)
        with self._changed:
            self._changed.notify_all()
        return out

    def _apply(self, req: Approval, dec: Decision, created_ns: int | None) -> Approval:
        """``req`` with ``dec`` applied, and its stored status brought up to date."""
        req.status = dec.status
        req.decided_by, req.decided_at, req.note = dec.by, dec.at, dec.note
        if created_ns is None:
            doc = self.store.doc_get(COLLECTION, req.id)
            created_ns = doc.created_ns if doc is not None else self._now()
        self.store.doc_put(Doc(COLLECTION, req.id, req.tenant, created_ns, req.status, _encode.encode(req)))
        return req

    # -- waiting -----------------------------------------------------------------------

    def wait(
        self, approval_id: str, timeout: float, tenant: str | None = None, poll: float = POLL_INTERVAL,
        *, expire: bool = True,
    ) -> Approval:
        """Block until the request is decided or expires (at most ``timeout`` seconds, and
        never past its expiry); returns it in its final state, ``expired`` on timeout
        (``expire=False``: still pending when only ``timeout`` ran out). Decisions made in
        this process wake the waiter at once; others are seen within ``poll`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            req = self.get(approval_id, tenant)
            if req.final:
                return req
            to_expiry = (req.expires_ns - self._now()) / 1e9
            left = min(deadline - time.monotonic(), to_expiry)
            if left <= 0:
                return self.expire(approval_id) if expire or to_expiry <= 0 else req
            with self._changed:
                self._changed.wait(min(poll, left))


async def wait_async(approvals: Approvals, approval_id: str, timeout: float, tenant: str | None = None,
                     poll: float = POLL_INTERVAL) -> Approval:  # fmt: skip
    """:meth:`Approvals.wait` for an event loop: the blocking wait runs in a thread a slice
    at a time, so cancelling the caller (the client went away) stops it within ``poll``
    seconds (a few seconds against a server). ``expired`` once ``timeout`` has passed."""
    import asyncio
    import functools

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    local = isinstance(approvals, ApprovalBook)
    step = poll * 4 if local else 5.0
    while True:
        left = deadline - loop.time()
        if left <= 0:
            if isinstance(approvals, ApprovalBook):
                return await asyncio.to_thread(approvals.expire, approval_id)  # a decision made first wins
            return await asyncio.to_thread(approvals.get, approval_id, tenant)
        slice_ = min(step, left)
        if isinstance(approvals, ApprovalBook):
            req = await asyncio.to_thread(functools.partial(approvals.wait, approval_id, slice_, tenant, poll, expire=False))
        else:
            req = await asyncio.to_thread(approvals.wait, approval_id, slice_, tenant)
        if req.final:
            return req


# -- the events ----------------------------------------------------------------------------


def _resource(req: Approval) -> dict[str, Any]:
    return {"type": "approval", "id": req.id, **({"name": req.rule} if req.rule else {})}


def requested_event(req: Approval) -> dict[str, Any]:
    return {
        "time": req.created,
        "actor": {"id": req.requester, "type": "user"},
        "action": REQUESTED,
        "category": "authorization",
        "outcome": "unknown",
        "resource": _resource(req),
        "source": {"service": SERVICE},
        "metadata": {
            "approval_id": req.id,
            "gateway": req.gateway,
            "held_action": req.action,
            "summary": req.summary,
            "rule": req.rule,
            "requested_by": req.requested_by,
            "expires": req.expires,
            "details": req.details,
        },
    }


def decision_event(req: Approval, to: str, approver: str, approver_type: str, note: str | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"approval_id": req.id, "gateway": req.gateway, "requester": req.requester, "rule": req.rule}
    if note:
        meta["note"] = note
    return {
        "time": format_rfc3339(time.time_ns()),
        "actor": {"id": approver, "type": approver_type if approver_type in ("user", "service", "agent", "system") else "user"},
        "action": APPROVED if to == "approved" else REJECTED,
        "category": "authorization",
        "outcome": "success",
        "resource": _resource(req),
        "source": {"service": SERVICE},
        "metadata": meta,
    }


def expired_event(req: Approval, at: str) -> dict[str, Any]:
    return {
        "time": at,
        "actor": {"id": SYSTEM_ACTOR, "type": "system"},
        "action": EXPIRED,
        "category": "authorization",
        "outcome": "failure",
        "reason": "no decision before the request expired",
        "resource": _resource(req),
        "source": {"service": SERVICE},
        "metadata": {"approval_id": req.id, "gateway": req.gateway, "requester": req.requester, "rule": req.rule},
    }


__all__ = [
    "Approval",
    "ApprovalBook",
    "ApprovalConflict",
    "ApprovalNotFound",
    "Approvals",
    "SelfApproval",
    "same_identity",
]
