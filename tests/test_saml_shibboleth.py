"""The IdP against Shibboleth SP 3: a real Apache with mod_shib and shibd on loopback (tests/saml_sp/
shibboleth.py), configured from the IdP's metadata and registered with `nextauth saml-sp add` from the
metadata it generates; headless Chromium logs in with a QR the phone simulator approves, and the protected
page shows what mod_shib exported. Signed assertions, then signed and encrypted ones.

The unit tests at the end check what Shibboleth is strict about and lenient SPs (python3-saml) let pass: an
encrypted assertion must decrypt to exactly one element.
"""

import base64
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID
from defusedxml.ElementTree import fromstring
from defusedxml.minidom import parseString

from tests.fixtures.flows import PIN, enrol
from tests.fixtures.idp_browser import Browser, idp_cli
from tests.fixtures.system import RunningSystem, run_app, start_system, stop_system
from tests.saml_sp import shibboleth

XENC = "{http://www.w3.org/2001/04/xmlenc#}"
SAML = "{urn:oasis:names:tc:SAML:2.0:assertion}"
ELEMENT = '<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion"/>'


# -- Shibboleth SP 3 against the running system ------------------------------------------------------


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSystem]:
    running = start_system(tmp_path_factory.mktemp("shib-system"))
    yield running
    stop_system(running)
    assert running.process.returncode == 0, running.log()


@pytest.fixture(scope="module")
def phone(system: RunningSystem, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("shib-phone")
    assert run_app(home, "init", "--config", str(system.data_dir / "app-config.json"))[0] == 0
    assert run_app(home, "register", "--pin", PIN)[0] == 0
    enrol(system, home, "sam")
    idp_cli(
        system,
        *("user", "set", "sam", "--name", "Sam Example", "--email", "sam@example.org"),
        *("--email-verified", "--groups", "staff,admins"),
    )
    return home


@pytest.fixture(scope="module")
def shib(system: RunningSystem) -> Iterator[shibboleth.ShibbolethSP]:
    missing = shibboleth.available()
    if missing is not None:
        if os.environ.get("NEXTAUTH_TEST_REQUIRE_SERVICES") == "1":
            pytest.fail(missing)
        pytest.skip(missing)
    web = Browser(system)
    metadata = web.get("/saml/metadata")
    web.close()
    assert metadata.status_code == 200
    with shibboleth.running(metadata.text, f"{web.base}/saml/metadata") as sp:
        yield sp


def shib_login(
    browser: Any, sp: shibboleth.ShibbolethSP, phone: Path, path: str = "/secure/attributes"
) -> tuple[dict[str, str], str]:
    """A fresh browser opens the protected page, logs in at the IdP with the phone, and comes back.
    Returns what the page showed (name -> value) and the SAML Response the browser carried."""
    context = browser.new_context()
    page = context.new_page()
    posted: list[str] = []
    acs = sp.url("/Shibboleth.sso/SAML2/POST")
    page.on("request", lambda r: posted.append(r.post_data or "") if r.url == acs else None)
    try:
        page.goto(sp.url(path))
        page.wait_for_selector("#qr svg")
        assert run_app(phone, "scan", page.get_attribute("#qr", "data-qrdata"), "--pin", PIN)[0] == 0
        page.wait_for_url(sp.url(path), timeout=20000)
        text = page.inner_text("body")
    except Exception as exc:
        raise AssertionError(f"{exc}\n{page.content()[:2000]}\n{sp.log()}") from exc
    finally:
        context.close()
    assert posted, "the browser posted no SAML Response to Shibboleth"
    response = base64.b64decode(parse_qs(posted[-1])["SAMLResponse"][0]).decode()
    shown = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    return shown, response


def check_user(shown: dict[str, str], system: RunningSystem, name_id: str = "persistent") -> None:
    base = f"http://127.0.0.1:{system.port('idp', 'http')}"
    assert shown.get("AUTH_TYPE") == "shibboleth", shown
    assert shown.get("REMOTE_USER") == "sam"
    assert shown.get("Shib_Identity_Provider") == f"{base}/saml/metadata"
    assert shown.get("uid") == "sam"
    assert shown.get("displayName") == "Sam Example"
    assert shown.get("mail") == "sam@example.org"
    assert shown.get("isMemberOf") == "staff;admins"  # Shibboleth joins values with ';'
    if name_id == "persistent":
        assert len(shown.get("persistent_id", "")) == 43  # the pseudonym, not the user id
        assert "transient_id" not in shown
    else:
        assert shown.get("transient_id", "").startswith("_") and "persistent_id" not in shown
    assert (
        shown.get("Shib_AuthnContext_Class")
        == "urn:oasis:names:tc:SAML:2.0:ac:classes:MobileTwoFactorContract"
    )


def test_shibboleth_sp_signed_assertion(
    system: RunningSystem, phone: Path, shib: shibboleth.ShibbolethSP, browser: Any
) -> None:
    registered = idp_cli(
        system,
        "saml-sp",
        "add",
        "--metadata",
        "-",
        "--attributes",
        "uid,name,mail,groups",
        stdin=shib.metadata(),
    )
    assert registered["entity_id"] == shib.entity_id and registered["authn_requests_signed"] is True
    shown, response = shib_login(browser, shib, phone)
    assert "<saml:Assertion" in response and "EncryptedAssertion" not in response
    check_user(shown, system)


def test_shibboleth_sp_signed_and_encrypted_assertion(
    system: RunningSystem, phone: Path, shib: shibboleth.ShibbolethSP, browser: Any
) -> None:
    idp_cli(
        system,
        "saml-sp",
        "add",
        "--metadata",
        "-",
        "--attributes",
        "uid,name,mail,groups",
        "--encrypt",
        stdin=shib.metadata(),
    )
    shown, response = shib_login(browser, shib, phone)
    assert "<saml:EncryptedAssertion" in response and "<saml:Assertion" not in response
    assert ">sam<" not in response
    check_user(shown, system)


def test_shibboleth_sp_asking_for_transient_gets_it(
    system: RunningSystem, phone: Path, shib: shibboleth.ShibbolethSP, browser: Any
) -> None:
    """Registered for persistent (its metadata declares no format), asking for transient: less, so given."""
    registered = idp_cli(
        system,
        "saml-sp",
        "add",
        "--metadata",
        "-",
        "--attributes",
        "uid,name,mail,groups",
        stdin=shib.metadata(),
    )
    assert registered["name_id_format"] == "persistent"
    shown, response = shib_login(browser, shib, phone, "/transient/attributes")
    assert 'Format="urn:oasis:names:tc:SAML:2.0:nameid-format:transient"' in response
    check_user(shown, system, name_id="transient")


# -- the encrypted assertion as Shibboleth decrypts it -------------------------------------------------


def self_signed(name: str) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
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
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return key, certificate


def decrypt(encrypted_xml: str, key: rsa.RSAPrivateKey) -> bytes:
    """What an SP does with our EncryptedAssertion: unwrap the AES key with RSA-OAEP, open AES-GCM."""
    root = fromstring(encrypted_xml)
    assert root.tag == f"{SAML}EncryptedAssertion"
    data = root.find(f"{XENC}EncryptedData")
    assert data is not None and data.get("Type") == "http://www.w3.org/2001/04/xmlenc#Element"
    wrapped = root.findtext(f".//{XENC}EncryptedKey/{XENC}CipherData/{XENC}CipherValue")
    sealed = data.findtext(f"{XENC}CipherData/{XENC}CipherValue")
    assert wrapped and sealed
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)  # noqa: S303
    content_key = key.decrypt(base64.b64decode(wrapped), oaep)
    raw = base64.b64decode(sealed)
    return AESGCM(content_key).decrypt(raw[:12], raw[12:], None)


