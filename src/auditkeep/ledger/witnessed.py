"""``verify --witness``: the newest checkpoints must carry a quorum of witness cosignatures.

Witnesses are held by others: a checkpoint they cosigned cannot be replaced by one over a
rewritten tree, even by someone who holds (or has swapped) the log's signing key and every
store file, because the cosignatures are over the original root. So for each tenant this
finds the newest stored checkpoint with ``quorum`` valid cosignatures by the given witness
keys and checks that its root is the root of the tree recomputed from the events (through
the tiles, which :func:`auditkeep.ledger.verify.verify_log` has compared with the events).
A cosignature by a given witness that does not verify over its checkpoint is tampering: the
checkpoint was re-signed over another tree and old cosignature lines left beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from auditkeep.ledger.cosigned import COLLECTION, cosignature_lines
from auditkeep.ledger.verify import Problem, TenantReport
from auditkeep.log.checkpoint import Checkpoint, CheckpointError
from auditkeep.log.cosignature import CosignatureVerifier, verify_cosignatures
from auditkeep.log.note import NoteError, parse_note
from auditkeep.log.proofs import ProofError, tree_root
from auditkeep.store.base import Head, Store

__all__ = ["WitnessPolicy", "check_witnessed", "witness_keys"]

ORPHAN_SCAN = 1000  # the newest cosignature documents looked at for deleted checkpoints


@dataclass(frozen=True)
class WitnessPolicy:
    """Witness keys held by the checker, and how many of them must have cosigned."""

    witnesses: tuple[CosignatureVerifier, ...]
    quorum: int = 1
    require_all_witnessed: bool = False  # entries past the newest witnessed checkpoint fail

    def __post_init__(self) -> None:
        if not self.witnesses:
            raise ValueError("give at least one witness key")
        if not 1 <= self.quorum <= len(self.witnesses):
            raise ValueError(f"--quorum must be between 1 and the {len(self.witnesses)} witness key(s) given")


def check_witnessed(store: Store, head: Head, origin: str, policy: WitnessPolicy, rep: TenantReport) -> int:
    """Add to ``rep`` what the witnesses' cosignatures show; return the witnessed size (0
    when no checkpoint has the quorum)."""
    tid = head.tenant_id
    witnessed = 0
    rows = sorted(store.checkpoints(tid), key=lambda r: r.size, reverse=True)
    read = lambda keys: store.read_tiles(tid, keys)  # noqa: E731
    for row in rows:
        lines = cosignature_lines(store, row)
        if not lines:
            continue
        try:
            body, _ = parse_note(row.note)
            cp = Checkpoint.parse(body)
            valid = verify_cosignatures(row.note + "".join(lines.values()), policy.witnesses)
        except (NoteError, CheckpointError) as exc:
            rep.problems.append(Problem("witness", f"checkpoint at size {row.size}: {exc} (re-signed over another tree?)"))
            continue
        if not valid:
            continue
        if cp.origin != origin:
            rep.problems.append(Problem("witness", f"cosigned checkpoint at size {row.size} is for origin {cp.origin!r}"))
            continue
        if cp.size > head.size:
            rep.problems.append(
                Problem("rollback", f"witnesses cosigned size {cp.size} but the log has {head.size} entries", head.size)
            )
            continue
        try:
            root = tree_root(cp.size, read)
        except (ProofError, ValueError, KeyError) as exc:
            rep.problems.append(Problem("witness", f"cannot recompute the root at size {cp.size}: {exc}"))
            continue
        if root != cp.root:
            rep.problems.append(
                Problem("witness", f"witnesses cosigned a root at size {cp.size} that the events no longer produce")
            )
            continue
        if len(valid) >= policy.quorum and witnessed == 0:
            witnessed = cp.size
    _check_orphans(store, head, {r.size for r in rows}, rep)
    if witnessed == 0 and head.size > 0:
        names = ", ".join(w.name for w in policy.witnesses)
        rep.problems.append(
            Problem(
                "witness",
                f"no stored checkpoint carries {policy.quorum} valid cosignature(s) from the given witnesses ({names}): "
                "checkpoints deleted or re-signed, or the log was never witnessed",
            )
        )
        return 0
    tail = head.size - witnessed
    if tail > 0:
        problem = Problem("unwitnessed", f"{tail} entries after the newest witnessed checkpoint at size {witnessed}", witnessed)
        (rep.problems if policy.require_all_witnessed else rep.warnings).append(problem)
    return witnessed


def _check_orphans(store: Store, head: Head, stored: set[int], rep: TenantReport) -> None:
    """Cosignatures kept for a checkpoint that is no longer stored: the checkpoint was deleted
    (the newest ones, to hide a rewritten or truncated tail)."""
    for doc in store.doc_list(COLLECTION, tenant=head.tenant, limit=ORPHAN_SCAN):
        tid, _, size = doc.id.partition(":")
        if tid == str(head.tenant_id) and size.isdigit() and int(size) not in stored:
            rep.problems.append(
                Problem("witness", f"witnesses cosigned a checkpoint at size {size} that is no longer stored (deleted?)")
            )
            return


def witness_keys(texts: Sequence[str]) -> tuple[CosignatureVerifier, ...]:
    return tuple(CosignatureVerifier.from_vkey(t) for t in texts)
