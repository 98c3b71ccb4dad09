"""The Kubernetes webhook over mutual TLS without a token: the client certificate's CN or
organisation names the tenant (setting client_cert_tenants)."""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sources_e2e_support import Server

Issued = tuple[x509.Certificate, ec.EllipticCurvePrivateKey]


def _issue(out: Path, attrs: list[x509.NameAttribute], signer: Issued | None = None, *, ca: bool = False) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(attrs)
    start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=1)
    b = (x509.CertificateBuilder().subject_name(name).issuer_name(signer[0].subject if signer else name)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(start).not_valid_after(start + datetime.timedelta(hours=2))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        b = b.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
    cert = b.sign((signer or (None, key))[1], hashes.SHA256())
    (out.parent / f"{out.name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (out.parent / f"{out.name}.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return cert, key


def _context(d: Path, client: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(d / "ca.crt"))
    ctx.load_cert_chain(str(d / f"{client}.crt"), str(d / f"{client}.key"))
    return ctx


def test_webhook_authenticated_by_client_certificate(tmp_path: Path, testdata: Path) -> None:
    ca = _issue(tmp_path / "ca", [x509.NameAttribute(NameOID.COMMON_NAME, "audit ca")], ca=True)
    _issue(tmp_path / "server", [x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")], ca)
    _issue(tmp_path / "apiserver", [x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver-prod")], ca)
    _issue(tmp_path / "team", [x509.NameAttribute(NameOID.COMMON_NAME, "someone"),
                               x509.NameAttribute(NameOID.ORGANIZATION_NAME, "platform")], ca)
    _issue(tmp_path / "stranger", [x509.NameAttribute(NameOID.COMMON_NAME, "stranger")], ca)
    config = tmp_path / "auditkeep.toml"
    config.write_text('client_cert_tenants = {"CN=kube-apiserver-prod" = "prod", "O=platform" = "platform"}\n')
    tls = ("--tls-cert", str(tmp_path / "server.crt"), "--tls-key", str(tmp_path / "server.key"),
           "--tls-client-ca", str(tmp_path / "ca.crt"), "--config", str(config))
    srv = Server(tmp_path / "data", args=tls, verify=_context(tmp_path, "apiserver"))
    try:
        items = [json.loads(x) for x in (testdata / "kubernetes" / "audit2rbac-demo.log").read_bytes().splitlines() if x.strip()]
        body = {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": items[:10]}
        with srv.client("") as c:  # no token: the certificate speaks for the API server
            r = c.post("/v1/sources/kubernetes", json=body)
            assert r.status_code == 200, r.text
            assert r.json()["tenant"] == "prod" and r.json()["accepted"] == 10
            assert c.post("/v1/sources/kubernetes", params={"tenant": "other"}, json=body).status_code == 403
            assert c.post("/v1/logs", json={"resourceLogs": []}).status_code == 401  # OTLP needs a key
        srv.verify = _context(tmp_path, "team")
        with srv.client("") as c:
            assert c.post("/v1/sources/kubernetes", json=body).json()["tenant"] == "platform"
        srv.verify = _context(tmp_path, "stranger")
        with srv.client("") as c:
            r = c.post("/v1/sources/kubernetes", json=body)
            assert r.status_code == 403 and "client_cert_tenants" in r.json()["error"]
        # A token, when sent, decides (the admin key acts on the tenant it names).
        with srv.client() as c:
            r = c.post("/v1/sources/kubernetes", params={"tenant": "keyed"}, json=body)
            assert r.status_code == 200 and r.json()["tenant"] == "keyed"
        srv.verify = _context(tmp_path, "apiserver")
        got = srv.search("prod", action="k8s.*")
        assert len(got) == 10
        # the leaves name the certificate that submitted them (issue 9, finding 5)
        assert {json.dumps(e["submitter"]) for e in got} == {json.dumps({"kind": "cert", "id": "CN=kube-apiserver-prod"})}
        assert len(srv.search("prod", submitter="cert:CN=kube-apiserver-prod")) == 10
        assert {e["submitter"]["kind"] for e in srv.search("platform", action="k8s.*")} == {"cert"}
        keyed = srv.search("keyed", action="k8s.*")
        assert keyed and {e["submitter"]["kind"] for e in keyed} == {"key"}
    finally:
        srv.stop()
    assert "Traceback" not in srv.output(), srv.output()
