"""An example web application that logs its users in through the nextAuth IdP with SAML 2.0.

It uses python3-saml (OneLogin): signed AuthnRequests over HTTP-Redirect, a signed response and
assertion posted back, attributes from the IdP, and single logout. Its key and certificate are made on
first start and kept in EXAMPLE_SP_DIR, so its metadata stays the same across restarts. Settings:

    EXAMPLE_IDP      the IdP's address, e.g. http://127.0.0.1:8000
    EXAMPLE_LISTEN   host:port to serve on (default 127.0.0.1:5001)
    EXAMPLE_SP_DIR   where its key and certificate live (default .nextauth/example-sp)

Register it at the IdP with its metadata, then open it:

    curl -s http://127.0.0.1:5001/metadata \
      | nextauth saml-sp add --metadata - --attributes uid,name,email,groups
"""

import os
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from flask import Flask, Response, redirect, request, session
from markupsafe import escape
from onelogin.saml2.auth import OneLogin_Saml2_Auth
from onelogin.saml2.idp_metadata_parser import OneLogin_Saml2_IdPMetadataParser
from onelogin.saml2.metadata import OneLogin_Saml2_Metadata
from onelogin.saml2.settings import OneLogin_Saml2_Settings

PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"


def key_and_certificate(folder: Path) -> tuple[str, str]:
    """The SP's RSA key and self-signed certificate (PEM), made once."""
    key_file, cert_file = folder / "sp-key.pem", folder / "sp-cert.pem"
    if not key_file.exists():
        folder.mkdir(parents=True, exist_ok=True)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "nextAuth example SP")])
        now = datetime.now(UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=3650))
            .sign(key, hashes.SHA256())
        )
        descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
        cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return key_file.read_text(), cert_file.read_text()


def create_app(idp_url: str, base_url: str, key_dir: Path) -> Flask:
    app = Flask("example-saml-sp")
    app.secret_key = secrets.token_bytes(32)
    app.config.update(SESSION_COOKIE_NAME="example_sp", SESSION_COOKIE_SAMESITE="Lax")
    private_key, certificate = key_and_certificate(key_dir)
    idp: dict[str, Any] = {}

    def settings() -> OneLogin_Saml2_Settings:
        if not idp:  # the IdP's metadata, read when first needed (the IdP may start after us)
            idp.update(OneLogin_Saml2_IdPMetadataParser.parse_remote(f"{idp_url.rstrip('/')}/saml/metadata"))
        return OneLogin_Saml2_Settings(
            {
                "strict": True,
                "sp": {
                    "entityId": f"{base_url}/metadata",
                    "assertionConsumerService": {
                        "url": f"{base_url}/acs",
                        "binding": "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST",
                    },
                    "singleLogoutService": {
                        "url": f"{base_url}/sls",
                        "binding": "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect",
                    },
                    "NameIDFormat": PERSISTENT,
                    "x509cert": certificate,
                    "privateKey": private_key,
                },
                "idp": idp["idp"],
                "security": {
                    "authnRequestsSigned": True,
                    "logoutRequestSigned": True,
                    "logoutResponseSigned": True,
                    "wantAssertionsSigned": True,
                    "wantMessagesSigned": True,
                    "wantNameId": True,
                    # Ask for no particular method: the IdP says which it used (MobileTwoFactorContract).
                    "requestedAuthnContext": False,
                    "signatureAlgorithm": "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
                    "digestAlgorithm": "http://www.w3.org/2001/04/xmlenc#sha256",
                    "rejectDeprecatedAlgorithm": True,
                },
            },
            sp_validation_only=False,
        )

    def auth() -> OneLogin_Saml2_Auth:
        return OneLogin_Saml2_Auth(
            {
                "https": "on" if base_url.startswith("https://") else "off",
                "http_host": request.host,
                "script_name": request.path,
                "get_data": request.args.copy(),
                "post_data": request.form.copy(),
                "query_string": request.query_string.decode(),
            },
            settings(),
        )

    @app.get("/")
    def home() -> str:
        user = session.get("user")
        if user is None:
            return '<h1>Example SAML app</h1><p><a id="login" href="/login">Log in with nextAuth</a></p>'
        attributes = "; ".join(
            f"{escape(k)}: {escape(', '.join(v))}" for k, v in sorted(user["attributes"].items())
        )
        return (
            f'<h1 id="hello">Hello, {escape(user["name_id"])}</h1><p>{attributes}</p>'
            f'<p>how: {escape(user["context"])}</p><p><a id="logout" href="/logout">Log out</a></p>'
        )

    @app.get("/metadata")
    def metadata() -> Response:
        # Valid for a year: registered metadata that expires would stop the logins.
        sp = settings().get_sp_data()
        xml = OneLogin_Saml2_Metadata.builder(
            sp, authnsign=True, wsign=True, valid_until=datetime.now(UTC) + timedelta(days=365)
        )
        xml = OneLogin_Saml2_Metadata.add_x509_key_descriptors(xml, certificate)
        return Response(xml, mimetype="application/samlmetadata+xml")

    @app.get("/login")
    def login() -> Any:
        return redirect(auth().login(return_to=f"{base_url}/"))

    @app.post("/acs")
    def acs() -> Any:
        saml = auth()
        saml.process_response()
        if saml.get_errors() or not saml.is_authenticated():
            return f"<h1>Login failed</h1><p>{escape(saml.get_last_error_reason() or '')}</p>", 400
        session["user"] = {
            "name_id": saml.get_nameid(),
            "session_index": saml.get_session_index(),
            "attributes": saml.get_friendlyname_attributes() or saml.get_attributes(),
            "context": ", ".join(saml.get_last_authn_contexts()),
        }
        return redirect("/")

    @app.get("/logout")
    def logout() -> Any:
        user = session.get("user") or {}
        return redirect(
            auth().logout(
                return_to=f"{base_url}/",
                name_id=user.get("name_id"),
                session_index=user.get("session_index"),
                name_id_format=PERSISTENT,
            )
        )

    @app.get("/sls")
    def sls() -> Any:
        saml = auth()
        target = saml.process_slo(delete_session_cb=session.clear)
        if saml.get_errors():
            return f"<h1>Logout failed</h1><p>{escape(saml.get_last_error_reason() or '')}</p>", 400
        return redirect(target or "/")

    return app


def main() -> None:
    host, _, port = os.environ.get("EXAMPLE_LISTEN", "127.0.0.1:5001").rpartition(":")
    app = create_app(
        os.environ.get("EXAMPLE_IDP", "http://127.0.0.1:8000"),
        f"http://{host}:{port}",
        Path(os.environ.get("EXAMPLE_SP_DIR", ".nextauth/example-sp")),
    )
    print(f"Example SAML SP on http://{host}:{port}/ (metadata at /metadata)")
    app.run(host=host, port=int(port))


if __name__ == "__main__":
    main()
