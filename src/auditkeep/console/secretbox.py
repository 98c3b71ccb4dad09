"""The console's key for secrets it must read back (a TOTP secret is checked against each
code, so it cannot be hashed as a password is): AES-256-GCM under a key kept outside the
store, so a copy of the store (a backup, a database dump) does not hold the secrets in clear.

The key is ``console_key_file`` when set, else ``<data>/console.key`` (created on first use,
mode 0600, in the format of the encryption master key). Every server node of one store needs
the same key file, as they need the same signing key.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from auditkeep.config import Settings
from auditkeep.crypto.atrest import new_master_key, read_key_file, write_key_file
from auditkeep.errors import ConfigError, IntegrityError
from auditkeep.store.base import Store

PREFIX = "v1."
META_KEY_ID = "console_key_id"


class SecretUnreadable(IntegrityError):
    """A sealed secret does not open: altered, moved to another account, or another key."""


class SecretBox:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the console key must be 32 bytes")
        self._aead = AESGCM(key)
        # names the key without revealing it (recorded in the store, compared at load)
        self.key_id = hmac.new(key, b"auditkeep/console-key-id", hashlib.sha256).hexdigest()[:16]

    def seal(self, plain: str, context: str) -> str:
        """``plain`` sealed for ``context`` (the account: a sealed secret copied to another
        account's record does not open there)."""
        nonce = os.urandom(12)
        blob = nonce + self._aead.encrypt(nonce, plain.encode(), context.encode())
        return PREFIX + base64.urlsafe_b64encode(blob).decode("ascii")

    def open(self, sealed: str, context: str) -> str:
        if not sealed.startswith(PREFIX):
            raise SecretUnreadable("not a sealed secret")
        try:
            blob = base64.urlsafe_b64decode(sealed[len(PREFIX) :])
            return self._aead.decrypt(blob[:12], blob[12:], context.encode()).decode()
        except (InvalidTag, ValueError):
            raise SecretUnreadable("a sealed console secret does not open (altered, moved, or another key)") from None


def key_path(settings: Settings) -> Path:
    return Path(settings.console_key_file) if settings.console_key_file else Path(settings.data) / "console.key"


def load_box(settings: Settings, store: Store, create: bool = True) -> SecretBox:
    """The console's key (created when missing and ``create``; a configured
    ``console_key_file`` is never created). The store records the key's id the first time,
    and a different key is refused: secrets sealed under one key would not open under
    another (e.g. a second node of a PostgreSQL store that made a key of its own)."""
    path = key_path(settings)
    if create and not settings.console_key_file and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):  # another process made it first
            write_key_file(path, new_master_key())
    box = SecretBox(read_key_file(path))
    recorded = store.meta(META_KEY_ID)
    if recorded is None:
        store.set_meta(META_KEY_ID, box.key_id)
    elif recorded != box.key_id:
        raise ConfigError(
            f"the console key {path} (id {box.key_id}) is not the key this store's console secrets are "
            f"sealed under (id {recorded}): give every node the same key file (console_key_file)"
        )
    return box
