"""``auditkeep witness check``: does a running log still extend what this witness cosigned?

The witness asks the log for its latest checkpoint and a consistency proof from the size it
cosigned last, and checks both with its own keys and state; nothing is cosigned or saved.
A smaller tree than the one cosigned is a rollback; another root at the same size, or a proof
that does not lead from the cosigned root to the new one, is a fork.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from auditkeep.log.checkpoint import Checkpoint, CheckpointError, verify_checkpoint
from auditkeep.log.note import NoteError, parse_note
from auditkeep.log.proofs import ProofError, verify_consistency
from auditkeep.witness.store import WitnessDir

__all__ = ["CheckResult", "check_log"]


@dataclass(frozen=True)
class CheckResult:
    origin: str
    verdict: str  # "consistent", "not-witnessed", "rollback", "fork"
    cosigned_size: int
    log_size: int
    message: str

    @property
    def ok(self) -> bool:
        return self.verdict in ("consistent", "not-witnessed")


def check_log(wdir: WitnessDir, note: str, fetch_proof: Callable[[int, int], list[bytes]]) -> CheckResult:
    """Check the log's latest checkpoint ``note`` against the witness's state;
    ``fetch_proof(old, new)`` asks the log for a consistency proof. Raises ValueError for a
    note this witness cannot judge (unknown origin, bad signature)."""
    try:
        text, _ = parse_note(note)
    except NoteError as exc:
        raise ValueError(f"the log's checkpoint is not a signed note: {exc}") from None
    origin = text.split("\n", 1)[0]
    keys = wdir.logs().get(origin)
    if keys is None:
        raise ValueError(f"this witness does not witness {origin!r} (witness add-log first)")
    try:
        cp: Checkpoint = verify_checkpoint(note, keys, origin)
    except (NoteError, CheckpointError) as exc:
        raise ValueError(f"the log's checkpoint does not verify with the keys trusted for it: {exc}") from None
    state = wdir.state().get(origin)
    if state is None:
        return CheckResult(origin, "not-witnessed", 0, cp.size, "this witness has cosigned nothing for this log yet")
    if cp.size < state.size:
        return CheckResult(
            origin, "rollback", state.size, cp.size,
            f"the log's latest checkpoint is at size {cp.size}, smaller than the {state.size} this witness cosigned",
        )  # fmt: skip
    if cp.size == state.size:
        if cp.root != state.root:
            return CheckResult(origin, "fork", state.size, cp.size, f"another root at the cosigned size {cp.size}")
        return CheckResult(origin, "consistent", state.size, cp.size, "the log is at the size this witness cosigned")
    proof = fetch_proof(state.size, cp.size)
    try:
        verify_consistency(state.size, cp.size, proof, state.root, cp.root)
    except ProofError as exc:
        return CheckResult(
            origin, "fork", state.size, cp.size,
            f"no valid consistency proof from the cosigned size {state.size} to {cp.size}: {exc}",
        )  # fmt: skip
    return CheckResult(
        origin, "consistent", state.size, cp.size, f"size {cp.size} extends the cosigned size {state.size}"
    )
