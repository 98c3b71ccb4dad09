import os
import stat
from pathlib import Path

import pytest

from auditkeep.crypto.signing import (
    KeyFileError,
    create_signing_key,
    format_signing_key,
    load_signing_key,
    parse_signing_key,
)
from auditkeep.log.note import NoteVerifier, open_note

# golang.org/x/mod/sumdb/note's example key pair.
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_create_writes_0600_key_in_go_format(tmp_path: Path) -> None:
    path = tmp_path / "log.key"
    signer = create_signing_key(path, "auditkeep.example/log")
    assert mode(path) == 0o600
    text = path.read_text()
    assert text.endswith("\n") and text.count("\n") == 1
    assert text.startswith(f"PRIVATE+KEY+auditkeep.example/log+{signer.key_id.hex()}+")
    assert text == format_signing_key(signer) + "\n"
    # Nothing else left behind (no temporary file).
    assert [p.name for p in tmp_path.iterdir()] == ["log.key"]


def test_create_respects_no_umask_leak(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        path = tmp_path / "k"
        create_signing_key(path, "n")
    finally:
        os.umask(old)
    assert mode(path) == 0o600


def test_load_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "log.key"
    signer = create_signing_key(path, "auditkeep.example/log")
    loaded = load_signing_key(path)
    assert loaded.name == signer.name
    assert loaded.key_id == signer.key_id
    assert loaded.verifier_key() == signer.verifier_key()
    # A note signed with the loaded key opens with the original's verifier.
    note = loaded.sign("text\n")
    assert open_note(note, [NoteVerifier.from_vkey(signer.verifier_key())]) == "text\n"


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "log.key"
    path.write_text("precious\n")
    with pytest.raises(KeyFileError, match="refusing to overwrite"):
        create_signing_key(path, "n")
    assert path.read_text() == "precious\n"
    first = tmp_path / "second.key"
    create_signing_key(first, "n")
    before = first.read_text()
    with pytest.raises(KeyFileError, match="refusing to overwrite"):
        create_signing_key(first, "n")
    assert first.read_text() == before


def test_refuses_dangling_symlink(tmp_path: Path) -> None:
    link = tmp_path / "log.key"
    link.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(KeyFileError, match="refusing to overwrite"):
        create_signing_key(link, "n")
    assert not (tmp_path / "elsewhere").exists()


@pytest.mark.parametrize("bad_mode", [0o640, 0o604, 0o644, 0o660, 0o610, 0o601])
def test_load_refuses_readable_by_others(tmp_path: Path, bad_mode: int) -> None:
    path = tmp_path / "log.key"
    create_signing_key(path, "n")
    path.chmod(bad_mode)
    with pytest.raises(KeyFileError, match=f"permissions {bad_mode:04o} .* too open"):
        load_signing_key(path)
    path.chmod(0o400)
    assert load_signing_key(path).name == "n"


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="no signing key file"):
        load_signing_key(tmp_path / "missing")
    with pytest.raises(KeyFileError, match="not a regular file"):
        load_signing_key(tmp_path)
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"\xff\xfe")
    garbage.chmod(0o600)
    with pytest.raises(KeyFileError, match="not ASCII"):
        load_signing_key(garbage)
    wrong = tmp_path / "wrong"
    wrong.write_text(PETER_VKEY + "\n")
    wrong.chmod(0o600)
    with pytest.raises(KeyFileError, match=r"wrong: .*PRIVATE\+KEY"):
        load_signing_key(wrong)


def test_go_key_parses_and_formats_back() -> None:
    signer = parse_signing_key(PETER_SKEY)
    assert signer.name == "PeterNeumann"
    assert signer.key_id.hex() == "c74f20a3"
    assert signer.verifier_key() == PETER_VKEY
    assert format_signing_key(signer) == PETER_SKEY
    assert parse_signing_key(PETER_SKEY + "\n").key_id == signer.key_id


def test_go_key_manglings_rejected() -> None:
    # As in Go's TestNewSigner: no proper substring and no one-byte change parses.
    b = PETER_SKEY.encode()
    for i in range(len(b) + 1):
        for j in range(i + 1, len(b) + 1):
            if (i, j) != (0, len(b)):
                with pytest.raises(KeyFileError):
                    parse_signing_key(b[i:j].decode())
    for i in range(len(b)):
        mangled = bytearray(b)
        mangled[i] += 1
        with pytest.raises(KeyFileError):
            parse_signing_key(mangled.decode())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "PRIVATE\\+KEY"),
        (PETER_SKEY + "\n\n", "base64"),
        (" " + PETER_SKEY, "PRIVATE\\+KEY"),
        (PETER_SKEY.replace("c74f20a3", "C74F20A3"), "lowercase hex"),
        (PETER_SKEY.replace("c74f20a3", "c74f20a4"), "does not match"),
        (PETER_SKEY.replace("PeterNeumann", "Peter Neumann"), "name"),
        ("PRIVATE+KEY+n+00000000+AgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "Ed25519"),
        ("PRIVATE+KEY+n+00000000+AQAA", "32 bytes"),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(KeyFileError, match=message):
        parse_signing_key(text)


def test_errors_do_not_echo_key_material() -> None:
    secret = PETER_SKEY.split("+", 4)[4]
    for text in [PETER_SKEY[:-1] + "!", PETER_SKEY.replace("c74f20a3", "c74f20a4")]:
        with pytest.raises(KeyFileError) as info:
            parse_signing_key(text)
        assert secret[:10] not in str(info.value)


def test_bad_name_on_create(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="spaces"):
        create_signing_key(tmp_path / "k", "bad name")
    assert not (tmp_path / "k").exists()
