"""`auditkeep evidence` and `auditkeep verify-bundle` as a user runs them."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from bundle_edit import Parts  # type: ignore[import-not-found]


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDITKEEP_")}
    return subprocess.run(
        [sys.executable, "-m", "auditkeep.cli.main", *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=300
    )


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("evidence-cli")
    lines = [
        json.dumps({"action": "user.login" if i % 2 else "doc.read", "actor": {"id": f"u-{i % 3}", "ip": f"10.0.0.{i}"}})
        for i in range(200)
    ]
    (d / "events.jsonl").write_text("\n".join(lines) + "\n")
    for args in (("init", "--log-id", "evcli"), ("ingest", "events.jsonl"), ("checkpoint", "--new")):
        r = run(*args, cwd=d)
        assert r.returncode == 0, r.stderr
    return d


def test_bundle_then_verify(workdir: Path) -> None:
    key = run("pubkey", cwd=workdir).stdout.strip()
    r = run("evidence", "--since", "1h", "--action", "doc.read", "--reveal-subject", "u-1", "--out", "b.zip", cwd=workdir)
    assert r.returncode == 0, r.stderr
    assert "100 event(s) in full, 100 as hashes; indices 0..199" in r.stdout
    assert "complete up to it" in r.stderr  # the window reaches now, past the checkpoint
    v = run("verify-bundle", "b.zip", "--key", key, cwd=workdir)
    assert v.returncode == 0, v.stdout + v.stderr
    assert v.stdout.startswith("note: ") and "OK: tenant default" in v.stdout and "revealed personal fields" in v.stdout
    with zipfile.ZipFile(workdir / "b.zip") as zf:
        reveal = [json.loads(x) for x in zf.read("reveal.jsonl").splitlines()]
    assert reveal and all(x["values"]["actor.ip"].startswith("10.0.0.") for x in reveal)


def test_tampered_bundle_exits_1_with_reasons(workdir: Path) -> None:
    key = run("pubkey", cwd=workdir).stdout.strip()
    assert run("evidence", "--since", "1h", "--out", "t.zip", cwd=workdir).returncode == 0
    parts = Parts.read((workdir / "t.zip").read_bytes())
    del parts.rows[7]
    (workdir / "t2.zip").write_bytes(parts.write())
    v = run("verify-bundle", "t2.zip", "--key", key, cwd=workdir)
    assert v.returncode == 1
    assert "FAIL: leaves.tsv line 8 is index 8, expected 7" in v.stdout
    (workdir / "junk.zip").write_bytes(b"not a zip")
    junk = run("verify-bundle", "junk.zip", "--key", key, cwd=workdir)
    assert junk.returncode == 1 and "FAIL: not a zip file" in junk.stdout


def test_user_errors_exit_2_in_one_line(workdir: Path) -> None:
    cases = [
        (("evidence", "--since", "yesterday-ish", "--out", "x.zip"), "since"),
        (("evidence", "--since", "1h", "--tenant", "nobody", "--out", "x.zip"), "no log for tenant 'nobody'"),
        (("evidence", "--since", "1h", "--out", "no/such/dir/x.zip"), "is not a directory"),
        (("verify-bundle", "events.jsonl", "--key", "garbage"), "verifier key"),  # the keys are read first
        (("verify-bundle", "missing.zip", "--key", "k"), "does not exist"),
    ]
    for args, fragment in cases:
        r = run(*args, cwd=workdir)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert r.stderr.startswith("error:") and fragment in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (workdir / "x.zip").exists()
    assert not [p for p in workdir.iterdir() if p.name.startswith(".evidence-")]


def test_bundle_bytes_are_a_zip_of_the_documented_files(workdir: Path) -> None:
    assert run("evidence", "--since", "1h", "--out", "d.zip", cwd=workdir).returncode == 0
    data = (workdir / "d.zip").read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = set(zf.namelist())
    assert names == {
        "manifest.json", "events.jsonl", "leaves.tsv", "checkpoint.txt", "latest-checkpoint.txt",
        "proof.json", "keys.txt", "README.txt", "report.html",
    }  # fmt: skip
    assert Parts.read(data).manifest["personal_fields"] == "omitted (commitments only)"
