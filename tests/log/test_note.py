import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from auditkeep.log.note import (
    NoteError,
    NoteSignature,
    NoteSigner,
    NoteVerifier,
    UnknownSigner,
    check_key_name,
    key_id,
    open_note,
    parse_note,
    sign_note,
)

# The example keys and notes of golang.org/x/mod/sumdb/note (note.go's package
# documentation and note_test.go).
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
PETER_SIG = "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
ENOCH_SIG = "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n"


def peter_signer() -> NoteSigner:
    # Decode the Go private key by hand so this test does not depend on the
    # key-file parser it is also used to check (tests/crypto).
    seed = base64.b64decode(PETER_SKEY.split("+", 4)[4])
    assert seed[0] == 1
    return NoteSigner("PeterNeumann", Ed25519PrivateKey.from_private_bytes(seed[1:]))


PETER = NoteVerifier.from_vkey(PETER_VKEY)
ENOCH = NoteVerifier.from_vkey(ENOCH_VKEY)


def new_signer(name: str = "auditkeep.example/log") -> NoteSigner:
    return NoteSigner(name, Ed25519PrivateKey.generate())


# --- known answers ----------------------------------------------------------------


def test_go_example_key_id_and_vkey() -> None:
    signer = peter_signer()
    assert signer.key_id == bytes.fromhex("c74f20a3")
    assert signer.verifier_key() == PETER_VKEY
    assert PETER.name == "PeterNeumann"
    assert PETER.key_id == bytes.fromhex("c74f20a3")
    assert PETER.vkey() == PETER_VKEY
    assert signer.verifier() == PETER
    assert ENOCH.key_id == bytes.fromhex("af0cfe78")


def test_go_example_signature_byte_for_byte() -> None:
    # Ed25519 is deterministic, so our note must equal Go's exactly.
    assert peter_signer().sign(TEXT) == TEXT + "\n" + PETER_SIG


def test_go_example_opens() -> None:
    note = TEXT + "\n" + PETER_SIG + ENOCH_SIG
    assert open_note(note, [PETER]) == TEXT
    assert open_note(note, [ENOCH]) == TEXT
    assert open_note(note.encode(), [PETER, ENOCH]) == TEXT
    with pytest.raises(UnknownSigner, match="no signature from a known key"):
        open_note(note, [])


def test_go_invalid_signature() -> None:
    tampered = TEXT + "\n" + PETER_SIG[:60] + "ABCD" + PETER_SIG[60:]
    with pytest.raises(NoteError, match="invalid signature for key PeterNeumann\\+c74f20a3") as bad:
        open_note(tampered, [PETER])
    assert not isinstance(bad.value, UnknownSigner)  # a bad signature by a known key is worse
    # The same bad line from a key we do not know is ignored.
    with pytest.raises(NoteError, match="no signature from a known key"):
        open_note(tampered, [ENOCH])


def test_go_repeated_and_unknown_signatures() -> None:
    enoch_bad = ENOCH_SIG[:60] + "ABCD" + ENOCH_SIG[60:]
    note = TEXT + "\n" + PETER_SIG + PETER_SIG + ENOCH_SIG + ENOCH_SIG + enoch_bad
    assert open_note(note, [PETER]) == TEXT
    # Once Enoch is known, its broken signature sinks the note.
    with pytest.raises(NoteError, match="invalid signature for key EnochRoot"):
        open_note(note, [PETER, ENOCH])


@pytest.mark.parametrize(
    "note",
    [
        TEXT,  # no signatures
        TEXT + "\n",
        TEXT + "\n" + PETER_SIG[:-1],  # last line without newline
        "\x01" + TEXT + "\n" + PETER_SIG,  # control character
        TEXT
        + "\n"
        + "— Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=",
        TEXT + "\n" + PETER_SIG + "Unexpected line.\n",
        TEXT + "\n" + PETER_SIG.replace("—", "-"),
        TEXT + "\n" + "— PeterNeumann\n",
        TEXT + "\n" + "— PeterNeumann AAAA\n",  # too short for key id + signature
        TEXT
        + "\n"
        + "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM\n",  # no padding
        TEXT
        + "\n"
        + "— Peter+Neumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n",
        TEXT.replace("\n", "\r\n", 1) + "\n" + PETER_SIG,
        TEXT + "\n" + PETER_SIG * 101,  # too many signatures
    ],
)
def test_go_malformed_notes(note: str) -> None:
    with pytest.raises(NoteError):
        open_note(note, [PETER])


def test_invalid_utf8() -> None:
    with pytest.raises(NoteError, match="UTF-8"):
        open_note(b"\xff" + (TEXT + "\n" + PETER_SIG).encode(), [PETER])


