"""Console accounts: one per (tenant, username), a role, an argon2id password hash, and a
lockout counter. Kept in the store's ``console_users`` collection, so every server node and
the CLI see the same accounts."""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable
from typing import Literal

import msgspec
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from auditkeep.console.secretbox import SecretBox, SecretUnreadable
from auditkeep.errors import UserError
from auditkeep.model.errors import ValidationError
from auditkeep.model.validate import check_tenant
from auditkeep.store.base import Doc, Store

COLLECTION = "console_users"
ROLES: tuple[str, ...] = ("viewer", "auditor", "admin")
Role = Literal["viewer", "auditor", "admin"]
RANK = {r: i for i, r in enumerate(ROLES)}
MAX_FAILURES = 5  # consecutive failed logins before the account is locked
LOCK_SECONDS = 15 * 60
MIN_PASSWORD = 10
MAX_PASSWORD = 1024  # argon2 hashes anything; a bound keeps a login request cheap to refuse
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")

# RFC 9106's second recommended option (64 MiB, 3 passes) is too slow for a 2-core server
# under a login burst; argon2-cffi's defaults (46 MiB, t=1, p=4) are OWASP's minimum and
# are what is used here.
_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified against for unknown users, so a missing account takes as long as a wrong
    password; made at first need (an argon2 hash costs ~0.2 s of every import otherwise)."""
    return _hasher.hash("not a password of anyone")


class User(msgspec.Struct, kw_only=True):
    tenant: str
    username: str
    role: Role
    password_hash: str
    created_ns: int
    disabled_ns: int | None = None
    failed: int = 0  # consecutive failed logins
    locked_until_ns: int = 0
    # base32 (RFC 6238, 30 s, 6 digits) sealed by the console key (see secretbox); None:
    # password only. ``totp_secret`` is the clear secret of records written before sealing,
    # sealed by UserStore.seal_secrets (at server start) and never written any more.
    totp_sealed: str | None = None
    totp_secret: str | None = None
    totp_last_step: int = 0  # the newest time step a code was accepted for (no replay)

    @property
    def has_totp(self) -> bool:
        return self.totp_sealed is not None or self.totp_secret is not None

    def public(self) -> dict[str, object]:
        from auditkeep.model.timefmt import format_rfc3339

        return {
            "tenant": self.tenant,
            "username": self.username,
            "role": self.role,
            "created": format_rfc3339(self.created_ns),
            "disabled": format_rfc3339(self.disabled_ns) if self.disabled_ns else None,
            "locked": self.locked_until_ns > time.time_ns(),
            "failed_logins": self.failed,
            "totp": self.has_totp,
        }


class LoginRefused(UserError):
    """A login failed; ``reason`` is recorded in the audit event, never shown to the user
    (who sees one message for every reason, so accounts cannot be enumerated)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_decode = msgspec.json.Decoder(User)
_encode = msgspec.json.Encoder()


def check_username(name: str) -> str:
    if not _USERNAME.match(name):
        raise ValidationError("expected 1-64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit", "username")
    return name


def check_role(role: str) -> Role:
    if role not in ROLES:
        raise ValidationError(f"must be one of {', '.join(ROLES)}", "role")
    return role  # type: ignore[return-value]


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise ValidationError(f"must be at least {MIN_PASSWORD} characters", "password")
    if len(password) > MAX_PASSWORD:
        raise ValidationError(f"must be at most {MAX_PASSWORD} characters", "password")
    return password


def _id(tenant: str, username: str) -> str:
    return f"{tenant}/{username}"


