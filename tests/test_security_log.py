"""Security events reach the log once, at WARNING, with the reason and without secrets: an SFS app instance
locked by wrong PINs, an attestation ns refuses, a SAML signature the IdP refuses (without pysaml2's ERROR
and xmlsec1's output). See docs/security.md, "Security events in the log"."""

import base64
import logging
import os
import re
import shutil
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from authserver.ns.login import LoginService
from authserver.ns.servers import ServerRegistry
from authserver.operations import ChannelContext, OperationError
from authserver.sfs.flows import SecondFactorService
from authserver.storage import db
from authserver.storage.flow_models import Account, AppInstance
from authserver.storage.kv import open_kv
from nextauth_core import attestation
from sigmai import DeviceIdentity
from tests.fixtures.idp_offline import offline_idp_services

SECURITY = "nextauth.security"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    made = db.create_engine_for(f"sqlite:///{tmp_path / 'nextauth.db'}")
    db.upgrade(made)
    yield made
    made.dispose()


def _context(device: DeviceIdentity) -> ChannelContext:
    return ChannelContext(
        component="sfs",
        peer=device.peer_key,
        server_key_hash=bytes(32),
        transcript_hash=bytes(32),
        export=lambda label, context, length: bytes(length),
    )


def _warnings(caplog: pytest.LogCaptureFixture, name: str = SECURITY) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == name and r.levelno == logging.WARNING]


