"""Single logout that does not stop at one failing SP: every application of the session told at once.

The whole system on loopback; SPs that are not ours: python3-saml (front channel, Redirect binding) and
pysaml2 (SOAP back channel, a real server). Chromium runs the logout page with the IdP's real CSP.
"""

import base64
import hashlib
import html
import re
import secrets
import threading
import time
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from onelogin.saml2.idp_metadata_parser import OneLogin_Saml2_IdPMetadataParser
from onelogin.saml2.logout_response import OneLogin_Saml2_Logout_Response

from tests.fixtures.flows import PIN, enrol
from tests.fixtures.idp_browser import Browser, idp_cli, run_nextauth
from tests.fixtures.system import RunningSystem, free_port, run_app, start_system, stop_system
from tests.saml_sp import RSA_SHA256, ServiceProvider, post_form
from tests.saml_sp.pysaml2_soap import Pysaml2SoapSp

TIMEOUT = 4  # NEXTAUTH_IDP_LOGOUT_TIMEOUT_SECONDS for this system
FRAME = re.compile(r'src="(/saml/logout/frame[^"]+)"')


def register(system: RunningSystem, metadata: str) -> None:
    code, _, error = run_nextauth(system, "saml-sp", "add", "--metadata", "-", stdin=metadata)
    assert code == 0, error


def refused(response: Any, status: int, text: str) -> None:
    assert response.status_code == status, response.text[:2000]
    assert text in response.text, response.text[:2000]
    assert "Traceback" not in response.text


def without(url: str, *names: str) -> str:
    base, _, query = url.partition("?")
    return base + "?" + "&".join(p for p in query.split("&") if p.split("=", 1)[0] not in names)


def wait_for(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSystem]:
    running = start_system(
        tmp_path_factory.mktemp("slo-system"),
        extra_env={"NEXTAUTH_IDP_LOGOUT_TIMEOUT_SECONDS": str(TIMEOUT)},
    )
    yield running
    stop_system(running)


