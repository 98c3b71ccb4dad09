"""HTTPS with a server certificate, client-certificate auth, and the clear-text warning."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from http_server_support import Server


def _cert(
    path: Path, name: str, issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None, ca: bool = False
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[0].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
    cert = builder.sign(issuer[1] if issuer else key, hashes.SHA256())
    path.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    path.with_suffix(".key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert, key


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    ca = _cert(tmp_path / "ca", "test ca", ca=True)
    _cert(tmp_path / "server", "127.0.0.1", ca)
    _cert(tmp_path / "client", "a client", ca)
    return tmp_path


def _trust(pki: Path, client: bool = False) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    if client:
        ctx.load_cert_chain(str(pki / "client.crt"), str(pki / "client.key"))
    return ctx


def test_https_and_client_certificates(make_server: Callable[..., Server], pki: Path) -> None:
    tls = ("--tls-cert", str(pki / "server.crt"), "--tls-key", str(pki / "server.key"))
    srv = make_server(args=tls, verify=_trust(pki))
    assert srv.url.startswith("https://")
    with srv.client(srv.admin) as c:
        assert c.get("/v1/keys").status_code == 200
    assert "without TLS" not in srv.output()

    mtls = make_server(args=(*tls, "--tls-client-ca", str(pki / "ca.crt")), verify=_trust(pki, client=True))
    with mtls.client(mtls.admin) as c:
        assert c.get("/v1/keys").status_code == 200
    with pytest.raises(httpx.HTTPError), httpx.Client(verify=_trust(pki)) as c:
        c.get(mtls.url + "/healthz")


def test_tls_options_go_together(tmp_path: Path, pki: Path) -> None:
    import subprocess
    import sys

    r = subprocess.run(
        [sys.executable, "-m", "auditkeep.cli.main", "serve", "--data", str(tmp_path / "d"), "--tls-cert", str(pki / "server.crt")],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert r.returncode != 0 and "--tls-key" in r.stderr + r.stdout


def test_warns_when_listening_beyond_loopback_without_tls(make_server: Callable[..., Server]) -> None:
    srv = make_server(args=("--host", "0.0.0.0"))
    assert "without TLS" in srv.output()
