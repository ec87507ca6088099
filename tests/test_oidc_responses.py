"""How authorization responses reach the client: the issuer in every response (RFC 9207), the response
modes (query, fragment, form post) and their refusal, and the redirect URI that OpenID requests must name
(OIDC Core 3.1.2.1)."""

import html
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.fixtures.flows import PIN, enrol
from tests.fixtures.idp_browser import Browser, query_of
from tests.fixtures.idp_browser import idp_cli as cli
from tests.fixtures.system import RunningSystem, free_port, run_app
from tests.test_oidc import authorize_url, issuer, pkce, token_request

USER = "rosa"


@pytest.fixture(scope="module")
def phone(system: RunningSystem, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("responses-phone")
    assert run_app(home, "init", "--config", str(system.data_dir / "app-config.json"))[0] == 0
    assert run_app(home, "register", "--pin", PIN)[0] == 0
    enrol(system, home, USER)
    return home


@pytest.fixture(scope="module")
def client(system: RunningSystem) -> dict[str, Any]:
    # One registered redirect URI, with a query of its own: the response's parameters come after it.
    redirect = f"http://127.0.0.1:{free_port()}/callback?app=1"
    return cli(
        system, "oidc-client", "add", "--name", "Responses RP", "--redirect-uri", redirect, "--trusted"
    )


@pytest.fixture(scope="module")
def signed_in(system: RunningSystem, phone: Path, client: dict[str, Any]) -> Any:
    """A logged-in browser (no screen: the redirects are what is under test)."""
    logged_in = Browser(system)
    page = logged_in.follow(logged_in.get(authorize_url(system, client, pkce()[1])))
    answer = logged_in.approve_on_phone(page, phone)
    assert answer.status_code == 302, answer.text[:300]
    yield logged_in
    logged_in.close()


def test_discovery_announces_modes_and_the_issuer_parameter(system: RunningSystem) -> None:
    config = httpx.get(f"{issuer(system)}/.well-known/openid-configuration").json()
    assert config["authorization_response_iss_parameter_supported"] is True
    assert set(config["response_modes_supported"]) == {"query", "fragment", "form_post"}


def test_success_and_error_redirects_name_the_issuer(
    system: RunningSystem, client: dict[str, Any], signed_in: Browser
) -> None:
    success = signed_in.get(authorize_url(system, client, pkce()[1]))
    assert success.status_code == 302
    answer = query_of(success)
    assert answer["iss"] == issuer(system) and answer["code"] and answer["state"] == "s1"
    assert answer["app"] == "1"  # the redirect URI's own query stays
    no_pkce = signed_in.get(authorize_url(system, client, None))
    assert no_pkce.status_code == 302
    assert query_of(no_pkce)["error"] == "invalid_request" and query_of(no_pkce)["iss"] == issuer(system)
    anonymous = Browser(system)
    login_required = anonymous.get(authorize_url(system, client, pkce()[1], prompt="none"))
    assert query_of(login_required)["error"] == "login_required"
    assert query_of(login_required)["iss"] == issuer(system)
    anonymous.close()


def test_form_post_delivers_an_auto_submitting_form(
    system: RunningSystem, client: dict[str, Any], signed_in: Browser
) -> None:
    verifier, challenge = pkce()
    page = signed_in.get(authorize_url(system, client, challenge, response_mode="form_post"))
    assert page.status_code == 200 and "Location" not in page.headers
    assert page.headers["Cache-Control"] == "no-store"
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "<script>" not in page.text and "oidc-form-post.js" in page.text  # no inline script
    action = html.unescape(
        re.search(r'<form id="oidc-form-post" method="post" action="([^"]+)"', page.text)[1]
    )
    assert action == client["redirect_uris"][0]
    fields = {
        name: html.unescape(value)
        for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text)
    }
    assert set(fields) == {"code", "state", "iss"}
    assert fields["state"] == "s1" and fields["iss"] == issuer(system)
    # The posted code is a real one.
    tokens = token_request(system, client, code=fields["code"], code_verifier=verifier)
    assert tokens.status_code == 200, tokens.text
    script = signed_in.get("/static/oidc-form-post.js")
    assert script.status_code == 200 and "submit()" in script.text


def test_form_post_errors_are_posted_too(
    system: RunningSystem, client: dict[str, Any], signed_in: Browser
) -> None:
    page = signed_in.get(authorize_url(system, client, None, response_mode="form_post"))
    assert page.status_code == 200 and "Location" not in page.headers
    assert 'name="error" value="invalid_request"' in page.text and 'name="iss"' in page.text


def test_fragment_mode(system: RunningSystem, client: dict[str, Any], signed_in: Browser) -> None:
    answer = signed_in.get(authorize_url(system, client, pkce()[1], response_mode="fragment"))
    assert answer.status_code == 302
    location = urlsplit(answer.headers["Location"])
    assert "code" not in parse_qs(location.query)
    fragment = {k: v[0] for k, v in parse_qs(location.fragment).items()}
    assert fragment["code"] and fragment["iss"] == issuer(system) and fragment["state"] == "s1"


@pytest.mark.parametrize("mode", ["jwt", "query.jwt", "web_message", "FORM_POST"])
def test_unsupported_modes_are_refused(
    system: RunningSystem, client: dict[str, Any], signed_in: Browser, mode: str
) -> None:
    answer = signed_in.get(authorize_url(system, client, pkce()[1], response_mode=mode))
    assert answer.status_code == 302
    refused = query_of(answer)
    assert refused["error"] == "invalid_request" and "response_mode" in refused["error_description"]
    assert "code" not in refused and refused["iss"] == issuer(system)


def test_openid_requests_must_name_their_redirect_uri(
    system: RunningSystem, client: dict[str, Any], signed_in: Browser
) -> None:
    url = authorize_url(system, client, pkce()[1])
    without = re.sub(r"redirect_uri=[^&]*&", "", url)
    assert "redirect_uri" not in without
    refused = signed_in.get(without)
    assert refused.status_code == 400 and "Location" not in refused.headers
    assert "redirect_uri" in refused.text
    # Plain OAuth (no openid scope) may still rely on the one registered URI.
    oauth = signed_in.get(re.sub(r"scope=openid", "scope=profile", without))
    assert oauth.status_code == 302 and query_of(oauth)["code"]
