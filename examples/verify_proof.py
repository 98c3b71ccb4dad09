"""Verify an auditkeep inclusion proof with nothing but hashlib and cryptography.

    auditkeep pubkey > log.vkey
    auditkeep proof inclusion --index 42 --json > proof.json
    auditkeep search --json ... | (pick the event's leaf)   # or fetch it over the API
    python verify_proof.py log.vkey proof.json [leaf-file]

Exit status 0 when the proof, the checkpoint signature and (if given) the leaf all check out.
Follows RFC 9162 section 2.1.3.2 (inclusion), C2SP signed-note and tlog-checkpoint.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def key_id(name: str, key: bytes) -> str:
    """The first 4 bytes of SHA-256(name || "\n" || 0x01 || public key), in hex."""
    return hashlib.sha256(name.encode() + b"\n" + key).digest()[:4].hex()


def verify_note(note: str, vkey: str) -> tuple[str, int, bytes]:
    """Check the checkpoint's Ed25519 signature; return (origin, tree size, root hash).

    The key may be the tenant's (named after the checkpoint's origin, as `auditkeep pubkey
    --tenant T` prints it) or the log's (`auditkeep pubkey`, named after the origin's
    parent): checkpoints are signed under their origin's name, so a log-wide key checks
    the signature made with the same public key under that name."""
    name, key_id_hex, key_b64 = vkey.strip().split("+", 2)
    key = base64.b64decode(key_b64)
    if key[0] != 0x01:
        raise SystemExit("not an Ed25519 verifier key")
    if key_id(name, key) != key_id_hex:
        raise SystemExit("verifier key id does not match the key")
    text, sep, signatures = note.partition("\n\n")
    if not sep:
        raise SystemExit("not a signed note")
    text += "\n"  # the signed text includes its final newline
    origin, size, root = text.split("\n")[:3]
    accepted = {(name, key_id_hex)}
    if origin.startswith(name + "/"):
        accepted.add((origin, key_id(origin, key)))
    for line in signatures.splitlines():
        dash, signer, sig_b64 = line.split(" ")
        blob = base64.b64decode(sig_b64)
        if dash == "\u2014" and (signer, blob[:4].hex()) in accepted:
            Ed25519PublicKey.from_public_bytes(key[1:]).verify(blob[4:], text.encode())
            return origin, int(size), base64.b64decode(root)
    raise SystemExit("no signature by this key")


def root_from_inclusion(leaf_hash: bytes, index: int, size: int, path: list[bytes]) -> bytes:
    """RFC 9162 section 2.1.3.2: the root implied by a leaf hash and its audit path."""
    if index >= size:
        raise SystemExit("index beyond tree size")
    fn, sn, r = index, size - 1, leaf_hash
    for p in path:
        if sn == 0:
            raise SystemExit("proof too long")
        if fn % 2 == 1 or fn == sn:
            r = hashlib.sha256(b"\x01" + p + r).digest()
            if fn % 2 == 0:
                while fn % 2 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = hashlib.sha256(b"\x01" + r + p).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise SystemExit("proof too short")
    return r


def main(argv: list[str]) -> None:
    with open(argv[1]) as fh:
        vkey = fh.read()
    with open(argv[2]) as fh:
        proof = json.load(fh)
    origin, size, root = verify_note(proof["checkpoint"], vkey)
    if size != proof["tree_size"]:
        raise SystemExit("proof is for another tree size than its checkpoint")
    leaf_hash = bytes.fromhex(proof["leaf_hash"])
    if len(argv) > 3:
        # The leaf is the event's canonical (RFC 8785) bytes; its hash is SHA-256(0x00 || leaf).
        with open(argv[3], "rb") as fh:
            leaf = fh.read()
        if hashlib.sha256(b"\x00" + leaf).digest() != leaf_hash:
            raise SystemExit("leaf does not match the proof's leaf hash")
    path = [bytes.fromhex(h) for h in proof["hashes"]]
    if root_from_inclusion(leaf_hash, proof["index"], size, path) != root:
        raise SystemExit("inclusion proof does not lead to the signed root")
    print(f"OK: entry {proof['index']} is in {origin} at tree size {size}")


if __name__ == "__main__":
    main(sys.argv)
