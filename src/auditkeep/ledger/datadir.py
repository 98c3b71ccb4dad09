"""The data directory: the signing key, the log id and the embedded store files.

    auditkeep-data/
      signing.key   Ed25519 key in the note private-key format, mode 0600
      log.db        the log (SQLite)
      index.db      the query projection (rebuildable)
"""

from __future__ import annotations

import base64
import os
import re
from dataclasses import dataclass
from pathlib import Path

from auditkeep.crypto.signing import create_signing_key, load_signing_key, parse_signing_key
from auditkeep.log.note import NoteSigner
from auditkeep.store.base import Store

KEY_FILE = "signing.key"
LOG_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class DataDirError(RuntimeError):
    """The data directory is missing, unreadable or inconsistent."""


@dataclass
class Identity:
    log_id: str
    signer: NoteSigner

    @property
    def key_name(self) -> str:
        return key_name(self.log_id)


def key_name(log_id: str) -> str:
    return f"auditkeep.local/{log_id}"


def new_log_id() -> str:
    return base64.b32encode(os.urandom(5)).decode().lower()


def check_log_id(log_id: str) -> str:
    if not LOG_ID_RE.match(log_id):
        raise DataDirError("log id must be 1-63 lowercase letters, digits or '-'")
    return log_id


def establish(
    store: Store,
    directory: Path,
    log_id: str | None = None,
    signing_key: str | None = None,
    create: bool = True,
) -> tuple[Identity, bool]:
    """The log's identity, created on first use: (identity, created).

    The log id lives in the store (so every node on a shared database agrees); the key comes
    from ``signing_key`` (the key text, e.g. from an environment variable) or the key file
    in ``directory``.
    """
    created = False
    stored_id = store.meta("log_id")
    if stored_id is None:
        if not create:
            raise DataDirError(f"no auditkeep log here; run `auditkeep init` first ({directory})")
        stored_id = check_log_id(log_id or new_log_id())
        store.set_meta("log_id", stored_id)
        created = True
    elif log_id is not None and log_id != stored_id:
        raise DataDirError(
            f"this store already holds the log {stored_id!r} (made by an earlier `auditkeep init` or "
            f"`auditkeep serve`), not {log_id!r}: leave out --log-id to use it, or give another --data directory"
        )
    if signing_key:
        signer = parse_signing_key(signing_key)
    else:
        path = directory / KEY_FILE
        if path.exists():
            signer = load_signing_key(path)
        elif create:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            signer = create_signing_key(path, key_name(stored_id))
            created = True
        else:
            raise DataDirError(f"signing key {path} not found")
    if signer.name != key_name(stored_id):
        raise DataDirError(
            f"signing key is named {signer.name!r} but this log is {key_name(stored_id)!r}"
        )
    pinned = store.meta("verifier_key")
    vkey = signer.verifier_key()
    if pinned is None:
        store.set_meta("verifier_key", vkey)
    elif pinned != vkey:
        raise DataDirError("signing key differs from the key this log was created with")
    return Identity(stored_id, signer), created
