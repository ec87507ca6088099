"""NameID formats: what an SP's NameIDPolicy may ask for, what its metadata declares at registration, and
the SAML error Response (InvalidNameIDPolicy) posted back when the IdP cannot give what was asked. Also an
HTTP-Redirect request too long for a URL, which gets the IdP's error page over a real listener.

The end-to-end part runs the whole system with python3-saml SPs (tests/saml_sp); the rest are unit tests of
the rules.
"""

import base64
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from onelogin.saml2.idp_metadata_parser import OneLogin_Saml2_IdPMetadataParser

from idp.long_urls import MAX_DISCARDED, MAX_REQUEST_LINE
from idp.saml import nameid, spmetadata
from idp.saml.names import NAMEID_EMAIL, NAMEID_PERSISTENT, NAMEID_TRANSIENT, NAMEID_UNSPECIFIED
from idp.saml.registry import ServiceProvider as Registered
from idp.saml.registry import declared_name_id_format
from idp.saml.sso import PendingLogin, _name_id_format
from idp.sessions import SignedInUser
from tests.fixtures.flows import PIN, enrol
from tests.fixtures.idp_browser import Browser, idp_cli
from tests.fixtures.system import RunningSystem, run_app, start_system, stop_system
from tests.saml_sp import ServiceProvider, post_form

INVALID_POLICY = "urn:oasis:names:tc:SAML:2.0:status:InvalidNameIDPolicy"
KERBEROS = "urn:oasis:names:tc:SAML:2.0:nameid-format:kerberos"


# -- the rules -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("registered", "requested", "answer"),
    [
        ("persistent", None, "persistent"),
        ("persistent", NAMEID_UNSPECIFIED, "persistent"),
        ("persistent", NAMEID_PERSISTENT, "persistent"),
        ("persistent", NAMEID_TRANSIENT, "transient"),
        ("email", NAMEID_TRANSIENT, "transient"),
        ("email", NAMEID_PERSISTENT, "persistent"),
        ("email", NAMEID_EMAIL, "email"),
        ("transient", None, "transient"),
        # Asking for more than the registration allows, or for a format the IdP does not issue:
        ("transient", NAMEID_PERSISTENT, None),
        ("transient", NAMEID_EMAIL, None),
        ("persistent", NAMEID_EMAIL, None),
        ("email", KERBEROS, None),
        ("persistent", NAMEID_PERSISTENT + " ", None),
    ],
)
def test_an_sp_gets_what_it_asks_for_if_it_discloses_no_more(
    registered: str, requested: str | None, answer: str | None
) -> None:
    assert nameid.choose(registered, requested) == answer


def metadata_xml(*formats: str, entity_id: str = "https://sp.example/metadata") -> str:
    declared = "".join(f"<md:NameIDFormat> {uri}\n</md:NameIDFormat>" for uri in formats)
    return (
        f'<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="{entity_id}">'
        '<md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">'
        f"{declared}"
        '<md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" '
        'Location="https://sp.example/acs" index="0"/>'
        "</md:SPSSODescriptor></md:EntityDescriptor>"
    )


def test_metadata_name_id_formats_are_read_and_the_first_known_is_the_default() -> None:
    parsed = spmetadata.parse(metadata_xml(KERBEROS, NAMEID_TRANSIENT, NAMEID_EMAIL))
    assert parsed.name_id_formats == (KERBEROS, NAMEID_TRANSIENT, NAMEID_EMAIL)
    assert declared_name_id_format(parsed) == "transient"
    assert declared_name_id_format(spmetadata.parse(metadata_xml(NAMEID_EMAIL))) == "email"
    # None declared, or none the IdP issues: a pseudonym.
    assert declared_name_id_format(spmetadata.parse(metadata_xml())) == "persistent"
    assert declared_name_id_format(spmetadata.parse(metadata_xml(KERBEROS))) == "persistent"


def user(email: str | None = "sam@example.org", verified: bool = True) -> SignedInUser:
    now = int(time.time())
    return SignedInUser(
        sid="sid",
        sub="sam",
        name=None,
        email=email,
        email_verified=verified,
        groups=(),
        amr=(),
        acr="",
        method="qr",
        auth_time=now,
        expires_at=now + 3600,
    )


def pending(name_id_format: str | None, sp_name_qualifier: str | None = None) -> PendingLogin:
    return PendingLogin(
        sp="https://sp.example/metadata",
        request_id="_r",
        acs="https://sp.example/acs",
        relay_state=None,
        force_authn=False,
        is_passive=False,
        name_id_format=name_id_format,
        comparison=None,
        class_refs=(),
        received_at=time.time(),
        sp_name_qualifier=sp_name_qualifier,
    )


def registered(name_id_format: str) -> Registered:
    xml = metadata_xml()
    return Registered(spmetadata.parse(xml), xml, name_id_format, ("uid",), False, False)