def signed_assertion() -> str:
    """An assertion as the IdP signs it (xmlsec1, through pysaml2), before encryption."""
    from idp.keys import LoadedKey, _self_signed
    from idp.saml import assertion
    from idp.saml.xmlsecurity import XmlSecurity
    from idp.sessions import SignedInUser

    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key = LoadedKey(
        kid="test-saml",
        purpose="saml",
        alg="RS256",
        private_key=private_key,
        jose=None,  # type: ignore[arg-type]  # not used for XML signatures
        certificate=_self_signed(private_key, "test IdP"),
        created_at=datetime.now(UTC),
        retired_at=None,
    )
    now = datetime.now(UTC)
    user = SignedInUser(
        sid="sid",
        sub="sam",
        name="Sam Example",
        email="sam@example.org",
        email_verified=True,
        groups=("staff",),
        amr=("hwk",),
        acr="2",
        method="qr",
        auth_time=int(now.timestamp()),
        expires_at=int(now.timestamp()) + 3600,
    )
    built = assertion.build_assertion(
        idp_entity_id="https://idp.example/saml/metadata",
        sp_entity_id="https://sp.example/shibboleth",
        acs_url="https://sp.example/Shibboleth.sso/SAML2/POST",
        in_response_to="_request",
        subject=assertion.Subject("_transient", "urn:oasis:names:tc:SAML:2.0:nameid-format:transient", "_s"),
        user=user,
        class_ref="urn:oasis:names:tc:SAML:2.0:ac:classes:MobileTwoFactorContract",
        released=("uid",),
        now=now,
    )
    return assertion.sign(built, XmlSecurity(key))


def test_encrypted_assertion_decrypts_to_exactly_one_element() -> None:
    from idp.saml import xmlenc

    signed = signed_assertion()
    sp_key, sp_certificate = self_signed("sp")
    plaintext = decrypt(xmlenc.encrypted_assertion(signed, sp_certificate), sp_key).decode("utf-8")
    # No text node before or after the element: the first and last characters are its own tags.
    assert plaintext.startswith("<saml:Assertion ") and plaintext.endswith("</saml:Assertion>")
    # As Shibboleth checks it: the decrypted document has one child node, the assertion.
    nodes = parseString(plaintext).childNodes
    assert len(nodes) == 1 and nodes[0].nodeType == nodes[0].ELEMENT_NODE
    assert (nodes[0].namespaceURI, nodes[0].localName) == (SAML[1:-1], "Assertion")
    assert plaintext == signed  # exactly the signed element, nothing added or lost


def test_a_signed_assertion_has_no_text_around_it() -> None:
    signed = signed_assertion()
    assert signed == signed.strip() and not signed.startswith("<?xml")


@pytest.mark.parametrize(
    "plaintext",
    [
        f'<?xml version="1.0"?>{ELEMENT}',
        f"text{ELEMENT}",
        f"{ELEMENT}text",
        f"{ELEMENT}<!-- a comment -->",
        ELEMENT + ELEMENT,
        "",
    ],
)
def test_only_one_element_is_encrypted(plaintext: str) -> None:
    from idp.saml import xmlenc

    _, sp_certificate = self_signed("sp")
    with pytest.raises(ValueError, match="single element"):
        xmlenc.encrypted_assertion(plaintext, sp_certificate)


def test_whitespace_around_the_element_is_not_encrypted() -> None:
    from idp.saml import xmlenc

    sp_key, sp_certificate = self_signed("sp")
    encrypted = xmlenc.encrypted_assertion(f"\n{ELEMENT}\n", sp_certificate)
    assert decrypt(encrypted, sp_key) == ELEMENT.encode()
