"""TLS contexts: TLS 1.3 only, on every endpoint, server and client side.

TLS 1.3 has a fixed, sound set of cipher suites, so there is nothing to configure and nothing to get
wrong; a TLS 1.2 client is refused at the handshake.

Client certificates on the REST APIs (``client_auth``):
- ``none``: no certificate is requested; callers authenticate with an API key.
- ``required``: a certificate is required and must chain to one of the certificates in
  ``HTTP_CLIENT_CA``; list the clients' own (self-signed) certificates there to accept exactly them.
- ``required-ca``: a certificate signed by the CA in ``HTTP_CLIENT_CA`` is required.
Connecting is not access: the API then looks the certificate's SHA-256 fingerprint up in its database,
so a certificate that is merely CA-signed is never granted anything.
"""

import hashlib
import os
import ssl
import tempfile
from pathlib import Path

from authserver.config import TLSMaterial
from nextauth_core.secret_files import write_private


def _base(purpose: ssl.Purpose) -> ssl.SSLContext:
    context = ssl.create_default_context(purpose)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.maximum_version = ssl.TLSVersion.TLSv1_3
    return context


def _load_chain(context: ssl.SSLContext, material: TLSMaterial) -> None:
    # The ssl module loads keys only from files: write them to a private folder just for the call.
    # In memory where the system offers it (/dev/shm), so the key never reaches a disk.
    shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None  # noqa: S108
    with tempfile.TemporaryDirectory(prefix="nextauth-tls-", dir=shm) as folder:
        os.chmod(folder, 0o700)
        key_path, cert_path = Path(folder) / "key.pem", Path(folder) / "cert.pem"
        for path, data in ((key_path, material.key_pem), (cert_path, material.certificate_pem)):
            write_private(path, data)
        context.load_cert_chain(cert_path, key_path)


def server_context(
    material: TLSMaterial, *, client_auth: str = "none", client_ca_pem: bytes | None = None
) -> ssl.SSLContext:
    context = _base(ssl.Purpose.CLIENT_AUTH)
    _load_chain(context, material)
    if client_auth == "none":
        context.verify_mode = ssl.CERT_NONE
    else:
        if client_ca_pem is None:
            raise ValueError("client certificates need trust anchors (HTTP_CLIENT_CA)")
        context.load_verify_locations(cadata=client_ca_pem.decode("ascii"))
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def client_context(
    *, ca_pem: bytes | None = None, certificate: TLSMaterial | None = None, check_hostname: bool = True
) -> ssl.SSLContext:
    context = _base(ssl.Purpose.SERVER_AUTH)
    if ca_pem is not None:
        context.load_verify_locations(cadata=ca_pem.decode("ascii"))
    context.check_hostname = check_hostname
    if certificate is not None:
        _load_chain(context, certificate)
    return context


def peer_certificate_sha256(sock: ssl.SSLSocket) -> str | None:
    """Hex SHA-256 of the peer's DER certificate: the name a client certificate is listed under."""
    der = sock.getpeercert(binary_form=True)
    return hashlib.sha256(der).hexdigest() if der else None
