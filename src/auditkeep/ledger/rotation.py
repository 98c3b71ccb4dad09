"""Signing-key rotation: a new key signs from now on, the previous one co-signs, and the
store's keyring (:mod:`auditkeep.ledger.keyring`) keeps every verifier key with the size
each tenant's log had when it started signing.

The key files and the store cannot change in one atomic step, so rotation is ordered so
that a kill at any point leaves a log that writers open and sign, and that the next
writer (or ``rotate`` run again) completes:

1. the new key is written whole to ``signing.key.new`` (0600, fsynced);
2. the keyring in the store gains the new key: from here on the new key is the current one;
3. the old key is copied to ``signing.key.previous`` (replaced atomically);
4. ``signing.key.new`` is renamed over ``signing.key`` (atomic).

``signing.key`` exists at every point. A ``signing.key.new`` the keyring does not name
(killed before step 2) never signed anything and is discarded; one the keyring names as its
newest key (killed after step 2) is finished by :func:`finish_rotation`, which every writer
runs when it opens the data directory.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from auditkeep.crypto.signing import create_signing_key, format_signing_key, load_signing_key
from auditkeep.errors import DataDirError
from auditkeep.fsutil import fsync_dir
from auditkeep.ledger.keyring import LogKey, load_keys, save_keys
from auditkeep.log.note import NoteSigner
from auditkeep.store.base import Store

KEY_FILE = "signing.key"
PREVIOUS_KEY_FILE = "signing.key.previous"
NEW_KEY_FILE = "signing.key.new"
LEASE = "signing-key-rotation"


def finish_rotation(store: Store, directory: Path) -> bool:
    """Complete a rotation that was interrupted (see the module docstring); True when there
    was one to complete or discard."""
    new_path = directory / NEW_KEY_FILE
    if not new_path.exists():
        return False
    new = load_signing_key(new_path)
    keys = load_keys(store)
    if keys and keys[-1].vkey == new.verifier_key():
        _install(directory, load_signing_key(directory / KEY_FILE), new_path)
    else:  # never recorded, so it never signed: the rotation did not happen
        new_path.unlink()
        fsync_dir(directory)
    return True


def rotate(
    store: Store, directory: Path, log_id: str, now_ns: Callable[[], int] = time.time_ns, after_record: Callable[[], None] | None = None
) -> tuple[LogKey, LogKey]:
    """Make a new signing key for the log ``log_id`` and make it current; returns (old, new)
    keyring entries. ``after_record`` runs between steps 2 and 3 (a test stops there)."""
    directory = Path(directory)
    lease = store.lease(LEASE)
    if lease is None:
        raise DataDirError("another signing-key rotation of this log is running")
    try:
        finish_rotation(store, directory)
        current = load_signing_key(directory / KEY_FILE)
        keys = load_keys(store)
        if not keys or keys[-1].vkey != current.verifier_key():
            raise DataDirError(f"{directory / KEY_FILE} is not this log's current signing key; nothing was changed")
        new = create_signing_key(directory / NEW_KEY_FILE, current.name)
        sizes = {h.tenant: h.size for h in store.heads()}
        entry = LogKey(new.verifier_key(), now_ns(), sizes)
        save_keys(store, [*keys, entry])
        if after_record is not None:
            after_record()
        _install(directory, current, directory / NEW_KEY_FILE)
        return keys[-1], entry
    finally:
        lease.release()


def _install(directory: Path, old: NoteSigner, new_path: Path) -> None:
    """Steps 3 and 4: the old key becomes the previous one, the new key the current one."""
    previous = directory / PREVIOUS_KEY_FILE
    tmp = directory / f".{PREVIOUS_KEY_FILE}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (format_signing_key(old) + "\n").encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, previous)
    os.replace(new_path, directory / KEY_FILE)
    fsync_dir(directory)
