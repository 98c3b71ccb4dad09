"""CPU time of the PostgreSQL gateway's own work per transaction, without sockets: recorded
pgbench-like message streams fed through a session's two Pipes in one process, writes
going to a transport that keeps nothing. What is left is what the gateway's Python costs
(message boundaries, the statement's bookkeeping, handing it to the sink and encoding it for
the ledger child) — the part a change to the relay can move, measured without the kernel's
socket costs or the scheduler, which make the end-to-end figures swing on a loaded machine.

    python benchmarks/bench_gateway_relay_cpu.py [--tx 20000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import threading
import time
from typing import Any

from auditkeep.gateway import sink_process as sp
from auditkeep.gateway.postgres import wire
from auditkeep.gateway.postgres.pipe import Pipe
from auditkeep.gateway.postgres.server import Gateway, GatewayConfig
from auditkeep.gateway.postgres.session import CLIENT_READ, SERVER_READ, Session
from auditkeep.gateway.sink_process import ProcessSink


class _Transport:
    """Takes writes and drops them (the kernel's part is not measured here)."""

    def __init__(self) -> None:
        self.bytes = 0

    def write(self, data: bytes) -> None:
        self.bytes += len(data)

    def writelines(self, parts: Any) -> None:
        for p in parts:
            self.bytes += len(p)

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else default


class _Sink(ProcessSink):
    """The parent's half of :class:`ProcessSink` (its own ``emit_query`` and buffer), with no
    child: the batch its writer thread would encode for the pipe is encoded here, by the
    same function, every ``batch`` items."""

    def __init__(self, batch: int = 200) -> None:  # no child process, no writer thread
        self._buf = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self.max_buf, self.max_buf_seen, self._warned = 1 << 30, 0, False
        self.batch = batch
        self.events = 0

    def emit(self, event: Any) -> None:
        self.events += 1

    def pending(self) -> int:
        return len(self._buf)

    def encode(self) -> None:
        with self._lock:
            items, self._buf = self._buf, []
        if items:
            _frame, n = sp._encode_batch(items)
            self.events += n


def _bind(stmt: str, params: list[bytes]) -> bytes:
    body = b"\x00" + stmt.encode() + b"\x00" + b"\x00\x00" + len(params).to_bytes(2, "big")
    for p in params:
        body += len(p).to_bytes(4, "big") + p
    return wire.message(b"B", body + b"\x00\x00")


def _cc(tag: str) -> bytes:
    return wire.message(b"C", tag.encode() + b"\x00")


Z_IDLE, Z_TXN = wire.message(b"Z", b"I"), wire.message(b"Z", b"T")
ROW = wire.data_row([b"-4321"])
ROWDESC = wire.message(b"T", b"\x00\x01abalance\x00" + b"\x00" * 6 + b"\x00\x17\x00\x04\xff\xff\xff\xff\x00\x00")
SELECT = "SELECT abalance FROM pgbench_accounts WHERE aid = $1;"
TPCB = [
    ("BEGIN;", "BEGIN", []),
    ("UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2;", "UPDATE 1", [b"-1234", b"567890"]),
    ("SELECT abalance FROM pgbench_accounts WHERE aid = $1;", "SELECT 1", [b"567890"]),
    ("UPDATE pgbench_tellers SET tbalance = tbalance + $1 WHERE tid = $2;", "UPDATE 1", [b"-1234", b"42"]),
    ("UPDATE pgbench_branches SET bbalance = bbalance + $1 WHERE bid = $2;", "UPDATE 1", [b"-1234", b"7"]),
    ("INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP);",
     "INSERT 0 1", [b"42", b"7", b"567890", b"-1234"]),
    ("END;", "COMMIT", []),
]  # fmt: skip


def _literal(sql: str, params: list[bytes]) -> str:
    for i, p in reversed(list(enumerate(params, 1))):
        sql = sql.replace(f"${i}", p.decode())
    return sql


def workloads() -> dict[str, tuple[list[bytes], list[tuple[bytes, bytes]]]]:
    """name -> (set-up messages from the client, [(client chunk, server chunk)] per transaction):
    each round trip of a transaction as pgbench sends it and the server answers it."""
    out: dict[str, tuple[list[bytes], list[tuple[bytes, bytes]]]] = {}
    prep = wire.parse_msg(SELECT, "P0_1") + wire.SYNC
    out["select-only prepared"] = ([prep], [(_bind("P0_1", [b"12345"]) + wire.execute_msg() + wire.SYNC,
                                             wire.message(b"2") + ROW + _cc("SELECT 1") + Z_IDLE)])  # fmt: skip
    out["select-only simple"] = ([], [(wire.query(_literal(SELECT, [b"12345"])), ROWDESC + ROW + _cc("SELECT 1") + Z_IDLE)])
    setup = [wire.parse_msg(sql, f"P0_{i}") + wire.SYNC for i, (sql, _, _) in enumerate(TPCB)]
    trips = []
    for i, (_sql, tag, params) in enumerate(TPCB):
        row = ROW if tag == "SELECT 1" else b""
        z = Z_IDLE if tag == "COMMIT" else Z_TXN
        trips.append((_bind(f"P0_{i}", params) + wire.execute_msg() + wire.SYNC, wire.message(b"2") + row + _cc(tag) + z))
    out["TPC-B-like prepared"] = (setup, trips)
    out["TPC-B-like simple"] = ([], [(wire.query(_literal(sql, params)), (ROWDESC + ROW if tag == "SELECT 1" else b"") + _cc(tag)
                                      + (Z_IDLE if tag == "COMMIT" else Z_TXN)) for sql, tag, params in TPCB])  # fmt: skip
    return out


def measure(setup: list[bytes], trips: list[tuple[bytes, bytes]], tx: int) -> tuple[float, int]:
    """Process CPU µs per transaction through one session's Pipes; the events recorded."""
    sink = _Sink()
    gw = Gateway(GatewayConfig(("127.0.0.1", 0), ("127.0.0.1", 5432), "bench"), sink)  # type: ignore[arg-type]
    c_tr, s_tr = _Transport(), _Transport()
    sess = Session(gw, None, c_tr)  # type: ignore[arg-type]
    up = Pipe(sess, c_tr, s_tr, CLIENT_READ, sess._on_client, sess._client_passthrough, "client")  # type: ignore[arg-type]
    down = Pipe(sess, s_tr, c_tr, SERVER_READ, sess._on_server, sess._server_passthrough, "server",  # type: ignore[arg-type]
                sess._server_reads)  # fmt: skip
    for msg in setup:
        up.data_received(msg)
        down.data_received(wire.message(b"1") + Z_IDLE)
    t0 = time.process_time()
    for i in range(tx):
        for c, s in trips:
            up.data_received(c)
            down.data_received(s)
        if i % 100 == 99:
            sink.encode()
    sink.encode()
    used = time.process_time() - t0
    return used * 1e6 / tx, sink.events


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tx", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    loop = asyncio.new_event_loop()  # Pipes may create tasks (a held statement); none here
    asyncio.set_event_loop(loop)
    print(f"nproc {os.cpu_count()}, load {os.getloadavg()[0]:.2f} at start; {a.tx} transactions a round, {a.rounds} rounds")
    print("| workload | gateway CPU µs/tx (median) | min | max | events/tx |")
    print("|---|---:|---:|---:|---:|")
    for name, (setup, trips) in workloads().items():
        got = [measure(setup, trips, a.tx) for _ in range(a.rounds)]
        us = [g[0] for g in got]
        print(f"| {name} | {statistics.median(us):.2f} | {min(us):.2f} | {max(us):.2f} | {got[0][1] / a.tx:.2f} |", flush=True)
    print(f"\nload {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
