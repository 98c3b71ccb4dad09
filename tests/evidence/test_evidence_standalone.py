"""examples/verify_bundle.py checks bundles in a virtual environment that has only the
standard library and ``cryptography`` (no auditkeep), as an auditor would run it."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import pytest
from bundle_edit import Parts, rehash  # type: ignore[import-not-found]
from evidence_support import EvidenceLog  # type: ignore[import-not-found]

from auditkeep.evidence import build_bundle
from bare_venv import make_bare_venv

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "verify_bundle.py"
MODULE = ROOT / "src" / "auditkeep" / "evidence" / "bundlecheck.py"
# the formats' code both standalone checkers import from beside them
SHARED_EXAMPLE = ROOT / "examples" / "tlogcheck.py"
SHARED_MODULE = ROOT / "src" / "auditkeep" / "evidence" / "tlogcheck.py"

@pytest.fixture(scope="session")
def bare_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with cryptography and nothing of auditkeep (tests/bare_venv.py)."""
    return make_bare_venv(tmp_path_factory.mktemp("bare-venv"), ["cryptography"])


def test_the_example_is_the_checker_auditkeep_uses() -> None:
    # One implementation: `auditkeep verify-bundle` runs the very code auditors get.
    assert EXAMPLE.read_bytes() == MODULE.read_bytes(), (
        "examples/verify_bundle.py must be src/auditkeep/evidence/bundlecheck.py byte for byte (and import "
        "nothing of auditkeep unguarded): cp src/auditkeep/evidence/bundlecheck.py examples/verify_bundle.py"
    )
    assert SHARED_EXAMPLE.read_bytes() == SHARED_MODULE.read_bytes(), (
        "examples/tlogcheck.py must be src/auditkeep/evidence/tlogcheck.py byte for byte: "
        "cp src/auditkeep/evidence/tlogcheck.py examples/tlogcheck.py"
    )


def _run(python: Path, bundle: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(python), "-I", str(EXAMPLE), str(bundle), *args], capture_output=True, text=True, timeout=300, cwd=bundle.parent
    )


@pytest.mark.parametrize("store_kind", ["sqlite"], indirect=True)
def test_the_example_runs_without_auditkeep(bare_python: Path, five_batches: EvidenceLog, tmp_path: Path) -> None:
    log = five_batches
    missing = subprocess.run([str(bare_python), "-I", "-c", "import auditkeep"], capture_output=True, text=True)
    assert missing.returncode != 0 and "No module named 'auditkeep'" in missing.stderr
    key = log.ledger.pubkey()
    buf = io.BytesIO()
    build_bundle(log.ledger, buf, "default", log.times[1], log.times[3], reveal_subject="u-2")
    good = tmp_path / "good.zip"
    good.write_bytes(buf.getvalue())
    ok = _run(bare_python, good, "--key", key)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.startswith("OK: tenant default") and "20 event(s)" in ok.stdout

    parts = Parts.read(buf.getvalue())
    ev = json.loads(parts.rows[5].leaf)
    ev["actor"]["id"] = "someone-else"
    parts.rows[5].leaf = json.dumps(ev, sort_keys=True, separators=(",", ":")).encode()
    rehash(parts.rows[5])
    bad = tmp_path / "bad.zip"
    bad.write_bytes(parts.write())
    failed = _run(bare_python, bad, "--key", key)
    assert failed.returncode == 1
    assert "FAIL: the range's leaves and proof do not give the checkpoint's root" in failed.stdout

    unreadable = _run(bare_python, good, "--key", "not-a-key")
    assert unreadable.returncode == 2 and unreadable.stderr.startswith("error:")
