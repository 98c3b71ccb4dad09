from __future__ import annotations

import sys
from pathlib import Path

# http_server_support (a real `auditkeep serve` in a subprocess) lives beside the server tests,
# the attacker with write access to the store beside the core tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