def test_the_policy_check_gives_the_asked_format_or_says_why_not() -> None:
    email_sp = registered("email")
    assert _name_id_format(email_sp, pending(NAMEID_EMAIL), user()) == ("email", "")
    assert _name_id_format(email_sp, pending(NAMEID_TRANSIENT), user(None)) == ("transient", "")
    assert _name_id_format(registered("persistent"), pending(None), user()) == ("persistent", "")
    same_sp = pending(NAMEID_TRANSIENT, sp_name_qualifier="https://sp.example/metadata")
    assert _name_id_format(email_sp, same_sp, user()) == ("transient", "")


@pytest.mark.parametrize(
    ("sp_format", "login", "person", "why"),
    [
        ("persistent", pending(NAMEID_EMAIL), user(), "persistent NameIDs, not email"),
        ("transient", pending(NAMEID_PERSISTENT), user(), "transient NameIDs, not persistent"),
        ("email", pending(KERBEROS), user(), "not that format"),
        ("email", pending(NAMEID_EMAIL), user(None), "no verified e-mail"),
        ("email", pending(NAMEID_EMAIL), user(verified=False), "no verified e-mail"),
        ("email", pending(NAMEID_EMAIL), user("x" * 250 + "@a.example"), "no verified e-mail"),
        ("persistent", pending(None, "https://other.example/affiliation"), user(), "SPNameQualifier"),
    ],
)
def test_the_policy_check_refuses(
    sp_format: str, login: PendingLogin, person: SignedInUser, why: str
) -> None:
    chosen, reason = _name_id_format(registered(sp_format), login, person)
    assert chosen is None and why in reason


def test_an_old_pending_login_without_sp_name_qualifier_still_loads() -> None:
    stored = pending(NAMEID_TRANSIENT).dumps().replace(b', "sp_name_qualifier": null', b"")
    assert b"sp_name_qualifier" not in stored
    assert PendingLogin.loads(stored).sp_name_qualifier is None


# -- end to end with python3-saml SPs ------------------------------------------------------------------


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSystem]:
    running = start_system(tmp_path_factory.mktemp("nameid-system"))
    yield running
    stop_system(running)
    assert running.process.returncode == 0, running.log()


@pytest.fixture(scope="module")
def idp(system: RunningSystem) -> dict[str, Any]:
    web = Browser(system)
    metadata = web.get("/saml/metadata").text
    web.close()
    return OneLogin_Saml2_IdPMetadataParser.parse(metadata)["idp"]


@pytest.fixture(scope="module")
def web(
    system: RunningSystem, idp: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Browser]:
    """A browser logged in at the IdP (through a login at an SP that is then done with)."""
    phone: Path = tmp_path_factory.mktemp("nameid-phone")
    assert run_app(phone, "init", "--config", str(system.data_dir / "app-config.json"))[0] == 0
    assert run_app(phone, "register", "--pin", PIN)[0] == 0
    enrol(system, phone, "sam")
    idp_cli(system, "user", "set", "sam", "--email", "sam@example.org", "--email-verified")
    first = ServiceProvider("first.example", idp)
    register(system, first)
    browser = Browser(system)
    url, request_id = first.login_url()
    answer = browser.approve_on_phone(browser.follow(browser.get(url)), phone)
    assert first.consume(post_form(answer.text)[1], request_id).is_authenticated()
    yield browser
    browser.close()


def register(system: RunningSystem, sp: ServiceProvider, *options: str) -> dict[str, Any]:
    return idp_cli(system, "saml-sp", "add", "--metadata", "-", *options, stdin=sp.metadata())  # type: ignore[no-any-return]


def sso(web: Browser, sp: ServiceProvider) -> tuple[Any, str]:
    url, request_id = sp.login_url()
    action, fields = post_form(web.follow(web.get(url)).text)
    assert action == f"https://{sp.host}/acs"
    return sp.consume(fields, request_id), base64.b64decode(fields["SAMLResponse"]).decode()


def test_registration_takes_the_format_the_metadata_declares(system: RunningSystem, idp: dict) -> None:
    declares_transient = ServiceProvider("declares.example", idp, name_id_format=NAMEID_TRANSIENT)
    assert register(system, declares_transient)["name_id_format"] == "transient"
    assert register(system, declares_transient, "--name-id-format", "email")["name_id_format"] == "email"
    unknown = ServiceProvider("kerberos.example", idp, name_id_format=KERBEROS)
    assert register(system, unknown)["name_id_format"] == "persistent"


