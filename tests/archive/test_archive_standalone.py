"""examples/verify_segment.py checks segments in a virtual environment that has only the
standard library, ``cryptography`` and ``zstandard`` (no auditkeep), as an auditor would."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import zstandard
from archive_support import DAY, fill

from auditkeep.archive.run import run_archive
from auditkeep.archive.target import DirTarget
from auditkeep.ledger import Ledger
from bare_venv import make_bare_venv

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "verify_segment.py"
MODULE = ROOT / "src" / "auditkeep" / "archive" / "check.py"


def test_the_example_is_the_checker_auditkeep_uses() -> None:
    assert EXAMPLE.read_bytes() == MODULE.read_bytes(), (
        "examples/verify_segment.py must be src/auditkeep/archive/check.py byte for byte: "
        "cp src/auditkeep/archive/check.py examples/verify_segment.py"
    )


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with cryptography and zstandard and nothing of auditkeep (tests/bare_venv.py)."""
    return make_bare_venv(tmp_path_factory.mktemp("bare-venv"), ["cryptography", "zstandard"])


def test_the_example_runs_without_auditkeep(bare_python: Path, tmp_path: Path) -> None:
    missing = subprocess.run([str(bare_python), "-I", "-c", "import auditkeep"], capture_output=True, text=True)
    assert missing.returncode != 0 and "No module named 'auditkeep'" in missing.stderr
    with Ledger.open(tmp_path / "data") as lg:
        fill(lg, 300)
        run_archive(lg, DirTarget(tmp_path / "arch"), [], 256, lg.head("default").received_ns + DAY, older_than_ns=1)
        key = lg.pubkey()
    manifest = tmp_path / "arch/default/000000000000-000000000256.manifest.json"

    def run(path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(bare_python), "-I", str(EXAMPLE), str(path), "--key", key],
                              capture_output=True, text=True, timeout=300)

    ok = run(manifest)
    assert ok.returncode == 0 and ok.stdout.startswith("OK: tenant default, entries 0..255"), ok.stdout + ok.stderr
    # one line changed in a copy
    data_name = json.loads(manifest.read_bytes())["data"]["name"]
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / manifest.name).write_bytes(manifest.read_bytes())
    raw = zstandard.ZstdDecompressor().stream_reader((manifest.parent / data_name).read_bytes()).read()
    lines = raw.splitlines()
    lines[3], lines[4] = lines[4], lines[3]
    (bad / data_name).write_bytes(zstandard.ZstdCompressor().compress(b"\n".join(lines) + b"\n"))
    failed = run(bad / data_name)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "FAIL: line 4: index 4, expected 3" in failed.stdout, failed.stdout
