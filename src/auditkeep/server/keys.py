"""API keys: ``ak_<keyid>_<secret>``, kept as a hash in the store's ``apikeys`` collection.

The secret is 32 random bytes, so a plain SHA-256 is as strong as a slow password hash would
be; only the hash is stored and it is compared in constant time. The key id is public (it
appears in audit events and listings); the secret is shown once, at creation.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Iterable

import msgspec

from auditkeep.errors import UserError
from auditkeep.model.errors import ValidationError
from auditkeep.model.timefmt import RANGE_MESSAGE, format_rfc3339, in_range
from auditkeep.query.filters import parse_time
from auditkeep.store.base import Doc, Lease, Store, StoreUnavailable

COLLECTION = "apikeys"
SCOPES: tuple[str, ...] = ("ingest", "read", "verify", "admin")
ALL_TENANTS = "*"
PREFIX = "ak"
_KEYID = re.compile(r"^[a-z2-7]{12}$")
_SECRET = re.compile(r"^[A-Za-z0-9_-]{43}$")
_DURATION = re.compile(r"^(\d+)\s*(m|h|d|w|y)$")
_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 365 * 86400}


class ApiKey(msgspec.Struct, kw_only=True):
    """What is stored of a key (never the secret)."""

    keyid: str
    tenant: str  # a tenant name, or "*" for a key spanning tenants
    scopes: list[str]
    secret_sha256: str
    created_ns: int
    expires_ns: int | None = None
    revoked_ns: int | None = None
    name: str | None = None

    def public(self) -> dict[str, object]:
        """The key as listings show it: no hash."""
        return {
            "keyid": self.keyid,
            "tenant": self.tenant,
            "scopes": list(self.scopes),
            "name": self.name,
            "created": format_rfc3339(self.created_ns),
            "expires": format_rfc3339(self.expires_ns) if self.expires_ns else None,
            "revoked": format_rfc3339(self.revoked_ns) if self.revoked_ns else None,
        }

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


class AuthFailure(UserError):
    """A bearer token was refused; ``reason`` is a short label for metrics."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class LastAdminKey(UserError):
    """Revoking this key would leave no usable admin key for all tenants."""


def _spans_admin(key: ApiKey) -> bool:
    """A usable admin key for all tenants (not revoked, not expired)."""
    usable = key.revoked_ns is None and (key.expires_ns is None or key.expires_ns > time.time_ns())
    return usable and key.tenant == ALL_TENANTS and "admin" in key.scopes


_decode = msgspec.json.Decoder(ApiKey)
_encode = msgspec.json.Encoder()


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def new_keyid() -> str:
    return base64.b32encode(secrets.token_bytes(8)).decode("ascii").lower()[:12]


def new_secret() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii").rstrip("=")


def parse_token(token: str) -> tuple[str, str]:
    """(keyid, secret) of ``ak_<keyid>_<secret>``; AuthFailure when malformed."""
    prefix, _, rest = token.partition("_")
    keyid, _, secret = rest.partition("_")
    if prefix != PREFIX or not _KEYID.match(keyid) or not _SECRET.match(secret):
        raise AuthFailure("malformed", "malformed API key (expected ak_<keyid>_<secret>)")
    return keyid, secret


def parse_scopes(text: str | Iterable[str]) -> list[str]:
    items = text.split(",") if isinstance(text, str) else list(text)
    scopes = sorted({s.strip() for s in items if s.strip()})
    if not scopes:
        raise ValidationError("at least one scope is required", "scopes")
    for s in scopes:
        if s not in SCOPES:
            raise ValidationError(f"unknown scope {s!r}; choose from {', '.join(SCOPES)}", "scopes")
    return scopes


def parse_expiry(text: str | None, now_ns: int | None = None) -> int | None:
    """An expiry as a duration from now (``90d``, ``12h``, ``2w``, ``1y``) or an RFC 3339 time."""
    if text is None or text == "" or text == "never":
        return None
    now = time.time_ns() if now_ns is None else now_ns
    m = _DURATION.match(text.strip())
    if m:
        seconds = int(m.group(1)) * _UNITS[m.group(2)] if len(m.group(1)) <= 15 else 2**63
        if seconds <= 0:
            raise ValidationError("must be in the future", "expires")
        at = now + seconds * 1_000_000_000
        if not in_range(at):
            raise ValidationError(RANGE_MESSAGE, "expires")
        return at
    at = parse_time(text, "expires", now)
    if at <= now:
        raise ValidationError("must be in the future", "expires")
    return at


