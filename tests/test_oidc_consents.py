"""Users' consents to OIDC clients, listed and revoked through the CLI (``nextauth oidc-consent``) and the
IdP's admin API (``/api/v1/consents``, its own admin key); revoking ends the client's refresh tokens (and
their access tokens) for that user, and the consent page comes back."""

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.flows import PIN, enrol
from tests.fixtures.idp_browser import Browser, query_of
from tests.fixtures.idp_browser import idp_cli as cli
from tests.fixtures.system import RunningSystem, free_port, run_app, start_system, stop_system
from tests.test_oidc import authorize_url, issuer, pkce, token_request

USER = "tove"
ADMIN_KEY = secrets.token_urlsafe(32)


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSystem]:
    """The whole system (SQLite, in-process store), with the IdP's admin API turned on."""
    running = start_system(
        tmp_path_factory.mktemp("consents-system"),
        extra_env={"NEXTAUTH_IDP_ADMIN_API_KEY": ADMIN_KEY, "NEXTAUTH_IDP_NS_CHECK_SECONDS": "1"},
    )
    yield running
    stop_system(running)
    assert running.process.returncode == 0, running.log()


@pytest.fixture(scope="module")
def phone(system: RunningSystem, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("consents-phone")
    assert run_app(home, "init", "--config", str(system.data_dir / "app-config.json"))[0] == 0
    assert run_app(home, "register", "--pin", PIN)[0] == 0
    enrol(system, home, USER)
    return home


@pytest.fixture(scope="module")
def third_party(system: RunningSystem) -> dict[str, Any]:
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    return cli(system, "oidc-client", "add", "--name", "Photo Printer", "--redirect-uri", redirect)


@pytest.fixture(scope="module")
def signed_in(system: RunningSystem, phone: Path, third_party: dict[str, Any]) -> Iterator[Browser]:
    browser = Browser(system)
    page = browser.follow(browser.get(authorize_url(system, third_party, pkce()[1])))
    assert browser.approve_on_phone(page, phone).status_code == 302
    yield browser
    browser.close()


def consent_and_tokens(system: RunningSystem, browser: Browser, client: dict[str, Any]) -> dict[str, Any]:
    """The user allows ``groups`` on the consent page; the client's tokens."""
    verifier, challenge = pkce()
    url = authorize_url(system, client, challenge, scope="openid groups")
    page = browser.get(url)
    assert page.status_code == 200 and "Photo Printer" in page.text, page.headers.get("Location")
    csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
    allowed = browser.post(url, data={"decision": "allow", "csrf": csrf})
    assert allowed.status_code == 302
    tokens = token_request(system, client, code=query_of(allowed)["code"], code_verifier=verifier)
    assert tokens.status_code == 200, tokens.text
    return tokens.json()  # type: ignore[no-any-return]


def api(system: RunningSystem, method: str, key: str | None = ADMIN_KEY, **params: str) -> httpx.Response:
    headers = {"X-apikey": key} if key is not None else {}
    return httpx.request(method, f"{issuer(system)}/api/v1/consents", params=params, headers=headers)


def refresh(system: RunningSystem, client: dict[str, Any], refresh_token: str) -> httpx.Response:
    return httpx.post(
        f"{issuer(system)}/oidc/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        auth=(client["client_id"], client["client_secret"]),
    )


def userinfo_status(system: RunningSystem, access_token: str) -> int:
    return httpx.get(
        f"{issuer(system)}/oidc/userinfo", headers={"Authorization": f"Bearer {access_token}"}
    ).status_code


def test_list_and_revoke_through_the_api(
    system: RunningSystem, signed_in: Browser, third_party: dict[str, Any]
) -> None:
    tokens = consent_and_tokens(system, signed_in, third_party)
    client_id = third_party["client_id"]

    assert api(system, "GET", key=None).status_code == 401
    assert api(system, "GET", key="wrong-" + ADMIN_KEY).status_code == 401
    listed = api(system, "GET", user=USER)
    assert listed.status_code == 200 and listed.headers["Cache-Control"] == "no-store"
    (consent,) = listed.json()["consents"]
    assert consent["client_id"] == client_id and consent["client_name"] == "Photo Printer"
    assert consent["scope"] == "groups" and consent["user_id"] == USER
    bearer = httpx.get(
        f"{issuer(system)}/api/v1/consents",
        params={"client": client_id},
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    )
    assert bearer.status_code == 200 and len(bearer.json()["consents"]) == 1
    assert api(system, "GET", user="nobody").json() == {"consents": []}

    assert api(system, "DELETE", user=USER).status_code == 400  # which client?
    assert api(system, "DELETE", key="wrong-" + ADMIN_KEY, user=USER, client=client_id).status_code == 401
    revoked = api(system, "DELETE", user=USER, client=client_id)
    assert revoked.status_code == 200, revoked.text
    answer = revoked.json()
    assert answer["consent_revoked"] is True and answer["refresh_tokens_revoked"] >= 1
    assert api(system, "GET", user=USER).json() == {"consents": []}
    # The client's tokens for the user end with the consent.
    assert refresh(system, third_party, tokens["refresh_token"]).status_code == 400
    assert userinfo_status(system, tokens["access_token"]) == 401
    assert api(system, "DELETE", user=USER, client=client_id).status_code == 404  # nothing left
    # And the user is asked again.
    again = signed_in.get(authorize_url(system, third_party, pkce()[1], scope="openid groups"))
    assert again.status_code == 200 and "Photo Printer" in again.text


def test_list_and_revoke_through_the_cli(
    system: RunningSystem, signed_in: Browser, third_party: dict[str, Any]
) -> None:
    tokens = consent_and_tokens(system, signed_in, third_party)
    client_id = third_party["client_id"]
    listed = cli(system, "oidc-consent", "list", "--user", USER, "--client", client_id)
    assert [(c["user_id"], c["client_id"], c["scope"]) for c in listed] == [(USER, client_id, "groups")]
    assert cli(system, "oidc-consent", "list", "--client", "someone-else") == []
    result = cli(system, "oidc-consent", "revoke", "--user", USER, "--client", client_id)
    assert result["consent_revoked"] is True and result["refresh_tokens_revoked"] >= 1
    assert cli(system, "oidc-consent", "list", "--user", USER) == []
    assert refresh(system, third_party, tokens["refresh_token"]).status_code == 400


def test_wrong_keys_are_rate_limited(system: RunningSystem) -> None:
    """Last in this module: it uses up the loopback address's allowance of wrong keys."""
    statuses = [api(system, "GET", key=f"guess-{n}").status_code for n in range(12)]
    assert statuses[0] == 401 and statuses[-1] == 429
    assert api(system, "GET").status_code == 429  # even the right key waits: no guessing race
