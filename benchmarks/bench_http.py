"""HTTP ingest benchmark with the embedded baseline in the same run.

    python benchmarks/bench_http.py [--seconds 10] [--connections 4] [--profile realistic|lean]

1. Baseline: ``Ledger.submit`` of 1,000-event batches in this process, two batches in flight
   (what the server does with concurrent clients), durable, on a fresh data directory.
2. ``auditkeep serve`` in a subprocess on 127.0.0.1; a load generator in another process
   posts pre-encoded 1,000-event JSON batches over ``--connections`` keep-alive connections
   for ``--seconds``: events/s.
3. Latency: the generator paces 1,000-event batches at half that rate while a probe process
   sends 100-event batches one after another; p50/p95/p99 of the probe's requests.

Events come from ``benchmarks/events.py`` (realistic: ~500 bytes, personal fields sealed) or
a lean profile (actor, action, resource, outcome only).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).parent))
from events import make_event
from machine import cpu_seconds

KEY_RE = re.compile(r"ak_[a-z2-7]{12}_[A-Za-z0-9_-]{43}")


def batch(profile: str, n: int, start: int = 0) -> list[dict[str, Any]]:
    import random

    rng = random.Random(start)
    if profile == "lean":
        return [
            {"actor": {"id": f"user-{i % 2000}", "type": "user"}, "action": "db.query",
             "resource": {"type": "table", "id": f"t{i % 500}"}, "outcome": "success"}
            for i in range(start, start + n)
        ]
    return [make_event(rng, i) for i in range(start, start + n)]


def baseline(profile: str, seconds: float) -> tuple[float, float]:
    from auditkeep.ledger import Ledger

    d = Path(tempfile.mkdtemp(prefix="bench-http-base-"))
    try:
        with Ledger.open(d / "data") as lg:
            bodies = [batch(profile, 1000, k * 1000) for k in range(8)]
            lg.append(bodies[0], "bench")  # warm up
            n, k = 0, 0
            c0 = cpu_seconds(os.getpid())
            t0 = time.perf_counter()
            pending = [lg.submit(bodies[1], "bench")]
            while time.perf_counter() - t0 < seconds:
                k += 1
                pending.append(lg.submit(bodies[k % len(bodies)], "bench"))
                n += len(pending.pop(0).result())
            n += len(pending.pop(0).result())
            took = time.perf_counter() - t0
            return n / took, (cpu_seconds(os.getpid()) - c0) / n * 1e6
    finally:
        shutil.rmtree(d, ignore_errors=True)


# --- the load generator (runs in its own process) ---------------------------------------------


async def _sender(
    url: str, key: str, body: bytes, stop: float, pace: float | None, out: list[float], offset: float = 0.0
) -> int:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    sent = 0
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as c:
        next_at = time.perf_counter() + offset  # paced senders are spread evenly, not in bursts
        while time.perf_counter() < stop:
            if pace is not None:
                delay = next_at - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                next_at += pace
            t0 = time.perf_counter()
            r = await c.post("/v1/events", content=body)
            out.append(time.perf_counter() - t0)
            if r.status_code != 200:
                raise SystemExit(f"HTTP {r.status_code}: {r.text[:200]}")
            sent += 1
    return sent


async def _load(args: argparse.Namespace) -> dict[str, Any]:
    body = orjson.dumps(batch(args.profile, args.size, args.seed))
    stop = time.perf_counter() + args.seconds
    pace = None if not args.rate else args.connections * args.size / args.rate
    lat: list[float] = []
    t0 = time.perf_counter()
    spread = (pace or 0.0) / args.connections
    counts = await asyncio.gather(
        *[_sender(args.url, args.key, body, stop, pace, lat, i * spread) for i in range(args.connections)]
    )
    took = time.perf_counter() - t0
    return {"events": sum(counts) * args.size, "seconds": took, "latencies": lat}


def run_load(url: str, key: str, profile: str, seconds: float, connections: int, size: int,
             rate: float = 0.0, seed: int = 0) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, __file__, "--load", url, key, "--profile", profile, "--seconds", str(seconds),
         "--connections", str(connections), "--size", str(size), "--rate", str(rate), "--seed", str(seed)],
        stdout=subprocess.PIPE,
    )


def result(p: subprocess.Popen[bytes]) -> dict[str, Any]:
    out, _ = p.communicate()
    if p.returncode:
        raise SystemExit(f"load generator failed ({p.returncode})")
    data: dict[str, Any] = json.loads(out)
    return data


# --- the server ---------------------------------------------------------------------------------


def start_server(data: Path) -> tuple[subprocess.Popen[bytes], str, str, Path]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = data.parent / "server.log"
    env = {**os.environ, "AUDITKEEP_RATE_LIMIT": "0"}
    fh = open(log, "wb")  # noqa: SIM115 - the server writes to it until stopped
    proc = subprocess.Popen(
        [sys.executable, "-m", "auditkeep.cli.main", "serve", "--data", str(data), "--port", str(port),
         "--log-level", "warning"],
        stdout=fh, stderr=subprocess.STDOUT, env=env,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(url + "/healthz").status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.05)
    admin = KEY_RE.findall(log.read_text())[0]
    # the first-start key spans tenants and would have to name one: use a key of tenant "bench"
    r = httpx.post(url + "/v1/keys", json={"tenant": "bench", "scopes": "ingest,read"},
                   headers={"Authorization": f"Bearer {admin}"})
    key = str(r.json()["key"])
    return proc, url, key, log


def pct(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--profile", choices=["realistic", "lean"], default="realistic")
    ap.add_argument("--load", nargs=2, metavar=("URL", "KEY"))
    ap.add_argument("--size", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.load:
        args.url, args.key = args.load
        print(json.dumps(asyncio.run(_load(args))))
        return

    base, base_cpu = baseline(args.profile, args.seconds)
    tmp = Path(tempfile.mkdtemp(prefix="bench-http-"))
    proc, url, key, _ = start_server(tmp / "data")
    try:
        warm = run_load(url, key, args.profile, 2, args.connections, 1000)
        result(warm)
        c0 = cpu_seconds(proc.pid)
        full = result(run_load(url, key, args.profile, args.seconds, args.connections, 1000, seed=1))
        server_cpu = (cpu_seconds(proc.pid) - c0) / full["events"] * 1e6
        rate = full["events"] / full["seconds"]
        half = run_load(url, key, args.profile, args.seconds, args.connections, 1000, rate=rate / 2, seed=2)
        time.sleep(0.5)
        probe = result(run_load(url, key, args.profile, args.seconds - 1, 1, 100, seed=3))
        background = result(half)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        shutil.rmtree(tmp, ignore_errors=True)

    lat = [x * 1000 for x in probe["latencies"]]
    bg_rate = background["events"] / background["seconds"]
    rows = [
        ("machine", f"{platform.processor() or platform.machine()}, nproc={os.cpu_count()}, python {platform.python_version()}"),
        ("profile", args.profile),
        ("load average at the end", " / ".join(f"{x:.1f}" for x in os.getloadavg())),
        ("embedded Ledger.submit, 2 in flight", f"{base:,.0f} events/s, {base_cpu:.1f} CPU us/event (with its children)"),
        (f"HTTP ingest, 1,000/batch, {args.connections} connections", f"{rate:,.0f} events/s"),
        ("HTTP / embedded", f"{rate / base:.2f}"),
        ("server CPU (with its children) during the full-rate run", f"{server_cpu:.1f} us/event"),
        ("background load during latency probe", f"{bg_rate:,.0f} events/s (target {rate / 2:,.0f})"),
        ("100-event batch latency p50 / p95 / p99",
         f"{statistics.median(lat):.1f} / {pct(lat, 95):.1f} / {pct(lat, 99):.1f} ms ({len(lat)} requests)"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  value")
    print(f"{'-' * width}  {'-' * 40}")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