def test_an_sp_asking_for_transient_gets_it_for_the_session(
    system: RunningSystem, idp: dict, web: Browser
) -> None:
    persistent = ServiceProvider("pseudonym.example", idp, name_id_format=NAMEID_PERSISTENT)
    register(system, persistent)
    transient = ServiceProvider("pseudonym.example", idp, name_id_format=NAMEID_TRANSIENT, key=persistent.key)
    first, _ = sso(web, persistent)
    assert first.get_nameid_format() == NAMEID_PERSISTENT
    asked, _ = sso(web, transient)
    assert asked.get_errors() == [], asked.get_last_error_reason()
    assert asked.get_nameid_format() == NAMEID_TRANSIENT
    assert asked.get_nameid() != first.get_nameid()
    # One transient NameID for the session at this SP; the persistent one is the same as ever.
    assert sso(web, transient)[0].get_nameid() == asked.get_nameid()
    assert sso(web, persistent)[0].get_nameid() == first.get_nameid()
    assert sso(web, transient)[0].get_nameid() not in (first.get_nameid(), asked.get_nameid())


def test_an_sp_asking_for_more_than_it_may_have_gets_invalid_name_id_policy(
    system: RunningSystem, idp: dict, web: Browser
) -> None:
    wants_email = ServiceProvider("curious.example", idp, name_id_format=NAMEID_EMAIL)
    register(system, wants_email, "--name-id-format", "persistent")
    auth, xml = sso(web, wants_email)
    assert INVALID_POLICY in xml and "sam@example.org" not in xml
    assert "<saml:Assertion" not in xml and "<saml:EncryptedAssertion" not in xml
    assert not auth.is_authenticated()
    # python3-saml names the top-level status and our message; the second-level one is in the XML above.
    assert "Requester" in auth.get_last_error_reason()
    assert "persistent NameIDs, not email" in auth.get_last_error_reason()
    # The same SP registered for e-mail gets it.
    register(system, wants_email, "--name-id-format", "email")
    auth, _ = sso(web, wants_email)
    assert auth.get_errors() == [], auth.get_last_error_reason()
    assert (auth.get_nameid(), auth.get_nameid_format()) == ("sam@example.org", NAMEID_EMAIL)


def test_an_unknown_format_gets_invalid_name_id_policy(
    system: RunningSystem, idp: dict, web: Browser
) -> None:
    kerberos = ServiceProvider("kerberos2.example", idp, name_id_format=KERBEROS)
    register(system, kerberos, "--name-id-format", "email")
    auth, xml = sso(web, kerberos)
    assert INVALID_POLICY in xml and not auth.is_authenticated()


# -- a Redirect-binding request longer than a URL may be -----------------------------------------------


def raw_request(system: RunningSystem, target: bytes, timeout: float = 15.0) -> bytes:
    """One request over a plain socket (no client library shortening or refusing the line); what came
    back before the server closed (or reset) the connection."""
    answer = b""
    with socket.create_connection(("127.0.0.1", system.port("idp", "http")), timeout=timeout) as sock:
        try:
            sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/html\r\n\r\n")
            while chunk := sock.recv(65536):
                answer += chunk
        except (ConnectionResetError, BrokenPipeError):
            pass
    return answer


def test_a_redirect_request_over_the_url_limit_gets_the_error_page(
    system: RunningSystem, idp: dict, web: Browser
) -> None:
    sp = ServiceProvider("long.example", idp)
    register(system, sp)
    url, _ = sp.login_url()
    padded = url + "&padding=" + "a" * (MAX_REQUEST_LINE + 100 - len(url))
    answer = web.get(padded)
    assert answer.status_code == 414
    assert answer.headers["Content-Type"].startswith("text/html")
    assert "HTTP-POST binding" in answer.text and "8 KiB" in answer.text
    assert 'rel="stylesheet"' in answer.text and "Traceback" not in answer.text
    assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]
    assert answer.headers["Cache-Control"] == "no-store"
    # Just under the limit the request reaches the SAML endpoint, which answers for itself.
    under = url + "&padding=" + "a" * (MAX_REQUEST_LINE - 200 - len(url))
    assert web.get(under).status_code == 303
    # Any other too long URL gets the general page; the server goes on serving.
    other = web.get("/login?next=" + "a" * MAX_REQUEST_LINE)
    assert other.status_code == 414 and "This link is too long" in other.text
    assert web.get("/saml/metadata").status_code == 200


def test_an_endless_request_line_is_cut_off(system: RunningSystem) -> None:
    """Past the bound the IdP reads no further and closes the connection, and stays up."""
    answer = raw_request(
        system, b"/saml/sso/redirect?SAMLRequest=" + b"a" * (MAX_DISCARDED + MAX_REQUEST_LINE)
    )
    assert b"200 OK" not in answer and b"414" not in answer
    answer = raw_request(system, b"/saml/sso/redirect?SAMLRequest=" + b"a" * (MAX_DISCARDED // 2))
    # Read to its end, so the answer arrives whole (an unread rest would make the close a reset).
    assert answer.startswith(b"HTTP/1.0 414") or answer.startswith(b"HTTP/1.1 414"), answer[:200]
    assert b"Connection: close" in answer and b"HTTP-POST binding" in answer
