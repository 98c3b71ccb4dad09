"""A witness's data directory: its key, the logs it trusts, and what it last cosigned.

    WDIR/witness.key    the witness's Ed25519 key (mode 0600, never overwritten)
    WDIR/logs.json      {origin: [log verifier key, ...]}: the logs it witnesses
    WDIR/state.json     {origin: {size, root, note}}: the latest checkpoint it cosigned
    WDIR/refused.jsonl  checkpoints it refused (forks, bad proofs): evidence of misbehaviour
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from pathlib import Path

import msgspec

from auditkeep.crypto.signing import create_signing_key, load_signing_key
from auditkeep.errors import ConfigError
from auditkeep.log.checkpoint import Checkpoint
from auditkeep.log.cosignature import Cosigner
from auditkeep.log.note import NoteVerifier
from auditkeep.witness.files import append_durable, write_atomic

__all__ = ["LoggedState", "WitnessDir", "WitnessDirError"]

KEY_FILE = "witness.key"
LOGS_FILE = "logs.json"
STATE_FILE = "state.json"
REFUSED_FILE = "refused.jsonl"
MAX_LOGS = 10_000  # a bound on what one witness directory keeps in memory
MAX_KEYS_PER_LOG = 16


class WitnessDirError(ConfigError):
    """The witness directory is missing, unreadable or its files are not what they should be."""


class _Saved(msgspec.Struct, forbid_unknown_fields=True):
    size: int
    root: str
    note: str


@dataclass(frozen=True)
class LoggedState:
    """The latest checkpoint a witness cosigned for one origin."""

    size: int
    root: bytes
    note: str


class WitnessDir:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    # identity -----------------------------------------------------------------------------

    def init(self, name: str) -> Cosigner:
        """Create the directory and the witness key; refuse to replace an existing key."""
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        signer = create_signing_key(self.path / KEY_FILE, name)
        if not (self.path / LOGS_FILE).exists():
            write_atomic(self.path / LOGS_FILE, b"{}\n")
        if not (self.path / STATE_FILE).exists():
            write_atomic(self.path / STATE_FILE, b"{}\n")
        return Cosigner(signer.name, signer.private_key)

    def cosigner(self) -> Cosigner:
        if not (self.path / KEY_FILE).exists():
            raise WitnessDirError(f"no witness in {self.path}; run `auditkeep witness init` first")
        signer = load_signing_key(self.path / KEY_FILE)
        return Cosigner(signer.name, signer.private_key)

    # trusted logs ------------------------------------------------------------------------

    def logs(self) -> dict[str, list[NoteVerifier]]:
        raw = self._read_json(LOGS_FILE, dict[str, list[str]])
        try:
            return {origin: [NoteVerifier.from_vkey(k) for k in keys] for origin, keys in raw.items()}
        except ValueError as exc:
            raise WitnessDirError(f"{self.path / LOGS_FILE}: {exc}") from None

    def logs_version(self) -> tuple[int, int, int]:
        """What changes whenever the trusted logs file is rewritten: every write is a new file
        renamed into place (a new inode), which two writes within one clock tick also show."""
        try:
            st = (self.path / LOGS_FILE).stat()
        except FileNotFoundError:
            return (0, 0, 0)
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def add_log(self, origin: str, vkey: str) -> NoteVerifier:
        """Trust ``vkey`` for checkpoints of ``origin`` (more than one key: rotation)."""
        Checkpoint(origin, 0, bytes(32))  # checks the origin line
        verifier = NoteVerifier.from_vkey(vkey)
        self.cosigner()  # an initialised witness only
        raw = self._read_json(LOGS_FILE, dict[str, list[str]])
        keys = raw.setdefault(origin, [])
        if verifier.vkey() not in keys:
            if len(keys) >= MAX_KEYS_PER_LOG:
                raise WitnessDirError(f"log {origin} already has {MAX_KEYS_PER_LOG} keys")
            if len(raw) > MAX_LOGS:
                raise WitnessDirError(f"this witness already has {MAX_LOGS} logs")
            keys.append(verifier.vkey())
        write_atomic(self.path / LOGS_FILE, msgspec.json.format(msgspec.json.encode(raw)) + b"\n")
        return verifier

    # state -------------------------------------------------------------------------------

    def state(self) -> dict[str, LoggedState]:
        raw = self._read_json(STATE_FILE, dict[str, _Saved])
        return {o: LoggedState(s.size, base64.b64decode(s.root), s.note) for o, s in raw.items()}

    def save_state(self, state: dict[str, LoggedState]) -> None:
        """Make ``state`` durable (fsync, atomic rename) before the caller answers anyone."""
        raw = {o: _Saved(s.size, base64.b64encode(s.root).decode("ascii"), s.note) for o, s in state.items()}
        write_atomic(self.path / STATE_FILE, msgspec.json.encode(raw) + b"\n")

    def record_refusal(self, origin: str, reason: str, request: bytes) -> None:
        line = msgspec.json.encode(
            {"time": int(time.time()), "origin": origin, "reason": reason, "request": request.decode("utf-8", "replace")}
        )
        append_durable(self.path / REFUSED_FILE, line + b"\n")

    def _read_json(self, name: str, typ: type) -> dict:  # type: ignore[type-arg]
        path = self.path / name
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise WitnessDirError(f"no witness in {self.path}; run `auditkeep witness init` first") from None
        try:
            result: dict = msgspec.json.decode(data, type=typ)  # type: ignore[type-arg]
        except msgspec.DecodeError as exc:
            raise WitnessDirError(f"{path} is damaged: {exc}") from None
        return result
