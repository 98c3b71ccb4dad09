"""C2SP tlog-checkpoint (https://c2sp.org/tlog-checkpoint): signed tree heads.

The checkpoint body is the note text ``origin\\nsize\\nbase64(root)\\n`` plus
optional extension lines; it is signed as a C2SP signed note.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass

from auditkeep.errors import UserError
from auditkeep.log.hashing import HASH_SIZE
from auditkeep.log.note import NoteSigner, NoteVerifier, open_note, parse_note

__all__ = [
    "MAX_TREE_SIZE",
    "Checkpoint",
    "CheckpointError",
    "checkpoint_verifiers",
    "sign_checkpoint",
    "verify_checkpoint",
]

# Tree sizes are uint64 across the ecosystem (RFC 9162, Go's tlog).
MAX_TREE_SIZE = 2**64 - 1

_SIZE_RE = re.compile(r"0|[1-9][0-9]*")


class CheckpointError(UserError, ValueError):
    """A checkpoint is malformed or not the one expected."""


def _check_line(value: str, what: str) -> None:
    if not value:
        raise CheckpointError(f"checkpoint {what} must not be empty")
    for ch in value:
        if ch < " ":
            raise CheckpointError(f"checkpoint {what} contains control character {ch!r}")


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_line(self.origin, "origin")
        if isinstance(self.size, bool) or not isinstance(self.size, int):
            raise CheckpointError(f"checkpoint size must be an int, got {type(self.size).__name__}")
        if not 0 <= self.size <= MAX_TREE_SIZE:
            raise CheckpointError(f"checkpoint size {self.size} is out of range")
        if not isinstance(self.root, bytes) or len(self.root) != HASH_SIZE:
            raise CheckpointError(f"checkpoint root must be {HASH_SIZE} bytes")
        if not isinstance(self.extensions, tuple):
            raise CheckpointError("checkpoint extensions must be a tuple of strings")
        for ext in self.extensions:
            _check_line(ext, "extension line")

    def body(self) -> str:
        """The note text that gets signed."""
        root = base64.b64encode(self.root).decode("ascii")
        lines = [self.origin, str(self.size), root, *self.extensions]
        return "\n".join(lines) + "\n"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Parse a checkpoint body strictly (the note text, not the signed note)."""
        if not text.endswith("\n"):
            raise CheckpointError("checkpoint text must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise CheckpointError(
                f"checkpoint needs origin, size and root lines, got {len(lines)} line(s)"
            )
        origin, size_text, root_text, *extensions = lines
        _check_line(origin, "origin")
        if not _SIZE_RE.fullmatch(size_text):
            raise CheckpointError(
                f"checkpoint size must be a decimal without leading zeros, got {size_text!r}"
            )
        size = int(size_text)
        try:
            root = base64.b64decode(root_text.encode("ascii"), validate=True)
        except (UnicodeEncodeError, binascii.Error) as exc:
            raise CheckpointError(f"checkpoint root is not base64: {root_text!r}") from exc
        if base64.b64encode(root).decode("ascii") != root_text:
            raise CheckpointError(f"checkpoint root is not canonical base64: {root_text!r}")
        if len(root) != HASH_SIZE:
            raise CheckpointError(f"checkpoint root is {len(root)} bytes, want {HASH_SIZE}")
        return cls(origin, size, root, tuple(extensions))


def sign_checkpoint(cp: Checkpoint, signer: NoteSigner) -> str:
    """The signed note of ``cp``."""
    return signer.sign(cp.body())


def verify_checkpoint(
    note: str, verifier: NoteVerifier | Sequence[NoteVerifier], origin: str | None = None
) -> Checkpoint:
    """Verify a signed checkpoint and parse it; check its origin if one is given.

    A key named after a parent of the checkpoint's origin (a log-wide key such as
    ``example.org/log`` for ``example.org/log/tenant``) also checks signatures made under the
    origin's own name with the same public key (see :func:`checkpoint_verifiers`)."""
    keys = [verifier] if isinstance(verifier, NoteVerifier) else list(verifier)
    text, _ = parse_note(note)
    cp = Checkpoint.parse(open_note(note, checkpoint_verifiers(keys, text.split("\n", 1)[0])))
    if origin is not None and cp.origin != origin:
        raise CheckpointError(f"checkpoint origin is {cp.origin!r}, want {origin!r}")
    return cp


def checkpoint_verifiers(keys: Sequence[NoteVerifier], origin: str) -> list[NoteVerifier]:
    """``keys`` plus, for each key named after a parent of ``origin`` (``name/...``), the
    same public key under ``origin``'s name. tlog-checkpoint recommends the origin as the key
    name; one key then signs the logs of every origin below its own name, and whoever holds
    it under the parent's name can check them all. Signatures are matched by name and key
    id, so a key named for another origin checks nothing here."""
    out = list(keys)
    for k in keys:
        if origin.startswith(k.name + "/"):
            out.append(NoteVerifier(origin, k.public_key))
    return list(dict.fromkeys(out))
