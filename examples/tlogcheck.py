"""The transparency-log formats an offline checker needs, with nothing but the standard
library and ``cryptography``: RFC 9162 hashing, range and consistency proofs, C2SP signed
notes (checkpoints, cosignatures), RFC 8785 canonical JSON of revealed values, and the
leaf format's times.

It imports nothing of auditkeep unguarded, so that an auditor can run the standalone
checkers beside it: ``examples/tlogcheck.py`` is this same file, which
``examples/verify_bundle.py`` and ``examples/verify_segment.py`` import from their own
directory (tests keep each pair identical).
"""

from __future__ import annotations

import base64
import binascii
import calendar
import hashlib
import hmac
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

__all__ = [
    "ALG_COSIGNATURE_V1",
    "ALG_ED25519",
    "IntegrityError",
    "Key",
    "commitment",
    "jcs",
    "leaf_hash",
    "mth",
    "node_hash",
    "parse_checkpoint",
    "parse_note",
    "range_proof_nodes",
    "range_root",
    "time_ns",
    "verify_consistency",
]

try:  # within auditkeep, a bundle or segment that cannot be checked is an integrity failure
    from auditkeep.errors import IntegrityError
except ImportError:  # run alone, from examples/, with no auditkeep installed

    class IntegrityError(Exception):  # type: ignore[no-redef]
        """Stands in for auditkeep's base class of integrity failures."""


ALG_ED25519 = 0x01
ALG_COSIGNATURE_V1 = 0x04

_sha256 = hashlib.sha256
_TIME_RE = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?Z")


# --- hashing -------------------------------------------------------------------------------


def leaf_hash(data: bytes) -> bytes:
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return _sha256(b"\x01" + left + right).digest()


def mth(hashes: Sequence[bytes]) -> bytes:
    """RFC 9162 Merkle Tree Hash of leaf hashes, one row at a time (an odd last node rises)."""
    if not hashes:
        return _sha256(b"").digest()
    row = list(hashes)
    while len(row) > 1:
        nxt = [_sha256(b"\x01" + a + b).digest() for a, b in zip(row[0::2], row[1::2], strict=False)]
        if len(row) % 2:
            nxt.append(row[-1])
        row = nxt
    return row[0]


def _split(n: int) -> int:
    """The largest power of two below n (n >= 2): where RFC 9162 splits a tree of n leaves."""
    return 1 << ((n - 1).bit_length() - 1)


def range_root(first: int, leaves: Sequence[bytes], size: int, proof: Iterator[bytes]) -> bytes:
    """The root of the tree of ``size`` leaves from the leaf hashes of ``[first, first +
    len(leaves))`` and, in left-to-right order, the hash of every maximal subtree of the
    RFC 9162 tree that lies wholly outside that range (see docs/evidence.md)."""
    end = first + len(leaves)

    def node(lo: int, hi: int) -> bytes:
        if hi <= first or lo >= end:
            got = next(proof, None)
            if got is None:
                raise ValueError("the range proof has too few hashes")
            return got
        if first <= lo and hi <= end:
            return mth(leaves[lo - first : hi - first])
        k = _split(hi - lo)
        return node_hash(node(lo, lo + k), node(lo + k, hi))

    return node(0, size)


def range_proof_nodes(first: int, end: int, size: int) -> list[tuple[int, int]]:
    """The subtrees ``[lo, hi)`` whose hashes a range proof lists, in order."""
    out: list[tuple[int, int]] = []

    def walk(lo: int, hi: int) -> None:
        if hi <= first or lo >= end:
            out.append((lo, hi))
        elif not (first <= lo and hi <= end):
            k = _split(hi - lo)
            walk(lo, lo + k)
            walk(lo + k, hi)

    walk(0, size)
    return out


