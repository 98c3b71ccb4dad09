"""A C2SP tlog-witness: cosigns the checkpoints of the logs it trusts, never a rollback or
a fork (see docs/witness.md)."""

from auditkeep.witness.store import LoggedState, WitnessDir, WitnessDirError
from auditkeep.witness.witness import (
    MAX_PROOF_LINES,
    MAX_REQUEST_BYTES,
    Refusal,
    Witness,
    parse_request,
)

__all__ = [
    "MAX_PROOF_LINES",
    "MAX_REQUEST_BYTES",
    "LoggedState",
    "Refusal",
    "Witness",
    "WitnessDir",
    "WitnessDirError",
    "parse_request",
]
