"""Building one archive segment: a contiguous index range of one tenant's log.

A segment is two objects (docs/archive.md has the format):

- ``<first>-<end>.<hash>.jsonl.zst`` (``hash``: the first 16 hex digits of its SHA-256):
  zstd-compressed JSON Lines, one line per entry in index
  order, ``{"index": i, "received_ns": n, "leaf": "<the leaf's canonical JSON>"}`` (``leaf``
  is ``null`` for an entry whose payload retention already deleted);
- ``<first>-<end>.manifest.json``: the tenant and origin, the range, the signed checkpoint
  note that covers it, every leaf hash of the range and the range proof (the hashes of the
  subtrees outside the range) that together lead to that checkpoint's root.

When the store is encrypted at rest, each line holds its leaf sealed instead
(``"sealed"``, and ``data.sealed`` in the manifest: :mod:`auditkeep.archive.seal`).

The leaf bytes hold personal fields only as salted commitments; the plaintext and the salts
stay in the store, so erasing a subject (crypto-shredding) needs nothing of the archive.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import orjson
import zstandard

from auditkeep.archive.check import FORMAT
from auditkeep.archive.seal import SegmentSealer
from auditkeep.errors import IntegrityError
from auditkeep.evidence.tlogcheck import range_proof_nodes
from auditkeep.log.hashing import HASH_SIZE, leaf_hash
from auditkeep.log.note import NoteSigner, parse_note, sign_note
from auditkeep.log.proofs import subtree_hash
from auditkeep.log.tiles import TILE_WIDTH
from auditkeep.model.timefmt import format_rfc3339
from auditkeep.store.base import CheckpointRow, Store, TileKey, key_runs

ZSTD_LEVEL = 3


def segment_stem(tenant: str, first: int, end: int) -> str:
    """``<tenant>/<first>-<end>``, zero-padded so names sort in index order."""
    return f"{tenant}/{first:012d}-{end:012d}"


def data_name(tenant: str, first: int, end: int, sha256_hex: str) -> str:
    """The data object's name carries its content hash: a segment rebuilt after a killed run
    with other bytes (an entry expired in between) never collides with the orphan, which
    write-once storage could not replace."""
    return segment_stem(tenant, first, end) + f".{sha256_hex[:16]}.jsonl.zst"


def manifest_name(tenant: str, first: int, end: int) -> str:
    return segment_stem(tenant, first, end) + ".manifest.json"


@dataclass
class Segment:
    tenant: str
    first: int
    end: int
    data: bytes  # the compressed JSON Lines
    manifest: bytes  # the manifest's JSON
    expired: int  # entries of the range whose payload was already deleted

    @property
    def data_name(self) -> str:
        return data_name(self.tenant, self.first, self.end, hashlib.sha256(self.data).hexdigest())

    @property
    def manifest_name(self) -> str:
        return manifest_name(self.tenant, self.first, self.end)


def note_body(origin: str, first: int, end: int, tree_size: int, data_sha256: str, expired: list[tuple[int, int]]) -> str:
    """The text of a segment's signed note. Its second line is not a tree size, so no
    checkpoint parser can take it for a checkpoint."""
    ranges = ",".join(f"{a}-{b}" for a, b in expired) or "-"
    return f"{FORMAT}\n{origin}\n{first} {end} {tree_size}\n{data_sha256}\nexpired {ranges}\n"


def _leaf_hashes(store: Store, tenant_id: int, first: int, end: int) -> bytes:
    """The stored leaf hashes of ``[first, end)`` from the level-0 tiles."""
    lo, hi = first // TILE_WIDTH, (end - 1) // TILE_WIDTH + 1
    tiles = store.tiles_range(tenant_id, 0, lo, hi)
    parts = []
    for t in range(lo, hi):
        data = tiles.get(t)
        if data is None:
            raise IntegrityError(f"tile 0/{t} of tenant id {tenant_id} is missing from the store")
        a = max(first, t * TILE_WIDTH) - t * TILE_WIDTH
        b = min(end, (t + 1) * TILE_WIDTH) - t * TILE_WIDTH
        if len(data) < b * HASH_SIZE:
            raise IntegrityError(f"tile 0/{t} of tenant id {tenant_id} holds too few hashes")
        parts.append(data[a * HASH_SIZE : b * HASH_SIZE])
    return b"".join(parts)


def build_segment(
    store: Store,
    tenant_id: int,
    tenant: str,
    origin: str,
    first: int,
    end: int,
    checkpoint: CheckpointRow,
    now_ns: int,
    signers: Sequence[NoteSigner],
    sealer: SegmentSealer | None = None,
) -> Segment:
    """The segment of ``[first, end)``, proven against ``checkpoint`` (size >= ``end``).

    Each leaf is hashed again and compared with its stored hash, so a store whose leaf bytes
    were altered never yields a segment that claims them. ``signers`` (the log's keys, named
    after ``origin``) sign the segment note: the data file's hash and which entries of the
    range had no payload left, which the checkpoint alone cannot vouch for."""
    if not 0 <= first < end <= checkpoint.size:
        raise ValueError(f"range [{first}, {end}) is not inside the checkpoint of size {checkpoint.size}")
    hashes = _leaf_hashes(store, tenant_id, first, end)
    cctx = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    chunks: list[bytes] = []
    buf: list[bytes] = []
    pos = first
    expired = 0
    gone: list[int] = []
    dumps = orjson.dumps
    for e in store.entries(tenant_id, first, end):
        if e.index != pos:
            raise IntegrityError(f"entry {pos} of tenant {tenant!r} is missing from the store")
        k = (pos - first) * HASH_SIZE
        if e.leaf:
            if not hmac.compare_digest(leaf_hash(e.leaf), hashes[k : k + HASH_SIZE]):
                raise IntegrityError(
                    f"entry {pos} of tenant {tenant!r}: its leaf does not match the stored leaf hash; "
                    "run `auditkeep verify`"
                )
            if sealer is not None:  # an encrypted store: the leaf leaves it sealed
                buf.append(dumps({"index": pos, "received_ns": e.received_ns, "sealed": sealer.seal(pos, e.leaf)}))
            else:
                buf.append(dumps({"index": pos, "received_ns": e.received_ns, "leaf": e.leaf.decode()}))
        else:
            expired += 1
            gone.append(pos)
            buf.append(dumps({"index": pos, "received_ns": e.received_ns, "leaf": None}))
        pos += 1
        if len(buf) >= 4096:
            chunks.append(b"\n".join(buf) + b"\n")
            buf = []
    if pos != end:
        raise IntegrityError(f"entry {pos} of tenant {tenant!r} is missing from the store")
    if buf:
        chunks.append(b"\n".join(buf) + b"\n")
    raw = b"".join(chunks)
    data = cctx.compress(raw)

    def read(keys: Sequence[TileKey]) -> Mapping[TileKey, bytes]:
        return store.read_tiles(tenant_id, keys)

    proof = [subtree_hash(lo, hi, read).hex() for lo, hi in range_proof_nodes(first, end, checkpoint.size)]
    _, sigs = parse_note(checkpoint.note)
    digest = hashlib.sha256(data).hexdigest()
    note = sign_note(note_body(origin, first, end, checkpoint.size, digest, key_runs(gone)), signers)
    manifest = {
        "format": FORMAT,
        "tenant": tenant,
        "origin": origin,
        "first": first,
        "end": end,
        "tree_size": checkpoint.size,
        "checkpoint": checkpoint.note,
        "key_names": sorted({s.name for s in sigs}),
        "leaf_hashes": base64.b64encode(hashes).decode("ascii"),
        "range_proof": proof,
        "data": {
            "name": data_name(tenant, first, end, digest).rsplit("/", 1)[1],
            "sha256": digest,
            "bytes": len(data),
            "raw_bytes": len(raw),
            "lines": end - first,
            **({"sealed": sealer.manifest} if sealer is not None else {}),
        },
        "expired": expired,
        "segment_note": note,
        "created_at": format_rfc3339(now_ns),
    }
    return Segment(tenant, first, end, data, orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n", expired)