def test_vkey_manglings_rejected() -> None:
    # As in Go's TestNewVerifier: every proper substring and every one-byte
    # change of a valid verifier key must be rejected.
    b = PETER_VKEY.encode()
    for i in range(len(b) + 1):
        for j in range(i + 1, len(b) + 1):
            if (i, j) != (0, len(b)):
                with pytest.raises(ValueError):
                    NoteVerifier.from_vkey(b[i:j].decode())
    for i in range(len(b)):
        mangled = bytearray(b)
        mangled[i] += 1
        with pytest.raises(ValueError):
            NoteVerifier.from_vkey(mangled.decode())


@pytest.mark.parametrize(
    ("vkey", "message"),
    [
        (
            "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
            "base64|32 bytes",
        ),
        ("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "algorithm"),
        ("PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "lowercase hex"),
        ("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "does not match"),
        ("Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "spaces"),
        ("+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "empty"),
        ("PeterNeumann", "name"),
    ],
)
def test_vkey_errors_are_clear(vkey: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        NoteVerifier.from_vkey(vkey)


# --- round trips and tampering ------------------------------------------------------


def test_round_trip_and_vkey() -> None:
    signer = new_signer()
    note = signer.sign("hello\nworld\n")
    assert note.startswith("hello\nworld\n\n— auditkeep.example/log ")
    assert open_note(note, [signer.verifier()]) == "hello\nworld\n"
    v = NoteVerifier.from_vkey(signer.verifier_key())
    assert v == signer.verifier()
    assert (
        v.key_id
        == signer.key_id
        == key_id(signer.name, signer.private_key.public_key().public_bytes_raw())
    )
    assert open_note(note, [v]) == "hello\nworld\n"


def test_every_changed_byte_fails() -> None:
    signer = new_signer()
    v = signer.verifier()
    note = signer.sign("origin\n42\n").encode()
    for i in range(len(note)):
        changed = bytearray(note)
        changed[i] ^= 0x01
        with pytest.raises(NoteError):
            open_note(bytes(changed), [v])


def test_other_key_with_same_name_is_ignored() -> None:
    a, b = new_signer("log"), new_signer("log")
    note = a.sign("x\n")
    # Same name, different key ID: an unknown key, so no known signature.
    with pytest.raises(NoteError, match="no signature from a known key"):
        open_note(note, [b.verifier()])


def test_ambiguous_verifiers() -> None:
    a = new_signer("log")
    note = a.sign("x\n")

    # Two different keys sharing name and 4-byte ID won't happen by chance;
    # build the collision with a verifier that reports a's ID for another key.
    class Colliding(NoteVerifier):
        @property
        def key_id(self) -> bytes:
            return a.key_id

    twin = Colliding(a.name, Ed25519PrivateKey.generate().public_key())
    with pytest.raises(NoteError, match="ambiguous key"):
        open_note(note, [a.verifier(), twin])
    # The same verifier listed twice is not ambiguous.
    assert open_note(note, [a.verifier(), a.verifier()]) == "x\n"


def test_multiple_signers_and_blank_lines_in_text() -> None:
    a, b = new_signer("a.example"), new_signer("b.example")
    text = "para one\n\npara two\n"
    note = sign_note(text, [a, b])
    assert open_note(note, [b.verifier()]) == text
    got_text, sigs = parse_note(note)
    assert got_text == text
    assert [(s.name, s.key_id) for s in sigs] == [("a.example", a.key_id), ("b.example", b.key_id)]
    assert all(isinstance(s, NoteSignature) and len(s.signature) == 64 for s in sigs)
    assert "".join(s.line() for s in sigs) == note[len(text) + 1 :]


@pytest.mark.parametrize("text", ["", "no newline", "a\nb", "tab\there\n", "cr\r\n"])
def test_sign_rejects_bad_text(text: str) -> None:
    with pytest.raises(NoteError):
        new_signer().sign(text)


def test_sign_needs_a_signer() -> None:
    with pytest.raises(NoteError):
        sign_note("x\n", [])


@pytest.mark.parametrize(
    "name", ["", "a b", "a+b", "tab\t", "nbsp\u00a0x", "em\u2003space", "nl\n", "nul\x00"]
)
def test_bad_key_names(name: str) -> None:
    with pytest.raises(ValueError):
        check_key_name(name)
    with pytest.raises(ValueError):
        NoteSigner(name, Ed25519PrivateKey.generate())


def test_good_key_names() -> None:
    for name in ["a", "example.com/log42", "ünïcødé", "x—y"]:
        check_key_name(name)


def test_verify_rejects_wrong_length_signature() -> None:
    signer = new_signer()
    v = signer.verifier()
    assert not v.verify(b"x\n", b"\x00" * 63)
    assert not v.verify(b"x\n", b"\x00" * 64)


@given(
    st.lists(
        st.text(
            alphabet=st.characters(blacklist_categories=("Cs", "Cc")),
            max_size=40,
        ),
        min_size=1,
        max_size=6,
    )
)
def test_round_trip_any_text(lines: list[str]) -> None:
    text = "\n".join(lines) + "\n"
    signer = SIGNER
    assert open_note(signer.sign(text), [signer.verifier()]) == text


SIGNER = new_signer()
