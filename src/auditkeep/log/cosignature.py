"""C2SP tlog-cosignature (https://c2sp.org/tlog-cosignature): Ed25519 ``cosignature/v1``.

A cosignature is a note signature line on a checkpoint, by a witness, whose signature is
``u64 timestamp (big-endian) || Ed25519 signature`` over::

    cosignature/v1
    time <timestamp>
    <the whole checkpoint body>

The key ID commits to algorithm byte 0x04, not the 0x01 of ordinary note keys, so a log's
note verifier never mistakes a cosignature for a log signature and the other way round.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from auditkeep.log.note import NoteError, check_key_name, key_id, parse_note, parse_vkey

__all__ = [
    "ALG_COSIGNATURE_V1",
    "MAX_TIMESTAMP",
    "Cosignature",
    "CosignatureVerifier",
    "Cosigner",
    "cosigned_message",
    "verify_cosignatures",
]

ALG_COSIGNATURE_V1 = 0x04
MAX_TIMESTAMP = 2**63 - 1
_SIG_PREFIX = "\u2014 "


def cosigned_message(body: str, timestamp: int) -> bytes:
    """The bytes a ``cosignature/v1`` signs: header, time line, checkpoint body."""
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise ValueError(f"cosignature timestamp {timestamp} is out of range")
    if not body.endswith("\n"):
        raise ValueError("checkpoint body must end with a newline")
    return f"cosignature/v1\ntime {timestamp}\n{body}".encode()


def _wrong_witness_alg(found: int | None) -> str:
    shown = f"0x{found:02x}" if found is not None else "none"
    return (
        f"witness key algorithm is {shown}, want 0x04 (Ed25519 cosignature/v1); "
        "a log's own key (0x01) is not a witness key"
    )


class CosignatureVerifier:
    """A witness's public key with its name, as a ``name+hexid+base64(0x04 || key)`` vkey."""

    __slots__ = ("_key", "_key_id", "_name", "_public")

    def __init__(self, name: str, public_key: Ed25519PublicKey) -> None:
        check_key_name(name)
        self._name = name
        self._key = public_key
        self._public = public_key.public_bytes_raw()
        self._key_id = key_id(name, self._public, ALG_COSIGNATURE_V1)

    @classmethod
    def from_vkey(cls, vkey: str) -> CosignatureVerifier:
        return cls(*parse_vkey(vkey.strip(), ALG_COSIGNATURE_V1, "witness key", _wrong_witness_alg))

    @property
    def name(self) -> str:
        return self._name

    @property
    def key_id(self) -> bytes:
        return self._key_id

    def vkey(self) -> str:
        encoded = base64.b64encode(bytes([ALG_COSIGNATURE_V1]) + self._public).decode("ascii")
        return f"{self._name}+{self._key_id.hex()}+{encoded}"

    def timestamp_of(self, body: str, blob: bytes) -> int | None:
        """The timestamp of ``blob`` (timestamp || signature) if it is this key's valid
        cosignature of ``body``, else None."""
        if len(blob) != 8 + 64:
            return None
        (timestamp,) = struct.unpack(">Q", blob[:8])
        if timestamp > MAX_TIMESTAMP:
            return None
        try:
            self._key.verify(blob[8:], cosigned_message(body, timestamp))
        except (InvalidSignature, ValueError):
            return None
        return int(timestamp)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CosignatureVerifier):
            return NotImplemented
        return self._name == other._name and self._public == other._public

    def __hash__(self) -> int:
        return hash((self._name, self._public, ALG_COSIGNATURE_V1))

    def __repr__(self) -> str:
        return f"CosignatureVerifier({self.vkey()!r})"


class Cosigner:
    """A witness's private key: signs ``cosignature/v1`` lines."""

    __slots__ = ("_key", "_verifier")

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self._verifier = CosignatureVerifier(name, private_key.public_key())

    @property
    def name(self) -> str:
        return self._verifier.name

    def verifier(self) -> CosignatureVerifier:
        return self._verifier

    def cosign(self, body: str, timestamp: int) -> str:
        """The signature line (with its newline) cosigning the checkpoint ``body``."""
        sig = self._key.sign(cosigned_message(body, timestamp))
        blob = self._verifier.key_id + struct.pack(">Q", timestamp) + sig
        return f"{_SIG_PREFIX}{self.name} {base64.b64encode(blob).decode('ascii')}\n"


@dataclass(frozen=True)
class Cosignature:
    """A cosignature that verified: whose, when, and its line."""

    witness: CosignatureVerifier
    timestamp: int
    line: str


def verify_cosignatures(note: str, witnesses: Sequence[CosignatureVerifier]) -> list[Cosignature]:
    """The valid cosignatures in ``note`` by ``witnesses`` (at most one per witness).

    Lines by other keys are ignored, as the spec requires of clients; a line that names a
    known witness (name and key ID) but does not verify raises NoteError, since only a
    forger or a corruption produces one."""
    body, sigs = parse_note(note)
    by_id = {(w.name, w.key_id): w for w in witnesses}
    found: dict[CosignatureVerifier, Cosignature] = {}
    for sig in sigs:
        w = by_id.get((sig.name, sig.key_id))
        if w is None:
            continue
        ts = w.timestamp_of(body, sig.signature)
        if ts is None:
            raise NoteError(f"invalid cosignature by witness {w.name}+{w.key_id.hex()}")
        if w not in found or ts > found[w].timestamp:
            found[w] = Cosignature(w, ts, sig.line())
    return list(found.values())
