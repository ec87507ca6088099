"""Pushed authorization requests (RFC 9126) and signed request objects (JAR, RFC 9101): the flows, then the
rules each with its negative case (replayed or foreign request_uri, PAR required, fetched request_uri,
request objects unsigned, signed by another key, for another audience, expired)."""

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey

from tests.fixtures.idp_browser import Browser, query_of
from tests.fixtures.idp_browser import idp_cli as cli
from tests.fixtures.idp_offline import offline_idp_services
from tests.fixtures.system import RunningSystem
from tests.test_oidc import issuer, phone, pkce, rp_urls

__all__ = ["phone", "rp_urls"]  # fixtures shared with test_oidc

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@pytest.fixture(scope="module")
def ec_key() -> ECKey:
    return ECKey.generate_key("P-256", parameters={"kid": "jar-1"}, private=True)


def add_client(system: RunningSystem, name: str, redirect: str, *args: str) -> dict[str, Any]:
    return cli(system, "oidc-client", "add", "--name", name, "--redirect-uri", redirect, "--trusted", *args)


@pytest.fixture(scope="module")
def par_client(system: RunningSystem, rp_urls: dict[str, str]) -> dict[str, Any]:
    return add_client(system, "PAR only", rp_urls["redirect"], "--require-par")


@pytest.fixture(scope="module")
def other_client(system: RunningSystem, rp_urls: dict[str, str]) -> dict[str, Any]:
    return add_client(system, "Other", rp_urls["redirect"])


@pytest.fixture(scope="module")
def key_client(
    system: RunningSystem, rp_urls: dict[str, str], ec_key: ECKey, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    path = tmp_path_factory.mktemp("jar") / "client.jwks"
    path.write_text(json.dumps({"keys": [ec_key.as_dict(private=False)]}))
    return add_client(
        system, "JAR", rp_urls["redirect"], "--auth-method", "private_key_jwt", "--jwks", str(path)
    )


@pytest.fixture(scope="module")
def hmac_client(system: RunningSystem, rp_urls: dict[str, str]) -> dict[str, Any]:
    return add_client(system, "JAR HMAC", rp_urls["redirect"], "--auth-method", "client_secret_jwt")


@pytest.fixture(scope="module")
def browser(system: RunningSystem, phone: Path, other_client: dict[str, Any]) -> Iterator[Browser]:
    """A browser logged in at the IdP."""
    running = Browser(system)
    _, challenge = pkce()
    params = auth_params(other_client, challenge)
    answer = running.follow(running.get(f"{issuer(system)}/oidc/authorize?{urlencode(params)}"))
    answer = running.approve_on_phone(answer, phone)
    assert answer.status_code == 302 and "code=" in answer.headers["Location"]
    yield running
    running.close()


def auth_params(client: dict[str, Any], challenge: str, **extra: str) -> dict[str, str]:
    return {
        "response_type": "code",
        "client_id": client["client_id"],
        "redirect_uri": client["redirect_uris"][0],
        "scope": "openid profile",
        "state": "st-1",
        "nonce": "n-1",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }


def authorize(system: RunningSystem, browser: Browser, **query: str) -> httpx.Response:
    return browser.follow(browser.get(f"{issuer(system)}/oidc/authorize?{urlencode(query)}"))


def push(
    system: RunningSystem, client: dict[str, Any], params: dict[str, str], **auth: Any
) -> httpx.Response:
    return httpx.post(
        f"{issuer(system)}/oidc/par",
        data=params,
        auth=auth.get("auth", (client["client_id"], client["client_secret"])),
    )


def exchange(system: RunningSystem, client: dict[str, Any], code: str, verifier: str) -> httpx.Response:
    return httpx.post(
        f"{issuer(system)}/oidc/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": verifier,
            "redirect_uri": client["redirect_uris"][0],
        },
        auth=(client["client_id"], client["client_secret"]),
    )


def request_object(
    client_id: str, key: Any, alg: str, aud: str, params: dict[str, str], **claims: Any
) -> str:
    now = int(time.time())
    payload: dict[str, Any] = {
        **params,
        "iss": client_id,
        "aud": aud,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
    }
    payload.update(claims)
    header = {"alg": alg}
    if getattr(key, "kid", None):
        header["kid"] = key.kid
    return jwt.encode(header, payload, key, algorithms=[alg])


# -- PAR ------------------------------------------------------------------------------------------------


def test_discovery(system: RunningSystem) -> None:
    config = httpx.get(f"{issuer(system)}/.well-known/openid-configuration").json()
    assert config["pushed_authorization_request_endpoint"] == f"{issuer(system)}/oidc/par"
    assert config["require_pushed_authorization_requests"] is False
    assert config["request_parameter_supported"] is True
    assert config["request_uri_parameter_supported"] is True
    assert config["request_object_signing_alg_values_supported"] == [
        "ES256",
        "RS256",
        "PS256",
        "EdDSA",
        "HS256",
    ]


