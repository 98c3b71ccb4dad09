"""Committed-event-to-webhook-delivered latency of the alert runner under ingest load.

    python benchmarks/bench_alerts_latency.py [--rate 5000] [--seconds 20] [--mix mixed] [--storm]

In one process, as in ``auditkeep serve``: a producer thread submits batches to
``Ledger.submit`` (embedded SQLite, durability ``full``) at ``--rate`` events/s, and the
alert runner runs in its background thread with 100 match, 20 threshold and 50 Sigma rules
(those of ``bench_alerts.py``) plus one marker rule. A webhook receiver in another process
records when each alert arrives. The latency of an alert is its arrival time minus the
time the batch holding its triggering event was committed (the ``submit`` future resolved).

Marker events (``bench.marker``, ``--markers`` per second, each from its own actor) are what
the figure is measured on. The benchmark rules stay loaded and evaluate every event; by
default they carry a one-hour throttle per rule and group (as production rules do), so
after the first minutes they raise few alerts. ``--storm`` removes the throttle: every
match is stored, logged and delivered, which shows the cost of an alert storm.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import random
import sys
import tempfile
import threading
import time
from concurrent.futures import Future
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))
from machine import cpu_model  # noqa: E402

HOUR_NS = 3600 * 1_000_000_000


def receiver_main(port_out: Any, stop: Any) -> None:
    """The webhook receiver (another process, so it takes no time from the runner's)."""
    arrivals: list[tuple[str, str, int, float]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            now = time.time()
            a = json.loads(body)
            arrivals.append((a["id"], a["rule_id"], int(a["last_index"]), now))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:
            data = json.dumps(arrivals).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port_out.put(server.server_address[1])
    threading.Thread(target=server.serve_forever, daemon=True).start()
    stop.wait()
    server.shutdown()


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]




def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=int, default=5000, help="events per second submitted")
    ap.add_argument("--seconds", type=float, default=20.0, help="measured duration")
    ap.add_argument("--warmup", type=float, default=3.0, help="seconds of load before measuring")
    ap.add_argument("--markers", type=int, default=20, help="marker events per second")
    ap.add_argument("--batch", type=int, default=50, help="events per submit")
    ap.add_argument("--mix", choices=["app", "mixed"], default="mixed")
    ap.add_argument("--storm", action="store_true", help="no throttle on the benchmark rules")
    args = ap.parse_args()

    import bench_alerts as ba

    from auditkeep.alerts.runner import CURSOR
    from auditkeep.alerts.service import AlertService
    from auditkeep.alerts.state import ALERTS
    from auditkeep.config import load_settings
    from auditkeep.ledger import Ledger
    from auditkeep.model.timefmt import format_rfc3339

    rnd = random.Random(11)
    td = ba.testdata()
    rules = ba.native_rules(rnd) + ba.sigma_rules(td)
    assert len(rules) == 170
    mix = "mixed (60% app, 15% k8s, 15% CloudTrail, 10% auditd)" if args.mix == "mixed" else "app only"
    pool = ba.mix(mix, 50_000, ba.source_events(td), random.Random(3))
    from auditkeep.model.errors import ValidationError
    from auditkeep.model.validate import convert_event, validate_event

    def valid(e: dict[str, Any]) -> bool:
        try:
            validate_event(convert_event(e))
        except ValidationError:  # a few samples carry values the model refuses ("AWS Internal" as an IP)
            return False
        return True

    for e in pool:
        e.pop("id", None)
        e.pop("tenant", None)
    pool = [e for e in pool if valid(e)]

    ctx = multiprocessing.get_context("spawn")
    port_q, stop_rx = ctx.Queue(), ctx.Event()
    rx = ctx.Process(target=receiver_main, args=(port_q, stop_rx), daemon=True)
    rx.start()
    url = f"http://127.0.0.1:{port_q.get(timeout=30)}/hook"

    tmp = Path(tempfile.mkdtemp(prefix="auditkeep-bench-alerts-"))
    (tmp / "rules").mkdir()
    (tmp / "rules" / "marker.yml").write_text("id: bench-marker\nname: Marker\nmatch: {action: bench.marker}\n")
    settings = load_settings(env={}, overrides={"data": str(tmp / "data"), "rules_dir": str(tmp / "rules")})
    settings.alerts.notifiers = [{"type": "webhook", "name": "hook", "url": url, "secret": "bench"}]
    settings.alerts.default_notify = ["hook"]
    ledger = Ledger.open(tmp / "data")
    service = AlertService(ledger, settings, validate=True)
    runner = service.make_runner()
    # the benchmark's rules join the marker rule from the directory, for every tenant
    base = service.catalog.rules_for
    for r in rules:
        r.throttle_ns = 0 if args.storm else HOUR_NS
    service.catalog.rules_for = lambda tenant: [*base(tenant), *rules]  # type: ignore[method-assign]
    runner.start()
    tid = ledger.tenant_id("acme", create=True)

    def wait_caught_up(limit: float) -> float:
        t0 = time.time()
        while time.time() - t0 < limit and ledger.store.cursor(CURSOR, tid)[0] < ledger.head("acme").size - 100:
            time.sleep(0.2)
        return time.time() - t0

    prefill_alerts = 0
    prefill_seconds = 0.0
    if not args.storm:
        # Steady state: the event pool has been seen once, so the rules have fired for its
        # offenders and their throttles hold; new alerts come from markers and a trickle.
        stamp = format_rfc3339(time.time_ns())
        for k in range(0, len(pool), 1000):
            ledger.append([{**e, "time": stamp} for e in pool[k : k + 1000]], "acme")
        prefill_seconds = wait_caught_up(600)
        t0 = time.time()
        while runner.notifications.in_flight() and time.time() - t0 < 600:
            time.sleep(0.2)  # and its alerts delivered
        prefill_seconds += time.time() - t0
        prefill_alerts = ledger.store.doc_count(ALERTS)

    commits: list[tuple[float, float]] = []  # (submitted at, seconds until durable) of each batch
    commit_at: dict[int, float] = {}  # log index of a marker -> when its batch was committed
    submitted = 0
    stop = threading.Event()
    errors: list[BaseException] = []

    def producer() -> None:
        nonlocal submitted
        period = args.batch / args.rate
        marker_every = max(1, args.rate // max(1, args.markers))
        i = 0
        next_t = time.perf_counter()
        while not stop.is_set():
            now_ns = time.time_ns()
            stamp = format_rfc3339(now_ns)
            batch: list[dict[str, Any]] = []
            marks: list[int] = []
            for _ in range(args.batch):
                if i % marker_every == 0:
                    marks.append(len(batch))
                    batch.append({"actor": {"id": f"m{i}"}, "action": "bench.marker", "time": stamp})
                else:
                    batch.append({**pool[i % len(pool)], "time": stamp})
                i += 1
            t_submit = time.time()
            fut = ledger.submit(batch, "acme")
            submitted += len(batch)

            def done(f: Future[Any], marks: list[int] = marks, t_submit: float = t_submit) -> None:
                t = time.time()
                commits.append((t_submit, t - t_submit))
                try:
                    receipts = f.result()
                except BaseException as exc:
                    errors.append(exc)
                    return
                for m in marks:
                    commit_at[receipts[m].index] = t

            fut.add_done_callback(done)
            next_t += period
            delay = next_t - time.perf_counter()
            if delay > 0:
                time.sleep(delay)

    thread = threading.Thread(target=producer, daemon=True)
    thread.start()
    time.sleep(args.warmup)
    t_start, n_start = time.time(), submitted
    time.sleep(args.seconds)
    t_end, n_end = time.time(), submitted
    stop.set()
    thread.join()
    wait_caught_up(120)
    time.sleep(2.0)
    alerts_stored = ledger.store.doc_count(ALERTS) - prefill_alerts
    service_status = runner.status()
    runner.stop()

    import httpx

    arrivals = httpx.get(url, timeout=30).json()
    stop_rx.set()
    rx.join(10)
    ledger.close()
    if errors:
        raise SystemExit(f"ingest failed: {errors[0]!r}")

    measured: list[float] = []
    for _aid, rule_id, last_index, at in arrivals:
        if rule_id != "bench-marker":
            continue
        t_commit = commit_at.get(last_index)
        if t_commit is not None and t_start <= t_commit <= t_end:
            measured.append(at - t_commit)
    rate = (n_end - n_start) / (t_end - t_start)
    commit_s = [d for at, d in commits if t_start <= at <= t_end]
    other = sum(1 for a in arrivals if a[1] != "bench-marker")
    rows = [
        ("ingest (Ledger.submit, in-process)", f"{rate:,.0f} events/s"),
        ("ingest commit (submit -> durable) p50 / p95", f"{percentile(commit_s, 50) * 1000:,.0f} / {percentile(commit_s, 95) * 1000:,.0f} ms"),
        ("events evaluated by the runner", f"{service_status['events']:,}"),
        ("rules loaded", f"{len(rules) + 1} (100 match, 20 threshold, 50 Sigma, 1 marker)"),
        ("benchmark rules' throttle", "none (--storm)" if args.storm else "1h per rule and group"),
        ("before the load: pool events, alerts, catch-up", f"{len(pool):,}, {prefill_alerts:,}, {prefill_seconds:.1f}s"
         if not args.storm else "none (--storm)"),
        ("alerts stored from the load's events (all rules)", f"{alerts_stored:,} ({alerts_stored / (t_end - t_start):,.0f} per second of load)"),
        ("alerts delivered in all", f"{len(arrivals):,} ({other:,} not markers)"),
        ("marker alerts measured", f"{len(measured):,}"),
        ("latency p50", f"{percentile(measured, 50) * 1000:,.0f} ms"),
        ("latency p95", f"{percentile(measured, 95) * 1000:,.0f} ms"),
        ("latency p99", f"{percentile(measured, 99) * 1000:,.0f} ms"),
        ("latency max", f"{max(measured, default=float('nan')) * 1000:,.0f} ms"),
    ]
    width = max(len(k) for k, _ in rows)
    print(f"\nalert latency, committed event -> webhook delivered ({args.mix} events, {args.seconds:g}s measured)")
    print(f"{'measure':<{width}}  value")
    print(f"{'-' * width}  {'-' * 30}")
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    print(f"\nmachine: {multiprocessing.cpu_count()} CPUs, {cpu_model()}, Python {platform.python_version()}, "
          f"{time.strftime('%Y-%m-%d')}")


if __name__ == "__main__":
    main()
