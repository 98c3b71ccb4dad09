"""Where the real sample data is: ``tests/testdata`` (copied from the project's shared test data
with its MANIFEST.md and licences), or ``$AUDITKEEP_TESTDATA``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

TESTDATA = Path(__file__).resolve().parent / "testdata"


def testdata_dir() -> Path:
    override = os.environ.get("AUDITKEEP_TESTDATA")
    return Path(override).expanduser().resolve() if override else TESTDATA


def require_testdata() -> Path:
    """The directory; a test without it is skipped, but fails in CI (the data is in the repo)."""
    path = testdata_dir()
    if not path.is_dir():
        reason = f"sample data not found at {path} (set AUDITKEEP_TESTDATA)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(reason)
        pytest.skip(reason)
    return path
