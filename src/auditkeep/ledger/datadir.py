"""The data directory: the signing key, the log id and the embedded store files.

    auditkeep-data/
      signing.key            Ed25519 key in the note private-key format, mode 0600
      signing.key.previous   the key before the last rotation; it co-signs until the next
      signing.key.new        only while a rotation runs (see auditkeep.ledger.rotation)
      log.db                 the log (SQLite)
      index.db               the query projection (rebuildable)

Only writers open the signing key (:func:`establish`); readers need the log id and the
verifier keys kept in the store (:mod:`auditkeep.ledger.keyring`) or given to them.
"""

from __future__ import annotations

import base64
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from auditkeep.crypto.signing import create_signing_key, load_signing_key, parse_signing_key
from auditkeep.errors import DataDirError as DataDirError  # re-exported: its old home
from auditkeep.ledger.keyring import LogKey, load_keys, save_keys
from auditkeep.ledger.rotation import KEY_FILE, PREVIOUS_KEY_FILE, finish_rotation
from auditkeep.log.note import NoteSigner
from auditkeep.store.base import Store

LOG_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


@dataclass
class Identity:
    """A writer's identity: the log id and its signing keys (the current one first; after
    a rotation, the previous one co-signs)."""

    log_id: str
    signer: NoteSigner
    previous: NoteSigner | None = None

    @property
    def key_name(self) -> str:
        return key_name(self.log_id)

    def signers_for(self, origin: str) -> list[NoteSigner]:
        """The signers of a tenant's checkpoints: each key named after the checkpoint's
        origin, as C2SP tlog-checkpoint recommends (one Ed25519 key behind every tenant)."""
        keys = [self.signer] if self.previous is None else [self.signer, self.previous]
        return [NoteSigner(origin, k.private_key) for k in keys]


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
            finish_rotation(store, directory)  # a rotation killed half-way: complete it
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
    keys = load_keys(store)
    vkey = signer.verifier_key()
    if not keys:
        save_keys(store, [LogKey(vkey, time.time_ns())])
    elif keys[-1].vkey != vkey:
        if any(k.vkey == vkey for k in keys):
            raise DataDirError("signing key is a retired key of this log (rotated since); use the current one")
        raise DataDirError("signing key differs from the key this log was created with")
    previous = None
    if len(keys) > 1 and not signing_key:
        previous = _previous_key(directory, keys[-2].vkey)
    return Identity(stored_id, signer, previous), created


def _previous_key(directory: Path, vkey: str) -> NoteSigner | None:
    """The key before the last rotation, if it is still kept (it co-signs until the next)."""
    path = directory / PREVIOUS_KEY_FILE
    if not path.exists():
        return None
    signer = load_signing_key(path)
    if signer.verifier_key() != vkey:
        raise DataDirError(f"{path} is not the key this log used before its last rotation")
    return signer
