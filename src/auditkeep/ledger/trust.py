"""What a verification relies on, given as an argument rather than found in the store.

An attacker may hold write access to every store file but not the signing key. What the
store says about itself (its heads, tiles, checkpoints, even the verifier key it records)
can then be rewritten; what catches that is held elsewhere: verifier keys the checker
brings (``verify --key``), checkpoint notes saved earlier (``--trusted``) and witness
cosignatures. :class:`Trust` gathers them; :func:`auditkeep.ledger.verify.verify_log` takes
one and does no lookup of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from auditkeep.log.note import NoteVerifier


def note_origin(note: str) -> str:
    """The first line of a checkpoint note (its origin), unverified."""
    return note.split("\n", 1)[0]


@dataclass(frozen=True)
class Trust:
    """The keys and notes a verification relies on.

    ``keys`` sign checkpoints: log-wide keys (named ``auditkeep.local/<log id>``, as
    ``auditkeep pubkey`` prints them) or one tenant's (named after its origin, as
    ``auditkeep pubkey --tenant T`` prints them). Every stored checkpoint must verify under
    one of them. ``keys_from_store`` says they were read from the store being checked, which
    an attacker with write access could have replaced. ``trusted`` are checkpoint notes kept
    outside the store; ``require_signed`` makes entries after the newest signed checkpoint
    an error instead of a warning.
    """

    keys: tuple[NoteVerifier, ...]
    keys_from_store: bool = False
    trusted: tuple[str, ...] = ()
    require_signed: bool = False

    @classmethod
    def from_store(
        cls, keys: Sequence[NoteVerifier], trusted: Sequence[str] = (), *, require_signed: bool = False
    ) -> Trust:
        return cls(tuple(keys), True, tuple(trusted), require_signed)

    @classmethod
    def given(
        cls, keys: Sequence[NoteVerifier], trusted: Sequence[str] = (), *, require_signed: bool = False
    ) -> Trust:
        """Keys held elsewhere: nothing the store says about its keys is consulted."""
        if not keys:
            raise ValueError("give at least one verifier key")
        return cls(tuple(keys), False, tuple(trusted), require_signed)

    def with_trusted(self, notes: Sequence[str]) -> Trust:
        return replace(self, trusted=(*self.trusted, *notes))

    def trusted_for(self, origin: str) -> list[str]:
        return [n for n in self.trusted if note_origin(n) == origin]

    def describe(self) -> str:
        """One line for a report: which keys were trusted, and from where."""
        names = ", ".join(k.vkey() for k in self.keys) or "none"
        where = "found in the store (not checked against a key held elsewhere; use --key)" if self.keys_from_store else "given"
        return f"verifier keys {where}: {names}"
