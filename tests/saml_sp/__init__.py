"""A SAML service provider for the IdP tests that is not pysaml2: python3-saml (OneLogin), with its own key
and certificate, configured from the IdP's published metadata. The tests' HTTP client plays the browser and
hands the SP what the browser would post to it; only the SOAP logout endpoint is a real server."""

import base64
import html
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from onelogin.saml2.auth import OneLogin_Saml2_Auth
from onelogin.saml2.settings import OneLogin_Saml2_Settings

REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
SOAP = "urn:oasis:names:tc:SAML:2.0:bindings:SOAP"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
RSA_SHA1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
FORM_ACTION = re.compile(r'<form id="saml-post" method="post" action="([^"]+)"')
FORM_FIELD = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


def key_and_certificate(name: str) -> tuple[str, str]:
    """A new RSA key and self-signed certificate, as python3-saml wants them (base64, no PEM lines)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    key_der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    cert_der = certificate.public_bytes(serialization.Encoding.DER)
    return base64.b64encode(key_der).decode(), base64.b64encode(cert_der).decode()


def post_form(page: str) -> tuple[str, dict[str, str]]:
    """The action and fields of the IdP's HTTP-POST binding page."""
    action = FORM_ACTION.search(page)
    assert action, page[:1000]
    return html.unescape(action.group(1)), {
        html.unescape(name): html.unescape(value) for name, value in FORM_FIELD.findall(page)
    }


@dataclass
class ServiceProvider:
    host: str  # https, never contacted: the test client hands the SP what a browser would post
    idp: dict[str, Any]  # from OneLogin_Saml2_IdPMetadataParser
    name_id_format: str = PERSISTENT
    encrypt: bool = False
    signature_algorithm: str = RSA_SHA256
    requested_authn_context: bool | list[str] = False
    entity_id: str | None = None
    acs_path: str = "/acs"
    soap_logout_url: str | None = None
    key: tuple[str, str] = field(default_factory=lambda: key_and_certificate("sp"))

    def __post_init__(self) -> None:
        self.entity_id = self.entity_id or f"https://{self.host}/metadata"

    @property
    def settings(self) -> OneLogin_Saml2_Settings:
        private_key, certificate = self.key
        return OneLogin_Saml2_Settings(
            {
                "strict": True,
                "sp": {
                    "entityId": self.entity_id,
                    "assertionConsumerService": {
                        "url": f"https://{self.host}{self.acs_path}",
                        "binding": POST,
                    },
                    "singleLogoutService": {"url": f"https://{self.host}/sls", "binding": REDIRECT},
                    "NameIDFormat": self.name_id_format,
                    "x509cert": certificate,
                    "privateKey": private_key,
                },
                "idp": self.idp,
                "security": {
                    "authnRequestsSigned": True,
                    "logoutRequestSigned": True,
                    "logoutResponseSigned": True,
                    "wantAssertionsSigned": True,
                    "wantMessagesSigned": True,
                    "wantAssertionsEncrypted": self.encrypt,
                    "wantNameId": True,
                    "requestedAuthnContext": self.requested_authn_context,
                    "signatureAlgorithm": self.signature_algorithm,
                    "digestAlgorithm": SHA256,
                    "rejectDeprecatedAlgorithm": True,
                },
            },
            sp_validation_only=False,
        )

    def metadata(self) -> str:
        xml = self.settings.get_sp_metadata().decode()
        if self.soap_logout_url:
            # python3-saml speaks front-channel logout only; the SOAP endpoint is the tests' own server.
            endpoint = f'<md:SingleLogoutService Binding="{SOAP}" Location="{self.soap_logout_url}"/>'
            xml = re.sub(r"<md:SingleLogoutService [^>]*/>", endpoint, xml, count=1)
        return xml

    def auth(
        self, path: str = "/login", get: dict[str, str] | None = None, post: dict[str, str] | None = None
    ):
        data = {
            "https": "on",
            "http_host": self.host,
            "script_name": path,
            "get_data": get or {},
            "post_data": post or {},
        }
        return OneLogin_Saml2_Auth(data, self.settings)

    def login_url(self, **kwargs: Any) -> tuple[str, str]:
        """A signed HTTP-Redirect AuthnRequest to the IdP, and its ID."""
        auth = self.auth()
        url = auth.login(return_to=kwargs.pop("return_to", "/after-login"), **kwargs)
        return url, auth.get_last_request_id()

    def consume(self, fields: dict[str, str], request_id: str | None) -> OneLogin_Saml2_Auth:
        """What the SP's AssertionConsumerService does with the posted response."""
        auth = self.auth(self.acs_path, post=fields)
        auth.process_response(request_id=request_id)
        return auth

    def handle_logout(
        self, url: str, request_id: str | None = None
    ) -> tuple[OneLogin_Saml2_Auth, str | None]:
        """The SP's SingleLogoutService with the IdP's redirect: errors, and where it sends the browser."""
        query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        auth = self.auth("/sls", get=query)
        return auth, auth.process_slo(keep_local_session=True, request_id=request_id)


class SoapLogoutServer:
    """An SP's SOAP SingleLogoutService: records each request body and answers Success."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                received.append(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                body = (
                    b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
                    b'<samlp:LogoutResponse xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="_r" '
                    b'Version="2.0" IssueInstant="2026-01-01T00:00:00Z"><samlp:Status><samlp:StatusCode '
                    b'Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>'
                    b"</samlp:LogoutResponse></s:Body></s:Envelope>"
                )
                self.send_response(200)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}/soap"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
