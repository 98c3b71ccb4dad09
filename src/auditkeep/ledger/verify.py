"""Full verification: recompute everything from the stored events and check it all.

Every leaf hash is recomputed from the stored bytes, every tile and root rebuilt, every
stored checkpoint's signature checked against the keys the caller trusts and its root
compared with the rebuilt tree at its size, consecutive checkpoints proven consistent,
indexes checked to be contiguous, and each personal field's stored plaintext checked
against the commitment in its leaf. The report names the first index where something
diverges and what diverged. Nothing here trusts the query projection, and nothing here
writes or signs: the keys and notes relied on come in a :class:`~auditkeep.ledger.trust.Trust`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from auditkeep.ledger.trust import Trust
from auditkeep.ledger.verify_report import TAMPERING_KINDS, Problem, TenantReport, VerifyReport
from auditkeep.ledger.verify_rows import RETENTION_ACTION, _checked_chunks
from auditkeep.log.checkpoint import (
    Checkpoint,
    CheckpointError,
    verify_checkpoint,
)
from auditkeep.log.note import NoteError, UnknownSigner
from auditkeep.log.proofs import ProofError, consistency_proof, verify_consistency
from auditkeep.log.tiles import TILE_WIDTH, Frontier
from auditkeep.store.base import KEY_SHIFT, Head, LogReads

__all__ = ["RETENTION_ACTION", "TAMPERING_KINDS", "Problem", "TenantReport", "VerifyReport", "verify_log"]

_MASK = (1 << KEY_SHIFT) - 1


def verify_log(
    store: LogReads,
    head: Head,
    origin: str,
    trust: Trust,
    progress: Callable[[int], None] | None = None,
    *,
    personal_fields: bool = True,
    live: bool = False,
) -> TenantReport:
    """Verify one tenant's log (checkpoint origin ``origin``) against its stored events,
    tiles, head and checkpoints, relying only on ``trust``: every stored checkpoint must be
    signed by one of its keys, and its trusted checkpoint notes (kept outside the store)
    must still be in the log, which detects a rollback even when the stored checkpoints
    were removed too. ``personal_fields=False`` skips checking personal fields against
    their commitments (only for measuring what that check costs).

    ``live``: the log may grow while it is verified (a server verifying its own log): what was
    appended after ``head`` was read is left to the next run, so entries past the head,
    partial tiles that have grown past it (ours must still be their prefix) and checkpoints
    signed past it are not problems.

    The steps: the checkpoints' signatures (so we know at which sizes roots are needed),
    the tree recomputed from the entries, the end of the log against its head, then each
    checkpoint against the recomputed roots and the one before it."""
    rep = TenantReport(head.tenant, head.size)
    signed = _signed_checkpoints(store, head, origin, trust, rep, live)
    walk = _recompute_tree(store, head, signed, rep, progress, personal_fields)
    _check_end(store, head, walk, rep, live)
    _check_checkpoints(store, head.tenant_id, signed, walk, rep)
    if walk.expected == head.size:
        _check_signed_tail(head, trust, rep)
    return rep


Signed = list[tuple[str, Checkpoint]]  # ("stored" or "trusted", the checkpoint)


def _signed_checkpoints(store: LogReads, head: Head, origin: str, trust: Trust, rep: TenantReport, live: bool) -> Signed:
    """The stored and the trusted checkpoints whose signatures verify (problems for the rest)."""
    keys = list(trust.keys)
    signed: Signed = []
    stored_sizes: set[int] = set()
    for row in store.checkpoints(head.tenant_id):
        if live and row.size > head.size:
            continue  # signed after the head was read
        stored_sizes.add(row.size)
        try:
            cp = verify_checkpoint(row.note, keys, origin)
        except (NoteError, CheckpointError) as exc:
            # e.g. signed only by a key rotated in since (or out before) the keys trusted here
            untrusted = isinstance(exc, UnknownSigner)
            rep.problems.append(Problem("checkpoint", f"checkpoint at size {row.size} is not signed by a trusted key: {exc}"
                                        if untrusted else f"checkpoint at size {row.size}: {exc}"))
            continue
        if cp.size != row.size or cp.root != row.root:
            rep.problems.append(Problem("checkpoint", f"checkpoint at size {row.size}: row differs from its signed note"))
        signed.append(("stored", cp))
    for note in trust.trusted_for(origin):
        try:
            cp = verify_checkpoint(note, keys, origin)
        except (NoteError, CheckpointError) as exc:
            rep.problems.append(Problem("trusted", f"trusted checkpoint does not verify: {exc}"))
            continue
        signed.append(("trusted", cp))
    _check_claimed_checkpoint(store, head, stored_sizes, rep)
    return signed


@dataclass
class _Walk:
    """The tree recomputed from the stored entries."""

    frontier: Frontier = field(default_factory=Frontier)
    roots: dict[int, bytes] = field(default_factory=dict)  # at the sizes checkpoints cover
    expected: int = 0  # entries read in order
    stop: bool = False  # reading stopped at a missing entry
    tile_problem: bool = False  # one tile problem is reported; the rest would only repeat it
    recorded: list[tuple[int, int]] = field(default_factory=list)  # ranges retention records name

    def compare_tiles(
        self, store: LogReads, tid: int, changed: dict[tuple[int, int], bytes], rep: TenantReport, grown_ok: bool = False
    ) -> None:
        if self.tile_problem:
            return
        bad = _compare_tiles(store, tid, changed, grown_ok=grown_ok)
        if bad is not None:
            rep.problems.append(bad)
            self.tile_problem = True


def _recompute_tree(
    store: LogReads, head: Head, signed: Signed, rep: TenantReport, progress: Callable[[int], None] | None, sealed: bool
) -> _Walk:
    """Read the entries in order, checking each, and rebuild the tree from their leaf hashes,
    keeping its root at every size a checkpoint needs and comparing full tiles as they form."""
    tid = head.tenant_id
    wanted = sorted({cp.size for _, cp in signed if 0 < cp.size <= head.size})
    walk = _Walk()
    for checked in _checked_chunks(store, tid, head.tenant, head.size, sealed):
        rep.problems += checked.problems
        rep.sealed_checked += checked.sealed_checked
        rep.erased += checked.erased
        rep.payloads_unchecked += checked.unchecked
        for a, b in checked.expired:
            rep.expired += b - a
            if rep.expired_ranges and rep.expired_ranges[-1][1] == a:
                rep.expired_ranges[-1] = (rep.expired_ranges[-1][0], b)
            else:
                rep.expired_ranges.append((a, b))
        walk.recorded += checked.recorded
        hashes = checked.hashes
        walk.expected += len(hashes)
        walk.stop = checked.stop
        # Feed the tree, stopping at every size a checkpoint needs a root for.
        frontier = walk.frontier
        start = frontier.size
        pos = 0
        while pos < len(hashes):
            cut = len(hashes)
            for w in wanted:
                if start + pos < w <= start + len(hashes):
                    cut = w - start
                    break
            changed = frontier.append(hashes[pos:cut])
            walk.compare_tiles(store, tid, {k: v for k, v in changed.items() if len(v) == 32 * TILE_WIDTH}, rep)
            pos = cut
            if frontier.size in wanted:
                walk.roots[frontier.size] = frontier.root()
        if progress is not None:
            progress(len(hashes))
        if walk.stop:
            break
    rep.entries_checked = walk.expected
    return walk


def _check_end(store: LogReads, head: Head, walk: _Walk, rep: TenantReport, live: bool) -> None:
    """Payloads that look encrypted in a plain store, payloads gone without a retention
    record, a log shorter or longer than its head, the partial tiles and the head's root."""
    tid = head.tenant_id
    if rep.payloads_unchecked and store.meta("encryption") is None:
        # Only an encrypted store may hold payloads verify cannot open: in a plain one, rows
        # made to look encrypted are altered events, not events to skip.
        rep.problems.append(
            Problem("event", f"{rep.payloads_unchecked} stored events carry the encrypted-payload prefix "
                    "in a store that is not encrypted (altered)")
        )
    gap = _uncovered(rep.expired_ranges, walk.recorded)
    if gap is not None and rep.payloads_unchecked:
        # the retention records that would cover them are among the payloads not opened
        rep.warnings.append(
            Problem("expired", f"entries {gap[0]}..{gap[1] - 1} have no payload; the retention records that "
                    "should name them are encrypted and were not checked", gap[0])
        )
    elif gap is not None:
        rep.problems.append(
            Problem(
                "missing",
                f"the payloads of entries {gap[0]}..{gap[1] - 1} are gone, and no retention record in the log "
                "names them (deleted, not expired)",
                gap[0],
            )
        )
    if walk.expected < head.size and not walk.stop:
        rep.problems.append(
            Problem("missing", f"log truncated: the head says {head.size} entries, storage ends at {walk.expected}", walk.expected)
        )
    beyond = list(store.entries(tid, head.size, head.size + 1))
    if beyond and not live:
        rep.problems.append(Problem("head", f"entries exist past the head's size {head.size}", head.size))
    if walk.expected == head.size:
        walk.compare_tiles(store, tid, walk.frontier.partial_tiles(), rep, grown_ok=live)
        if walk.frontier.root() != head.root:
            rep.problems.append(Problem("head", "the head's root differs from the tree recomputed from events"))


