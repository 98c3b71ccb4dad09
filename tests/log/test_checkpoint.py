import base64
import dataclasses

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from auditkeep.log.checkpoint import (
    MAX_TREE_SIZE,
    Checkpoint,
    CheckpointError,
    sign_checkpoint,
    verify_checkpoint,
)
from auditkeep.log.note import NoteError, NoteSigner

ROOT = bytes(range(32))
ROOT_B64 = base64.b64encode(ROOT).decode()
SIGNER = NoteSigner("example.com/log", Ed25519PrivateKey.generate())

# The example from c2sp.org/tlog-checkpoint.
SPEC_BODY = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"


def test_spec_example_parses() -> None:
    cp = Checkpoint.parse(SPEC_BODY)
    assert cp.origin == "example.com/behind-the-sofa"
    assert cp.size == 20852163
    assert cp.root == base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    assert cp.extensions == ()
    assert cp.body() == SPEC_BODY


def test_body_format() -> None:
    cp = Checkpoint("example.com/log", 0, ROOT)
    assert cp.body() == f"example.com/log\n0\n{ROOT_B64}\n"
    ext = Checkpoint("o", 7, ROOT, ("ext one", "ext two"))
    assert ext.body() == f"o\n7\n{ROOT_B64}\next one\next two\n"
    assert Checkpoint.parse(ext.body()) == ext


@given(
    st.text(alphabet=st.characters(min_codepoint=0x20, blacklist_categories=["Cs"]), min_size=1),
    st.integers(0, MAX_TREE_SIZE),
    st.binary(min_size=32, max_size=32),
    st.lists(
        st.text(
            alphabet=st.characters(min_codepoint=0x20, blacklist_categories=["Cs"]), min_size=1
        ),
        max_size=3,
    ),
)
def test_round_trip(origin: str, size: int, root: bytes, exts: list[str]) -> None:
    cp = Checkpoint(origin, size, root, tuple(exts))
    assert Checkpoint.parse(cp.body()) == cp


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"o\n1\n{ROOT_B64}", "end with a newline"),
        ("o\n1\n", "origin, size and root"),
        (f"\n1\n{ROOT_B64}\n", "origin must not be empty"),
        (f"o\n01\n{ROOT_B64}\n", "leading zeros"),
        (f"o\n00\n{ROOT_B64}\n", "leading zeros"),
        (f"o\n-1\n{ROOT_B64}\n", "decimal"),
        (f"o\n+1\n{ROOT_B64}\n", "decimal"),
        (f"o\n 1\n{ROOT_B64}\n", "decimal"),
        (f"o\n1_000\n{ROOT_B64}\n", "decimal"),
        (f"o\n\u0661\n{ROOT_B64}\n", "decimal"),
        (f"o\n\n{ROOT_B64}\n", "decimal"),
        (f"o\n{2**64}\n{ROOT_B64}\n", "out of range"),
        ("o\n1\nAAAA\n", "3 bytes"),
        (f"o\n1\n{ROOT_B64[:-1]}\n", "base64"),
        (f"o\n1\n{ROOT_B64[:-2]}9=\n", "canonical"),  # same bytes, other spelling
        (f"o\n1\n{ROOT_B64} \n", "base64"),
        (f"o\n1\n{ROOT_B64}\n\n", "extension line must not be empty"),
        (f"o\n1\n{ROOT_B64}\next\n\nmore\n", "extension line must not be empty"),
        (f"o\r\n1\n{ROOT_B64}\n", "control character"),
    ],
)
def test_parse_rejects(text: str, message: str) -> None:
    with pytest.raises(CheckpointError, match=message):
        Checkpoint.parse(text)


def test_constructor_validates() -> None:
    with pytest.raises(CheckpointError):
        Checkpoint("", 1, ROOT)
    with pytest.raises(CheckpointError):
        Checkpoint("o\nx", 1, ROOT)
    with pytest.raises(CheckpointError):
        Checkpoint("o", -1, ROOT)
    with pytest.raises(CheckpointError):
        Checkpoint("o", True, ROOT)
    with pytest.raises(CheckpointError):
        Checkpoint("o", 1, ROOT[:31])
    with pytest.raises(CheckpointError):
        Checkpoint("o", 1, ROOT, ("",))
    cp = Checkpoint("o", 1, ROOT)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cp.size = 2  # type: ignore[misc]
    assert issubclass(CheckpointError, ValueError)


def test_sign_and_verify() -> None:
    cp = Checkpoint("example.com/log", 12345, ROOT)
    note = sign_checkpoint(cp, SIGNER)
    assert note.startswith(cp.body() + "\n— example.com/log ")
    assert verify_checkpoint(note, SIGNER.verifier()) == cp
    assert verify_checkpoint(note, SIGNER.verifier(), origin="example.com/log") == cp
    with pytest.raises(CheckpointError, match="origin"):
        verify_checkpoint(note, SIGNER.verifier(), origin="example.com/other")
    other = NoteSigner("example.com/log", Ed25519PrivateKey.generate())
    with pytest.raises(NoteError):
        verify_checkpoint(note, other.verifier())
    tampered = note.replace("12345", "12346", 1)
    with pytest.raises(NoteError, match="invalid signature"):
        verify_checkpoint(tampered, SIGNER.verifier())


def test_verify_rejects_signed_garbage() -> None:
    note = SIGNER.sign("example.com/log\n01\n" + ROOT_B64 + "\n")
    with pytest.raises(CheckpointError, match="leading zeros"):
        verify_checkpoint(note, SIGNER.verifier())