def test_pushed_request_yields_one_code(
    system: RunningSystem, browser: Browser, par_client: dict[str, Any]
) -> None:
    verifier, challenge = pkce()
    pushed = push(system, par_client, auth_params(par_client, challenge))
    assert pushed.status_code == 201, pushed.text
    assert pushed.headers["Cache-Control"] == "no-store"
    body = pushed.json()
    assert body["request_uri"].startswith("urn:ietf:params:oauth:request_uri:") and body["expires_in"] == 60
    client_id = par_client["client_id"]
    # Only client_id and request_uri: the pushed parameters count, the query's others do not.
    answer = authorize(system, browser, client_id=client_id, request_uri=body["request_uri"], state="evil")
    assert answer.status_code == 302, answer.text[:300]
    redirect = query_of(answer)
    assert redirect["state"] == "st-1"
    tokens = exchange(system, par_client, redirect["code"], verifier)
    assert tokens.status_code == 200 and tokens.json()["id_token"]
    # Replayed: the request_uri worked once.
    again = authorize(system, browser, client_id=client_id, request_uri=body["request_uri"])
    assert again.status_code == 400 and "Location" not in again.headers


def test_par_rules(
    system: RunningSystem,
    browser: Browser,
    par_client: dict[str, Any],
    other_client: dict[str, Any],
    key_client: dict[str, Any],
    ec_key: ECKey,
) -> None:
    _, challenge = pkce()
    # This client must push: a plain authorization request is refused, nowhere redirected.
    plain = authorize(system, browser, **auth_params(par_client, challenge))
    assert plain.status_code == 400 and "Location" not in plain.headers
    # Another client's request_uri.
    mine = push(system, other_client, auth_params(other_client, challenge)).json()["request_uri"]
    foreign = authorize(system, browser, client_id=par_client["client_id"], request_uri=mine)
    assert foreign.status_code == 400 and "Location" not in foreign.headers
    # A request_uri the IdP would have to fetch: never (SSRF).
    fetched = authorize(
        system, browser, client_id=other_client["client_id"], request_uri="https://rp.example/req.jwt"
    )
    assert fetched.status_code == 400 and "request_uri" in fetched.text
    # Pushing needs client authentication; a bad redirect URI is refused in the answer, not redirected.
    bad_secret = push(
        system, par_client, auth_params(par_client, challenge), auth=(par_client["client_id"], "x")
    )
    assert bad_secret.status_code == 401 and bad_secret.json()["error"] == "invalid_client"
    elsewhere = push(
        system, par_client, auth_params(par_client, challenge, redirect_uri="https://evil.example/cb")
    )
    assert elsewhere.status_code == 400 and "Location" not in elsewhere.headers
    no_pkce = {k: v for k, v in auth_params(par_client, challenge).items() if not k.startswith("code_")}
    assert push(system, par_client, no_pkce).json()["error"] == "invalid_request"
    nested = push(system, par_client, {**auth_params(par_client, challenge), "request_uri": mine})
    assert nested.status_code == 400
    # private_key_jwt at the PAR endpoint, the PAR endpoint as audience.
    now = int(time.time())
    client_assertion = jwt.encode(
        {"alg": "ES256", "kid": "jar-1"},
        {
            "iss": key_client["client_id"],
            "sub": key_client["client_id"],
            "aud": f"{issuer(system)}/oidc/par",
            "exp": now + 60,
            "jti": f"par-{now}",
        },
        ec_key,
    )
    signed_push = httpx.post(
        f"{issuer(system)}/oidc/par",
        data={
            **auth_params(key_client, challenge),
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": client_assertion,
        },
    )
    assert signed_push.status_code == 201, signed_push.text


# -- JAR ------------------------------------------------------------------------------------------------


def test_signed_request_object_by_private_key(
    system: RunningSystem, browser: Browser, key_client: dict[str, Any], ec_key: ECKey
) -> None:
    _, challenge = pkce()
    client_id = key_client["client_id"]
    signed = request_object(client_id, ec_key, "ES256", issuer(system), auth_params(key_client, challenge))
    # The query's other parameters are ignored: only the request object's are used.
    answer = authorize(system, browser, client_id=client_id, request=signed, state="from-query", scope="x")
    assert answer.status_code == 302, answer.text[:300]
    assert query_of(answer)["state"] == "st-1" and "code" in query_of(answer)


def test_request_object_by_value_pushed(
    system: RunningSystem, browser: Browser, key_client: dict[str, Any], ec_key: ECKey
) -> None:
    """A request object pushed to PAR: verified there, its parameters kept."""
    _, challenge = pkce()
    client_id = key_client["client_id"]
    signed = request_object(client_id, ec_key, "ES256", issuer(system), auth_params(key_client, challenge))
    now = int(time.time())
    client_assertion = jwt.encode(
        {"alg": "ES256", "kid": "jar-1"},
        {"iss": client_id, "sub": client_id, "aud": issuer(system), "exp": now + 60, "jti": f"jar-{now}"},
        ec_key,
    )
    pushed = httpx.post(
        f"{issuer(system)}/oidc/par",
        data={
            "client_id": client_id,
            "request": signed,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": client_assertion,
        },
    )
    assert pushed.status_code == 201, pushed.text
    answer = authorize(system, browser, client_id=client_id, request_uri=pushed.json()["request_uri"])
    assert answer.status_code == 302 and query_of(answer)["state"] == "st-1"


