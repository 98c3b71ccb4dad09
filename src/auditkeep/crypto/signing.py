"""Ed25519 signing keys for checkpoints, in the golang.org/x/mod/sumdb/note format.

A key file holds one line, ``PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || seed)>``,
so the same key works with Go transparency tools. The file is created with
mode 0600 and never overwritten; loading refuses a file others can read, the
way ssh does.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auditkeep.errors import ConfigError
from auditkeep.fsutil import fsync_dir
from auditkeep.log.note import (
    ALG_ED25519,
    NoteSigner,
    check_key_name,
    key_id,
)

__all__ = [
    "KeyFileError",
    "create_signing_key",
    "format_signing_key",
    "load_signing_key",
    "parse_signing_key",
]

_PREFIX = "PRIVATE+KEY+"


class KeyFileError(ConfigError):
    """A signing key file or string is missing, malformed or unsafe."""


def format_signing_key(signer: NoteSigner) -> str:
    """The private key text, ``PRIVATE+KEY+<name>+<hex id>+<base64(0x01 || seed)>`` (no newline)."""
    seed = signer.private_key.private_bytes_raw()
    encoded = base64.b64encode(bytes([ALG_ED25519]) + seed).decode("ascii")
    return f"{_PREFIX}{signer.name}+{signer.key_id.hex()}+{encoded}"


def parse_signing_key(text: str) -> NoteSigner:
    """Parse a private key string (one trailing newline allowed, e.g. from a file)."""
    if text.endswith("\n"):
        text = text[:-1]
    if not text.startswith(_PREFIX):
        raise KeyFileError("signing key must start with PRIVATE+KEY+")
    parts = text[len(_PREFIX) :].split("+", 2)
    if len(parts) != 3:
        raise KeyFileError("signing key must be PRIVATE+KEY+<name>+<hex key id>+<base64 key>")
    name, id_hex, key_b64 = parts
    try:
        check_key_name(name)
    except ValueError as exc:
        raise KeyFileError(f"signing key name: {exc}") from None
    if len(id_hex) != 8 or any(c not in "0123456789abcdef" for c in id_hex):
        raise KeyFileError("signing key id must be 8 lowercase hex digits")
    # Errors never echo the key material: they may end up in logs.
    try:
        raw = base64.b64decode(key_b64.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise KeyFileError("signing key is not valid base64") from None
    if base64.b64encode(raw).decode("ascii") != key_b64:
        raise KeyFileError("signing key is not canonical base64")
    if not raw or raw[0] != ALG_ED25519:
        raise KeyFileError("signing key algorithm is not Ed25519 (0x01)")
    if len(raw) != 33:
        raise KeyFileError(f"Ed25519 signing key seed must be 32 bytes, got {len(raw) - 1}")
    private = Ed25519PrivateKey.from_private_bytes(raw[1:])
    if key_id(name, private.public_key().public_bytes_raw()).hex() != id_hex:
        raise KeyFileError("signing key id does not match the key and name")
    return NoteSigner(name, private)


def create_signing_key(path: Path, name: str) -> NoteSigner:
    """Generate an Ed25519 key named ``name`` and write it to a new file at ``path``.

    The file appears whole or not at all: the key goes to a temporary file
    (mode 0600, fsynced) that is then hard-linked into place, and linking
    fails if ``path`` exists, so an existing key is never replaced.
    """
    try:
        check_key_name(name)
    except ValueError as exc:
        raise KeyFileError(str(exc)) from None
    path = Path(path)
    signer = NoteSigner(name, Ed25519PrivateKey.generate())
    data = (format_signing_key(signer) + "\n").encode("ascii")
    if path.exists() or path.is_symlink():
        raise KeyFileError(f"refusing to overwrite existing key file {path}")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyFileError(f"temporary key file {tmp} is in the way; remove it") from None
    try:
        try:
            os.fchmod(fd, 0o600)  # whatever the umask or an inherited ACL default
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise KeyFileError(f"refusing to overwrite existing key file {path}") from None
        except OSError:
            # No hard links on this filesystem: create the file exclusively
            # instead (still never overwrites, just not all-or-nothing).
            _write_exclusive(path, data)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    fsync_dir(path.parent)
    return signer


def _write_exclusive(path: Path, data: bytes) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyFileError(f"refusing to overwrite existing key file {path}") from None
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def load_signing_key(path: Path) -> NoteSigner:
    """Read a key file; refuse one that is not a regular file or that others can read."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise KeyFileError(f"no signing key file at {path}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise KeyFileError(f"signing key {path} is not a regular file")
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o077:
            raise KeyFileError(
                f"permissions {mode:04o} for signing key {path} are too open: "
                f"it must not be accessible by group or others (chmod 600 {path})"
            )
        # A key line is < 200 bytes; cap the read so a wrong path can't eat memory.
        raw = os.read(fd, 4096)
    finally:
        os.close(fd)
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise KeyFileError(f"signing key file {path} is not ASCII text") from None
    try:
        return parse_signing_key(text)
    except KeyFileError as exc:
        raise KeyFileError(f"{path}: {exc}") from None
