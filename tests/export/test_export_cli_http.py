"""``auditkeep export`` on a real data directory, and ``GET /v1/export`` from a real server."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from http_server_support import Server, event

from auditkeep.export.formats import CSV_COLUMNS
from auditkeep.ledger.ledger import Ledger
from server_harness import run_cli

N = 4500  # more than two pages


def _cli(*args: str, cwd: Path, process: bool = True) -> subprocess.CompletedProcess[bytes]:
    """``auditkeep ARGS``: a real process, or (``process=False``) its main() in this process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDITKEEP_")}
    if not process:
        return run_cli(args, env=env, cwd=cwd)
    return subprocess.run([sys.executable, "-m", "auditkeep.cli.main", *args], cwd=cwd, env=env, capture_output=True, timeout=300)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("export") / "data"
    with Ledger.open(d) as lg:
        batch = [
            {"actor": {"id": f"user{i % 7}", "ip": "10.0.0.1"}, "action": "user.login" if i % 3 else "doc.delete",
             "outcome": "failure" if i % 5 == 0 else "success", "time": f"2026-01-01T00:{i // 600:02d}:{i // 10 % 60:02d}.{i % 10}Z",
             "metadata": {"n": i, "note": "a=b|c\\d"}}
            for i in range(N)
        ]
        lg.append(batch, "acme")
        lg.append([{"actor": {"id": "x"}, "action": "other.tenant"}], "other")
    return d


def test_jsonl_export_is_the_whole_log_in_order(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "all.jsonl"
    r = _cli("export", "--data", str(data), "--tenant", "acme", "--out", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = out.read_bytes().splitlines()
    assert [json.loads(x)["index"] for x in lines] == list(range(N))
    first = json.loads(lines[0])
    assert first["tenant"] == "acme" and first["event"]["metadata"] == {"n": 0, "note": "a=b|c\\d"}
    assert len(first["leaf_hash"]) == 64
    assert not (tmp_path / "all.jsonl.part").exists() and b"4500 event(s)" in r.stderr


def test_filtered_export_in_every_format(data: Path, tmp_path: Path) -> None:
    want = [i for i in range(N) if i % 3 == 0 and i % 5 == 0]  # doc.delete and failure
    got = {}
    for fmt in ("jsonl", "csv", "ocsf", "cef"):
        r = _cli("export", "--data", str(data), "-t", "acme", "--format", fmt, "--action", "doc.*", "--outcome", "failure",
                 cwd=tmp_path, process=fmt == "jsonl")  # fmt: skip
        assert r.returncode == 0, r.stderr
        got[fmt] = r.stdout.decode()
    assert sorted(json.loads(x)["index"] for x in got["jsonl"].splitlines()) == want
    rows = list(csv.reader(io.StringIO(got["csv"])))
    assert tuple(rows[0]) == CSV_COLUMNS and sorted(int(r[0]) for r in rows[1:]) == want
    ocsf = [json.loads(x) for x in got["ocsf"].splitlines()]
    assert len(ocsf) == len(want) and {(o["class_uid"], o["activity_id"], o["status_id"]) for o in ocsf} == {(6003, 4, 2)}
    cef = got["cef"].splitlines()
    assert len(cef) == len(want) and all(x.startswith("CEF:0|auditkeep|auditkeep|") and "note\\\\=" not in x for x in cef)
    # the metadata's JSON (where the backslash is already doubled) with '=' and '\' escaped
    assert all("a\\=b|c\\\\\\\\d" in x for x in cef)


def test_bad_input_is_one_line_exit_2(data: Path, tmp_path: Path) -> None:
    for args in (("--format", "xml"), ("--since", "yesterday-ish"), ("--meta", "novalue")):
        r = _cli("export", "--data", str(data), *args, cwd=tmp_path, process=args[0] == "--format")
        assert r.returncode == 2 and b"Traceback" not in r.stderr and r.stderr.count(b"\n") <= 2, r.stderr
    r = _cli("export", "--data", str(data), "-t", "nobody", cwd=tmp_path, process=False)
    assert r.returncode == 0 and r.stdout == b""


def test_http_export_streams_is_scoped_and_audited(tmp_path: Path) -> None:
    srv = Server(tmp_path / "srv")
    try:
        key = srv.key("web", "ingest,read")
        other = srv.key("else", "ingest,read")
        ingest_only = srv.key("web", "ingest")
        with srv.client(key) as c:
            for start in range(0, 2500, 500):
                assert c.post("/v1/events", json=[event(i) for i in range(start, start + 500)]).status_code == 200
            with c.stream("GET", "/v1/export", params={"format": "jsonl"}) as r:
                assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
                assert "attachment" in r.headers["content-disposition"]
                lines = [json.loads(x) for x in r.iter_lines() if x]
            # the whole log in order: the events, and what the server recorded there (the keys
            # made for this tenant, this export's own read)
            assert [x["index"] for x in lines] == list(range(len(lines)))
            mine = [x["event"]["actor"]["id"] for x in lines if x["event"]["action"] == "doc.read"]
            assert mine == [f"user{i}" for i in range(2500)]
            assert all(x["event"]["action"].startswith("auditkeep.") for x in lines if x["event"]["action"] != "doc.read")
            r = c.get("/v1/export", params={"format": "ocsf", "actor": "user7"})
            (only,) = [json.loads(x) for x in r.text.splitlines()]
            assert only["actor"]["user"]["uid"] == "user7" and only["unmapped"]["auditkeep"]["index"] == next(
                x["index"] for x in lines if x["event"]["actor"]["id"] == "user7"
            )
            assert c.get("/v1/export", params={"format": "xml"}).status_code == 422
            assert c.get("/v1/export", params={"since": "not-a-time"}).status_code == 422
            assert c.get("/v1/export", params={"tenant": "else"}).status_code == 403
        with srv.client(other) as c:
            theirs = [json.loads(x) for x in c.get("/v1/export").text.splitlines()]
            assert theirs and {x["tenant"] for x in theirs} == {"else"}  # its own tenant: nothing of web's
            assert all(x["event"]["action"] != "doc.read" for x in theirs)
        with srv.client(ingest_only) as c:
            assert c.get("/v1/export").status_code == 403
        with srv.client() as c:
            assert c.get("/v1/export").status_code == 401
        deadline = time.monotonic() + 10
        with srv.client(srv.admin) as c:
            while True:
                evs = c.get("/v1/events", params={"tenant": "web", "action": "auditkeep.export"}).json()["events"]
                if len(evs) >= 2 or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
        formats = sorted(e["event"]["metadata"]["format"] for e in evs)
        assert formats == ["jsonl", "ocsf"]
        assert any(e["event"]["metadata"]["filters"] == {"actor": "user7"} for e in evs)
    finally:
        srv.stop()
    assert "Traceback" not in srv.output()