def verify_consistency(old: int, new: int, proof: Sequence[bytes], old_root: bytes, new_root: bytes) -> str | None:
    """RFC 9162 §2.1.4.2; None when the proof holds, else why not."""
    if old > new:
        return f"old size {old} is larger than new size {new}"
    if old == new:
        return None if not proof and hmac.compare_digest(old_root, new_root) else "equal sizes with different roots"
    if old == 0:
        return None if not proof else "a proof from the empty tree must be empty"
    if not proof:
        return "empty consistency proof"
    path = list(proof)
    if old & (old - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return "consistency proof is too long"
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        return "consistency proof is too short"
    if not hmac.compare_digest(fr, old_root):
        return "consistency proof does not lead to the older checkpoint's root"
    if not hmac.compare_digest(sr, new_root):
        return "consistency proof does not lead to the newer checkpoint's root"
    return None


# --- signed notes (C2SP signed-note, tlog-checkpoint, tlog-cosignature) -------------------


@dataclass(frozen=True)
class Key:
    name: str
    alg: int
    public: bytes

    @classmethod
    def parse(cls, vkey: str) -> Key:
        parts = vkey.strip().split("+", 2)
        if len(parts) != 3 or not parts[0]:
            raise ValueError("a verifier key is <name>+<8 hex key id>+<base64 key>")
        name, id_hex, b64 = parts
        try:
            raw = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("the verifier key is not base64") from None
        if len(raw) != 33 or raw[0] not in (ALG_ED25519, ALG_COSIGNATURE_V1):
            raise ValueError("the verifier key is not an Ed25519 (0x01) or cosignature/v1 (0x04) key")
        key = cls(name, raw[0], raw[1:])
        if key.key_id(name).hex() != id_hex:
            raise ValueError("the verifier key's id does not match its name and key")
        return key

    def key_id(self, name: str) -> bytes:
        return _sha256(name.encode() + b"\n" + bytes([self.alg]) + self.public).digest()[:4]

    def names_for(self, origin: str) -> list[str]:
        """A log-wide key (named after a parent of the origin) also signs under the origin."""
        return [self.name, origin] if origin.startswith(self.name + "/") else [self.name]

    def signs(self, text: str, origin: str, sigs: Sequence[tuple[str, bytes]]) -> bool:
        pub = Ed25519PublicKey.from_public_bytes(self.public)
        for name in self.names_for(origin):
            kid = self.key_id(name)
            for sig_name, blob in sigs:
                if sig_name != name or blob[:4] != kid:
                    continue
                if self.alg == ALG_ED25519:
                    message, sig = text.encode(), blob[4:]
                else:  # tlog-cosignature: 8-byte timestamp, then the signature
                    if len(blob) != 4 + 8 + 64:
                        continue
                    ts = int.from_bytes(blob[4:12], "big")
                    message, sig = f"cosignature/v1\ntime {ts}\n{text}".encode(), blob[12:]
                try:
                    pub.verify(sig, message)
                    return True
                except InvalidSignature:
                    continue
        return False


def parse_note(note: str) -> tuple[str, list[tuple[str, bytes]]]:
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n"):
        raise ValueError("not a signed note (no blank line before signatures)")
    text, block = note[: split + 1], note[split + 2 : -1]
    sigs: list[tuple[str, bytes]] = []
    for line in block.split("\n"):
        if not line.startswith("\u2014 "):
            raise ValueError("a signature line does not start with an em dash")
        name, _, b64 = line[2:].partition(" ")
        try:
            blob = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("a signature is not base64") from None
        if len(blob) < 5:
            raise ValueError("a signature is too short")
        sigs.append((name, blob))
    return text, sigs


def parse_checkpoint(text: str) -> tuple[str, int, bytes]:
    lines = text[:-1].split("\n")
    if len(lines) < 3 or not re.fullmatch(r"0|[1-9][0-9]*", lines[1]):
        raise ValueError("not a checkpoint (origin, size and root lines)")
    try:
        root = base64.b64decode(lines[2], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the checkpoint root is not base64") from None
    if len(root) != 32:
        raise ValueError("the checkpoint root is not 32 bytes")
    return lines[0], int(lines[1]), root


# --- canonical JSON of revealed values (RFC 8785) -------------------------------------------


def _es_number(x: float) -> str:
    """A finite float as ECMAScript's Number.prototype.toString writes it (RFC 8785 §3.2.2.3)."""
    if x == 0:
        return "0"
    if x != x or x in (float("inf"), float("-inf")):
        raise ValueError("NaN and infinities have no JSON form")
    sign = "-" if x < 0 else ""
    _, digits_t, exp = Decimal(repr(abs(x))).normalize().as_tuple()
    digits = "".join(map(str, digits_t))
    k = len(digits)
    n = k + int(exp)  # value = 0.digits x 10^n
    if k <= n <= 21:
        body = digits + "0" * (n - k)
    elif 0 < n <= 21:
        body = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        body = "0." + "0" * -n + digits
    else:
        e = n - 1
        mant = digits[0] + ("." + digits[1:] if k > 1 else "")
        body = f"{mant}e{'+' if e >= 0 else '-'}{abs(e)}"
    return sign + body


def jcs(value: Any) -> bytes:
    """RFC 8785 canonical bytes of a JSON value."""

    def enc(v: Any) -> str:
        if v is None:
            return "null"
        if v is True:
            return "true"
        if v is False:
            return "false"
        if isinstance(v, int):
            if abs(v) >= 2**53:
                raise ValueError("an integer beyond 2**53 has no exact JSON form")
            return str(v)
        if isinstance(v, float):
            return _es_number(v)
        if isinstance(v, str):
            return json.dumps(v, ensure_ascii=False)
        if isinstance(v, list):
            return "[" + ",".join(enc(x) for x in v) + "]"
        if isinstance(v, dict):
            items = sorted(v.items(), key=lambda kv: kv[0].encode("utf-16-be"))
            return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + enc(x) for k, x in items) + "}"
        raise ValueError(f"not a JSON value: {type(v).__name__}")

    return enc(value).encode()


def commitment(event_key: bytes, path: str, value: Any) -> str:
    return hmac.new(event_key, path.encode() + b"\x00" + jcs(value), "sha256").hexdigest()


# --- times ---------------------------------------------------------------------------------


def time_ns(text: Any) -> int:
    """``YYYY-MM-DDTHH:MM:SS[.fraction]Z`` (UTC, as the leaf format writes it) in ns."""
    last = _last_time[0]  # one tuple, read once: safe across threads
    if text == last[0]:  # the events of one batch share their received_at
        return last[1]
    ns = _parse_time(text)
    _last_time[0] = (text, ns)
    return ns


_last_time: list[tuple[Any, int]] = [(None, 0)]


def _parse_time(text: Any) -> int:
    m = _TIME_RE.fullmatch(text) if isinstance(text, str) else None
    if m is None:
        raise ValueError(f"not a UTC RFC 3339 time: {text!r}")
    secs = calendar.timegm((int(m[1][0:4]), int(m[1][5:7]), int(m[1][8:10]), int(m[1][11:13]), int(m[1][14:16]), int(m[1][17:19])))
    return secs * 1_000_000_000 + int((m[2] or "").ljust(9, "0"))
