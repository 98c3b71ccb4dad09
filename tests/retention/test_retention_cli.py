"""The retention and hold commands as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from server_harness import run_cli

CONFIG = """
[[retention.policy]]
name = "keep-admin"
category = "admin"

[[retention.policy]]
name = "logins"
action = "user.*"
delete_after = "1s"
"""


def run(*args: str, cwd: Path, process: bool = True) -> subprocess.CompletedProcess[str]:
    """``auditkeep ARGS`` as a real process, or (``process=False``: set-up steps and repeats
    of a command this file already runs as a process) its main() in this process, saving the
    ~0.5 s of CPU a process spends importing auditkeep."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDITKEEP_")}
    if not process:
        got = run_cli(args, env=env, cwd=cwd)
        return subprocess.CompletedProcess(got.args, got.returncode, got.stdout.decode(), got.stderr.decode())
    return subprocess.run([sys.executable, "-m", "auditkeep.cli.main", *args], cwd=cwd, capture_output=True,
                          text=True, env=env, timeout=300)


def test_plan_run_verify_and_holds(tmp_path: Path) -> None:
    (tmp_path / "auditkeep.toml").write_text(CONFIG)
    lines = [
        json.dumps({"actor": {"id": f"u{i % 4}"}, "action": "user.login" if i % 2 else "db.read",
                    "category": "admin" if i == 5 else "authentication", "metadata": {"i": i}})
        for i in range(40)
    ]
    (tmp_path / "ev.jsonl").write_text("\n".join(lines) + "\n")
    assert run("init", cwd=tmp_path, process=False).returncode == 0
    assert run("ingest", "ev.jsonl", cwd=tmp_path, process=False).returncode == 0
    r = run("hold", "add", "--tenant", "default", "--actor", "u3", "--reason", "case 42", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    hold = json.loads(r.stdout)
    assert hold["actor"] == "u3" and hold["reason"] == "case 42"
    time.sleep(1.2)  # the policy's delete_after is 1s

    r = run("retention", "plan", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)["tenants"][0]
    odd = [i for i in range(40) if i % 2 and i != 5]
    due = [i for i in odd if i % 4 != 3]
    assert plan["due"] == len(due) and plan["held"] == len(odd) - len(due)
    assert plan["holds"] == {hold["id"]: len(odd) - len(due)}
    r = run("retention", "plan", "--at", "2020-01-01T00:00:00Z", "--json", cwd=tmp_path, process=False)
    assert json.loads(r.stdout)["tenants"][0]["due"] == 0

    r = run("retention", "run", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["tenants"][0]["due"] == len(due)

    r = run("show", "--index", str(due[0]), cwd=tmp_path, process=False)
    assert r.returncode == 2 and "has expired" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert run("show", "--index", "3", cwd=tmp_path, process=False).returncode == 0  # held
    assert run("show", "--index", "5", cwd=tmp_path, process=False).returncode == 0  # kept by keep-admin

    r = run("verify", "--json", cwd=tmp_path, process=False)
    assert r.returncode == 0, r.stdout + r.stderr
    rep = json.loads(r.stdout)["tenants"][0]
    assert rep["expired"] == len(due)
    assert sum(b - a for a, b in rep["expired_ranges"]) == len(due)
    r = run("verify", cwd=tmp_path, process=False)
    assert r.returncode == 0 and "intact" in r.stdout

    r = run("hold", "list", "--json", cwd=tmp_path)
    assert [json.loads(line)["id"] for line in r.stdout.splitlines()] == [hold["id"]]
    r = run("hold", "release", hold["id"], "--reason", "closed", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = run("hold", "release", hold["id"], "--reason", "again", cwd=tmp_path, process=False)
    assert r.returncode == 2 and "already released" in r.stderr
    assert run("hold", "list", "--json", cwd=tmp_path, process=False).stdout == ""
    assert len(run("hold", "list", "--all", "--json", cwd=tmp_path, process=False).stdout.splitlines()) == 1
    r = run("retention", "run", "--json", cwd=tmp_path, process=False)
    assert json.loads(r.stdout)["tenants"][0]["due"] == len(odd) - len(due)


def test_a_bad_policy_is_one_line_naming_it(tmp_path: Path) -> None:
    (tmp_path / "auditkeep.toml").write_text('[[retention.policy]]\nname = "x"\ndelete_after = "soon"\n')
    r = run("retention", "plan", cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "retention.policy 'x' delete_after" in r.stderr
    (tmp_path / "auditkeep.toml").write_text('[[retention.policy]]\ndelete_afterr = "1d"\n')
    r = run("retention", "plan", cwd=tmp_path)
    assert r.returncode == 2 and "unknown key 'delete_afterr'" in r.stderr
    (tmp_path / "auditkeep.toml").unlink()
    r = run("hold", "add", "--tenant", "Bad Tenant", "--reason", "x", cwd=tmp_path)
    assert r.returncode == 2 and "tenant" in r.stderr
