"""C2SP signed notes (https://c2sp.org/signed-note), Ed25519 signatures only.

A note is text ending in a newline, a blank line, then signature lines
``— <key name> <base64(4-byte key ID || signature)>``. The format is the one
of golang.org/x/mod/sumdb/note, so transparency-ecosystem tools can check
our notes and we can check theirs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from auditkeep.errors import UserError

__all__ = [
    "ALG_ED25519",
    "MAX_SIGNATURES",
    "NoteError",
    "NoteSignature",
    "NoteSigner",
    "NoteVerifier",
    "UnknownSigner",
    "check_key_name",
    "key_id",
    "open_note",
    "parse_note",
    "sign_note",
]

ALG_ED25519 = 0x01
# The spec requires accepting at least 16; the Go implementation stops at 100.
MAX_SIGNATURES = 100
_SIG_PREFIX = "\u2014 "  # em dash, space


class NoteError(UserError, ValueError):
    """A note is malformed or its signatures do not check out."""


class UnknownSigner(NoteError):
    """A well-formed note carries no signature by any of the keys given (signed, if at all,
    by a key not trusted here, e.g. one rotated in or out since)."""


def check_key_name(name: str) -> None:
    """Raise ValueError unless ``name`` is a valid key name.

    Names must be non-empty and contain no Unicode space and no ``+`` (the
    separator of verifier keys); control characters are not allowed in a
    note at all.
    """
    if not name:
        raise ValueError("key name must not be empty")
    for ch in name:
        if ch.isspace():
            raise ValueError(f"key name must not contain spaces: {name!r}")
        if ch == "+":
            raise ValueError(f"key name must not contain '+': {name!r}")
        if ch < " ":
            raise ValueError(f"key name must not contain control characters: {name!r}")
        if "\ud800" <= ch <= "\udfff":
            raise ValueError(f"key name is not valid Unicode: {name!r}")


def key_id(name: str, public_key: bytes, alg: int = ALG_ED25519) -> bytes:
    """SHA-256(name || 0x0A || alg || public key)[:4], the recommended key ID."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([alg]) + public_key).digest()[:4]


def parse_vkey(
    vkey: str, alg: int, label: str, wrong_alg: Callable[[int | None], str]
) -> tuple[str, Ed25519PublicKey]:
    """(name, public key) of an Ed25519 key ``<name>+<8 hex key ID>+<base64(alg || key)>``
    (a log's verifier key, alg 0x01, or a witness's cosignature key, alg 0x04); ValueError
    naming ``label``, with ``wrong_alg(first byte or None)`` for a key of another algorithm."""
    parts = vkey.split("+", 2)
    if len(parts) != 3:
        raise ValueError(f"{label} must be <name>+<hex key id>+<base64 key>")
    name, id_hex, key_b64 = parts
    check_key_name(name)
    if len(id_hex) != 8 or any(c not in "0123456789abcdef" for c in id_hex):
        raise ValueError(f"{label} id must be 8 lowercase hex digits, got {id_hex!r}")
    raw = _b64decode_canonical(key_b64, label)
    if not raw or raw[0] != alg:
        raise ValueError(wrong_alg(raw[0] if raw else None))
    if len(raw) != 33:
        raise ValueError(f"Ed25519 {label} must be 32 bytes, got {len(raw) - 1}")
    if key_id(name, raw[1:], alg).hex() != id_hex:
        raise ValueError(f"{label} id {id_hex} does not match the key and name")
    return name, Ed25519PublicKey.from_public_bytes(raw[1:])


def _wrong_note_alg(found: int | None) -> str:
    if found is None:
        return "verifier key is empty"
    return f"unsupported verifier key algorithm 0x{found:02x} (want Ed25519, 0x01)"


def _b64decode_canonical(text: str, what: str) -> bytes:
    # Standard base64 with padding, and only its canonical form: a second
    # spelling of the same bytes would let one signature line take two shapes.
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error) as exc:
        raise ValueError(f"{what} is not valid base64") from exc
    if base64.b64encode(raw).decode("ascii") != text:
        raise ValueError(f"{what} is not canonical base64")
    return raw


def _public_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes_raw()


class NoteVerifier:
    """An Ed25519 public key with the name it signs notes under."""

    __slots__ = ("_key", "_key_id", "_name", "_public")

    def __init__(self, name: str, public_key: Ed25519PublicKey) -> None:
        check_key_name(name)
        self._name = name
        self._key = public_key
        self._public = _public_bytes(public_key)
        self._key_id = key_id(name, self._public)

    @classmethod
    def from_vkey(cls, vkey: str) -> NoteVerifier:
        """Parse a verifier key ``<name>+<8 hex key ID>+<base64(0x01 || public key)>``."""
        return cls(*parse_vkey(vkey, ALG_ED25519, "verifier key", _wrong_note_alg))

    @property
    def name(self) -> str:
        return self._name

    @property
    def key_id(self) -> bytes:
        return self._key_id

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self._key

    def vkey(self) -> str:
        """This verifier's key in the ``name+hexid+base64`` text form."""
        encoded = base64.b64encode(bytes([ALG_ED25519]) + self._public).decode("ascii")
        return f"{self._name}+{self._key_id.hex()}+{encoded}"

    def verify(self, text: bytes, sig: bytes) -> bool:
        """Whether ``sig`` (without the key ID prefix) is this key's signature of ``text``."""
        if len(sig) != 64:
            return False
        try:
            self._key.verify(sig, text)
        except InvalidSignature:
            return False
        return True

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NoteVerifier):
            return NotImplemented
        return self._name == other._name and self._public == other._public

    def __hash__(self) -> int:
        return hash((self._name, self._public))

    def __repr__(self) -> str:
        return f"NoteVerifier({self.vkey()!r})"


