"""The IdP's OpenID Connect provider against an independent relying party: pyoidc (``oic``), an
OpenID-certified RP library, does discovery, code + PKCE, ID token validation, userinfo, refresh and
logout, while the phone simulator approves the login. Then the rules, each with its negative case."""

import base64
import hashlib
import re
import secrets
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from oic.oic import Client as OicClient
from oic.oic.message import AccessTokenResponse, AuthorizationResponse, OpenIDSchema
from oic.utils.authn.client import CLIENT_AUTHN_METHOD

from tests.fixtures.flows import PIN, enrol
from tests.fixtures.idp_browser import Browser, query_of
from tests.fixtures.idp_browser import idp_cli as cli
from tests.fixtures.system import RunningSystem, free_port, ns_api, run_app

USER = "olivia"


class Receiver:
    """A relying party's back-channel logout endpoint: records the logout tokens POSTed to it."""

    def __init__(self) -> None:
        self.tokens: list[str] = []
        received = self.tokens

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                form = parse_qs(self.rfile.read(length).decode())
                received.extend(form.get("logout_token", []))
                self.send_response(200)
                self.send_header("Cache-Control", "no-store")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/backchannel"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while len(self.tokens) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return list(self.tokens)


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.server.shutdown()


@pytest.fixture(scope="module")
def phone(system: RunningSystem, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("oidc-phone")
    assert run_app(home, "init", "--config", str(system.data_dir / "app-config.json"))[0] == 0
    assert run_app(home, "register", "--pin", PIN)[0] == 0
    enrol(system, home, USER)
    cli(
        system,
        "user",
        "set",
        USER,
        "--name",
        "Olivia Ortega",
        "--email",
        "olivia@example.com",
        "--email-verified",
        "--groups",
        "staff,ops",
    )
    return home


@pytest.fixture(scope="module")
def rp_urls() -> dict[str, str]:
    port = free_port()  # nothing listens: the test reads the redirects the browser would follow
    return {
        "redirect": f"http://127.0.0.1:{port}/callback",
        "post_logout": f"http://127.0.0.1:{port}/logged-out",
    }


@pytest.fixture(scope="module")
def registered(system: RunningSystem, receiver: Receiver, rp_urls: dict[str, str]) -> dict[str, Any]:
    return cli(
        system,
        "oidc-client",
        "add",
        "--name",
        "Example RP",
        "--redirect-uri",
        rp_urls["redirect"],
        "--post-logout-redirect-uri",
        rp_urls["post_logout"],
        "--backchannel-logout-uri",
        receiver.url,
        "--id-token-alg",
        "RS256",
        "--trusted",
    )


def issuer(system: RunningSystem) -> str:
    return f"http://127.0.0.1:{system.port('idp', 'http')}"


def relying_party(system: RunningSystem, registered: dict[str, Any]) -> OicClient:
    rp = OicClient(client_authn_method=CLIENT_AUTHN_METHOD)
    rp.provider_config(issuer(system))  # discovery and the JWKS
    rp.store_registration_info(
        {
            "client_id": registered["client_id"],
            "client_secret": registered["client_secret"],
            "redirect_uris": registered["redirect_uris"],
        }
    )
    rp.redirect_uris = registered["redirect_uris"]
    return rp


def log_in(
    rp: OicClient, browser: Browser, phone: Path, scope: str = "openid profile email", **extra: str
) -> tuple[str, str, str]:
    """The RP sends the browser to the IdP; the phone approves; returns (state, code, verifier)."""
    state, nonce = secrets.token_urlsafe(12), secrets.token_urlsafe(12)
    challenge, verifier = rp.add_code_challenge()
    request = rp.construct_AuthorizationRequest(
        request_args={
            "response_type": "code",
            "scope": scope,
            "state": state,
            "nonce": nonce,
            "redirect_uri": rp.redirect_uris[0],
            **challenge,
            **extra,
        }
    )
    response = browser.follow(browser.get(request.request(rp.authorization_endpoint)))
    if response.status_code == 200 and "data-qrdata" in response.text:
        # Who asks: the client's registered name, on the page (and, through ns, on the phone).
        assert re.search(r"<h1>Log in to [^<]+</h1>", response.text), response.text[:500]
        response = browser.approve_on_phone(response, phone)
    assert response.status_code == 302, response.text[:300]
    answer = rp.parse_response(
        AuthorizationResponse, info=urlsplit(response.headers["Location"]).query, sformat="urlencoded"
    )
    assert answer["state"] == state
    return state, answer["code"], verifier


def exchange(rp: OicClient, state: str, code: str, verifier: str) -> AccessTokenResponse:
    return rp.do_access_token_request(
        state=state,
        request_args={"code": code, "code_verifier": verifier, "redirect_uri": rp.redirect_uris[0]},
        authn_method="client_secret_basic",
    )


# -- the whole journey with the independent RP ---------------------------------------------------------


def test_code_flow_with_pkce_userinfo_refresh_and_logout(
    system: RunningSystem,
    phone: Path,
    registered: dict[str, Any],
    receiver: Receiver,
    rp_urls: dict[str, str],
) -> None:
    rp = relying_party(system, registered)
    assert rp.provider_info["issuer"] == issuer(system)
    browser = Browser(system)
    state, code, verifier = log_in(rp, browser, phone)
    tokens = exchange(rp, state, code, verifier)
    assert "error" not in tokens, tokens.to_dict()
    id_token = tokens["id_token"]  # verified by pyoidc: RS256 signature from the JWKS, iss, aud, exp
    assert id_token["iss"] == issuer(system) and id_token["aud"] == [registered["client_id"]]
    assert id_token["sub"] == USER and id_token["email"] == "olivia@example.com"
    assert set(id_token["amr"]) >= {"swk", "pin", "mfa"} and id_token["acr"] == "urn:nextauth:acr:mfa"
    assert abs(id_token["auth_time"] - time.time()) < 120 and id_token["sid"]

    info = rp.do_user_info_request(state=state, behavior="use_authorization_header")
    assert isinstance(info, OpenIDSchema)
    assert info["sub"] == USER and info["name"] == "Olivia Ortega" and info["email_verified"] is True
    assert "groups" not in info.to_dict()  # not asked for

    first_refresh = tokens["refresh_token"]
    refreshed = rp.do_access_token_refresh(state=state, authn_method="client_secret_basic")
    assert "error" not in refreshed, refreshed.to_dict()
    assert refreshed["refresh_token"] != first_refresh  # rotated
    assert refreshed["id_token"]["sid"] == id_token["sid"]
    assert refreshed["id_token"]["auth_time"] == id_token["auth_time"]

    # The rotated-out refresh token is dead, and presenting it kills its successor too.
    stale = httpx.post(
        rp.token_endpoint,
        data={"grant_type": "refresh_token", "refresh_token": first_refresh},
        auth=(registered["client_id"], registered["client_secret"]),
    )
    assert stale.status_code == 400 and stale.json()["error"] == "invalid_grant"
    successor = httpx.post(
        rp.token_endpoint,
        data={"grant_type": "refresh_token", "refresh_token": refreshed["refresh_token"]},
        auth=(registered["client_id"], registered["client_secret"]),
    )
    assert successor.status_code == 400

    # RP-initiated logout with the ID token as hint: no question asked, back to the RP with its state.
    logout = rp.construct_EndSessionRequest(
        state=state,
        request_args={
            "id_token_hint": tokens["id_token"].jwt,
            "post_logout_redirect_uri": rp_urls["post_logout"],
            "state": "bye",
        },
    )
    answer = browser.get(logout.request(rp.provider_info["end_session_endpoint"]))
    assert answer.status_code == 302, answer.text[answer.text.find("<h1") :][:400]
    assert answer.headers["Location"] == f"{rp_urls['post_logout']}?state=bye"
    assert browser.get("/whoami", headers={"Accept": "application/json"}).status_code == 401

    # Back-channel: a logout token for this session, signed by the IdP, for this client.
    logout_token = receiver.wait_for(1)[-1]
    keys = KeySet.import_key_set(httpx.get(rp.provider_info["jwks_uri"]).json())
    decoded = jwt.decode(logout_token, keys, algorithms=["RS256"])
    assert decoded.header["typ"] == "logout+jwt"
    claims = decoded.claims
    assert claims["sid"] == id_token["sid"] and claims["sub"] == USER
    assert claims["aud"] == registered["client_id"] and claims["iss"] == issuer(system)
    assert "http://schemas.openid.net/event/backchannel-logout" in claims["events"] and "nonce" not in claims
    # The access token of the ended session no longer opens userinfo.
    gone = httpx.get(
        rp.provider_info["userinfo_endpoint"],
        headers={"Authorization": f"Bearer {refreshed['access_token']}"},
    )
    assert gone.status_code == 401
    browser.close()


def test_logout_at_the_idp_notifies_clients_and_revokes_refresh_tokens(
    system: RunningSystem, phone: Path, registered: dict[str, Any], receiver: Receiver
) -> None:
    rp = relying_party(system, registered)
    browser = Browser(system)
    state, code, verifier = log_in(rp, browser, phone)
    tokens = exchange(rp, state, code, verifier)
    before = len(receiver.tokens)
    assert browser.get("/whoami", headers={"Accept": "application/json"}).status_code == 200
    browser.post("/logout")
    assert receiver.wait_for(before + 1)[-1]
    refresh = httpx.post(
        rp.token_endpoint,
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=(registered["client_id"], registered["client_secret"]),
    )
    assert refresh.status_code == 400  # refresh tokens of the session ended with it
    browser.close()


# -- rules and their negative cases, with a plain HTTP client ---------------------------------------------


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


@pytest.fixture(scope="module")
def untrusted(system: RunningSystem, rp_urls: dict[str, str]) -> dict[str, Any]:
    """A third-party client: ES256 ID tokens, client_secret_post, consent needed beyond the basics."""
    return cli(
        system,
        "oidc-client",
        "add",
        "--name",
        "Third Party",
        "--redirect-uri",
        rp_urls["redirect"],
        "--auth-method",
        "client_secret_post",
    )


@pytest.fixture(scope="module")
def service(system: RunningSystem) -> dict[str, Any]:
    return cli(system, "oidc-client", "add", "--name", "Reporting job", "--grant", "client_credentials")


@pytest.fixture(scope="module")
def public(system: RunningSystem, rp_urls: dict[str, str]) -> dict[str, Any]:
    return cli(
        system, "oidc-client", "add", "--name", "SPA", "--public", "--redirect-uri", rp_urls["redirect"]
    )


def authorize_url(system: RunningSystem, client: dict[str, Any], challenge: str | None, **extra: str) -> str:
    args = {
        "response_type": "code",
        "client_id": client["client_id"],
        "redirect_uri": client["redirect_uris"][0],
        "scope": "openid",
        "state": "s1",
        "nonce": "n1",
        **extra,
    }
    if challenge is not None:
        args.update(code_challenge=challenge, code_challenge_method="S256")
    return f"{issuer(system)}/oidc/authorize?{urlencode(args)}"


def code_for(
    system: RunningSystem, browser: Browser, phone: Path, client: dict[str, Any], challenge: str, **extra: str
) -> str:
    answer = browser.follow(browser.get(authorize_url(system, client, challenge, **extra)))
    if answer.status_code == 200 and "data-qrdata" in answer.text:
        answer = browser.approve_on_phone(answer, phone)
    assert answer.status_code == 302, answer.text[:300]
    return query_of(answer)["code"]


def token_request(system: RunningSystem, client: dict[str, Any], **form: str) -> httpx.Response:
    data = {"grant_type": "authorization_code", "redirect_uri": client["redirect_uris"][0], **form}
    if client["token_endpoint_auth_method"] == "client_secret_post":
        data.update(client_id=client["client_id"], client_secret=client["client_secret"])
        return httpx.post(f"{issuer(system)}/oidc/token", data=data)
    if client["token_endpoint_auth_method"] == "none":
        return httpx.post(f"{issuer(system)}/oidc/token", data={**data, "client_id": client["client_id"]})
    return httpx.post(
        f"{issuer(system)}/oidc/token", data=data, auth=(client["client_id"], client["client_secret"])
    )


@pytest.fixture(scope="module")
def logged_in(system: RunningSystem, phone: Path, registered: dict[str, Any]) -> Iterator[Browser]:
    """A browser with an IdP session, for the tests that need one."""
    browser = Browser(system)
    code_for(system, browser, phone, registered, pkce()[1])
    yield browser
    browser.close()


def test_discovery_and_keys(system: RunningSystem) -> None:
    config = httpx.get(f"{issuer(system)}/.well-known/openid-configuration").json()
    assert config["issuer"] == issuer(system)
    assert config["code_challenge_methods_supported"] == ["S256"]
    assert config["backchannel_logout_supported"] is True
    keys = httpx.get(config["jwks_uri"]).json()["keys"]
    assert {key["alg"] for key in keys} >= {"ES256", "RS256"}
    assert all("d" not in key and "p" not in key for key in keys)  # public halves only


def test_unregistered_redirect_uri_is_never_followed(
    system: RunningSystem, registered: dict[str, Any]
) -> None:
    browser = Browser(system)
    for bad in (
        "https://evil.example/callback",
        registered["redirect_uris"][0] + "/extra",
        registered["redirect_uris"][0] + "?x=1",
    ):
        answer = browser.get(authorize_url(system, registered, pkce()[1], redirect_uri=bad))
        assert answer.status_code == 400 and "Location" not in answer.headers
    unknown = browser.get(authorize_url(system, {**registered, "client_id": "nobody"}, pkce()[1]))
    assert unknown.status_code == 400 and "Location" not in unknown.headers
    browser.close()


def test_pkce_is_required_and_must_be_s256(
    system: RunningSystem, registered: dict[str, Any], logged_in: Browser
) -> None:
    missing = logged_in.get(authorize_url(system, registered, None))
    assert missing.status_code == 302 and query_of(missing)["error"] == "invalid_request"
    plain = logged_in.get(
        authorize_url(system, registered, None, code_challenge="a" * 43, code_challenge_method="plain")
    )
    assert plain.status_code == 302 and query_of(plain)["error"] == "invalid_request"


def test_code_needs_its_verifier_and_works_once(
    system: RunningSystem, phone: Path, registered: dict[str, Any], logged_in: Browser
) -> None:
    verifier, challenge = pkce()
    code = code_for(system, logged_in, phone, registered, challenge)
    no_verifier = token_request(system, registered, code=code)
    assert no_verifier.status_code == 400 and no_verifier.json()["error"] == "invalid_request"
    # That attempt used the code up: even the right verifier is too late now.
    late = token_request(system, registered, code=code, code_verifier=verifier)
    assert late.status_code == 400 and late.json()["error"] == "invalid_grant"

    verifier, challenge = pkce()
    code = code_for(system, logged_in, phone, registered, challenge)
    wrong = token_request(system, registered, code=code, code_verifier=pkce()[0])
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"

    verifier, challenge = pkce()
    code = code_for(system, logged_in, phone, registered, challenge)
    first = token_request(system, registered, code=code, code_verifier=verifier)
    assert first.status_code == 200, first.text
    access = first.json()["access_token"]
    userinfo = f"{issuer(system)}/oidc/userinfo"
    assert httpx.get(userinfo, headers={"Authorization": f"Bearer {access}"}).status_code == 200
    replay = token_request(system, registered, code=code, code_verifier=verifier)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    # A code used twice has leaked: what it bought is revoked.
    assert httpx.get(userinfo, headers={"Authorization": f"Bearer {access}"}).status_code == 401
    refresh = httpx.post(
        f"{issuer(system)}/oidc/token",
        auth=(registered["client_id"], registered["client_secret"]),
        data={"grant_type": "refresh_token", "refresh_token": first.json()["refresh_token"]},
    )
    assert refresh.status_code == 400


def test_code_of_one_client_is_useless_to_another(
    system: RunningSystem,
    phone: Path,
    registered: dict[str, Any],
    untrusted: dict[str, Any],
    logged_in: Browser,
) -> None:
    verifier, challenge = pkce()
    code = code_for(system, logged_in, phone, registered, challenge)
    stolen = token_request(system, untrusted, code=code, code_verifier=verifier)
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
    wrong_secret = httpx.post(
        f"{issuer(system)}/oidc/token",
        auth=(registered["client_id"], "guess"),
        data={"grant_type": "authorization_code", "code": "x", "code_verifier": verifier},
    )
    assert wrong_secret.status_code == 401 and wrong_secret.json()["error"] == "invalid_client"


def test_prompt_none_without_a_session_asks_the_client_to_log_in(
    system: RunningSystem, registered: dict[str, Any]
) -> None:
    browser = Browser(system)
    answer = browser.get(authorize_url(system, registered, pkce()[1], prompt="none"))
    assert answer.status_code == 302
    assert query_of(answer)["error"] == "login_required" and query_of(answer)["state"] == "s1"
    browser.close()


def test_consent_for_more_than_the_basics(
    system: RunningSystem, phone: Path, untrusted: dict[str, Any], logged_in: Browser
) -> None:
    page = logged_in.get(authorize_url(system, untrusted, pkce()[1], scope="openid profile"))
    assert page.status_code == 302 and "code" in query_of(page)  # the basics: no question
    verifier, challenge = pkce()
    url = authorize_url(system, untrusted, challenge, scope="openid groups")
    page = logged_in.get(url)
    assert page.status_code == 200 and "Third Party" in page.text and "group memberships" in page.text
    csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
    forged = logged_in.post(url, data={"decision": "allow", "csrf": "forged"})
    assert forged.status_code == 400
    page = logged_in.get(url)
    csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
    denied = logged_in.post(url, data={"decision": "deny", "csrf": csrf})
    assert denied.status_code == 302 and query_of(denied)["error"] == "access_denied"
    page = logged_in.get(url)
    csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
    allowed = logged_in.post(url, data={"decision": "allow", "csrf": csrf})
    assert allowed.status_code == 302
    tokens = token_request(system, untrusted, code=query_of(allowed)["code"], code_verifier=verifier).json()
    claims = jwt.decode(
        tokens["id_token"],
        KeySet.import_key_set(httpx.get(f"{issuer(system)}/oidc/jwks").json()),
        algorithms=["ES256"],
    ).claims
    assert claims["groups"] == ["staff", "ops"]
    again = logged_in.get(authorize_url(system, untrusted, pkce()[1], scope="openid groups"))
    assert again.status_code == 302 and "code" in query_of(again)  # remembered


def test_prompt_login_asks_the_phone_again_in_the_same_session(
    system: RunningSystem, phone: Path, registered: dict[str, Any], logged_in: Browser
) -> None:
    keys = KeySet.import_key_set(httpx.get(f"{issuer(system)}/oidc/jwks").json())
    verifier, challenge = pkce()
    code = code_for(system, logged_in, phone, registered, challenge)
    before = jwt.decode(
        token_request(system, registered, code=code, code_verifier=verifier).json()["id_token"],
        keys,
        algorithms=["RS256"],
    ).claims
    time.sleep(1.1)
    verifier, challenge = pkce()
    page = logged_in.follow(logged_in.get(authorize_url(system, registered, challenge, prompt="login")))
    assert page.status_code == 200 and "data-qrdata" in page.text  # a new QR, though logged in
    answer = logged_in.approve_on_phone(page, phone)
    assert answer.status_code == 302
    after = jwt.decode(
        token_request(system, registered, code=query_of(answer)["code"], code_verifier=verifier).json()[
            "id_token"
        ],
        keys,
        algorithms=["RS256"],
    ).claims
    assert after["sid"] == before["sid"] and after["auth_time"] > before["auth_time"]
    assert "prompt" not in query_of(answer) and query_of(answer)["state"] == "s1"


def test_prompt_login_in_the_same_second_as_the_last_login_still_asks_the_phone(
    system: RunningSystem, phone: Path, registered: dict[str, Any], logged_in: Browser
) -> None:
    """A login approved just before a prompt=login request does not pass for one after it, even within
    the same second (compared to the millisecond): going straight back from the forced login's redirect,
    without approving, is sent to the login page again."""
    from idp.oidc.endpoints import LOGIN_AFTER

    _verifier, challenge = pkce()
    code_for(system, logged_in, phone, registered, challenge)  # a login approved just now
    forced = logged_in.get(authorize_url(system, registered, challenge, prompt="login", state="again"))
    assert forced.status_code == 302
    target = parse_qs(urlsplit(forced.headers["Location"]).query)["next"][0]
    assert LOGIN_AFTER in target
    skipped = logged_in.get(target)
    assert skipped.status_code == 302 and "/login" in skipped.headers["Location"], skipped.headers
    page = logged_in.follow(skipped)
    assert "data-qrdata" in page.text
    answer = logged_in.approve_on_phone(page, phone)
    assert answer.status_code == 302 and query_of(answer)["state"] == "again" and "code" in query_of(answer)


def test_a_forced_login_cannot_be_skipped_with_a_marker_of_ones_own(
    system: RunningSystem, registered: dict[str, Any], logged_in: Browser
) -> None:
    """The marker that says "sent to a forced login at T" is the IdP's, signed and tied to its request: one
    written by the browser, taken from another request, or replayed without logging in, answers nothing."""
    from idp.oidc.endpoints import LOGIN_AFTER

    _verifier, challenge = pkce()
    forged = authorize_url(system, registered, challenge, prompt="login", **{LOGIN_AFTER: "1"})
    assert "data-qrdata" in logged_in.follow(logged_in.get(forged)).text  # asked again, not let through
    # A genuine marker, from the IdP's redirect to the forced login.
    first = logged_in.get(authorize_url(system, registered, challenge, prompt="login", state="first"))
    assert first.status_code == 302
    target = parse_qs(urlsplit(first.headers["Location"]).query)["next"][0]
    marker = parse_qs(urlsplit(target).query)[LOGIN_AFTER][0]
    # Replayed without a new approval: the login is older than the marker, so the phone is asked again.
    replayed = logged_in.get(target)
    assert replayed.status_code == 302 and "/login" in replayed.headers["Location"]
    # On another request (another state): not its marker, so its prompt=login asks the phone again.
    other = authorize_url(
        system, registered, challenge, state="other", prompt="login", **{LOGIN_AFTER: marker}
    )
    assert "data-qrdata" in logged_in.follow(logged_in.get(other)).text


def test_public_client_with_pkce(
    system: RunningSystem, phone: Path, public: dict[str, Any], logged_in: Browser
) -> None:
    assert public["client_secret"] is None
    verifier, challenge = pkce()
    code = code_for(system, logged_in, phone, public, challenge)
    assert token_request(system, public, code=code).status_code == 400
    code = code_for(system, logged_in, phone, public, challenge)
    assert token_request(system, public, code=code, code_verifier=verifier).status_code == 200


def test_client_credentials_and_introspection(
    system: RunningSystem,
    phone: Path,
    registered: dict[str, Any],
    service: dict[str, Any],
    logged_in: Browser,
) -> None:
    base = issuer(system)
    minted = httpx.post(
        f"{base}/oidc/token",
        data={"grant_type": "client_credentials"},
        auth=(service["client_id"], service["client_secret"]),
    )
    assert minted.status_code == 200 and "refresh_token" not in minted.json()
    verifier, challenge = pkce()
    code = code_for(system, logged_in, phone, registered, challenge)
    user_token = token_request(system, registered, code=code, code_verifier=verifier).json()["access_token"]
    seen = httpx.post(
        f"{base}/oidc/introspect",
        data={"token": user_token},
        auth=(service["client_id"], service["client_secret"]),
    ).json()
    assert seen["active"] is True and seen["sub"] == USER and seen["client_id"] == registered["client_id"]
    assert httpx.post(
        f"{base}/oidc/introspect",
        data={"token": "made-up"},
        auth=(service["client_id"], service["client_secret"]),
    ).json() == {"active": False}
    assert httpx.post(f"{base}/oidc/introspect", data={"token": user_token}).status_code == 401
    # Revocation by the token's own client ends it for everyone.
    assert (
        httpx.post(
            f"{base}/oidc/revoke",
            data={"token": user_token},
            auth=(registered["client_id"], registered["client_secret"]),
        ).status_code
        == 200
    )
    assert httpx.post(
        f"{base}/oidc/introspect",
        data={"token": user_token},
        auth=(service["client_id"], service["client_secret"]),
    ).json() == {"active": False}
    # A service client cannot use the browser flow.
    assert (
        httpx.post(
            f"{base}/oidc/token",
            data={"grant_type": "client_credentials"},
            auth=(registered["client_id"], registered["client_secret"]),
        ).status_code
        == 400
    )


def test_logout_without_our_id_token_asks_first(
    system: RunningSystem, phone: Path, registered: dict[str, Any], rp_urls: dict[str, str]
) -> None:
    browser = Browser(system)
    code_for(system, browser, phone, registered, pkce()[1])
    url = f"{issuer(system)}/oidc/logout?" + urlencode(
        {"client_id": registered["client_id"], "post_logout_redirect_uri": rp_urls["post_logout"]}
    )
    page = browser.get(url)
    assert page.status_code == 200 and "Log out" in page.text
    assert browser.get("/whoami", headers={"Accept": "application/json"}).status_code == 200  # not yet
    forged_hint = browser.get(f"{issuer(system)}/oidc/logout?id_token_hint=eyJhbGciOiJub25lIn0.e30.")
    assert forged_hint.status_code == 400
    done = browser.post(url)
    assert done.status_code == 200 and "logged out" in done.text  # no ID token: no redirect back
    assert browser.get("/whoami", headers={"Accept": "application/json"}).status_code == 401
    browser.close()


def test_a_session_ended_at_ns_ends_the_idp_session_and_tells_the_clients(
    system: RunningSystem, phone: Path, registered: dict[str, Any], receiver: Receiver
) -> None:
    rp = relying_party(system, registered)
    browser = Browser(system)
    state, code, verifier = log_in(rp, browser, phone)
    sid = exchange(rp, state, code, verifier)["id_token"]["sid"]
    before = len(receiver.tokens)
    api = ns_api(system)
    status, listed = api.call("GET", f"/v1/servers/default/users/{USER}/sessions")
    assert status == 200 and listed["sessions"]
    for each in listed["sessions"]:  # the application (or the user, in the app) ends the ns session
        api.call("DELETE", f"/v1/servers/default/sessions/{each['hsid']}")
    keys = KeySet.import_key_set(httpx.get(f"{issuer(system)}/oidc/jwks").json())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        # Other sessions of this user end too (earlier tests' browsers): look for this one's token.
        sids = {jwt.decode(t, keys, algorithms=["RS256"]).claims["sid"] for t in receiver.tokens[before:]}
        if sid in sids:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("no back-channel logout for the session ended at ns")
    assert browser.get("/whoami", headers={"Accept": "application/json"}).status_code == 401
    browser.close()


# -- access rules: logout hints, revocation of a family, client tokens, cross-site forms -----------------


def sids_in(tokens: list[str], system: RunningSystem) -> set[str]:
    keys = KeySet.import_key_set(httpx.get(f"{issuer(system)}/oidc/jwks").json())
    return {jwt.decode(t, keys, algorithms=["RS256", "ES256"]).claims["sid"] for t in tokens}


def test_logout_with_an_id_token_of_another_session_asks_first(
    system: RunningSystem,
    phone: Path,
    registered: dict[str, Any],
    receiver: Receiver,
    rp_urls: dict[str, str],
) -> None:
    """A genuine ID token of another session (here: the same user in another browser) must not log this
    browser out silently, nor fire back-channel logouts; only the IdP's own confirmation does."""
    rp = relying_party(system, registered)
    elsewhere, here = Browser(system), Browser(system)
    state, code, verifier = log_in(rp, elsewhere, phone)
    other_token = exchange(rp, state, code, verifier)["id_token"]
    code_for(system, here, phone, registered, pkce()[1])
    my_sid = here.get("/whoami", headers={"Accept": "application/json"}).json()
    assert my_sid["sub"] == USER
    before = len(receiver.tokens)
    url = f"{issuer(system)}/oidc/logout?" + urlencode(
        {
            "id_token_hint": other_token.jwt,
            "post_logout_redirect_uri": rp_urls["post_logout"],
            "state": "bye",
        }
    )
    asked = here.get(url)
    assert asked.status_code == 200 and "different login" in asked.text, asked.headers.get("Location")
    # An RP (or any page) posting the same request from its own site gets the question too.
    posted = here.post(url, headers={"Origin": "https://rp.example", "Sec-Fetch-Site": "cross-site"})
    assert posted.status_code == 200 and "different login" in posted.text
    for browser in (here, elsewhere):
        assert browser.get("/whoami", headers={"Accept": "application/json"}).status_code == 200
    time.sleep(1.0)
    assert other_token["sid"] not in sids_in(receiver.tokens[before:], system)
    # The user confirms on the IdP's page: this browser's session ends, the other one stays.
    action = asked.text.split('<form method="post" action="')[1].split('"')[0]
    done = here.post(action.replace("&amp;", "&"), headers={"Sec-Fetch-Site": "same-origin"})
    assert done.status_code == 302 and done.headers["Location"] == f"{rp_urls['post_logout']}?state=bye"
    assert here.get("/whoami", headers={"Accept": "application/json"}).status_code == 401
    assert elsewhere.get("/whoami", headers={"Accept": "application/json"}).status_code == 200
    here.close()
    elsewhere.close()


def introspect(system: RunningSystem, client: dict[str, Any], token: str) -> dict[str, Any]:
    answer = httpx.post(
        f"{issuer(system)}/oidc/introspect",
        data={"token": token},
        auth=(client["client_id"], client["client_secret"]),
    )
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def userinfo_status(system: RunningSystem, access_token: str) -> int:
    return httpx.get(
        f"{issuer(system)}/oidc/userinfo", headers={"Authorization": f"Bearer {access_token}"}
    ).status_code


def test_revoking_a_refresh_token_revokes_the_access_tokens_of_its_family(
    system: RunningSystem, phone: Path, registered: dict[str, Any]
) -> None:
    rp = relying_party(system, registered)
    browser = Browser(system)
    state, code, verifier = log_in(rp, browser, phone)
    tokens = exchange(rp, state, code, verifier)
    refreshed = rp.do_access_token_refresh(state=state, authn_method="client_secret_basic")
    assert "error" not in refreshed, refreshed.to_dict()
    accesses = [tokens["access_token"], refreshed["access_token"]]
    assert all(userinfo_status(system, each) == 200 for each in accesses)
    revoked = httpx.post(
        rp.provider_info["revocation_endpoint"],
        data={"token": refreshed["refresh_token"], "token_type_hint": "refresh_token"},
        auth=(registered["client_id"], registered["client_secret"]),
    )
    assert revoked.status_code == 200
    for each in accesses:  # RFC 7009 2.1: the access tokens of the grant go with it
        assert introspect(system, registered, each) == {"active": False}
        assert userinfo_status(system, each) == 401
    # The browser session itself is not what was revoked.
    assert browser.get("/whoami", headers={"Accept": "application/json"}).status_code == 200
    browser.close()


def test_a_reused_refresh_token_revokes_the_access_tokens_of_its_family(
    system: RunningSystem, phone: Path, registered: dict[str, Any]
) -> None:
    rp = relying_party(system, registered)
    browser = Browser(system)
    state, code, verifier = log_in(rp, browser, phone)
    first = exchange(rp, state, code, verifier)
    refreshed = rp.do_access_token_refresh(state=state, authn_method="client_secret_basic")
    assert userinfo_status(system, refreshed["access_token"]) == 200
    stolen = httpx.post(
        rp.token_endpoint,
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        auth=(registered["client_id"], registered["client_secret"]),
    )
    assert stolen.status_code == 400
    for each in (first["access_token"], refreshed["access_token"]):
        assert introspect(system, registered, each) == {"active": False}
        assert userinfo_status(system, each) == 401
    browser.close()


def test_a_client_token_is_not_a_users_token(
    system: RunningSystem, phone: Path, registered: dict[str, Any]
) -> None:
    """A client registered under a user's id gets no user's profile: its token names no user."""
    impostor = cli(
        system,
        "oidc-client",
        "add",
        "--name",
        "Impostor",
        "--client-id",
        USER,
        "--grant",
        "client_credentials",
    )
    minted = httpx.post(
        f"{issuer(system)}/oidc/token",
        data={"grant_type": "client_credentials", "scope": "openid profile email"},
        auth=(impostor["client_id"], impostor["client_secret"]),
    )
    assert minted.status_code == 200, minted.text
    access = minted.json()["access_token"]
    refused = httpx.get(f"{issuer(system)}/oidc/userinfo", headers={"Authorization": f"Bearer {access}"})
    assert refused.status_code == 401 and "invalid_token" in refused.headers["WWW-Authenticate"]
    assert USER not in refused.text
    seen = introspect(system, impostor, access)
    assert seen["active"] is True and seen["subject_type"] == "client" and "sub" not in seen
    assert seen["client_id"] == USER
    # A user's token says so, with the user as its subject.
    rp = relying_party(system, registered)
    browser = Browser(system)
    state, code, verifier = log_in(rp, browser, phone)
    user_token = exchange(rp, state, code, verifier)["access_token"]
    mine = introspect(system, registered, user_token)
    assert mine["subject_type"] == "user" and mine["sub"] == USER
    browser.close()


def test_consent_from_another_site_is_refused(
    system: RunningSystem, phone: Path, untrusted: dict[str, Any]
) -> None:
    browser = Browser(system)
    url = authorize_url(system, untrusted, pkce()[1], scope="openid offline_access", prompt="consent")
    page = browser.follow(browser.get(url))
    if "data-qrdata" in page.text:
        page = browser.approve_on_phone(page, phone)
    assert page.status_code == 200 and "Third Party" in page.text
    csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
    forged = browser.post(
        url,
        data={"decision": "allow", "csrf": csrf},
        headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
    )
    assert forged.status_code == 403 and "Location" not in forged.headers
    browser.close()
