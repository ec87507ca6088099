"""The IdP's SAML 2.0 side against an independent SP implementation (python3-saml), end to end: the whole
system on loopback, a phone approving the QR login, SPs registered with `nextauth saml-sp add`.

One browser session logs in once and is used by three SPs (plain, encrypted, SOAP logout); the refusals
need no login; single logout then ends that session. A second session shows logout at the IdP telling an
SP over SOAP.
"""

import base64
import re
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote_plus, unquote_plus, urlencode, urlsplit

import pytest
from onelogin.saml2.idp_metadata_parser import OneLogin_Saml2_IdPMetadataParser
from onelogin.saml2.utils import OneLogin_Saml2_Utils

from authserver.audit import AuditTrail
from idp.commands import idp_engine
from tests.fixtures.flows import PIN, enrol
from tests.fixtures.idp_browser import Browser, run_nextauth
from tests.fixtures.saml import post_request
from tests.fixtures.system import RunningSystem, run_app, start_system, stop_system
from tests.saml_sp import RSA_SHA1, ServiceProvider, SoapLogoutServer, post_form

MOBILE_TWO_FACTOR = "urn:oasis:names:tc:SAML:2.0:ac:classes:MobileTwoFactorContract"
TRANSIENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"
EMAIL = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"


nextauth = run_nextauth


def register(system: RunningSystem, sp: ServiceProvider, *options: str) -> dict[str, Any]:
    code, answer, error = nextauth(system, "saml-sp", "add", "--metadata", "-", *options, stdin=sp.metadata())
    assert code == 0, error
    return answer


def pem(idp: dict[str, Any]) -> str:
    return OneLogin_Saml2_Utils.format_cert(idp["x509cert"])


def refused(response: Any, status: int, text: str) -> None:
    """The IdP's error page: the expected status and message, and no internals."""
    assert response.status_code == status, response.text[:2000]
    assert text in response.text, response.text[:2000]
    assert "Traceback" not in response.text and "saml2." not in response.text


# -- the system, the SPs, one logged-in browser --------------------------------------------------------


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSystem]:
    running = start_system(tmp_path_factory.mktemp("saml-system"))
    yield running
    stop_system(running)
    assert running.process.returncode == 0, running.log()


