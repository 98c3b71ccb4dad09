"""Encryption at rest: envelope encryption of payloads and keyed tokens for search.

A master key (a key file, an environment variable or a KMS) wraps per-tenant keys that are
stored, wrapped, in the store itself: data keys (AES-256-GCM) seal each entry's leaf bytes
and personal plaintext; an index key (HMAC-SHA256) turns searchable values into blind
tokens. Rotating the master key re-wraps the per-tenant keys and rewrites no event.

A sealed blob is ``MAGIC || generation (4 bytes) || nonce (12) || ciphertext+tag``; canonical
leaf bytes always start with ``{``, so a reader tells ciphertext from plaintext by its first
bytes (verify does, when it runs without the master key). See docs/encryption.md.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import importlib
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from auditkeep.crypto.commit import HmacKey
from auditkeep.errors import ConfigError, IntegrityError

MAGIC = b"\xa5AK1"
HEADER = len(MAGIC) + 4 + 12
ALGORITHM = "aes-256-gcm"
DEFAULT_KEY_FILE = "master.key"
_WRAP_LABEL = b"auditkeep/v1/wrap\x00"


class KeyUnavailable(ConfigError):
    """The master key is not where the settings say, or is not the one the store's keys
    were wrapped under."""


class DecryptError(IntegrityError):
    """A sealed value does not open: altered, moved to another row, or a foreign key."""


class EncryptionSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """``[encryption]`` of auditkeep.toml. A store initialised with encryption stays
    encrypted: these settings only say where its master key is."""

    enabled: bool = False  # `auditkeep init` encrypts the new store (as `init --encrypt` does)
    key_file: str | None = None  # default: <data>/master.key (mode 0600, created by init)
    key_env: str | None = None  # name of an environment variable holding the master key
    kms: str | None = None  # "module:factory" of a KMS plugin; called with kms_options
    kms_options: dict[str, str] = msgspec.field(default_factory=dict)


@runtime_checkable
class Kms(Protocol):
    """Wraps and unwraps the store's per-tenant keys. ``key_id`` names the master key (it is
    recorded beside each wrapped key, so a wrong master key is named, not guessed at)."""

    @property
    def key_id(self) -> str: ...

    def wrap(self, key: bytes, context: bytes) -> bytes: ...

    def unwrap(self, wrapped: bytes, context: bytes) -> bytes: ...


class LocalKms:
    """A master key held in this process: AES-256-GCM key wrapping (for tests and small
    set-ups; a KMS plugin keeps the master key out of the process)."""

    def __init__(self, master: bytes) -> None:
        if len(master) != 32:
            raise KeyUnavailable(f"a master key is 32 bytes, got {len(master)}")
        self._aead = AESGCM(master)
        self._id = hashlib.sha256(b"auditkeep/v1/master-id\x00" + master).hexdigest()[:16]

    @property
    def key_id(self) -> str:
        return self._id

    def wrap(self, key: bytes, context: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, key, _WRAP_LABEL + context)

    def unwrap(self, wrapped: bytes, context: bytes) -> bytes:
        try:
            return self._aead.decrypt(wrapped[:12], wrapped[12:], _WRAP_LABEL + context)
        except (InvalidTag, ValueError):
            raise KeyUnavailable("a data key does not unwrap under this master key") from None


def new_master_key() -> bytes:
    return os.urandom(32)


def encode_master(key: bytes) -> str:
    return base64.b64encode(key).decode()


def parse_master(text: str, where: str) -> bytes:
    """A master key written as base64 (44 characters) or hex (64)."""
    s = text.strip()
    try:
        key = bytes.fromhex(s) if len(s) == 64 else base64.b64decode(s, validate=True)
    except (ValueError, binascii.Error):
        raise KeyUnavailable(f"{where}: not a base64 or hex master key") from None
    if len(key) != 32:
        raise KeyUnavailable(f"{where}: a master key is 32 bytes, got {len(key)}")
    return key


def read_key_file(path: Path) -> bytes:
    """The master key in ``path``, which only its owner may read or write (mode 0600)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise KeyUnavailable(f"master key file {path} not found") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyUnavailable(
            f"master key file {path} is open to other users (mode {stat.S_IMODE(st.st_mode):o}); chmod 600 it"
        )
    return parse_master(path.read_text(), str(path))


