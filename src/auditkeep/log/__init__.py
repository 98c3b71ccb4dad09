"""The verifiable log: Merkle hashing, tiles, proofs, signed notes, checkpoints.

Pure: no I/O. Storage hands tiles in and takes them out as plain bytes.
"""

from auditkeep.log.checkpoint import (
    Checkpoint,
    CheckpointError,
    checkpoint_verifiers,
    sign_checkpoint,
    verify_checkpoint,
)
from auditkeep.log.hashing import EMPTY_ROOT, HASH_SIZE, leaf_hash, mth, node_hash
from auditkeep.log.note import (
    NoteError,
    NoteSignature,
    NoteSigner,
    NoteVerifier,
    open_note,
    parse_note,
    sign_note,
)
from auditkeep.log.proofs import (
    ProofError,
    TileReader,
    consistency_proof,
    inclusion_proof,
    subtree_hash,
    tree_root,
    verify_consistency,
    verify_inclusion,
)
from auditkeep.log.tiles import (
    TILE_HEIGHT,
    TILE_WIDTH,
    Frontier,
    TileKey,
    entries_path,
    parse_tile_path,
    partial_tile_keys,
    tile_path,
)

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "TILE_HEIGHT",
    "TILE_WIDTH",
    "Checkpoint",
    "CheckpointError",
    "Frontier",
    "NoteError",
    "NoteSignature",
    "NoteSigner",
    "NoteVerifier",
    "ProofError",
    "TileKey",
    "TileReader",
    "checkpoint_verifiers",
    "consistency_proof",
    "entries_path",
    "inclusion_proof",
    "leaf_hash",
    "mth",
    "node_hash",
    "open_note",
    "parse_note",
    "parse_tile_path",
    "partial_tile_keys",
    "sign_checkpoint",
    "sign_note",
    "subtree_hash",
    "tile_path",
    "tree_root",
    "verify_checkpoint",
    "verify_consistency",
    "verify_inclusion",
]