def test_request_object_signed_with_the_client_secret(
    system: RunningSystem, browser: Browser, hmac_client: dict[str, Any]
) -> None:
    _, challenge = pkce()
    client_id = hmac_client["client_id"]
    key = OctKey.import_key(hmac_client["client_secret"])
    signed = request_object(client_id, key, "HS256", issuer(system), auth_params(hmac_client, challenge))
    answer = authorize(system, browser, client_id=client_id, request=signed)
    assert answer.status_code == 302 and "code" in query_of(answer)


def test_request_objects_refused(
    system: RunningSystem, browser: Browser, key_client: dict[str, Any], ec_key: ECKey
) -> None:
    _, challenge = pkce()
    client_id, aud = key_client["client_id"], issuer(system)
    params = auth_params(key_client, challenge)
    now = int(time.time())
    unsigned = jwt.encode(
        {"alg": "none"}, {**params, "iss": client_id, "aud": aud, "exp": now + 60}, None, algorithms=["none"]
    )
    stranger = ECKey.generate_key("P-256", parameters={"kid": "jar-1"}, private=True)
    refused = {
        "alg=none": unsigned,
        "another key": request_object(client_id, stranger, "ES256", aud, params),
        "another audience": request_object(client_id, ec_key, "ES256", "https://other.example", params),
        "expired": request_object(client_id, ec_key, "ES256", aud, params, exp=now - 120),
        "no exp": jwt.encode(
            {"alg": "ES256", "kid": "jar-1"}, {**params, "iss": client_id, "aud": aud}, ec_key
        ),
        "exp too far": request_object(client_id, ec_key, "ES256", aud, params, exp=now + 7200),
        "another issuer": request_object(client_id, ec_key, "ES256", aud, params, iss="someone"),
        "nested request_uri": request_object(client_id, ec_key, "ES256", aud, {**params, "request_uri": "x"}),
    }
    for why, value in refused.items():
        answer = authorize(system, browser, client_id=client_id, request=value)
        assert answer.status_code == 400 and "Location" not in answer.headers, why


# -- the server-wide setting, in-process ---------------------------------------------------------------


def test_server_wide_par_requirement(tmp_path: Path) -> None:
    from idp.oidc.clients import ClientRegistry, build_metadata
    from idp.server import load_settings
    from idp.web import create_app

    base = {
        "NEXTAUTH_IDP_SECRET_KEY": "k" * 40,
        "NEXTAUTH_IDP_NS_API_URL": "http://127.0.0.1:8080",
        "NEXTAUTH_IDP_NS_API_KEY": "key",
        "NEXTAUTH_IDP_NS_WEBSOCKET_URL": "ws://127.0.0.1:9999/ns/websocket",
    }
    assert load_settings(base, data_dir=tmp_path).oidc_require_par is False
    assert load_settings(
        {**base, "NEXTAUTH_IDP_OIDC_REQUIRE_PAR": "true"}, data_dir=tmp_path
    ).oidc_require_par
    with pytest.raises(Exception, match="OIDC_REQUIRE_PAR"):
        load_settings({**base, "NEXTAUTH_IDP_OIDC_REQUIRE_PAR": "maybe"}, data_dir=tmp_path)

    issuer_url = "http://idp.example.test"
    services = offline_idp_services(tmp_path / "idp.db", issuer_url, oidc_require_par=True)
    web = create_app(
        services, secret_key=b"k" * 32, websocket_url="ws://ns.example.test/ns/websocket"
    ).test_client()
    redirect = "http://127.0.0.1:5555/cb"
    client, secret = ClientRegistry(services.engine).add("App", build_metadata(redirect_uris=[redirect]))
    assert secret is not None
    assert web.get("/.well-known/openid-configuration").json["require_pushed_authorization_requests"] is True
    _, challenge = pkce()
    params = auth_params({"client_id": client.client_id, "redirect_uris": [redirect]}, challenge)
    plain = web.get(f"/oidc/authorize?{urlencode(params)}")
    assert plain.status_code == 400 and "Location" not in plain.headers
    pushed = web.post("/oidc/par", data=params, auth=(client.client_id, secret))
    assert pushed.status_code == 201, pushed.text
    query = urlencode({"client_id": client.client_id, "request_uri": pushed.json["request_uri"]})
    answer = web.get(f"/oidc/authorize?{query}")
    assert answer.status_code == 302 and "/login" in answer.headers["Location"]  # on to the login page
    services.engine.dispose()