class NoteSigner:
    """An Ed25519 private key with the name it signs notes under."""

    __slots__ = ("_key", "_name", "_verifier")

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        check_key_name(name)
        self._name = name
        self._key = private_key
        self._verifier = NoteVerifier(name, private_key.public_key())

    @property
    def name(self) -> str:
        return self._name

    @property
    def key_id(self) -> bytes:
        return self._verifier.key_id

    @property
    def private_key(self) -> Ed25519PrivateKey:
        return self._key

    def verifier(self) -> NoteVerifier:
        return self._verifier

    def verifier_key(self) -> str:
        """The public verifier key, ``<name>+<8 hex key id>+<base64(0x01 || pubkey)>``."""
        return self._verifier.vkey()

    def signature_line(self, text: str) -> str:
        """The signature line (with newline) of this key over ``text``."""
        _check_text(text)
        sig = self._key.sign(text.encode("utf-8"))
        encoded = base64.b64encode(self.key_id + sig).decode("ascii")
        return f"{_SIG_PREFIX}{self._name} {encoded}\n"

    def sign(self, text: str) -> str:
        """The signed note: ``text``, a blank line and this key's signature line."""
        return sign_note(text, [self])

    def __repr__(self) -> str:
        return f"NoteSigner({self._name!r}, key_id={self._key_id_hex()})"

    def _key_id_hex(self) -> str:
        return self.key_id.hex()


@dataclass(frozen=True)
class NoteSignature:
    """One signature line of a note, not yet verified."""

    name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        encoded = base64.b64encode(self.key_id + self.signature).decode("ascii")
        return f"{_SIG_PREFIX}{self.name} {encoded}\n"


def _check_chars(text: str, what: str) -> None:
    for ch in text:
        if ch < " " and ch != "\n":
            raise NoteError(f"{what} contains control character {ch!r}")
        if "\ud800" <= ch <= "\udfff":
            raise NoteError(f"{what} is not valid Unicode (lone surrogate)")


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise NoteError("note text must end with a newline")
    _check_chars(text, "note text")


def sign_note(text: str, signers: Sequence[NoteSigner]) -> str:
    """Sign ``text`` with each signer, in order; at least one signer is required."""
    if not signers:
        raise NoteError("a note needs at least one signer")
    _check_text(text)
    return text + "\n" + "".join(s.signature_line(text) for s in signers)


def parse_note(note: str | bytes) -> tuple[str, list[NoteSignature]]:
    """Split a note into its text and signature lines, checking only the syntax."""
    if isinstance(note, bytes):
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NoteError("note is not valid UTF-8") from exc
    _check_chars(note, "note")
    # The text ends at the last blank line: the text may itself contain blank lines.
    split = note.rfind("\n\n")
    if split < 0:
        raise NoteError("note has no blank line before its signatures")
    text, block = note[: split + 1], note[split + 2 :]
    if not block:
        raise NoteError("note has no signatures")
    if not block.endswith("\n"):
        raise NoteError("note's last signature line does not end with a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"note has {len(lines)} signatures, more than {MAX_SIGNATURES}")
    sigs = []
    for number, line in enumerate(lines, start=1):
        if not line.startswith(_SIG_PREFIX):
            raise NoteError(f"signature line {number} does not start with an em dash and a space")
        name, sep, encoded = line[len(_SIG_PREFIX) :].partition(" ")
        if not sep:
            raise NoteError(f"signature line {number} has no space between name and signature")
        try:
            check_key_name(name)
            raw = _b64decode_canonical(encoded, f"signature on line {number}")
        except ValueError as exc:
            raise NoteError(f"malformed signature line {number}: {exc}") from exc
        if len(raw) < 5:
            raise NoteError(f"signature on line {number} is too short")
        sigs.append(NoteSignature(name, raw[:4], raw[4:]))
    return text, sigs


def open_note(note: str | bytes, verifiers: Sequence[NoteVerifier]) -> str:
    """Verify a note against known keys and return its text.

    Signatures by unknown keys (name and key ID not both matching a known
    key) are ignored. Every signature by a known key must verify, and at
    least one must be present.
    """
    text, sigs = parse_note(note)
    known: dict[tuple[str, bytes], NoteVerifier | None] = {}
    for v in verifiers:
        k = (v.name, v.key_id)
        # Two different keys under one name and ID: refuse to pick one, but
        # only if a signature actually needs that key (as Go's note does).
        known[k] = v if known.get(k, v) == v else None
    message = text.encode("utf-8")
    verified = 0
    for sig in sigs:
        k = (sig.name, sig.key_id)
        if k not in known:
            continue
        match = known[k]
        if match is None:
            raise NoteError(f"ambiguous key {sig.name}+{sig.key_id.hex()}: two verifiers match")
        if not match.verify(message, sig.signature):
            raise NoteError(f"invalid signature for key {sig.name}+{sig.key_id.hex()}")
        verified += 1
    if not verified:
        names = ", ".join(f"{s.name}+{s.key_id.hex()}" for s in sigs)
        raise UnknownSigner(f"note has no signature from a known key (signed by: {names})")
    return text