def _check_checkpoints(store: LogReads, tid: int, signed: Signed, walk: _Walk, rep: TenantReport) -> None:
    """Each signed checkpoint, smallest first: within the entries that verified, signing the
    root they produce, and consistent with the one before it."""
    verified_size = walk.expected
    previous: Checkpoint | None = None
    for kind, cp in sorted(signed, key=lambda x: x[1].size):
        rep.checkpoints_checked += 1
        if cp.size > verified_size:
            what = "a trusted checkpoint" if kind == "trusted" else "a signed checkpoint"
            rep.problems.append(
                Problem(
                    "rollback",
                    f"log has {verified_size} verifiable entries but {what} covers {cp.size}: rolled back or truncated",
                    verified_size,
                )
            )
            continue
        if cp.size in walk.roots and walk.roots[cp.size] != cp.root:
            rep.problems.append(
                Problem("checkpoint", f"{kind} checkpoint at size {cp.size} signed a root the events no longer produce")
            )
            continue
        if previous is not None and previous.size < cp.size and not walk.tile_problem:
            try:
                proof = consistency_proof(previous.size, cp.size, lambda keys: store.read_tiles(tid, keys))
                verify_consistency(previous.size, cp.size, proof, previous.root, cp.root)
            except (ProofError, ValueError) as exc:
                rep.problems.append(
                    Problem("checkpoint", f"checkpoints at sizes {previous.size} and {cp.size} are not consistent: {exc}")
                )
        previous = cp
        if cp.size >= rep.signed_size:
            rep.signed_size, rep.latest = cp.size, cp