class KeyStore:
    """Create, find, verify and revoke API keys in a store's document collection."""

    def __init__(self, store: Store, cache_seconds: float = 1.0) -> None:
        self.store = store
        self._cache_ns = int(cache_seconds * 1e9)
        self._cache: dict[str, tuple[int, ApiKey | None]] = {}

    def create(
        self,
        tenant: str,
        scopes: str | Iterable[str],
        expires_ns: int | None = None,
        name: str | None = None,
    ) -> tuple[ApiKey, str]:
        """A new key and its full token (shown once)."""
        scope_list = parse_scopes(scopes)
        if tenant != ALL_TENANTS:
            from auditkeep.ledger.ledger import check_tenant

            check_tenant(tenant)
        if name is not None and len(name) > 200:
            raise ValidationError("longer than 200 characters", "name")
        now = time.time_ns()
        secret = new_secret()
        while True:
            key = ApiKey(
                keyid=new_keyid(),
                tenant=tenant,
                scopes=scope_list,
                secret_sha256=_hash(secret),
                created_ns=now,
                expires_ns=expires_ns,
                name=name,
            )
            if self.store.doc_insert(self._doc(key)):
                return key, f"{PREFIX}_{key.keyid}_{secret}"

    def get(self, keyid: str) -> ApiKey | None:
        doc = self.store.doc_get(COLLECTION, keyid)
        return _decode.decode(doc.data) if doc else None

    def list(self, tenant: str | None = None, include_revoked: bool = True, limit: int = 1000) -> list[ApiKey]:
        docs = self.store.doc_list(COLLECTION, tenant=tenant, status=None if include_revoked else "active", limit=limit)
        return [_decode.decode(d.data) for d in docs]

    def count(self) -> int:
        return self.store.doc_count(COLLECTION)

    def revoke(self, keyid: str) -> ApiKey | None:
        """Mark a key revoked (kept for the record); None when there is no such key.

        :class:`LastAdminKey` when it is the last usable admin key for all tenants: revoking
        it would lock administration out (create another one first)."""
        key = self.get(keyid)
        if key is None:
            return None
        if key.revoked_ns is None and _spans_admin(key):
            # Check and revoke under one lease: two processes revoking the last two admin
            # keys at once must not both see the other one still usable.
            lease = self._revoke_lease()
            try:
                key = self.get(keyid) or key
                if key.revoked_ns is None and not any(
                    k.keyid != keyid and _spans_admin(k)
                    for k in self.list(ALL_TENANTS, include_revoked=False, limit=100_000)
                ):
                    raise LastAdminKey(
                        f"key {keyid} is the last admin key for all tenants; revoking it would lock "
                        "administration out: create another (auditkeep keys create --tenant '*' "
                        "--scopes admin) first"
                    )
                self._mark_revoked(key)
            finally:
                lease.release()
        else:
            self._mark_revoked(key)
        return key

    def _mark_revoked(self, key: ApiKey) -> None:
        if key.revoked_ns is None:
            key.revoked_ns = time.time_ns()
            self.store.doc_put(self._doc(key))
        self._cache.pop(key.keyid, None)

    def _revoke_lease(self, timeout: float = 10.0) -> Lease:
        deadline = time.monotonic() + timeout
        while True:
            lease = self.store.lease("keys-revoke")
            if lease is not None:
                return lease
            if time.monotonic() > deadline:
                raise StoreUnavailable("another process is revoking keys; try again", retry_after=1.0)
            time.sleep(0.005)

    def verify(self, token: str) -> ApiKey:
        """The key a bearer token names; AuthFailure (with a reason) when it is not usable."""
        keyid, secret = parse_token(token)
        key = self._lookup(keyid)
        if key is None or not hmac.compare_digest(key.secret_sha256, _hash(secret)):
            raise AuthFailure("unknown", "unknown API key")
        if key.revoked_ns is not None:
            raise AuthFailure("revoked", "API key has been revoked")
        if key.expires_ns is not None and key.expires_ns <= time.time_ns():
            raise AuthFailure("expired", "API key has expired")
        return key

    def status(self, keyid: str) -> str | None:
        """Why the key ``keyid`` may no longer be used (read now, not from the cache), or None.

        Long-lived connections (the live tail) ask this while they run, so a key revoked by
        any process, or one that expires, ends them."""
        key = self.get(keyid)
        if key is None:
            return "API key no longer exists"
        if key.revoked_ns is not None:
            return "API key has been revoked"
        if key.expires_ns is not None and key.expires_ns <= time.time_ns():
            return "API key has expired"
        return None

    def is_cached(self, token: str) -> bool:
        """True when :meth:`verify` of ``token`` needs no store read (so may run inline)."""
        keyid = token.partition("_")[2].partition("_")[0]
        hit = self._cache.get(keyid)
        return hit is not None and time.monotonic_ns() - hit[0] < self._cache_ns

    def _lookup(self, keyid: str) -> ApiKey | None:
        # A short cache spares a store read per request; revocation through this process
        # clears it at once, revocation by another process takes effect within cache_seconds.
        now = time.monotonic_ns()
        hit = self._cache.get(keyid)
        if hit is not None and now - hit[0] < self._cache_ns:
            return hit[1]
        key = self.get(keyid)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[keyid] = (now, key)
        return key

    def _doc(self, key: ApiKey) -> Doc:
        status = "revoked" if key.revoked_ns is not None else "active"
        return Doc(COLLECTION, key.keyid, key.tenant, key.created_ns, status, _encode.encode(key))