class UserStore:
    """Accounts in ``store``; ``box`` (the console key) seals and opens TOTP secrets: needed
    to turn two-factor on and to sign in to an account that has it."""

    def __init__(self, store: Store, box: SecretBox | None = None) -> None:
        self.store = store
        self.box = box

    def _box(self) -> SecretBox:
        if self.box is None:
            raise UserError("the console key is needed for two-factor secrets")
        return self.box

    def totp_secret(self, user: User) -> str | None:
        """The user's TOTP secret in clear (opened with the console key), or None."""
        if user.totp_sealed is not None:
            return self._box().open(user.totp_sealed, _id(user.tenant, user.username))
        return user.totp_secret

    def seal_secrets(self) -> int:
        """Seal every TOTP secret still kept in clear (records written before sealing), each
        by a compare-and-swap so a concurrent change is not lost; how many were sealed."""
        box = self._box()
        n = 0
        for u in self.list():
            if u.totp_secret is None:
                continue

            def seal(user: User) -> User | None:
                if user.totp_secret is None:
                    return None
                user.totp_sealed = box.seal(user.totp_secret, _id(user.tenant, user.username))
                user.totp_secret = None
                return user

            if self._update(u.tenant, u.username, seal) is not None:
                n += 1
        return n

    def get(self, tenant: str, username: str) -> User | None:
        doc = self.store.doc_get(COLLECTION, _id(tenant, username))
        return _decode.decode(doc.data) if doc else None

    def add(self, tenant: str, username: str, role: str, password: str) -> User:
        check_tenant(tenant)
        user = User(
            tenant=tenant,
            username=check_username(username),
            role=check_role(role),
            password_hash=_hasher.hash(check_password(password)),
            created_ns=time.time_ns(),
        )
        if not self.store.doc_insert(self._doc(user)):
            raise ValidationError(f"user {username!r} already exists in tenant {tenant!r}", "username")
        return user

    def list(self, tenant: str | None = None, limit: int = 10_000) -> list[User]:
        return [_decode.decode(d.data) for d in self.store.doc_list(COLLECTION, tenant=tenant, limit=limit)]

    def _existing(self, tenant: str, username: str) -> User:
        user = self.get(tenant, username)
        if user is None:
            raise ValidationError(f"no user {username!r} in tenant {tenant!r}", "username")
        return user

    def disable(self, tenant: str, username: str) -> User:
        user = self._existing(tenant, username)
        if user.disabled_ns is None:
            user.disabled_ns = time.time_ns()
            self._put(user)
        return user

    def reset(self, tenant: str, username: str, password: str, role: str | None = None) -> User:
        """A new password (and role, if given); clears the lockout and re-enables the account."""
        user = self._existing(tenant, username)
        user.password_hash = _hasher.hash(check_password(password))
        if role is not None:
            user.role = check_role(role)
        user.disabled_ns = None
        user.failed = 0
        user.locked_until_ns = 0
        self._put(user)
        return user

    def set_totp(self, tenant: str, username: str, enable: bool) -> str | None:
        """Turn two-factor sign-in on (a new secret, returned to show once) or off."""
        import pyotp

        user = self._existing(tenant, username)
        secret = pyotp.random_base32() if enable else None
        user.totp_sealed = self._box().seal(secret, _id(tenant, username)) if secret is not None else None
        user.totp_secret = None
        user.totp_last_step = 0
        self._put(user)
        return secret

    def authenticate(self, tenant: str, username: str, password: str, code: str = "") -> User:
        """The user, when the password (and, with two-factor on, the code) is right and the
        account usable; LoginRefused otherwise. A wrong password or code counts towards the
        lockout; a locked account refuses even the right one.

        The attempt is counted *before* the password is checked, by a compare-and-swap on
        the account's record, so concurrent guesses cannot read the same count and together
        get more than MAX_FAILURES checks between lockouts; a right answer then clears it."""
        if len(password) > MAX_PASSWORD or not _USERNAME.match(username):
            raise LoginRefused("malformed")
        now = time.time_ns()
        taken: list[int] = []

        def take(user: User) -> User | None:
            if user.locked_until_ns > now:
                raise LoginRefused("locked")
            if user.failed >= MAX_FAILURES:  # the other attempts in flight used the allowance
                raise LoginRefused("locked")
            user.failed += 1
            taken[:] = [user.failed]
            return user

        user = self._update(tenant, username, take)
        if user is None:
            _verify(_dummy_hash(), password)
            raise LoginRefused("unknown user")
        wrong = None if _verify(user.password_hash, password) else "wrong password"
        step: int | None = None
        try:
            secret = self.totp_secret(user) if wrong is None else None
        except (SecretUnreadable, UserError) as exc:
            raise LoginRefused(f"two-factor secret unavailable: {exc}") from None
        if secret is not None:
            step = _totp_step(secret, code, now)
            if step is None:
                wrong = "wrong code"
            elif step <= user.totp_last_step:
                wrong = "code used already"
        if wrong is not None:
            if taken[0] < MAX_FAILURES:
                raise LoginRefused(wrong)  # already counted

            def lock(u: User) -> User:
                u.locked_until_ns = now + LOCK_SECONDS * 1_000_000_000
                u.failed = 0
                return u

            self._update(tenant, username, lock)
            raise LoginRefused(f"{wrong}; account locked")

        def succeed(u: User) -> User:
            if u.locked_until_ns > now:  # locked by a concurrent wrong guess meanwhile
                raise LoginRefused("locked")
            if step is not None:
                if step <= u.totp_last_step:  # the same code used by a concurrent sign-in
                    raise LoginRefused("code used already")
                u.totp_last_step = step
            u.failed = 0
            u.locked_until_ns = 0
            if _hasher.check_needs_rehash(u.password_hash):
                u.password_hash = _hasher.hash(password)
            return u

        done = self._update(tenant, username, succeed)
        if done is None:
            raise LoginRefused("unknown user")
        if done.disabled_ns is not None:
            raise LoginRefused("disabled")
        return done

    def _update(self, tenant: str, username: str, change: Callable[[User], User | None]) -> User | None:
        """Read the account, apply ``change`` and write it back only if nobody wrote it in
        between (else read again); the changed user, or None when there is no such account.
        ``change`` may raise to give up, and returns None to write nothing."""
        for _ in range(100):
            doc = self.store.doc_get(COLLECTION, _id(tenant, username))
            if doc is None:
                return None
            user = change(_decode.decode(doc.data))
            if user is None:
                return _decode.decode(doc.data)
            if self.store.doc_swap(self._doc(user), doc.data):
                return user
        raise LoginRefused("busy")  # 100 lost races in a row: refuse rather than spin

    def _put(self, user: User) -> None:
        self.store.doc_put(self._doc(user))

    def _doc(self, user: User) -> Doc:
        status = "disabled" if user.disabled_ns is not None else "active"
        return Doc(COLLECTION, _id(user.tenant, user.username), user.tenant, user.created_ns, status, _encode.encode(user))


def _totp_step(secret: str, code: str, now_ns: int) -> int | None:
    """The time step a 6-digit code is valid for (now, or one step either side for clock
    skew), or None."""
    import hmac

    import pyotp

    code = code.strip().replace(" ", "")
    if len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    now = now_ns // 1_000_000_000
    for drift in (0, -1, 1):
        at = now + drift * totp.interval
        if hmac.compare_digest(totp.at(at), code):
            return int(at // totp.interval)
    return None


def _verify(stored: str, password: str) -> bool:
    try:
        return bool(_hasher.verify(stored, password))
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
