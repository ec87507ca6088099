"""A pysaml2 service provider whose SingleLogoutService speaks the SOAP binding, on a real loopback server:
it logs in through the IdP with pysaml2's own AuthnRequest and response handling, and answers each SOAP
LogoutRequest (checked by pysaml2 against the IdP's metadata) with a LogoutResponse pysaml2 signs."""

import base64
import re
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, BINDING_SOAP
from saml2.client import Saml2Client
from saml2.config import SPConfig
from saml2.metadata import entity_descriptor
from saml2.s_utils import success_status_factory
from saml2.samlp import STATUS_SUCCESS

from tests.saml_sp import key_and_certificate

RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
SOAP_ENVELOPE = "http://schemas.xmlsoap.org/soap/envelope/"


def _pem_files(directory: Path) -> tuple[str, str]:
    key_b64, cert_b64 = key_and_certificate("pysaml2-sp")
    key = serialization.load_der_private_key(base64.b64decode(key_b64), password=None)
    key_file, cert_file = directory / "sp.key", directory / "sp.crt"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    lines = [cert_b64[i : i + 64] for i in range(0, len(cert_b64), 64)]
    cert_file.write_text("-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n")
    return str(key_file), str(cert_file)


class Pysaml2SoapSp:
    def __init__(self, host: str, idp_metadata: str, *, answer: str = "success") -> None:
        """``answer``: "success" (signed) or "unsigned" (a Success nobody signed: must not count)."""
        self.host = host
        self.entity_id = f"https://{host}/metadata"
        self.answer = answer
        self.received: list[bytes] = []
        self.answered: list[str] = []
        self._directory = Path(tempfile.mkdtemp(prefix="pysaml2-sp-"))
        key_file, cert_file = _pem_files(self._directory)
        (self._directory / "idp.xml").write_text(idp_metadata)
        sp = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                sp.received.append(body)
                try:
                    answer, status = sp.logout_response(body), 200
                except Exception as exc:
                    sp.answered.append(f"error: {type(exc).__name__}: {exc}")
                    answer, status = b"", 500
                self.send_response(status)
                self.send_header("Content-Type", "text/xml; charset=utf-8")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.soap_url = f"http://127.0.0.1:{self._server.server_port}/slo/soap"
        self.config = SPConfig()
        self.config.load(
            {
                "entityid": self.entity_id,
                "key_file": key_file,
                "cert_file": cert_file,
                "metadata": {"local": [str(self._directory / "idp.xml")]},
                "signing_algorithm": RSA_SHA256,
                "digest_algorithm": SHA256,
                "service": {
                    "sp": {
                        "endpoints": {
                            "assertion_consumer_service": [(f"https://{host}/acs", BINDING_HTTP_POST)],
                            "single_logout_service": [(self.soap_url, BINDING_SOAP)],
                        },
                        "authn_requests_signed": True,
                        "logout_requests_signed": True,
                        "want_response_signed": False,
                        "want_assertions_signed": True,
                        "allow_unsolicited": False,
                    }
                },
            }
        )
        self.client = Saml2Client(self.config)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def metadata(self) -> str:
        return str(entity_descriptor(self.config))

    def login_url(self) -> tuple[str, str]:
        """A signed HTTP-Redirect AuthnRequest (pysaml2's), and its ID."""
        request_id, info = self.client.prepare_for_authenticate(
            relay_state="/", binding=BINDING_HTTP_REDIRECT, sign=True, sigalg=RSA_SHA256
        )
        return dict(info["headers"])["Location"], request_id

    def consume(self, fields: dict[str, str], request_id: str) -> Any:
        return self.client.parse_authn_request_response(
            fields["SAMLResponse"], BINDING_HTTP_POST, outstanding={request_id: "/"}
        )

    def logout_response(self, soap: bytes) -> bytes:
        # pysaml2's SOAP parsing re-serialises the request with new namespace prefixes, which breaks the
        # signature of any message not written by pysaml2; the request's own text goes to its POST parser.
        start = soap.index(b"<samlp:LogoutRequest")
        end = soap.index(b"</samlp:LogoutRequest>") + len(b"</samlp:LogoutRequest>")
        encoded = base64.b64encode(soap[start:end]).decode()
        request = self.client.parse_logout_request(encoded, BINDING_HTTP_POST)
        message = request.message
        if message.signature is None:  # pysaml2 checks a signature that is there; this SP wants one
            raise ValueError("unsigned LogoutRequest")
        response = self.client.create_logout_response(
            message,
            [BINDING_SOAP],
            status=success_status_factory(),
            sign=self.answer == "success",
            sign_alg=RSA_SHA256,
            digest_alg=SHA256,
        )
        # A signed response comes back as text (pysaml2's envelope helper takes only objects).
        xml = re.sub(r"^<\?xml[^>]*\?>", "", str(response)).strip()
        self.answered.append(f"{STATUS_SUCCESS} to {message.id}")
        return (
            f'<soap11:Envelope xmlns:soap11="{SOAP_ENVELOPE}"><soap11:Body>{xml}'
            "</soap11:Body></soap11:Envelope>"
        ).encode()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