def test_sfs_lockout_is_logged_once(engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    device = DeviceIdentity.generate()
    with Session(engine) as session:
        session.add(
            AppInstance(
                device_thumbprint=device.peer_key.thumbprint(),
                oprf_key=bytes(32),
                pin_verifier=b"verifier",
                failures=3,
            )
        )
        session.commit()
    service = SecondFactorService(engine, ed25519.Ed25519PrivateKey.generate(), "sfs", max_attempts=3)
    blinded = {"blinded_element": base64.urlsafe_b64encode(bytes(32)).rstrip(b"=").decode()}
    caplog.set_level(logging.INFO)
    for _ in range(3):  # the guess that locks, and two more on the locked app
        with pytest.raises(OperationError, match="locked"):
            service.pin_evaluate(_context(device), blinded)
    (record,) = _warnings(caplog)
    assert device.peer_key.thumbprint() in record.getMessage()
    assert "locked" in record.getMessage() and "3 wrong PINs" in record.getMessage()


def test_refused_attestation_is_logged_once_without_the_token(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    sfs = ed25519.Ed25519PrivateKey.generate()
    trusted = {"sfs": {attestation.key_id(sfs.public_key()): sfs.public_key()}}
    login = LoginService(engine, open_kv(None), ServerRegistry(engine), trusted, "ws://x/")
    account = Account(
        id="acct-1", server_id="default", thumbprint="thumb-1", sfs_key_hash="sfs", sfs_device="device-1"
    )
    challenge = b"c" * 32
    token = attestation.issue(
        sfs,
        issuer="sfs",
        audience="default",
        nonce=attestation.nonce_for(challenge),
        purpose="login",
        method="pin",
        account_thumbprint="another-account-key",
        device="device-1",
    )
    caplog.set_level(logging.INFO)
    with pytest.raises(OperationError, match="another account key"):
        login.check_attestation(token, account, "default", challenge, "login")
    with pytest.raises(OperationError, match="signature or format"):
        login.check_attestation("garbage." + token, account, "default", challenge, "login")
    first, second = _warnings(caplog)
    assert "acct-1" in first.getMessage() and "another account key" in first.getMessage()
    assert "signature or format" in second.getMessage()
    for record in (first, second):
        assert token not in record.getMessage() and token.split(".")[1] not in record.getMessage()


def test_replayed_attestation_is_logged(engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    sfs = ed25519.Ed25519PrivateKey.generate()
    trusted = {"sfs": {attestation.key_id(sfs.public_key()): sfs.public_key()}}
    login = LoginService(engine, open_kv(None), ServerRegistry(engine), trusted, "ws://x/")
    account = Account(
        id="acct-2", server_id="default", thumbprint="thumb-2", sfs_key_hash="sfs", sfs_device="device-1"
    )
    challenge = b"d" * 32
    token = attestation.issue(
        sfs,
        issuer="sfs",
        audience="default",
        nonce=attestation.nonce_for(challenge),
        purpose="sign",
        method="pin",
        account_thumbprint="thumb-2",
        device="device-1",
    )
    assert login.check_attestation(token, account, "default", challenge, "sign").method == "pin"
    caplog.set_level(logging.INFO)
    with pytest.raises(OperationError, match="used before"):
        login.check_attestation(token, account, "default", challenge, "sign")
    (record,) = _warnings(caplog)
    assert "used before" in record.getMessage() and "acct-2" in record.getMessage()


# -- SAML ------------------------------------------------------------------------------------------------


@pytest.fixture
def saml_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any]]:
    """The IdP in-process (so that caplog sees its log), with one SP registered."""
    if shutil.which("xmlsec1") is None:
        pytest.skip("xmlsec1 is not installed (apt-get install xmlsec1)")
    from onelogin.saml2.idp_metadata_parser import OneLogin_Saml2_IdPMetadataParser

    from idp.saml.registry import Registry
    from idp.web import create_app
    from tests.saml_sp import ServiceProvider

    for name in [name for name in os.environ if name.startswith("NEXTAUTH_IDP_")]:
        monkeypatch.delenv(name)
    issuer = "https://idp.example.test"
    monkeypatch.setenv("NEXTAUTH_IDP_ISSUER", issuer)
    services = offline_idp_services(tmp_path / "idp.db", issuer)
    app = create_app(services, secret_key=b"k" * 32, websocket_url="ws://127.0.0.1:9/ns/websocket")
    client = app.test_client()
    metadata = client.get("/saml/metadata").get_data(as_text=True)
    sp = ServiceProvider("sp1.example", OneLogin_Saml2_IdPMetadataParser.parse(metadata)["idp"])
    Registry(services.engine).add(sp.metadata())
    yield client, sp
    services.engine.dispose()


def test_forged_saml_signature_is_one_warning_without_xmlsec_output(
    saml_app: tuple[Any, Any], caplog: pytest.LogCaptureFixture
) -> None:
    from onelogin.saml2.authn_request import OneLogin_Saml2_Authn_Request
    from onelogin.saml2.utils import OneLogin_Saml2_Utils as Utils

    client, sp = saml_app
    redirect_url = sp.idp["singleSignOnService"]["url"]
    post_url = redirect_url.replace("/redirect", "/post")
    xml = OneLogin_Saml2_Authn_Request(sp.settings).get_xml()
    xml = xml.replace(f'Destination="{redirect_url}"', f'Destination="{post_url}"')
    key, certificate = sp.key
    signed = Utils.add_sign(xml, Utils.format_private_key(key), Utils.format_cert(certificate)).decode()
    issued = re.search(r'IssueInstant="([^"]+)"', signed).group(1)  # type: ignore[union-attr]
    earlier = (datetime.fromisoformat(issued) - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    forged = signed.replace(issued, earlier, 1)  # still fresh, no longer what was signed
    caplog.set_level(logging.DEBUG)
    path = post_url.split("idp.example.test", 1)[1]
    response = client.post(path, data={"SAMLRequest": base64.b64encode(forged.encode()).decode()})
    assert response.status_code == 403
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    (warning,) = warnings
    assert warning.levelno == logging.WARNING
    text = warning.getMessage()
    assert "does not verify" in text and "signature refused for SP https://sp1.example/metadata" in text
    assert "xmlsec1" not in text and "--verify" not in text and "<" not in text
    assert not [r for r in caplog.records if r.name.startswith("saml2") and r.levelno >= logging.ERROR]


def test_forged_redirect_signature_is_one_warning_naming_the_sp(
    saml_app: tuple[Any, Any], caplog: pytest.LogCaptureFixture
) -> None:
    client, sp = saml_app
    url, _ = sp.login_url(return_to="/ok")
    forged = url.replace("RelayState=%2Fok", "RelayState=%2Fevil")
    caplog.set_level(logging.DEBUG)
    response = client.get(forged.split("idp.example.test", 1)[1])
    assert response.status_code == 403
    (warning,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert warning.levelno == logging.WARNING
    text = warning.getMessage()
    assert "signature refused: query signature invalid (SP https://sp1.example/metadata)" in text