@pytest.fixture(scope="module")
def phone(system: RunningSystem, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("slo-phone")
    assert run_app(home, "init", "--config", str(system.data_dir / "app-config.json"))[0] == 0
    assert run_app(home, "register", "--pin", PIN)[0] == 0
    enrol(system, home, "sam")
    return home


@pytest.fixture(scope="module")
def idp_metadata(system: RunningSystem) -> str:
    web = Browser(system)
    text = web.get("/saml/metadata").text
    web.close()
    return text


@pytest.fixture(scope="module")
def idp(idp_metadata: str) -> dict[str, Any]:
    return OneLogin_Saml2_IdPMetadataParser.parse(idp_metadata)["idp"]


class LogoutTokenReceiver:
    """An OIDC client's back-channel logout endpoint: records each logout token, answers 200."""

    def __init__(self) -> None:
        self.tokens: list[str] = []
        tokens = self.tokens

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                form = parse_qs(self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode())
                tokens.extend(form.get("logout_token", []))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/backchannel"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def oidc_client(system: RunningSystem) -> Iterator[tuple[dict[str, Any], LogoutTokenReceiver]]:
    receiver = LogoutTokenReceiver()
    client = idp_cli(
        system,
        *("oidc-client", "add", "--name", "Example RP", "--trusted"),
        *("--redirect-uri", f"http://127.0.0.1:{free_port()}/callback"),
        *("--backchannel-logout-uri", receiver.url),
    )
    yield client, receiver
    receiver.server.shutdown()


def oidc_login(web: Browser, client: dict[str, Any]) -> None:
    """Authorization at the IdP with the session the browser has: the code comes back at once."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client["client_id"],
            "redirect_uri": client["redirect_uris"][0],
            "scope": "openid",
            "state": "s1",
            "nonce": "n1",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    answer = web.follow(web.get(f"/oidc/authorize?{query}"))
    assert answer.status_code == 302 and "code=" in answer.headers["Location"], answer.text[:300]


@pytest.fixture(scope="module")
def sps(system: RunningSystem, idp: dict[str, Any], idp_metadata: str) -> Iterator[dict[str, Any]]:
    found: dict[str, Any] = {
        "a": ServiceProvider("spa.example", idp),
        "b": ServiceProvider("spb.example", idp),
        "soap": Pysaml2SoapSp("spc.example", idp_metadata),
        "unsigned": Pysaml2SoapSp("spd.example", idp_metadata, answer="unsigned"),
    }
    for sp in found.values():
        register(system, sp.metadata())
    yield found
    found["soap"].close()
    found["unsigned"].close()


def sso(web: Browser, sp: Any) -> dict[str, str]:
    url, request_id = sp.login_url()
    action, fields = post_form(web.follow(web.get(url)).text)
    assert action == f"https://{sp.host}/acs"
    answer = sp.consume(fields, request_id)
    if isinstance(sp, ServiceProvider):
        assert answer.get_errors() == [], answer.get_last_error_reason()
    else:
        assert answer is not None and answer.name_id is not None
    return fields


def signed_response_url(sp: ServiceProvider, idp: dict, in_response_to: str, relay_state: str) -> str:
    """A LogoutResponse python3-saml builds and signs for ``sp``, answering ``in_response_to``."""
    response = OneLogin_Saml2_Logout_Response(sp.settings)
    response.build(in_response_to)
    parameters = {"SAMLResponse": response.get_response(), "RelayState": relay_state}
    auth = sp.auth("/sls")
    auth.add_response_signature(parameters, RSA_SHA256)
    return str(auth.redirect_to(idp["singleLogoutService"]["url"], parameters))


def inflated(url: str, field: str) -> str:
    value = parse_qs(urlsplit(url).query)[field][0]
    return zlib.decompress(base64.b64decode(value), -15).decode()


def test_sp_initiated_logout_tells_the_others_and_counts_only_genuine_answers(
    system: RunningSystem,
    phone: Path,
    sps: dict[str, Any],
    idp: dict,
    oidc_client: tuple[dict[str, Any], LogoutTokenReceiver],
) -> None:
    web, stranger = Browser(system), Browser(system)
    a, b = sps["a"], sps["b"]
    url, request_id = a.login_url()
    page = web.follow(web.get(url))
    first = a.consume(post_form(web.approve_on_phone(page, phone).text)[1], request_id)
    assert first.get_errors() == [], first.get_last_error_reason()
    sso(web, b)
    sso(web, sps["soap"])
    sso(web, sps["unsigned"])
    client, receiver = oidc_client
    oidc_login(web, client)
    auth = a.auth()
    logout_url = auth.logout(
        name_id=first.get_nameid(),
        session_index=first.get_session_index(),
        name_id_format=first.get_nameid_format(),
        spnq=first.get_nameid_spnq(),
        return_to="/bye",
    )
    progress = web.get(logout_url)
    assert progress.status_code == 200, progress.text[:1000]
    assert "frame-src 'self' https://spb.example" in progress.headers["Content-Security-Policy"]
    frames = [html.unescape(src) for src in FRAME.findall(progress.text)]
    assert len(frames) == 1  # b; a asked, the others have SOAP
    status_url = html.unescape(re.search(r'data-status="([^"]+)"', progress.text).group(1))  # type: ignore[union-attr]
    done_url = html.unescape(re.search(r'data-done="([^"]+)"', progress.text).group(1))  # type: ignore[union-attr]
    assert web.get("/whoami").status_code == 401  # the IdP session ended at once

    # The frame's key alone (which SPs see in RelayState) is not enough: it is bound to this browser.
    refused(stranger.get(frames[0]), 410, "another browser")
    refused(stranger.get(done_url), 410, "another browser")
    # A position in other digits ("²" passes str.isdigit, and int() refuses it) is no position.
    superscript = re.sub(r"([?&]i=)\d+", r"\g<1>%C2%B2", frames[0])
    assert superscript != frames[0]
    refused(web.get(superscript), 404, "no such application")
    to_b = web.get(frames[0])
    assert to_b.status_code == 200 and to_b.headers["X-Frame-Options"] == "SAMEORIGIN"
    b_url = html.unescape(re.search(r'id="saml-redirect" href="([^"]+)"', to_b.text).group(1))  # type: ignore[union-attr]
    assert b_url.startswith("https://spb.example/sls?")
    b_request = inflated(b_url, "SAMLRequest")
    b_request_id = re.search(r' ID="([^"]+)"', b_request).group(1)  # type: ignore[union-attr]
    relay_state = parse_qs(urlsplit(b_url).query)["RelayState"][0]
    b_auth, back = b.handle_logout(b_url)
    assert b_auth.get_errors() == [], b_auth.get_last_error_reason()
    assert back is not None

    # Forged answers do not count: unsigned, another request's, another SP's.
    refused(web.get(without(back, "SigAlg", "Signature")), 403, "must sign")
    refused(web.get(signed_response_url(b, idp, "_not-the-request", relay_state)), 403, "does not answer")
    refused(web.get(signed_response_url(a, idp, b_request_id, relay_state)), 403, "does not answer")
    wait_for(lambda: web.get(status_url).json()["answered"] == 3)  # two SOAP SPs and the OIDC client, not b
    assert len(receiver.tokens) == 1
    assert web.get(status_url).json()["finished"] is False

    answered = web.get(back)
    assert answered.status_code == 200 and "Logged out of spb.example" in answered.text
    assert answered.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert "frame-ancestors 'self'" in answered.headers["Content-Security-Policy"]
    refused(web.get(back), 409, "already answered")  # replayed
    assert web.get(status_url).json() == {"finished": True, "answered": 4, "total": 4}

    # The SP that asked gets its answer last: Success, but partial (spd's answer was not signed).
    to_a = web.get(done_url)
    assert to_a.status_code == 303 and to_a.headers["Location"].startswith("https://spa.example/sls?")
    assert parse_qs(urlsplit(to_a.headers["Location"]).query)["RelayState"] == ["/bye"]
    a_auth, _ = a.handle_logout(to_a.headers["Location"], auth.get_last_request_id())
    assert a_auth.get_errors() == [], a_auth.get_last_error_reason()
    assert "PartialLogout" in inflated(to_a.headers["Location"], "SAMLResponse")
    assert [line.startswith("urn:") for line in sps["soap"].answered] == [True], sps["soap"].answered
    assert sps["unsigned"].received  # it was asked; its unsigned answer did not count
    refused(web.get(done_url), 410, "")  # shown once
    web.close()
    stranger.close()


def test_idp_initiated_logout_in_chromium_survives_an_sp_answering_500(
    browser: Any, system: RunningSystem, phone: Path, sps: dict[str, Any]
) -> None:
    """Three SPs: a (python3-saml, answers), b (answers HTTP 500), c (pysaml2 over SOAP)."""
    a, b, soap = sps["a"], sps["b"], sps["soap"]
    heard_before = len(soap.received)
    context = browser.new_context(color_scheme="dark")
    page = context.new_page()
    posted: dict[str, dict[str, str]] = {}
    b_asked: list[str] = []

    def sp_a(route: Any) -> None:
        url = route.request.url
        if url.startswith("https://spa.example/sls"):
            auth, back = a.handle_logout(url)
            assert auth.get_errors() == [], auth.get_last_error_reason()
            route.fulfill(status=302, headers={"Location": back})
            return
        posted["a"] = {k: v[0] for k, v in parse_qs(route.request.post_data or "").items()}
        route.fulfill(status=200, content_type="text/plain", body="signed in")

    def sp_b(route: Any) -> None:
        if route.request.url.startswith("https://spb.example/sls"):
            b_asked.append(route.request.url)
            route.fulfill(status=500, content_type="text/plain", body="internal error")
            return
        posted["b"] = {k: v[0] for k, v in parse_qs(route.request.post_data or "").items()}
        route.fulfill(status=200, content_type="text/plain", body="signed in")

    def sp_c(route: Any) -> None:
        posted["c"] = {k: v[0] for k, v in parse_qs(route.request.post_data or "").items()}
        route.fulfill(status=200, content_type="text/plain", body="signed in")

    # The SPs' frames are other sites, out of the page's process: only the context's routes see them.
    context.route("https://spa.example/**", sp_a)
    context.route("https://spb.example/**", sp_b)
    context.route("https://spc.example/**", sp_c)
    url, request_id = a.login_url()
    page.goto(url)
    page.wait_for_selector("#qr svg")
    assert run_app(phone, "scan", page.get_attribute("#qr", "data-qrdata"), "--pin", PIN)[0] == 0
    page.wait_for_url("https://spa.example/acs", timeout=15000)
    assert a.consume(posted["a"], request_id).get_errors() == []
    for name, sp in (("b", b), ("c", soap)):
        url, request_id = sp.login_url()
        page.goto(url)
        page.wait_for_url(f"https://{sp.host}/acs", timeout=15000)
        assert sp.consume(posted[name], request_id) is not None

    base = f"http://127.0.0.1:{system.port('idp', 'http')}"
    page.goto(base + "/logout")
    page.click("button[type=submit]")
    page.wait_for_url("**/saml/logout/done**", timeout=(TIMEOUT + 10) * 1000)
    missed = page.inner_text("#logout-missed")
    assert page.locator("#logout-reached").count() == 1, (missed, soap.answered)
    reached = page.inner_text("#logout-reached")
    assert "spb.example" in missed and "close your browser" in missed.lower()
    assert "spa.example" in reached and "spc.example" in reached
    assert "spb.example" not in reached
    assert b_asked and len(soap.received) > heard_before
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background not in ("rgb(255, 255, 255)", "rgba(0, 0, 0, 0)"), background  # dark mode
    context.close()


# -- the fan-out's rules, without the system -------------------------------------------------------------


def test_each_answer_counts_once_and_not_after_the_deadline() -> None:
    from authserver.storage.kv import MemoryStore
    from idp import logout_fanout
    from idp.logout_fanout import Fanout, Target

    kv = MemoryStore()
    targets = [Target("a", "saml", "front", "https://a"), Target("b", "saml", "back", "https://b")]
    fanout = Fanout(targets=targets, deadline=time.time() + 60)
    logout_fanout.save(kv, fanout)
    assert logout_fanout.load(kv, fanout.key) == fanout
    assert logout_fanout.load(kv, "x" * 32) is None and logout_fanout.load(kv, "../" * 8) is None
    assert not logout_fanout.finished(kv, fanout)
    assert logout_fanout.record(kv, fanout, 0, True)
    assert not logout_fanout.record(kv, fanout, 0, False)  # the first answer stands
    assert not logout_fanout.finished(kv, fanout)
    assert logout_fanout.record(kv, fanout, 1, False)
    assert logout_fanout.finished(kv, fanout)
    result = logout_fanout.outcome(kv, fanout)
    assert [t.name for t in result.reached] == ["a"] and [t.name for t in result.missed] == ["b"]

    late = Fanout(targets=targets, deadline=time.time() - 1)
    logout_fanout.save(kv, late)
    assert not logout_fanout.record(kv, late, 0, True)
    assert logout_fanout.finished(kv, late)
    assert not logout_fanout.outcome(kv, late).reached
    assert logout_fanout.take(kv, late.key) is not None and logout_fanout.take(kv, late.key) is None
    assert logout_fanout.same_key("abc", "abc") and not logout_fanout.same_key("abc", "abd")


@pytest.mark.e2e
def test_soap_answers_are_bounded_in_time_and_size() -> None:
    """An SP that never answers, or answers too much, costs the IdP a bounded wait and no memory."""
    import httpx

    from idp.saml import slo_backchannel

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.path == "/hang":
                time.sleep(3)
                return
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"<x>" + b"a" * (slo_backchannel.MAX_RESPONSE_BYTES + 10) + b"</x>")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        started = time.monotonic()
        with pytest.raises(httpx.TimeoutException):
            slo_backchannel._post(base + "/hang", b"<x/>", 0.5)
        assert time.monotonic() - started < 2
        assert slo_backchannel._post(base + "/large", b"<x/>", 2) is None
    finally:
        server.shutdown()
        server.server_close()
