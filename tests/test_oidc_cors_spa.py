"""CORS for single-page apps: a real SPA (tests/spa/, plain JavaScript) on another loopback origin logs in
with code + PKCE in headless Chromium and calls the token and userinfo endpoints with fetch(); a page on
an origin the client did not register cannot read them. Then the headers themselves, with their negative
cases."""

import functools
import json
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from idp.oidc.clients import check_web_origin, origin_of
from tests.fixtures.flows import PIN, enrol
from tests.fixtures.idp_browser import idp_cli as cli
from tests.fixtures.idp_browser import run_nextauth
from tests.fixtures.system import RunningSystem, free_port, run_app
from tests.test_oidc import issuer

USER = "sofia"
SPA_DIR = Path(__file__).parent / "spa"


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def spa_port() -> Iterator[int]:
    """The SPA's static files, served on loopback; ``localhost`` and ``127.0.0.1`` are two origins of it."""
    server = ThreadingHTTPServer(
        ("127.0.0.1", free_port()), functools.partial(_Quiet, directory=str(SPA_DIR))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_port
    server.shutdown()


@pytest.fixture(scope="module")
def phone(system: RunningSystem, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("spa-phone")
    assert run_app(home, "init", "--config", str(system.data_dir / "app-config.json"))[0] == 0
    assert run_app(home, "register", "--pin", PIN)[0] == 0
    enrol(system, home, USER)
    cli(system, "user", "set", USER, "--name", "Sofia Sand")
    return home


@pytest.fixture(scope="module")
def spa_client(system: RunningSystem, spa_port: int) -> dict[str, Any]:
    return cli(
        system,
        "oidc-client",
        "add",
        "--name",
        "Test SPA",
        "--public",
        "--redirect-uri",
        f"http://localhost:{spa_port}/index.html",
    )


def test_spa_logs_in_in_chromium_and_other_origins_cannot_read(
    system: RunningSystem, browser: Any, phone: Path, spa_port: int, spa_client: dict[str, Any]
) -> None:
    assert spa_client["nextauth_web_origins"] == [f"http://localhost:{spa_port}"]
    context = browser.new_context()
    page = context.new_page()
    start = f"http://localhost:{spa_port}/index.html?" + urlencode(
        {"issuer": issuer(system), "client_id": spa_client["client_id"]}
    )
    page.goto(start)
    page.wait_for_selector("#qr svg", timeout=15000)  # the IdP's login page, reached from the SPA
    code, answer = run_app(phone, "scan", page.get_attribute("#qr", "data-qrdata"), "--pin", PIN)
    assert code == 0, answer
    page.wait_for_selector("#result, #error", timeout=20000)
    assert page.url.startswith(f"http://localhost:{spa_port}/index.html")
    assert page.locator("#error").count() == 0, page.inner_text("#error")
    result = json.loads(page.inner_text("#result"))
    assert result["sub"] == USER == result["id_token_sub"] and result["name"] == "Sofia Sand"
    assert result["token_type"] == "Bearer"
    access = result["access_token"]

    userinfo = f"{issuer(system)}/oidc/userinfo"
    probe = """async ([url, token]) => {
        try {
            const answer = await fetch(url, {headers: {Authorization: "Bearer " + token}});
            return "read " + answer.status;
        } catch (error) {
            return "blocked " + error;
        }
    }"""
    assert page.evaluate(probe, [userinfo, access]) == "read 200"
    # An expired or unknown token: the SPA can still read why (401), not a bare network error.
    assert page.evaluate(probe, [userinfo, "not-a-token"]) == "read 401"

    # The same server under another origin, which the client did not register: the very same valid token,
    # but the browser lets the page read nothing, neither userinfo nor the token endpoint.
    other = context.new_page()
    other.goto(f"http://127.0.0.1:{spa_port}/index.html")
    other.wait_for_selector("#idle")
    blocked = other.evaluate(probe, [userinfo, access])
    assert blocked.startswith("blocked TypeError"), blocked
    token_probe = """async ([url, clientId]) => {
        try {
            const answer = await fetch(url, {method: "POST", body: new URLSearchParams(
                {grant_type: "authorization_code", code: "x", client_id: clientId, code_verifier: "y"})});
            return "read " + answer.status;
        } catch (error) {
            return "blocked " + error;
        }
    }"""
    token_url = f"{issuer(system)}/oidc/token"
    assert other.evaluate(token_probe, [token_url, spa_client["client_id"]]).startswith("blocked TypeError")
    assert page.evaluate(token_probe, [token_url, spa_client["client_id"]]) == "read 400"
    context.close()


def test_cors_headers(system: RunningSystem, spa_port: int, spa_client: dict[str, Any]) -> None:
    base = issuer(system)
    allowed, stranger = f"http://localhost:{spa_port}", "https://evil.example"
    for path in ("/.well-known/openid-configuration", "/oidc/jwks"):
        answer = httpx.get(base + path, headers={"Origin": stranger})
        assert answer.headers["Access-Control-Allow-Origin"] == "*"

    for path in ("/oidc/token", "/oidc/userinfo", "/oidc/revoke"):
        preflight = httpx.options(
            base + path,
            headers={
                "Origin": allowed,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization",
            },
        )
        assert preflight.status_code == 204
        assert preflight.headers["Access-Control-Allow-Origin"] == allowed
        assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
        assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
        assert "Origin" in preflight.headers["Vary"]
        assert "Access-Control-Allow-Credentials" not in preflight.headers
        refused = httpx.options(
            base + path, headers={"Origin": stranger, "Access-Control-Request-Method": "POST"}
        )
        assert "Access-Control-Allow-Origin" not in refused.headers

    form = {
        "grant_type": "authorization_code",
        "code": "x",
        "client_id": spa_client["client_id"],
        "code_verifier": "y",
    }
    mine = httpx.post(f"{base}/oidc/token", data=form, headers={"Origin": allowed})
    assert mine.status_code == 400 and mine.headers["Access-Control-Allow-Origin"] == allowed
    assert "Origin" in mine.headers["Vary"] and "Access-Control-Allow-Credentials" not in mine.headers
    theirs = httpx.post(f"{base}/oidc/token", data=form, headers={"Origin": stranger})
    assert "Access-Control-Allow-Origin" not in theirs.headers

    # A confidential client has no web origins unless given: its server calls the IdP, not a page.
    backend = cli(
        system, "oidc-client", "add", "--name", "Backend", "--redirect-uri", f"http://localhost:{spa_port}/cb"
    )
    assert backend["nextauth_web_origins"] == []
    confidential = httpx.post(
        f"{base}/oidc/token",
        data=form,
        auth=(backend["client_id"], backend["client_secret"]),
        headers={"Origin": allowed},
    )
    assert "Access-Control-Allow-Origin" not in confidential.headers
    # ... and with --web-origin it has exactly those.
    portal = cli(
        system,
        "oidc-client",
        "add",
        "--name",
        "Portal",
        "--redirect-uri",
        "https://portal.example.com/cb",
        "--web-origin",
        "https://portal.example.com",
    )
    answer = httpx.post(
        f"{base}/oidc/revoke",
        data={"token": "unknown"},
        auth=(portal["client_id"], portal["client_secret"]),
        headers={"Origin": "https://portal.example.com"},
    )
    assert (
        answer.status_code == 200
        and answer.headers["Access-Control-Allow-Origin"] == "https://portal.example.com"
    )
    # A public client can be kept off CORS altogether.
    native = cli(
        system,
        "oidc-client",
        "add",
        "--name",
        "Native",
        "--public",
        "--no-web-origins",
        "--redirect-uri",
        "http://127.0.0.1:7/cb",
    )
    assert native["nextauth_web_origins"] == []


@pytest.mark.parametrize(
    "origin", ["https://app.example.com/", "https://app.example.com/spa", "*", "ftp://x"]
)
def test_web_origins_must_be_origins(system: RunningSystem, origin: str) -> None:
    code, _, stderr = run_nextauth(
        system,
        "oidc-client",
        "add",
        "--name",
        "Bad origin",
        "--public",
        "--redirect-uri",
        "https://app.example.com/cb",
        "--web-origin",
        origin,
    )
    assert code == 2 and "web origin" in stderr


def test_origins_as_browsers_send_them() -> None:
    assert origin_of("https://app.example.com/cb?x=1") == "https://app.example.com"
    assert origin_of("https://app.example.com:443/cb") == "https://app.example.com"
    assert origin_of("http://localhost:8080/cb") == "http://localhost:8080"
    assert origin_of("http://[::1]:9/cb") == "http://[::1]:9"
    assert check_web_origin("https://app.example.com:8443") == "https://app.example.com:8443"
    for bad in ("https://app.example.com:443", "http://app.example.com", "https://app.example.com/x"):
        with pytest.raises(ValueError):
            check_web_origin(bad)
