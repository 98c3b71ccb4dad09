"""The witness's one operation, C2SP tlog-witness ``add-checkpoint``, without HTTP.

A request is ``old <size>\\n``, up to 63 base64 proof lines, a blank line, and a signed
checkpoint. The witness cosigns it only if a key it trusts for the origin signed it and it
extends (by a verified consistency proof) the checkpoint it cosigned last; the check, the
durable update of that record and the signing happen under one lock, so two concurrent
requests can never roll the record back (the race the spec warns about).
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from auditkeep.errors import UserError
from auditkeep.log.checkpoint import CheckpointError, verify_checkpoint
from auditkeep.log.hashing import EMPTY_ROOT
from auditkeep.log.note import NoteError, parse_note
from auditkeep.log.proofs import ProofError, verify_consistency
from auditkeep.witness.store import LoggedState, WitnessDir

__all__ = ["MAX_PROOF_LINES", "MAX_REQUEST_BYTES", "Refusal", "Witness", "parse_request"]

MAX_PROOF_LINES = 63
# A checkpoint with its origin, extension lines and up to 100 signatures fits well within.
MAX_REQUEST_BYTES = 64 * 1024
_OLD_RE = re.compile(r"old (0|[1-9][0-9]{0,19})")
SIZE_CONTENT_TYPE = "text/x.tlog.size"


@dataclass
class Refusal(UserError):
    """Why a checkpoint is not cosigned, as the spec's HTTP status and body."""

    status: int
    message: str
    body: str | None = None  # the spec's exact body, when it fixes one (409 on a stale size)
    content_type: str = "text/plain; charset=utf-8"

    def __str__(self) -> str:
        return f"{self.status}: {self.message}"


def parse_request(body: bytes) -> tuple[int, list[bytes], str]:
    """(old size, consistency proof, checkpoint note) of an add-checkpoint body; 400 if bad."""
    if len(body) > MAX_REQUEST_BYTES:
        raise Refusal(413, f"request is larger than {MAX_REQUEST_BYTES} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Refusal(400, "request is not UTF-8") from None
    head, sep, note = text.partition("\n\n")
    if not sep:
        raise Refusal(400, "request has no blank line before the checkpoint")
    lines = head.split("\n")
    m = _OLD_RE.fullmatch(lines[0])
    if m is None:
        raise Refusal(400, "first line must be 'old <size>' (a decimal without leading zeros)")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise Refusal(400, f"more than {MAX_PROOF_LINES} consistency proof lines")
    proof = []
    for n, line in enumerate(lines[1:], start=1):
        try:
            h = base64.b64decode(line.encode("ascii"), validate=True)
        except (UnicodeEncodeError, binascii.Error):
            raise Refusal(400, f"proof line {n} is not base64") from None
        if len(h) != 32:
            raise Refusal(400, f"proof line {n} is not a 32-byte hash")
        proof.append(h)
    return int(m.group(1)), proof, note


class Witness:
    """Cosigns checkpoints of the logs in a witness directory; safe to call from threads."""

    def __init__(self, wdir: WitnessDir, clock: Callable[[], float] = time.time) -> None:
        self.wdir = wdir
        self.cosigner = wdir.cosigner()
        self._clock = clock
        self._lock = threading.Lock()
        self._state = wdir.state()
        self._logs = wdir.logs()
        self._logs_version = wdir.logs_version()

    def _reload_logs(self) -> None:
        # `witness add-log` may run while the witness serves: pick its change up.
        version = self.wdir.logs_version()
        if version != self._logs_version:
            self._logs = self.wdir.logs()
            self._logs_version = version

    def latest(self, origin: str) -> LoggedState | None:
        with self._lock:
            return self._state.get(origin)

    def add_checkpoint(self, body: bytes) -> str:
        """The cosignature lines for a request, or raise :class:`Refusal`."""
        old_size, proof, note = parse_request(body)
        try:
            text, _ = parse_note(note)
        except NoteError as exc:
            raise Refusal(400, f"checkpoint is not a signed note: {exc}") from None
        origin = text.split("\n", 1)[0]
        with self._lock:
            self._reload_logs()
            keys = self._logs.get(origin)
            if keys is None:
                raise Refusal(404, f"unknown log origin {origin!r}")
            try:
                cp = verify_checkpoint(note, keys, origin)
            except NoteError as exc:
                raise Refusal(403, f"checkpoint is not signed by a key trusted for this log: {exc}") from None
            except CheckpointError as exc:
                raise Refusal(400, f"malformed checkpoint: {exc}") from None
            if old_size > cp.size:
                raise Refusal(400, f"old size {old_size} is larger than the checkpoint size {cp.size}")
            current = self._state.get(origin)
            known_size = current.size if current else 0
            if old_size != known_size:
                raise Refusal(409, f"old size {old_size} is not the size last cosigned", f"{known_size}\n", SIZE_CONTENT_TYPE)
            old_root = current.root if current else EMPTY_ROOT
            if old_size == cp.size and current is not None and current.root != cp.root:
                self.wdir.record_refusal(origin, "fork: same size, different root", body)
                raise Refusal(409, f"fork: a different root for size {cp.size} was cosigned already")
            try:
                verify_consistency(old_size, cp.size, proof, old_root, cp.root)
            except ProofError as exc:
                self.wdir.record_refusal(origin, f"consistency proof: {exc}", body)
                raise Refusal(422, f"consistency proof does not verify: {exc}") from None
            if current is None or cp.size > current.size:
                new_state = dict(self._state)
                new_state[origin] = LoggedState(cp.size, cp.root, note)
                self.wdir.save_state(new_state)  # durable before any cosignature leaves
                self._state = new_state
            timestamp = int(self._clock())
            return self.cosigner.cosign(text, timestamp)
