"""How many checkpoints a witness cosigns per second, and what its durability costs.

    python benchmarks/bench_witness.py [--requests 2000] [--grow 10]

One log grows by --grow leaves between checkpoints; each checkpoint goes to the witness
with a consistency proof from the size it cosigned last, in process (no HTTP), so the table
shows the witness's own work. Baseline, same run: the same checks and signature without
writing the state (what a witness that skips fsync would do — and may then cosign a rollback
after a crash). Prints a table; nothing is asserted.
"""

from __future__ import annotations

import argparse
import base64
import os
import platform
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auditkeep.log.checkpoint import Checkpoint
from auditkeep.log.hashing import leaf_hash
from auditkeep.log.note import NoteSigner
from auditkeep.log.proofs import consistency_proof
from auditkeep.log.tiles import Frontier
from auditkeep.witness import Witness, WitnessDir


def _requests(n: int, grow: int, signer: NoteSigner, origin: str) -> list[bytes]:
    f = Frontier()
    tiles: dict[tuple[int, int], bytes] = {}
    out, old = [], 0
    for i in range(n):
        tiles.update(f.append([leaf_hash(f"{i}:{j}".encode()) for j in range(grow)]))
        tiles.update(f.partial_tiles())
        proof = consistency_proof(old, f.size, lambda keys: {k: tiles[k] for k in keys}) if old else []
        note = signer.sign(Checkpoint(origin, f.size, f.root()).body())
        lines = [f"old {old}", *(base64.b64encode(h).decode() for h in proof)]
        out.append(("\n".join(lines) + "\n\n" + note).encode())
        old = f.size
    return out


def _run(reqs: list[bytes], signer: NoteSigner, origin: str, durable: bool) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        wdir = WitnessDir(Path(tmp) / "w")
        wdir.init("bench.example/w")
        wdir.add_log(origin, signer.verifier_key())
        if not durable:
            wdir.save_state = lambda state: None  # type: ignore[method-assign]
        w = Witness(wdir)
        t0 = time.perf_counter()
        for r in reqs:
            w.add_checkpoint(r)
        return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--grow", type=int, default=10)
    args = ap.parse_args()
    origin = "bench.example/log"
    signer = NoteSigner(origin, Ed25519PrivateKey.generate())
    reqs = _requests(args.requests, args.grow, signer, origin)
    base = _run(reqs, signer, origin, durable=False)
    real = _run(reqs, signer, origin, durable=True)
    print(f"nproc={os.cpu_count()} python={platform.python_version()} requests={args.requests} grow={args.grow}")
    print(f"{'witness':<52} {'checkpoints/s':>14} {'ms each':>8} {'x baseline':>10}")
    for name, secs in (("baseline: checks + cosignature, state not written", base),
                       ("witness: state fsynced + renamed before answering", real)):  # fmt: skip
        print(f"{name:<52} {args.requests / secs:>14,.0f} {1000 * secs / args.requests:>8.2f} {base / secs:>10.2f}")


if __name__ == "__main__":
    main()