@pytest.fixture(scope="module")
def phone(system: RunningSystem, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("saml-phone")
    assert run_app(home, "init", "--config", str(system.data_dir / "app-config.json"))[0] == 0
    assert run_app(home, "register", "--pin", PIN)[0] == 0
    enrol(system, home, "sam")
    code, _, error = nextauth(
        system,
        *("user", "set", "sam", "--name", "Sam Example", "--email", "sam@example.org"),
        *("--email-verified", "--groups", "staff,admins"),
    )
    assert code == 0, error
    return home


@pytest.fixture(scope="module")
def idp_metadata(system: RunningSystem) -> str:
    web = Browser(system)
    response = web.get("/saml/metadata")
    web.close()
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/samlmetadata+xml")
    return response.text


@pytest.fixture(scope="module")
def idp(idp_metadata: str) -> dict[str, Any]:
    """The IdP as the SPs know it: from its metadata, as an integrator would configure python3-saml."""
    return OneLogin_Saml2_IdPMetadataParser.parse(idp_metadata)["idp"]


@pytest.fixture(scope="module")
def soap_server() -> Iterator[SoapLogoutServer]:
    server = SoapLogoutServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def sps(
    system: RunningSystem, idp: dict[str, Any], soap_server: SoapLogoutServer
) -> dict[str, ServiceProvider]:
    found = {
        "main": ServiceProvider("sp1.example", idp),
        "encrypted": ServiceProvider("sp2.example", idp, name_id_format=TRANSIENT, encrypt=True),
        "soap": ServiceProvider("sp3.example", idp, name_id_format=EMAIL, soap_logout_url=soap_server.url),
    }
    register(system, found["main"], "--attributes", "uid,name,mail,groups")
    register(system, found["encrypted"], "--name-id-format", "transient", "--encrypt")
    register(system, found["soap"], "--name-id-format", "email", "--attributes", "email")
    return found


@dataclass
class LoggedIn:
    web: Browser
    first: Any  # python3-saml's OneLogin_Saml2_Auth after the first login's response
    fields: dict[str, str]
    request_id: str


@pytest.fixture(scope="module")
def session(system: RunningSystem, phone: Path, sps: dict[str, ServiceProvider]) -> Iterator[LoggedIn]:
    """A browser that asked to log in at the main SP and approved the QR with the phone."""
    web = Browser(system)
    url, request_id = sps["main"].login_url()
    page = web.follow(web.get(url))
    assert "data-qrdata" in page.text, page.text[:500]
    answer = web.approve_on_phone(page, phone)
    assert 'id="saml-post"' in answer.text, system.log()[-4000:]
    action, fields = post_form(answer.text)
    assert action == "https://sp1.example/acs"
    assert fields["RelayState"] == "/after-login"
    yield LoggedIn(web, sps["main"].consume(fields, request_id), fields, request_id)
    web.close()


def sso(web: Browser, sp: ServiceProvider, **login: Any) -> tuple[Any, dict[str, str]]:
    """Single sign-on for a browser that is logged in at the IdP: no QR, straight back to the SP."""
    url, request_id = sp.login_url(**login)
    action, fields = post_form(web.follow(web.get(url)).text)
    assert action == f"https://{sp.host}{sp.acs_path}"
    return sp.consume(fields, request_id), fields


def decoded(fields: dict[str, str]) -> str:
    return base64.b64decode(fields["SAMLResponse"]).decode()


def wait_for(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


# -- metadata and single sign-on -----------------------------------------------------------------------


def test_metadata_is_signed_and_lists_the_endpoints(
    system: RunningSystem, idp_metadata: str, idp: dict
) -> None:
    base = f"http://127.0.0.1:{system.port('idp', 'http')}"
    assert OneLogin_Saml2_Utils.validate_metadata_sign(idp_metadata, pem(idp), raise_exceptions=True)
    assert idp["entityId"] == f"{base}/saml/metadata"
    assert idp["singleSignOnService"]["url"] == f"{base}/saml/sso/redirect"
    assert idp["singleLogoutService"]["url"] == f"{base}/saml/slo/redirect"
    assert f'Location="{base}/saml/sso/post"' in idp_metadata
    for name_id_format in ("persistent", "transient", "emailAddress"):
        assert f"nameid-format:{name_id_format}" in idp_metadata


def test_sso_over_redirect_with_signed_response_and_assertion(session: LoggedIn) -> None:
    auth = session.first
    assert auth.get_errors() == [], auth.get_last_error_reason()
    assert auth.is_authenticated()
    xml = decoded(session.fields)
    assert xml.count("<ds:Signature>") == 2  # the response's and the assertion's, both checked by the SP
    assert auth.get_nameid_format() == "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
    assert auth.get_nameid() != "sam" and len(auth.get_nameid()) == 43  # a pseudonym, not the user id
    assert auth.get_friendlyname_attributes() == {
        "uid": ["sam"],
        "displayName": ["Sam Example"],
        "mail": ["sam@example.org"],
        "isMemberOf": ["staff", "admins"],
    }
    assert auth.get_attribute("urn:oid:0.9.2342.19200300.100.1.1") == ["sam"]
    assert auth.get_last_authn_contexts() == [MOBILE_TWO_FACTOR]
    assert auth.get_session_index()
    assert session.web.get("/whoami").json()["sub"] == "sam"


def test_persistent_name_id_is_stable_and_a_second_login_needs_no_qr(
    session: LoggedIn, sps: dict[str, ServiceProvider]
) -> None:
    again, _ = sso(session.web, sps["main"])
    assert again.get_errors() == [], again.get_last_error_reason()
    assert again.get_nameid() == session.first.get_nameid()
    assert again.get_session_index() == session.first.get_session_index()


def test_sso_over_post_binding(session: LoggedIn, sps: dict[str, ServiceProvider]) -> None:
    response, request_id = post_request(session.web, sps["main"])
    action, fields = post_form(session.web.follow(response).text)
    assert (action, fields["RelayState"]) == ("https://sp1.example/acs", "/post")
    auth = sps["main"].consume(fields, request_id)
    assert auth.get_errors() == [], auth.get_last_error_reason()


def test_encrypted_assertion(session: LoggedIn, sps: dict[str, ServiceProvider]) -> None:
    auth, fields = sso(session.web, sps["encrypted"])
    xml = decoded(fields)
    assert "<saml:EncryptedAssertion" in xml and "<saml:Assertion" not in xml
    assert "aes256-gcm" in xml and ">sam<" not in xml
    assert auth.get_errors() == [], auth.get_last_error_reason()
    assert auth.get_nameid_format() == TRANSIENT
    assert auth.get_friendlyname_attributes() == {"uid": ["sam"]}  # the default release: uid only


def test_email_name_id(session: LoggedIn, sps: dict[str, ServiceProvider]) -> None:
    auth, _ = sso(session.web, sps["soap"])
    assert auth.get_errors() == [], auth.get_last_error_reason()
    assert (auth.get_nameid(), auth.get_nameid_format()) == ("sam@example.org", EMAIL)
    assert auth.get_friendlyname_attributes() == {"mail": ["sam@example.org"]}


def test_requested_authn_context(session: LoggedIn, sps: dict[str, ServiceProvider], idp: dict) -> None:
    main = sps["main"]
    # python3-saml's default asks for exactly PasswordProtectedTransport: not what this login was.
    strict = ServiceProvider(main.host, idp, requested_authn_context=True, key=main.key)
    auth, _ = sso(session.web, strict)
    assert "Responder" in auth.get_last_error_reason()
    assert MOBILE_TWO_FACTOR in auth.get_last_error_reason()
    fitting = ServiceProvider(main.host, idp, requested_authn_context=[MOBILE_TWO_FACTOR], key=main.key)
    auth, _ = sso(session.web, fitting)
    assert auth.get_errors() == [], auth.get_last_error_reason()


def test_force_authn_asks_the_phone_again(session: LoggedIn, sps: dict, phone: Path) -> None:
    sp = sps["main"]
    url, request_id = sp.login_url(force_authn=True)
    page = session.web.follow(session.web.get(url))
    assert "data-qrdata" in page.text  # logged in, and still a new approval in the app
    auth = sp.consume(post_form(session.web.approve_on_phone(page, phone).text)[1], request_id)
    assert auth.get_errors() == [], auth.get_last_error_reason()
    assert auth.get_nameid() == session.first.get_nameid()  # the same session, the same pseudonym


def test_is_passive_without_a_session_answers_no_passive(system: RunningSystem, sps: dict) -> None:
    web = Browser(system)
    url, request_id = sps["main"].login_url(is_passive=True)
    action, fields = post_form(web.follow(web.get(url)).text)
    web.close()
    assert action == "https://sp1.example/acs"
    assert "urn:oasis:names:tc:SAML:2.0:status:NoPassive" in decoded(fields)
    assert not sps["main"].consume(fields, request_id).is_authenticated()


def test_the_sp_rejects_a_tampered_response(session: LoggedIn, sps: dict[str, ServiceProvider]) -> None:
    xml = decoded(session.fields).replace("Sam Example", "Eve Example")
    tampered = {**session.fields, "SAMLResponse": base64.b64encode(xml.encode()).decode()}
    auth = sps["main"].consume(tampered, session.request_id)
    assert auth.get_errors() and not auth.is_authenticated()


# -- refusals ------------------------------------------------------------------------------------------


def without(url: str, *names: str) -> str:
    """``url`` with these query parameters taken out (raw, so the rest stays byte for byte)."""
    base, _, query = url.partition("?")
    kept = [pair for pair in query.split("&") if pair.split("=", 1)[0] not in names]
    return base + "?" + "&".join(kept)


@pytest.fixture()
def stranger(system: RunningSystem) -> Iterator[Browser]:
    """A browser with no session: every refusal below happens before any login."""
    web = Browser(system)
    yield web
    web.close()


def test_unknown_sp_is_refused(stranger: Browser, idp: dict) -> None:
    url, _ = ServiceProvider("unknown.example", idp).login_url()
    refused(stranger.get(url), 403, "not registered")


def test_unsigned_request_is_refused_when_the_sp_signs(stranger: Browser, sps: dict) -> None:
    url, _ = sps["main"].login_url()
    refused(stranger.get(without(url, "SigAlg", "Signature")), 403, "must sign its AuthnRequest")


def test_tampered_signature_is_refused(stranger: Browser, sps: dict) -> None:
    url, _ = sps["main"].login_url(return_to="/ok")
    tampered = url.replace("RelayState=%2Fok", "RelayState=%2Fevil")
    refused(stranger.get(tampered), 403, "does not verify")
    base, _, query = url.partition("?")
    fields = dict(pair.split("=", 1) for pair in query.split("&"))
    signature = bytearray(base64.b64decode(unquote_plus(fields["Signature"])))
    signature[10] ^= 1
    fields["Signature"] = quote_plus(base64.b64encode(bytes(signature)).decode())
    refused(
        stranger.get(base + "?" + "&".join(f"{k}={v}" for k, v in fields.items())), 403, "does not verify"
    )


def test_tampered_post_request_is_refused(stranger: Browser, sps: dict) -> None:
    response, _ = post_request(stranger, sps["main"], tamper=True)
    refused(response, 403, "does not verify")


def test_stale_request_is_refused(stranger: Browser, sps: dict) -> None:
    response, _ = post_request(stranger, sps["main"], age=timedelta(minutes=10))
    refused(response, 400, "too old")


def test_wrong_destination_is_refused(stranger: Browser, sps: dict, idp: dict) -> None:
    main = sps["main"]
    elsewhere = {**idp, "singleSignOnService": {**idp["singleSignOnService"]}}
    elsewhere["singleSignOnService"]["url"] = idp["singleSignOnService"]["url"].replace("/redirect", "/other")
    url, _ = ServiceProvider(main.host, elsewhere, key=main.key).login_url()
    refused(stranger.get(url.replace("/saml/sso/other?", "/saml/sso/redirect?")), 400, "another endpoint")


def test_replayed_request_is_refused(stranger: Browser, sps: dict) -> None:
    url, _ = sps["main"].login_url()
    first = stranger.get(url)
    assert first.status_code == 303 and "/saml/sso/continue?k=" in first.headers["Location"]
    refused(stranger.get(url), 400, "already used")


def test_acs_url_not_in_metadata_is_refused(stranger: Browser, sps: dict, idp: dict) -> None:
    main = sps["main"]
    url, _ = ServiceProvider(main.host, idp, acs_path="/elsewhere", key=main.key).login_url()
    refused(stranger.get(url), 403, "does not list")


def test_sha1_signatures_are_refused(stranger: Browser, sps: dict, idp: dict) -> None:
    main = sps["main"]
    url, _ = ServiceProvider(main.host, idp, signature_algorithm=RSA_SHA1, key=main.key).login_url()
    refused(stranger.get(url), 400, "SHA-1")


def test_garbage_is_refused_with_a_page(stranger: Browser) -> None:
    refused(stranger.get("/saml/sso/redirect?SAMLRequest=%%%"), 400, "base64")
    bomb = base64.b64encode(zlib.compress(b"<" * 1_000_000)[2:-4]).decode()  # inflates past 128 KiB
    refused(stranger.post("/saml/sso/post", data={"SAMLRequest": "bm90IHhtbA=="}), 400, "not well-formed")
    refused(stranger.get("/saml/sso/redirect?" + urlencode({"SAMLRequest": bomb})), 413, "too large")
    refused(stranger.get("/saml/sso/continue?k=nothing"), 410, "expired")
    unasked = base64.b64encode(zlib.compress(b"<LogoutResponse/>")[2:-4]).decode()
    query = urlencode({"SAMLResponse": unasked, "RelayState": "no-such-logout"})
    refused(stranger.get("/saml/slo/redirect?" + query), 410, "expired")


def test_registration_add_list_remove(system: RunningSystem, idp: dict, sps: dict) -> None:
    sp = ServiceProvider("bad.example", idp)
    for location, complaint in (
        ("javascript:alert(1)", "not an http(s) URL"),
        ("http://bad.example/acs", "https"),
    ):
        hostile = sp.metadata().replace('Location="https://bad.example/acs"', f'Location="{location}"')
        code, _, error = nextauth(system, "saml-sp", "add", "--metadata", "-", stdin=hostile)
        assert code == 2 and complaint in error, error
    code, _, error = nextauth(system, "saml-sp", "add", "--metadata", "-", "--encrypt", stdin=sp.metadata())
    assert code == 2 and "--encrypt needs" in error
    added = register(system, sp)
    assert added["entity_id"] == "https://bad.example/metadata" and added["attributes"] == ["uid"]
    code, listed, _ = nextauth(system, "saml-sp", "list")
    assert code == 0 and {each["entity_id"] for each in listed} >= {added["entity_id"], sps["main"].entity_id}
    assert nextauth(system, "saml-sp", "remove", added["entity_id"])[1] == {"removed": True}
    web = Browser(system)
    refused(web.get(sp.login_url()[0]), 403, "not registered")
    web.close()
    # Both changes are in the IdP's audit trail, by the command line.
    engine = idp_engine(dict(system.env))
    try:
        events = AuditTrail(engine, "idp").query(types=["saml_sp.added", "saml_sp.removed"])[0]
    finally:
        engine.dispose()
    entity = added["entity_id"]
    assert [(e["type"], e["actor"], e["data"]) for e in events if e["data"]["entity"] == entity] == [
        ("io.nextauth.saml_sp.added", "command line", {"entity": entity, "replaced": False}),
        ("io.nextauth.saml_sp.removed", "command line", {"entity": entity}),
    ]


# -- single logout -------------------------------------------------------------------------------------


def soap_logout_requests(server: SoapLogoutServer) -> list[str]:
    return [body.decode() for body in server.received if b"LogoutRequest" in body]


def test_unsigned_logout_request_is_refused(stranger: Browser, sps: dict, session: LoggedIn) -> None:
    auth = sps["main"].auth()
    url = auth.logout(name_id=session.first.get_nameid(), session_index=session.first.get_session_index())
    refused(stranger.get(without(url, "SigAlg", "Signature")), 403, "must sign its LogoutRequest")
    assert session.web.get("/whoami").status_code == 200


def test_single_logout_from_an_sp_reaches_every_sp(
    session: LoggedIn, sps: dict[str, ServiceProvider], soap_server: SoapLogoutServer, idp: dict
) -> None:
    web, main, first = session.web, sps["main"], session.first
    sso(web, sps["encrypted"])  # front-channel logout (Redirect)
    sso(web, sps["soap"])  # back-channel logout (SOAP)
    heard_before = len(soap_logout_requests(soap_server))
    auth = main.auth()
    url = auth.logout(
        name_id=first.get_nameid(),
        session_index=first.get_session_index(),
        name_id_format=first.get_nameid_format(),
        spnq=first.get_nameid_spnq(),
        return_to="/bye",
    )
    # The IdP ends the session; its logout page frames the other front-channel SP (see test_saml_slo.py)...
    progress = web.get(url)
    assert progress.status_code == 200, progress.text[:1000]
    frame = re.search(r'src="(/saml/logout/frame[^"]+)"', progress.text).group(1)  # type: ignore[union-attr]
    to_sp2 = web.get(frame.replace("&amp;", "&"))
    to = re.search(r'id="saml-redirect" href="([^"]+)"', to_sp2.text).group(1).replace("&amp;", "&")  # type: ignore[union-attr]
    assert to.startswith("https://sp2.example/sls?")
    sp2_auth, back_to_idp = sps["encrypted"].handle_logout(to)
    assert sp2_auth.get_errors() == [], sp2_auth.get_last_error_reason()
    assert web.get(back_to_idp).status_code == 200
    # ...and answers the SP that asked once all answered (the SOAP SP's unsigned answer does not count).
    done = re.search(r'data-done="([^"]+)"', progress.text).group(1).replace("&amp;", "&")  # type: ignore[union-attr]
    to_sp1 = web.get(done)
    assert to_sp1.status_code == 303 and to_sp1.headers["Location"].startswith("https://sp1.example/sls?")
    assert parse_qs(urlsplit(to_sp1.headers["Location"]).query)["RelayState"] == ["/bye"]
    main_auth, _ = main.handle_logout(to_sp1.headers["Location"], auth.get_last_request_id())
    assert main_auth.get_errors() == [], main_auth.get_last_error_reason()
    wait_for(lambda: len(soap_logout_requests(soap_server)) > heard_before)
    assert "<saml:NameID" in soap_logout_requests(soap_server)[-1]
    assert ">sam@example.org</saml:NameID>" in soap_logout_requests(soap_server)[-1]
    assert web.get("/whoami").status_code == 401
    assert "data-qrdata" in web.follow(web.get("/login")).text  # a new login needs the phone again


def test_logout_at_the_idp_tells_sps_over_soap(
    system: RunningSystem,
    phone: Path,
    sps: dict[str, ServiceProvider],
    soap_server: SoapLogoutServer,
    idp: dict,
) -> None:
    web = Browser(system)
    sp = sps["soap"]
    url, request_id = sp.login_url()
    page = web.follow(web.get(url))
    auth = sp.consume(post_form(web.approve_on_phone(page, phone).text)[1], request_id)
    assert auth.get_errors() == [], auth.get_last_error_reason()
    heard_before = len(soap_logout_requests(soap_server))
    assert web.post("/logout").status_code in (302, 303)
    wait_for(lambda: len(soap_logout_requests(soap_server)) > heard_before)
    envelope = soap_logout_requests(soap_server)[-1]
    request = envelope[envelope.index("<samlp:LogoutRequest") : envelope.index("</soap11:Body>")]
    assert OneLogin_Saml2_Utils.validate_sign(
        request, pem(idp), xpath="/samlp:LogoutRequest/ds:Signature", raise_exceptions=True
    )
    assert f">{auth.get_session_index()}</samlp:SessionIndex>" in request
    web.close()


def test_the_post_page_submits_itself_in_chromium(
    browser: Any,
    phone: Path,
    sps: dict[str, ServiceProvider],
) -> None:
    """The HTTP-POST binding page under the IdP's real CSP (script-src 'self'): no click needed."""
    page = browser.new_page()
    posted: dict[str, list[str]] = {}

    def acs(route: Any) -> None:
        posted.update(parse_qs(route.request.post_data or ""))
        route.fulfill(status=200, content_type="text/plain", body="signed in")

    page.route("https://sp1.example/**", acs)
    url, request_id = sps["main"].login_url()
    page.goto(url)
    page.wait_for_selector("#qr svg")
    assert run_app(phone, "scan", page.get_attribute("#qr", "data-qrdata"), "--pin", PIN)[0] == 0
    page.wait_for_url("https://sp1.example/acs", timeout=15000)
    auth = sps["main"].consume({name: values[0] for name, values in posted.items()}, request_id)
    assert auth.get_errors() == [], auth.get_last_error_reason()
    page.close()


# -- pieces without the system -------------------------------------------------------------------------


def test_persistent_name_ids_differ_per_sp_and_user() -> None:
    from idp.saml import nameid

    secret = nameid.derive_secret(b"k" * 32)
    one = nameid.persistent(secret, "https://a.example/sp", "sam")
    assert one == nameid.persistent(secret, "https://a.example/sp", "sam")
    assert one != nameid.persistent(secret, "https://b.example/sp", "sam")
    assert one != nameid.persistent(secret, "https://a.example/sp", "sal")
    assert one != nameid.persistent(nameid.derive_secret(b"j" * 32), "https://a.example/sp", "sam")


def test_authn_context_comparisons() -> None:
    from idp.saml.authn_context import MOBILE_ONE_FACTOR, MOBILE_TWO_FACTOR, Requested, satisfies

    password = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
    assert satisfies(MOBILE_TWO_FACTOR, None)
    assert not satisfies(MOBILE_TWO_FACTOR, Requested("exact", (password,)))
    assert satisfies(MOBILE_TWO_FACTOR, Requested("minimum", (password,)))
    assert satisfies(MOBILE_TWO_FACTOR, Requested("better", (MOBILE_ONE_FACTOR,)))
    assert not satisfies(MOBILE_ONE_FACTOR, Requested("minimum", (MOBILE_TWO_FACTOR,)))
    assert not satisfies(MOBILE_TWO_FACTOR, Requested("maximum", (MOBILE_ONE_FACTOR,)))
    assert not satisfies(MOBILE_TWO_FACTOR, Requested("minimum", ("urn:example:unknown",)))


def test_idp_initiated_single_logout(
    system: RunningSystem, phone: Path, sps: dict, soap_server: SoapLogoutServer
) -> None:
    web = Browser(system)
    url, request_id = sps["encrypted"].login_url()
    page = web.follow(web.get(url))
    answer = sps["encrypted"].consume(post_form(web.approve_on_phone(page, phone).text)[1], request_id)
    assert answer.get_errors() == [], answer.get_last_error_reason()
    sso(web, sps["soap"])
    heard_before = len(soap_logout_requests(soap_server))
    # The IdP's own logout page sends its form through the SAML walk when SAML SPs are in the session.
    assert 'action="/saml/logout"' in web.get("/logout").text
    forged = web.post("/saml/logout", headers={"Origin": "https://evil.example"})
    refused(forged, 403, "own page")
    assert web.get("/whoami").status_code == 200
    progress = web.post("/saml/logout")
    assert progress.status_code == 200 and "/saml/logout/frame" in progress.text
    frame = re.search(r'src="(/saml/logout/frame[^"]+)"', progress.text).group(1)  # type: ignore[union-attr]
    to_sp2 = web.get(frame.replace("&amp;", "&"))
    to = re.search(r'id="saml-redirect" href="([^"]+)"', to_sp2.text).group(1).replace("&amp;", "&")  # type: ignore[union-attr]
    assert to.startswith("https://sp2.example/sls?")
    sp2_auth, back_to_idp = sps["encrypted"].handle_logout(to)
    assert sp2_auth.get_errors() == [], sp2_auth.get_last_error_reason()
    assert web.get(back_to_idp).status_code == 200
    done = web.get(re.search(r'data-done="([^"]+)"', progress.text).group(1).replace("&amp;", "&"))  # type: ignore[union-attr]
    assert done.status_code == 200 and "You are logged out" in done.text
    assert "sp2.example" in done.text
    wait_for(lambda: len(soap_logout_requests(soap_server)) > heard_before)
    assert web.get("/whoami").status_code == 401
    web.close()


def test_metadata_parser_refuses_what_it_cannot_trust(idp: dict) -> None:
    from idp.saml import spmetadata

    good = ServiceProvider("sp9.example", idp).metadata()
    assert spmetadata.parse(good).entity_id == "https://sp9.example/metadata"
    laughs = '<!DOCTYPE x [<!ENTITY a "aaaa">]>' + good.split("?>", 1)[-1]
    body = good.replace('<?xml version="1.0"?>', "")
    two = f'<md:EntitiesDescriptor xmlns:md="{spmetadata.MD[1:-1]}">{body}{body}</md:EntitiesDescriptor>'
    expired = re.sub(r'validUntil="[^"]+"', 'validUntil="2020-01-01T00:00:00Z"', good)
    for xml, complaint in ((laughs, "DTD"), (two, "2 entities")):
        with pytest.raises(ValueError, match=complaint):
            spmetadata.parse(xml)
    assert spmetadata.parse(expired).expired()
