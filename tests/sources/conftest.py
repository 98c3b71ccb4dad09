"""Shared fixtures for source tests: the real sample data kept beside the repository.

The data lives in ``shared/testdata`` next to the repository (``<repo>/../shared/testdata``),
so a clone anywhere finds it as long as ``shared/`` sits beside it; ``AUDITKEEP_TESTDATA``
points elsewhere. Tests that need it are skipped, with the reason, when it is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def testdata_dir() -> Path:
    override = os.environ.get("AUDITKEEP_TESTDATA")
    if override:
        return Path(override).expanduser().resolve()
    return (REPO_ROOT.parent / "shared" / "testdata").resolve()


@pytest.fixture(scope="session")
def testdata() -> Path:
    """The testdata directory (``kubernetes/``, ``cloudtrail/``, ``auditd/``, ...)."""
    path = testdata_dir()
    if not path.is_dir():
        pytest.skip(
            f"sample data not found at {path}: put shared/testdata beside the repository "
            "or set AUDITKEEP_TESTDATA to its path"
        )
    return path
