"""Console sessions: a random token in an HttpOnly cookie; the store keeps only its SHA-256
(so a copy of the store cannot be replayed as a cookie) with the account, a CSRF token and
the expiry. A session is created only by a successful login (never adopted from a cookie the
browser brings), which is what defeats session fixation."""

from __future__ import annotations

import hashlib
import secrets
import time

import msgspec

from auditkeep.store.base import Doc, Store

COLLECTION = "console_sessions"
LIFETIME_S = 8 * 3600  # absolute: a working day
IDLE_S = 30 * 60  # a session unused this long ends
_TOUCH_NS = 60 * 1_000_000_000  # last use is written at most once a minute


class Session(msgspec.Struct, kw_only=True):
    tenant: str
    username: str
    csrf: str
    created_ns: int
    expires_ns: int
    last_ns: int


_decode = msgspec.json.Decoder(Session)
_encode = msgspec.json.Encoder()


def _key(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


class SessionStore:
    def __init__(self, store: Store) -> None:
        self.store = store

    def create(self, tenant: str, username: str) -> tuple[str, Session]:
        """A new session and its cookie token."""
        now = time.time_ns()
        token = secrets.token_urlsafe(32)
        session = Session(
            tenant=tenant,
            username=username,
            csrf=secrets.token_urlsafe(32),
            created_ns=now,
            expires_ns=now + LIFETIME_S * 1_000_000_000,
            last_ns=now,
        )
        self.store.doc_put(Doc(COLLECTION, _key(token), tenant, now, "active", _encode.encode(session)))
        return token, session

    def get(self, token: str) -> Session | None:
        """The live session of a cookie token, or None (unknown, expired or idle)."""
        if not token or len(token) > 128:
            return None
        key = _key(token)
        doc = self.store.doc_get(COLLECTION, key)
        if doc is None:
            return None
        session = _decode.decode(doc.data)
        now = time.time_ns()
        if now >= session.expires_ns or now - session.last_ns >= IDLE_S * 1_000_000_000:
            self.store.doc_delete(COLLECTION, key)
            return None
        if now - session.last_ns >= _TOUCH_NS:
            session.last_ns = now
            self.store.doc_put(Doc(COLLECTION, key, session.tenant, session.created_ns, "active", _encode.encode(session)))
        return session

    def check(self, token: str) -> str | None:
        """Why the session of ``token`` is no longer valid (None while it is), without
        counting as a use: an open live tail does not keep its session from idling out."""
        doc = self.store.doc_get(COLLECTION, _key(token)) if token and len(token) <= 128 else None
        if doc is None:
            return "the session ended (signed out)"
        session = _decode.decode(doc.data)
        now = time.time_ns()
        if now >= session.expires_ns:
            return "the session expired"
        if now - session.last_ns >= IDLE_S * 1_000_000_000:
            return "the session expired (idle)"
        return None

    def sweep(self, now_ns: int | None = None, page: int = 500, pages: int = 20) -> int:
        """Delete ended sessions (expired, or idle past IDLE_S), which nothing else removes
        when their browser never comes back; at most ``pages`` x ``page`` are read per call
        (a later sweep carries on). Returns how many were deleted."""
        now = time.time_ns() if now_ns is None else now_ns
        idle = IDLE_S * 1_000_000_000
        before: int | None = None
        gone = 0
        for _ in range(pages):
            docs = self.store.doc_list(COLLECTION, before_ns=before, limit=page)
            ended = []
            for d in docs:
                try:
                    s = _decode.decode(d.data)
                except msgspec.DecodeError:
                    ended.append(d.id)
                    continue
                if now >= s.expires_ns or now - s.last_ns >= idle:
                    ended.append(d.id)
            gone += self.store.doc_delete_many(COLLECTION, ended)
            if len(docs) < page:
                break
            before = docs[-1].created_ns
        return gone

    def end(self, token: str) -> None:
        if token and len(token) <= 128:
            self.store.doc_delete(COLLECTION, _key(token))
