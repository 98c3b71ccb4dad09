"""``[[witness]]`` tables and ``witness_quorum`` in auditkeep.toml."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auditkeep.config import ConfigError, load_settings
from auditkeep.log.cosignature import Cosigner
from auditkeep.log.note import NoteSigner

WKEY = Cosigner("w.example/1", Ed25519PrivateKey.generate()).verifier().vkey()
WKEY2 = Cosigner("w.example/2", Ed25519PrivateKey.generate()).verifier().vkey()
LOG_KEY = NoteSigner("log.example", Ed25519PrivateKey.generate()).verifier_key()


def _load(tmp_path: Path, text: str) -> object:
    f = tmp_path / "auditkeep.toml"
    f.write_text(text)
    return load_settings(f, env={})


def test_witness_tables_load(tmp_path: Path) -> None:
    s = _load(tmp_path, f'witness_quorum = 2\n[[witness]]\nurl = "http://a:1"\nkey = "{WKEY}"\n'
                        f'[[witness]]\nurl = "https://b"\nkey = "{WKEY2}"\n')  # fmt: skip
    assert [w.url for w in s.witness] == ["http://a:1", "https://b"]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f'[[witness]]\nurl = "ftp://a"\nkey = "{WKEY}"\n', "http(s) URL"),
        (f'[[witness]]\nurl = "http://a"\nkey = "{LOG_KEY}"\n', "0x04"),
        ('[[witness]]\nurl = "http://a"\nkey = "nonsense"\n', "key"),
        ('[[witness]]\nurl = "http://a"\n', "key"),
        (f'witness_quorum = 2\n[[witness]]\nurl = "http://a"\nkey = "{WKEY}"\n', "witness_quorum"),
        (f'[[witness]]\nurl = "http://a"\nkey = "{WKEY}"\n[[witness]]\nurl = "http://b"\nkey = "{WKEY}"\n', "twice"),
        (f'[[witness]]\nurl = "http://a"\nkey = "{WKEY}"\nname = "x"\n', "name"),
    ],
)
def test_bad_witness_settings_are_refused(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _load(tmp_path, text)
