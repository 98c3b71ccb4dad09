"""The client certificate of a mutual-TLS connection, for the request handlers.

uvicorn verifies client certificates (``--tls-client-ca``) but does not pass them to the
application. :func:`with_peer_certificate` wraps its httptools protocol so that each
request's scope carries the ASGI TLS extension (``scope["extensions"]["tls"]``) with the
peer's certificate; :func:`client_subject` reads it back.
"""

from __future__ import annotations

import ssl
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

TLS_EXTENSION = "tls"


@dataclass(frozen=True)
class Subject:
    """The names of a client certificate's subject that map it to a tenant."""

    common_name: str | None
    organisations: tuple[str, ...]
    rfc4514: str = ""  # the whole subject (``CN=...,O=...``), recorded as the submitter


def _peer_pem(transport: Any) -> str | None:
    obj = transport.get_extra_info("ssl_object") if transport is not None else None
    if not isinstance(obj, ssl.SSLObject | ssl.SSLSocket):
        return None
    der = obj.getpeercert(binary_form=True)
    return ssl.DER_cert_to_PEM_cert(der) if der else None


def with_peer_certificate(protocol: type[Any]) -> type[Any]:
    """A subclass of uvicorn's ``HttpToolsProtocol`` (or a subclass of it) whose requests
    carry the TLS extension; another protocol class is returned unchanged."""
    if not hasattr(protocol, "on_message_begin"):
        return protocol

    class PeerCertificateProtocol(protocol):  # type: ignore[misc]
        _peer_cert: str | bool | None = False  # False: not read yet on this connection

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if self._peer_cert is False:
                self._peer_cert = _peer_pem(getattr(self, "transport", None))
            extensions = dict(self.scope.get("extensions") or {})
            extensions[TLS_EXTENSION] = {
                "client_cert_chain": [self._peer_cert] if self._peer_cert else [],
                "client_cert_error": None,
            }
            self.scope["extensions"] = extensions

    PeerCertificateProtocol.__name__ = f"PeerCertificate{protocol.__name__}"
    return PeerCertificateProtocol


def client_subject(scope: MutableMapping[str, Any]) -> Subject | None:
    """The subject of the client certificate of this request, or None without one."""
    tls = (scope.get("extensions") or {}).get(TLS_EXTENSION)
    chain = tls.get("client_cert_chain") if isinstance(tls, dict) else None
    if not chain:
        return None
    try:
        cert = x509.load_pem_x509_certificate(str(chain[0]).encode("ascii"))
    except ValueError:
        return None
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    orgs = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return Subject(
        str(cn[0].value) if cn else None,
        tuple(str(o.value) for o in orgs),
        cert.subject.rfc4514_string(),
    )
