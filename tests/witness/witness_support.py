"""What the witness tests share: a small log written from RFC 9162, a cosignature checker
written from C2SP tlog-cosignature (sharing no code with auditkeep.log.cosignature), and a
witness server in a child process."""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from auditkeep.log.checkpoint import Checkpoint
from auditkeep.log.note import NoteSigner
from server_harness import free_port, run_cli


def _leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _node(a: bytes, b: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + a + b).digest()


def _split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


class SimLog:
    """A log of byte strings with RFC 9162 §2.1 roots and consistency proofs (recursive,
    straight from the definitions), signing its checkpoints as a C2SP signed note."""

    def __init__(self, origin: str, signer: NoteSigner | None = None, seed: bytes = b"") -> None:
        self.origin = origin
        self.signer = signer or NoteSigner(origin, Ed25519PrivateKey.generate())
        self.hashes: list[bytes] = []
        self.seed = seed

    def grow(self, n: int) -> None:
        start = len(self.hashes)
        self.hashes += [_leaf(self.seed + i.to_bytes(8, "big")) for i in range(start, start + n)]

    def _mth(self, lo: int, hi: int) -> bytes:
        if hi == lo:
            return hashlib.sha256(b"").digest()
        if hi - lo == 1:
            return self.hashes[lo]
        k = _split(hi - lo)
        return _node(self._mth(lo, lo + k), self._mth(lo + k, hi))

    def _subproof(self, m: int, lo: int, hi: int, b: bool) -> list[bytes]:
        n = hi - lo
        if m == n:
            return [] if b else [self._mth(lo, hi)]
        k = _split(n)
        if m <= k:
            return [*self._subproof(m, lo, lo + k, b), self._mth(lo + k, hi)]
        return [*self._subproof(m - k, lo + k, hi, False), self._mth(lo, lo + k)]

    def root(self, size: int | None = None) -> bytes:
        return self._mth(0, len(self.hashes) if size is None else size)

    def proof(self, old: int, size: int | None = None) -> list[bytes]:
        size = len(self.hashes) if size is None else size
        if old == 0 or old == size:
            return []
        return self._subproof(old, 0, size, True)

    def note(self, size: int | None = None) -> str:
        size = len(self.hashes) if size is None else size
        return self.signer.sign(Checkpoint(self.origin, size, self.root(size)).body())

    def request(self, old: int, size: int | None = None, proof: list[bytes] | None = None) -> bytes:
        size = len(self.hashes) if size is None else size
        hashes = self.proof(old, size) if proof is None else proof
        lines = [f"old {old}"] + [base64.b64encode(h).decode() for h in hashes]
        return ("\n".join(lines) + "\n\n" + self.note(size)).encode()


def spec_check_cosignature(vkey: str, checkpoint_body: str, line: str) -> int:
    """Check one cosignature line by C2SP tlog-cosignature, with hashlib and cryptography only;
    returns its timestamp. Raises on anything wrong."""
    name, id_hex, key_b64 = vkey.split("+", 2)
    raw = base64.b64decode(key_b64)
    assert raw[0] == 0x04, "cosignature/v1 keys have type 0x04"
    pub = raw[1:]
    expect_id = hashlib.sha256(name.encode() + b"\n" + b"\x04" + pub).digest()[:4]
    assert expect_id.hex() == id_hex
    assert line.startswith("\u2014 ") and line.endswith("\n")
    signer, blob_b64 = line[2:-1].split(" ")
    assert signer == name
    blob = base64.b64decode(blob_b64)
    assert len(blob) == 4 + 8 + 64
    assert blob[:4] == expect_id
    (timestamp,) = struct.unpack(">Q", blob[4:12])
    assert timestamp < 2**63
    message = b"cosignature/v1\n" + b"time " + str(timestamp).encode() + b"\n" + checkpoint_body.encode()
    Ed25519PublicKey.from_public_bytes(pub).verify(blob[12:], message)
    return int(timestamp)


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "auditkeep.cli.main", *args], capture_output=True, text=True, check=check, timeout=120
    )


def cli_here(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """What :func:`cli` does, run in this process (``server_harness.run_cli``): a CLI process
    spends ~0.5 s of CPU importing auditkeep. For set-up steps; the commands under test keep
    their runs as real processes."""
    done = run_cli(args, env=dict(os.environ))
    out = subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode(), done.stderr.decode())
    if check:
        out.check_returncode()
    return out


class WitnessProcess:
    """``auditkeep witness serve`` in a child process on a free port."""

    def __init__(self, wdir: Path, port: int | None = None) -> None:
        self.wdir = wdir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WitnessProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "auditkeep.cli.main", "witness", "serve", "--data", str(self.wdir),
             "--port", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"witness exited with {self.proc.returncode}")
            try:
                with httpx.Client(timeout=2) as c:
                    if c.get(self.url + "/").status_code == 200:
                        return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("witness did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
