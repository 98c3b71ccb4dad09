"""One client process of the multi-node tests: sends batches to the nodes over HTTP.

    python multinode_client.py OUT.jsonl --nodes URL[,URL] --token KEY --tenants a,b
        --events N [--batch 500] [--seed S] [--pace SECONDS]

Events carry ids chosen here, so a batch that got no answer (a node killed, the database
restarting) is sent again, to any node, and is idempotent. Batches rotate over tenants and
nodes. Every receipt received is written to OUT.jsonl; OUT.jsonl.summary gets the count of
each answer. Exits 1 on an answer other than 200 or 503 (with Retry-After).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import uuid
from pathlib import Path

import httpx


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("out", type=Path)
    p.add_argument("--nodes", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--tenants", required=True)
    p.add_argument("--events", type=int, required=True, help="per tenant")
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pace", type=float, default=0.0, help="pause between batches")
    p.add_argument("--deadline", type=float, default=600.0, help="seconds a batch may keep failing")
    a = p.parse_args()
    nodes = a.nodes.split(",")
    tenants = a.tenants.split(",")
    rng = random.Random(a.seed)
    summary: dict[str, int] = {}
    sent = {t: 0 for t in tenants}
    turn = a.seed
    failed = False
    with (
        httpx.Client(headers={"Authorization": f"Bearer {a.token}"}, timeout=60) as client,
        a.out.open("w") as out,
    ):
        while any(sent[t] < a.events for t in tenants):
            tenant = tenants[turn % len(tenants)]
            if sent[tenant] >= a.events:
                turn += 1
                continue
            n = min(a.batch, a.events - sent[tenant])
            batch = [
                {
                    "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    "actor": {"id": f"user-{rng.randrange(50)}", "type": "user"},
                    "action": rng.choice(["doc.read", "doc.write", "user.login"]),
                    "resource": {"type": "doc", "id": f"d{rng.randrange(1000)}"},
                    "outcome": "success",
                    "metadata": {"client": a.seed, "seq": sent[tenant] + i},
                }
                for i in range(n)
            ]
            body = json.dumps(batch).encode()
            started = time.monotonic()
            attempt = 0
            while True:
                node = nodes[(turn + attempt) % len(nodes)]
                attempt += 1
                try:
                    r = client.post(
                        f"{node}/v1/events",
                        params={"tenant": tenant},
                        content=body,
                        headers={"Content-Type": "application/json"},
                    )
                except httpx.HTTPError as exc:
                    kind = "connection error"
                    summary[kind] = summary.get(kind, 0) + 1
                    if time.monotonic() - started > a.deadline:
                        print(f"giving up on a batch after {attempt} tries: {exc}", file=sys.stderr)
                        return 1
                    time.sleep(0.1)
                    continue
                key = str(r.status_code)
                summary[key] = summary.get(key, 0) + 1
                if r.status_code == 200:
                    for rc in r.json()["receipts"]:
                        out.write(
                            json.dumps(
                                {
                                    "tenant": tenant,
                                    "id": rc["id"],
                                    "index": rc["index"],
                                    "leaf_hash": rc["leaf_hash"],
                                }
                            )
                            + "\n"
                        )
                    break
                if r.status_code == 503 and "retry-after" in r.headers:
                    if time.monotonic() - started > a.deadline:
                        print("giving up: 503 past the deadline", file=sys.stderr)
                        return 1
                    time.sleep(min(float(r.headers["retry-after"]), 1.0) * rng.random())
                    continue
                print(f"unexpected answer {r.status_code}: {r.text[:500]}", file=sys.stderr)
                failed = True
                break
            out.flush()
            sent[tenant] += n
            turn += 1
            if a.pace:
                time.sleep(a.pace)
    Path(str(a.out) + ".summary").write_text(json.dumps(summary))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