def write_key_file(path: Path, key: bytes) -> None:
    """Create ``path`` (mode 0600, never overwriting) holding ``key``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(encode_master(key) + "\n")
        f.flush()
        os.fsync(f.fileno())


def key_file_path(settings: EncryptionSettings, data_dir: Path | None) -> Path | None:
    if settings.key_file:
        return Path(settings.key_file)
    return data_dir / DEFAULT_KEY_FILE if data_dir is not None else None


def resolve_kms(
    settings: EncryptionSettings, data_dir: Path | None, env: Mapping[str, str] | None = None
) -> Kms:
    """The master key the settings name: a KMS plugin, else an environment variable, else
    a key file (by default ``<data>/master.key``)."""
    env = os.environ if env is None else env
    if settings.kms:
        module, _, attr = settings.kms.partition(":")
        try:
            factory: Any = getattr(importlib.import_module(module), attr or "kms")
        except (ImportError, AttributeError) as exc:
            raise KeyUnavailable(f"encryption.kms {settings.kms!r}: {exc}") from None
        try:
            kms = factory(dict(settings.kms_options))
        except Exception as exc:  # a plugin's own failure (its service, its options): named, not a traceback
            raise KeyUnavailable(f"encryption.kms {settings.kms!r} failed: {type(exc).__name__}: {exc}") from None
        if not isinstance(kms, Kms):
            raise KeyUnavailable(f"encryption.kms {settings.kms!r} did not return a KMS (key_id, wrap, unwrap)")
        return kms
    if settings.key_env:
        text = env.get(settings.key_env)
        if not text:
            raise KeyUnavailable(f"environment variable {settings.key_env} (encryption.key_env) is not set")
        return LocalKms(parse_master(text, settings.key_env))
    path = key_file_path(settings, data_dir)
    if path is None:
        raise KeyUnavailable("no master key configured ([encryption] key_file, key_env or kms)")
    return LocalKms(read_key_file(path))


class DataKey:
    """One generation of a tenant's data key."""

    __slots__ = ("_aead", "_prefix", "gen")

    def __init__(self, gen: int, key: bytes) -> None:
        self.gen = gen
        self._aead = AESGCM(key)
        self._prefix = MAGIC + gen.to_bytes(4, "big")

    def seal(self, plain: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(12)
        return self._prefix + nonce + self._aead.encrypt(nonce, plain, aad)

    def open(self, blob: bytes, aad: bytes) -> bytes:
        try:
            return self._aead.decrypt(blob[8:HEADER], blob[HEADER:], aad)
        except InvalidTag:
            raise DecryptError("a sealed payload does not open (altered, moved, or under another key)") from None


def is_sealed(blob: bytes | None) -> bool:
    return blob is not None and blob[:4] == MAGIC


def generation(blob: bytes) -> int:
    return int.from_bytes(blob[4:8], "big")


class BlindIndex:
    """Keyed tokens of searchable values: equal values give equal tokens under one tenant's
    index key, and nothing else can be learnt from a token without that key."""

    __slots__ = ("_key", "_memo", "words")
    SIZE = 10  # bytes of HMAC kept (80 bits: collisions are not a concern at audit-log scale)
    MEMO = 200_000  # tokens remembered (words, actions and hosts recur: most lookups hit)

    def __init__(self, key: bytes) -> None:
        self._key = HmacKey(key)
        self._memo: dict[tuple[str, str], str] = {}
        self.words: dict[str, str] = {}  # tokens of full-text words (kind "t"), looked up inline

    def token(self, kind: str, value: str) -> str:
        memo = self._memo
        t = memo.get((kind, value))
        if t is None:
            t = self._key.digest(kind.encode() + b"\x00" + value.encode("utf-8", "surrogatepass"))[: self.SIZE].hex()
            if len(memo) >= self.MEMO:
                memo.clear()
                self.words.clear()
            memo[(kind, value)] = t
            if kind == "t":
                self.words[value] = t
        return t