def _check_claimed_checkpoint(store: LogReads, head: Head, stored_sizes: set[int], rep: TenantReport) -> None:
    """The head records the size of the last checkpoint signed; that checkpoint must exist.
    (Deleting the newest checkpoints would otherwise leave a log that looks merely unsigned
    past the older ones.) It may have been signed since the checkpoints were read: look."""
    claimed = head.checkpoint_size
    if claimed <= 0 or claimed in stored_sizes or store.checkpoint_at(head.tenant_id, claimed) is not None:
        return
    rep.problems.append(
        Problem(
            "checkpoint",
            f"the head says the log was signed at size {claimed}, but no checkpoint of that size is stored "
            "(checkpoints deleted?)",
        )
    )


def _check_signed_tail(head: Head, trust: Trust, rep: TenantReport) -> None:
    """Entries after the newest checkpoint that verified are covered by no signature: a
    writer signs them within its checkpoint interval, so a tail at rest is worth a look (a
    forger who cannot sign leaves one). An error when the trust requires every entry signed."""
    tail = head.size - rep.signed_size
    if tail <= 0:
        return
    if rep.signed_size:
        text = f"{tail} entries after the newest checkpoint at size {rep.signed_size} are not signed"
    else:
        text = f"none of the {tail} entries is covered by a signed checkpoint"
    problem = Problem("unsigned", text, rep.signed_size)
    (rep.problems if trust.require_signed else rep.warnings).append(problem)


def _uncovered(expired: list[tuple[int, int]], recorded: list[tuple[int, int]]) -> tuple[int, int] | None:
    """The first expired range not wholly inside the recorded ones, or None."""
    merged: list[tuple[int, int]] = []
    for a, b in sorted(recorded):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    j = 0
    for a, b in expired:
        while j < len(merged) and merged[j][1] <= a:
            j += 1
        if j == len(merged) or merged[j][0] > a:
            return (a, b)
        if merged[j][1] < b:
            return (merged[j][1], b)
    return None


def _compare_tiles(
    store: LogReads, tid: int, changed: dict[tuple[int, int], bytes], grown_ok: bool = False
) -> Problem | None:
    """Compare rebuilt tiles with the stored ones (which must be exactly equal: full tiles
    mid-stream, the partial ones once the stream reaches the head's size; with ``grown_ok``,
    a stored partial tile may extend ours, the log having grown since)."""
    by_level: dict[int, list[int]] = {}
    for level, idx in changed:
        by_level.setdefault(level, []).append(idx)
    for level, idxs in sorted(by_level.items()):
        stored = store.tiles_range(tid, level, min(idxs), max(idxs) + 1)
        for idx in sorted(idxs):
            ours = changed[(level, idx)]
            theirs = stored.get(idx)
            if theirs is None:
                return Problem("tile", f"tile {level}/{idx} is missing", idx * TILE_WIDTH if level == 0 else None)
            if theirs != ours and not (grown_ok and len(theirs) > len(ours) and theirs.startswith(ours)):
                width = len(ours) // 32
                for j in range(min(width, len(theirs) // 32)):
                    if theirs[32 * j : 32 * j + 32] != ours[32 * j : 32 * j + 32]:
                        index = (idx * TILE_WIDTH + j) * (TILE_WIDTH**level)
                        what = (
                            "the stored event's hash differs from the tree (event or tile altered)"
                            if level == 0
                            else f"tile {level}/{idx} differs from the tree recomputed from events"
                        )
                        return Problem("tile", what, index)
                return Problem("tile", f"tile {level}/{idx} has {len(theirs) // 32} hashes, expected {width}")
    return None
