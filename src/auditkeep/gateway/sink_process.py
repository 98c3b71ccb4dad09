"""The embedded ledger's sink in a child process: :class:`ProcessSink`.

A gateway forwards traffic on one event loop; the ledger's work per event (policy,
redaction, sealing, hashing, the SQLite or PostgreSQL commit) in the same interpreter holds
its lock while clients wait. Here that work runs in a child process with a
:class:`~auditkeep.gateway.sink.LedgerSink` of its own over the same store; the gateway
only encodes each event (msgspec JSON) and a thread of the gateway writes them to the child
through a pipe in batches.

The gateway's loop does no more than append to a list: a PostgreSQL statement goes as it is
(:meth:`ProcessSink.emit_query`: its session, its run and duration; the child builds the
``db.query`` event and decodes its Bind parameters), other events as built. A thread of the
gateway encodes each batch (MessagePack) and writes it.

The child is ``python -m auditkeep.gateway.sink_process`` (a fresh interpreter: the gateway
has threads, so no fork); its standard input and output are the two pipes. Frames on them
(a ``multiprocessing`` connection over each, one ``send_bytes`` each):

- parent → child: first the child's arguments (JSON: settings, tenant, source, spool
  directory, submitter); then ``E`` + a batch (MessagePack: events and statements, in the
  order they were emitted); ``F`` + token (flush: everything sent before
  it durable); ``X`` (close: flush, spool the rest, exit).
- child → parent: ``R`` (ready) or ``R`` + error text; ``S`` + ``received pending`` (its
  counts, when they change); ``A`` + ``token ok`` (a flush done).

Memory: the child holds at most ``gateway_max_queue`` events in its queue, the excess going
to the spool (see :class:`~auditkeep.gateway.sink.LedgerSink`). The parent's list is
emptied by the writer thread every few milliseconds; it grows only while a write to the
pipe waits, i.e. while the child does not read. The child's reading thread never waits for
the store — it decodes and appends, and past the bound writes one spool record per 500
events — so the list stays at what arrives during one such write. It is not spilled to
disk here (the spool is the child's; two writers would break the order); if the child
stops reading altogether, a warning is logged once when the list passes the same bound.

If the child dies, the parent logs it and starts another; events the dead child had taken
and not yet made durable or spooled are lost, as the in-process sink's queue is lost when
the gateway itself dies.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import msgspec

from auditkeep.errors import StoreError
from auditkeep.gateway.postgres.events import Run, SessionInfo, query_event
from auditkeep.model.event import Event, Submitter

log = logging.getLogger("auditkeep.gateway")


class LedgerProcessError(StoreError):
    """The gateway's ledger process did not start (its first answer, or its silence, says why)."""


class _EventItem(msgspec.Struct, tag=0, array_like=True):
    event: Event


class _QueryItem(msgspec.Struct, tag=1, array_like=True):
    info: SessionInfo
    run: Run
    duration: float


_encode = msgspec.msgpack.Encoder()


def _encode_batch(items: list[_EventItem | _QueryItem]) -> tuple[bytes, int]:
    """The ``E`` frame of ``items`` and how many it holds."""
    try:
        return b"E" + _encode.encode(items), len(items)
    except (TypeError, ValueError, OverflowError):  # a bug of the gateway: keep the others
        good = []
        for item in items:
            try:
                _encode.encode(item)
                good.append(item)
            except (TypeError, ValueError, OverflowError) as exc:
                log.error("gateway event not recorded: %s", exc)
        return b"E" + _encode.encode(good), len(good)
BATCH_ITEMS = 2000  # a batch is written to the child when it holds this many
SEND_INTERVAL = 0.005  # seconds events wait at most before they are written to the child
START_TIMEOUT = 120.0


