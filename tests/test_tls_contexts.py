"""TLS 1.3 only, for real, over loopback sockets; client certificate modes."""

import socket
import ssl
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from authserver import tls
from authserver.config import TLSMaterial
from tests.fixtures.tls import issue, make_ca


def _material(key: str, certificate: str) -> TLSMaterial:
    return TLSMaterial(key.encode(), certificate.encode(), "K", "C")


class TLSServer:
    """A loopback server that completes TLS handshakes and records each peer's certificate fingerprint."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.fingerprints: list[str | None] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return
            try:
                with self.context.wrap_socket(raw, server_side=True) as conn:
                    self.fingerprints.append(tls.peer_certificate_sha256(conn))
                    conn.sendall(b"ok")
            except (ssl.SSLError, OSError):
                raw.close()

    def connect(self, context: ssl.SSLContext) -> bytes:
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as raw:
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as conn:
                return conn.recv(2)

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def pki() -> dict[str, object]:
    ca_key, ca = make_ca()
    return {"ca_key": ca_key, "ca": ca, "server": issue(ca_key, ca, "server")}


def test_tls13_client_connects_and_tls12_is_refused(pki: dict) -> None:
    server = TLSServer(tls.server_context(_material(*pki["server"])))
    try:
        assert server.connect(tls.client_context(ca_pem=pki["ca"].encode())) == b"ok"
        old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        old.load_verify_locations(cadata=pki["ca"])
        old.maximum_version = ssl.TLSVersion.TLSv1_2
        with pytest.raises(ssl.SSLError):
            server.connect(old)
    finally:
        server.close()


def test_contexts_allow_nothing_below_tls13(pki: dict) -> None:
    for context in (tls.server_context(_material(*pki["server"])), tls.client_context()):
        assert context.minimum_version is ssl.TLSVersion.TLSv1_3
        assert context.maximum_version is ssl.TLSVersion.TLSv1_3


def test_required_ca_mode_accepts_only_certificates_of_that_ca(pki: dict) -> None:
    context = tls.server_context(
        _material(*pki["server"]), client_auth="required-ca", client_ca_pem=pki["ca"].encode()
    )
    server = TLSServer(context)
    try:
        client_key, client_cert = issue(pki["ca_key"], pki["ca"], "app-1")
        good = tls.client_context(ca_pem=pki["ca"].encode(), certificate=_material(client_key, client_cert))
        assert server.connect(good) == b"ok"
        expected = x509.load_pem_x509_certificate(client_cert.encode()).fingerprint(hashes.SHA256()).hex()
        assert server.fingerprints[-1] == expected
        stranger_key, stranger_ca = make_ca()
        foreign = tls.client_context(
            ca_pem=pki["ca"].encode(), certificate=_material(*issue(stranger_key, stranger_ca, "intruder"))
        )
        anonymous = tls.client_context(ca_pem=pki["ca"].encode())
        for refused in (foreign, anonymous):
            with pytest.raises((ssl.SSLError, ConnectionError)):
                assert server.connect(refused) != b"ok"
    finally:
        server.close()


def test_none_mode_asks_for_no_certificate(pki: dict) -> None:
    server = TLSServer(tls.server_context(_material(*pki["server"]), client_auth="none"))
    try:
        client = tls.client_context(
            ca_pem=pki["ca"].encode(), certificate=_material(*issue(pki["ca_key"], pki["ca"], "app"))
        )
        assert server.connect(client) == b"ok"
        assert server.fingerprints == [None]
    finally:
        server.close()