class ProcessSink:
    """An :class:`~auditkeep.gateway.sink.EventSink` whose ledger work runs in a child process
    (see the module docstring). ``settings`` (:class:`auditkeep.config.Settings`) say which
    store the child opens."""

    def __init__(self, settings: Any, tenant: str, source: str, *, spool_dir: str | Path | None = None,
                 submitter: Submitter | None = None) -> None:  # fmt: skip
        self._args = msgspec.json.encode({
            "settings": msgspec.to_builtins(settings), "tenant": tenant, "source": source,
            "spool": str(spool_dir) if spool_dir is not None else None,
            "submitter": msgspec.to_builtins(submitter) if submitter is not None else None,
        })  # fmt: skip
        self._buf: list[_EventItem | _QueryItem] = []
        self.max_buf = int(getattr(settings, "gateway_max_queue", 50_000))
        self.max_buf_seen = 0  # the longest the list has been (tests, diagnosis)
        self._warned = False
        self._lock = threading.Lock()  # _buf
        self._send_lock = threading.Lock()  # the pipe, the counters below
        self._wake = threading.Event()
        self._cv = threading.Condition()  # status and flush answers from the child
        self._sent = 0  # events written to the current child
        self._received = 0  # of those, what the child last said it took
        self._child_pending = 0
        self._acks: dict[int, bool] = {}
        self._token = 0
        self._stop = False
        self.restarts = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None  # to the child
        self._from: Connection | None = None  # from the child
        self._start_child()
        self._writer = threading.Thread(target=self._write_loop, name=f"auditkeep-{source}-sink-pipe", daemon=True)
        self._writer.start()

    # -- the child -----------------------------------------------------------------------

    def _start_child(self) -> None:
        proc = subprocess.Popen([sys.executable, "-m", "auditkeep.gateway.sink_process"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, start_new_session=True)  # fmt: skip
        assert proc.stdin is not None and proc.stdout is not None
        # Connections own descriptors of their own; the Popen's file objects are closed.
        conn = Connection(os.dup(proc.stdin.fileno()), readable=False)
        back = Connection(os.dup(proc.stdout.fileno()), writable=False)
        proc.stdin.close()
        proc.stdout.close()
        try:
            conn.send_bytes(self._args)
            ready = back.poll(START_TIMEOUT)
            first = back.recv_bytes() if ready else b""
        except (EOFError, OSError):
            first = b"Rit ended at start"
        if first != b"R":
            proc.kill()
            proc.wait()
            conn.close()
            back.close()
            raise LedgerProcessError(f"the gateway's ledger process: {first[1:].decode(errors='replace') or 'no answer'}")
        self._proc, self._conn, self._from = proc, conn, back
        self._sent = self._received = self._child_pending = 0
        threading.Thread(target=self._read_loop, args=(back,), name="auditkeep-gateway-sink-status", daemon=True).start()

    def _read_loop(self, conn: Connection) -> None:
        while True:
            try:
                msg = conn.recv_bytes()
            except (EOFError, OSError):
                with self._cv:
                    self._cv.notify_all()
                return
            kind, rest = msg[:1], msg[1:].split()
            with self._cv:
                if kind == b"S":
                    self._received, self._child_pending = int(rest[0]), int(rest[1])
                elif kind == b"A":
                    self._acks[int(rest[0])] = rest[1] == b"1"
                self._cv.notify_all()

    def _send(self, frame: bytes) -> None:
        """Write one frame to the child; a dead child is replaced first (then ``frame`` goes
        to the new one)."""
        while True:
            conn = self._conn
            try:
                if conn is None or (self._proc is not None and self._proc.poll() is not None):
                    raise BrokenPipeError
                conn.send_bytes(frame)
                return
            except (OSError, ValueError):
                if self._stop and frame[:1] == b"X":
                    return
                log.error("the gateway's ledger process ended (exit code %s); starting another",
                          self._proc.poll() if self._proc is not None else None)  # fmt: skip
                self.restarts += 1
                for c in (conn, self._from):
                    if c is not None:
                        c.close()
                try:
                    self._start_child()
                except LedgerProcessError as exc:
                    log.error("%s; retrying", exc)
                    time.sleep(1)

    def _write_loop(self) -> None:
        while True:
            self._wake.wait(SEND_INTERVAL)
            self._wake.clear()
            # Taken from the buffer under the send lock, as flush() does: a flush between
            # the take and the send would otherwise send newer events ahead of these.
            with self._send_lock:
                with self._lock:
                    items, self._buf = self._buf, []
                if items:
                    frame, n = _encode_batch(items)
                    self._send(frame)
                    self._sent += n
            if self._stop and not self._buf:
                return

    # -- EventSink -----------------------------------------------------------------------

    def emit(self, event: Event) -> None:
        self._add(_EventItem(event))

    def emit_query(self, info: SessionInfo, run: Run, duration: float) -> None:
        """A statement of a PostgreSQL session: the child builds its ``db.query`` event."""
        self._add(_QueryItem(info, run, duration))

    def _add(self, item: _EventItem | _QueryItem) -> None:
        with self._lock:
            self._buf.append(item)
            n = len(self._buf)
            if n > self.max_buf_seen:
                self.max_buf_seen = n
        if n >= BATCH_ITEMS:
            self._wake.set()
            if n > self.max_buf and not self._warned:
                self._warned = True
                log.warning("the gateway's ledger process is not reading its events: %d wait in memory", n)

    def pending(self) -> int:
        with self._cv:
            in_child = self._sent - self._received + self._child_pending
        return len(self._buf) + in_child

    def flush(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._send_lock:  # what is buffered goes first, then the flush request
            with self._lock:
                items, self._buf = self._buf, []
            if items:
                frame, n = _encode_batch(items)
                self._send(frame)
                self._sent += n
            self._token += 1
            token = self._token
            self._send(f"F{token} {timeout if timeout is not None else -1}".encode())
        with self._cv:
            while token not in self._acks:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                if self._proc is not None and self._proc.poll() is not None:
                    return False
                self._cv.wait(0.1 if left is None else min(0.1, left))
            return self._acks.pop(token)

    def close(self, timeout: float = 5.0) -> None:
        """Flush, then let the child deliver (or spool) what it holds and end. The child is
        waited for however long that takes — never killed with events in hand."""
        self.flush(timeout)
        self._stop = True
        self._wake.set()
        self._writer.join(timeout)
        with self._send_lock:
            self._send(b"X")
        proc = self._proc
        while proc is not None:
            try:
                proc.wait(30)
                break
            except subprocess.TimeoutExpired:
                log.warning("waiting for the gateway's ledger process to commit or spool %d events", self.pending())
        for c in (self._conn, self._from):
            if c is not None:
                c.close()


def _child_main(conn: Connection, back: Connection) -> None:
    """The child: a LedgerSink fed from the pipe; it ends on ``X`` or when the parent is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when it ends
    from auditkeep.config import Settings, open_ledger
    from auditkeep.gateway.sink import LedgerSink

    decode = msgspec.msgpack.Decoder(list[_EventItem | _QueryItem]).decode
    try:
        args = msgspec.json.decode(conn.recv_bytes())
        settings = msgspec.convert(args["settings"], Settings)
        lg = open_ledger(settings, create=True, background=False)
        if args["submitter"] is not None:
            lg.submitter = msgspec.convert(args["submitter"], Submitter)
        sink = LedgerSink(lg, args["tenant"], args["source"], spool_dir=args["spool"],
                          max_queue=settings.gateway_max_queue)  # fmt: skip
    except Exception as exc:
        back.send_bytes(b"R" + f"{type(exc).__name__}: {exc}".encode())
        return
    send_lock = threading.Lock()

    def send(frame: bytes) -> None:
        with send_lock:
            back.send_bytes(frame)

    received = 0
    done = threading.Event()

    def report() -> None:  # counts for the parent's pending(), when they change
        last = (-1, -1)
        while not done.wait(0.02):
            now = (received, sink.pending())
            if now != last:
                last = now
                try:
                    send(f"S{now[0]} {now[1]}".encode())
                except OSError:
                    return

    def flush(token: str, timeout: float) -> None:
        ok = sink.flush(None if timeout < 0 else timeout)
        with contextlib.suppress(OSError):
            send(f"S{received} {sink.pending()}".encode())
            send(f"A{token} {1 if ok else 0}".encode())

    send(b"R")
    reporter = threading.Thread(target=report, daemon=True)
    reporter.start()
    try:
        while True:
            try:
                msg = conn.recv_bytes()
            except (EOFError, OSError):
                break  # the parent is gone: deliver or spool what we have, then end
            kind = msg[:1]
            if kind == b"E":
                try:
                    items = decode(msg[1:])
                except msgspec.DecodeError as exc:  # pragma: no cover - both ends are this module
                    log.error("gateway events not recorded: %s", exc)
                    items = []
                for item in items:
                    if isinstance(item, _QueryItem):
                        try:
                            sink.emit(query_event(item.info, item.run, item.duration))
                        except Exception as exc:  # a bug of the gateway: the other events go on
                            log.error("gateway event not recorded: %s", exc)
                    else:
                        sink.emit(item.event)
                received += len(items)
            elif kind == b"F":
                token, timeout = msg[1:].split()
                threading.Thread(target=flush, args=(token.decode(), float(timeout)), daemon=True).start()
            elif kind == b"X":
                break
    finally:
        done.set()
        # Deliver all that is held while the ledger makes progress (a backlog after a burst
        # can take a while); when it makes none (the store is down), the rest is spooled.
        left = sink.pending()
        while left and not sink.flush(5):
            now = sink.pending()
            if now >= left:
                break
            left = now
        sink.close()
        lg.close()
        with contextlib.suppress(OSError):
            send(f"S{received} {sink.pending()}".encode())


__all__ = ["ProcessSink"]

if __name__ == "__main__":
    # stdout carries frames: anything else the child prints goes to stderr
    _conn, _back = Connection(os.dup(0), writable=False), Connection(os.dup(1), readable=False)
    os.dup2(2, 1)
    _child_main(_conn, _back)
