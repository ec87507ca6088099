"""Client authentication with signed JWTs (RFC 7523, OIDC Core 9): ``private_key_jwt`` with keys given as
``jwks`` or served at a ``jwks_uri``, and ``client_secret_jwt``; Authlib's client is the independent
implementation, hand-made assertions the negative cases (wrong key, replayed jti, wrong audience, too long
a life, alg=none, a method the client did not register)."""

import json
import secrets
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from authlib.integrations.httpx_client import OAuth2Client
from authlib.oauth2.rfc7523 import ClientSecretJWT, PrivateKeyJWT
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey, RSAKey

from tests.fixtures.idp_browser import Browser
from tests.fixtures.idp_browser import idp_cli as cli
from tests.fixtures.system import RunningSystem, free_port
from tests.test_oidc import code_for, issuer, log_in, phone, pkce, relying_party, rp_urls

__all__ = ["phone", "rp_urls"]  # fixtures shared with test_oidc

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class JwksServer:
    """A client's jwks_uri on loopback; ``keys`` can change (rotation). Counts the fetches."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.fetches = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.fetches += 1
                body = json.dumps({"keys": outer.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/jwks.json"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def jwks_server() -> Iterator[JwksServer]:
    running = JwksServer()
    yield running
    running.server.shutdown()


@pytest.fixture(scope="module")
def ec_key() -> ECKey:
    return ECKey.generate_key("P-256", parameters={"kid": "ec-1"}, private=True)


@pytest.fixture(scope="module")
def key_client(
    system: RunningSystem, ec_key: ECKey, rp_urls: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """private_key_jwt with its keys given at registration (jwks), code flow and client credentials."""
    path = tmp_path_factory.mktemp("jwks") / "client.jwks"
    path.write_text(json.dumps({"keys": [ec_key.as_dict(private=False)]}))
    return cli(
        system, "oidc-client", "add", "--name", "Key client", "--auth-method", "private_key_jwt",
        "--jwks", str(path), "--redirect-uri", rp_urls["redirect"], "--grant", "authorization_code",
        "--grant", "refresh_token", "--grant", "client_credentials", "--trusted",
    )  # fmt: skip


@pytest.fixture(scope="module")
def uri_client(system: RunningSystem, jwks_server: JwksServer) -> dict[str, Any]:
    """private_key_jwt with its keys at a jwks_uri (RSA, PS256), client credentials only."""
    return cli(
        system, "oidc-client", "add", "--name", "URI client", "--auth-method", "private_key_jwt",
        "--jwks-uri", jwks_server.url, "--grant", "client_credentials",
    )  # fmt: skip


@pytest.fixture(scope="module")
def secret_client(system: RunningSystem) -> dict[str, Any]:
    return cli(
        system, "oidc-client", "add", "--name", "HMAC client", "--auth-method", "client_secret_jwt",
        "--grant", "client_credentials",
    )  # fmt: skip


def token_url(system: RunningSystem) -> str:
    return f"{issuer(system)}/oidc/token"


def assertion(client_id: str, key: Any, alg: str, aud: str, **claims: Any) -> str:
    now = int(time.time())
    payload = {"iss": client_id, "sub": client_id, "aud": aud, "iat": now, "exp": now + 60}
    payload["jti"] = secrets.token_urlsafe(16)
    payload.update(claims)
    header = {"alg": alg}
    if getattr(key, "kid", None):
        header["kid"] = key.kid
    return jwt.encode(header, payload, key, algorithms=[alg])


def client_credentials(system: RunningSystem, client_assertion: str, **extra: str) -> httpx.Response:
    return httpx.post(
        token_url(system),
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": client_assertion,
            **extra,
        },
    )


def test_discovery_lists_the_methods_and_algs(system: RunningSystem) -> None:
    config = httpx.get(f"{issuer(system)}/.well-known/openid-configuration").json()
    methods = ["client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt", "none"]
    algs = ["ES256", "RS256", "PS256", "EdDSA", "HS256"]
    assert config["token_endpoint_auth_methods_supported"] == methods
    assert config["token_endpoint_auth_signing_alg_values_supported"] == algs
    assert config["introspection_endpoint_auth_methods_supported"] == methods[:-1]
    assert config["revocation_endpoint_auth_signing_alg_values_supported"] == algs


def test_code_flow_with_private_key_jwt_by_authlib(
    system: RunningSystem, phone: Path, key_client: dict[str, Any], ec_key: ECKey
) -> None:
    browser = Browser(system)
    verifier, challenge = pkce()
    code = code_for(system, browser, phone, key_client, challenge)
    sign = PrivateKeyJWT(token_url(system), alg="ES256", headers={"kid": "ec-1"})
    rp = OAuth2Client(
        client_id=key_client["client_id"],
        client_secret=ec_key,
        token_endpoint_auth_method=sign,
        revocation_endpoint_auth_method=sign,
    )
    token = rp.fetch_token(
        token_url(system),
        grant_type="authorization_code",
        code=code,
        code_verifier=verifier,
        redirect_uri=key_client["redirect_uris"][0],
    )
    assert token["access_token"] and token["id_token"] and token["refresh_token"]
    # The same client authenticates at introspection and revocation with fresh assertions.
    introspected = rp.introspect_token(f"{issuer(system)}/oidc/introspect", token=token["access_token"])
    assert introspected.status_code == 200 and introspected.json()["active"] is True
    revoked = rp.revoke_token(f"{issuer(system)}/oidc/revoke", token=token["refresh_token"])
    assert revoked.status_code == 200, revoked.text
    again = rp.introspect_token(f"{issuer(system)}/oidc/introspect", token=token["access_token"])
    assert again.json()["active"] is False


def test_client_secret_jwt_by_authlib(system: RunningSystem, secret_client: dict[str, Any]) -> None:
    rp = OAuth2Client(
        client_id=secret_client["client_id"],
        client_secret=secret_client["client_secret"],
        token_endpoint_auth_method=ClientSecretJWT(token_url(system)),
    )
    token = rp.fetch_token(token_url(system), grant_type="client_credentials")
    assert token["token_type"] == "Bearer" and token["access_token"]
    assert "nextauth_hmac_secret" not in cli(system, "oidc-client", "show", secret_client["client_id"])
    # The secret alone (client_secret_basic) is not this client's method.
    basic = httpx.post(
        token_url(system),
        data={"grant_type": "client_credentials"},
        auth=(secret_client["client_id"], secret_client["client_secret"]),
    )
    assert basic.status_code == 401 and basic.json()["error"] == "invalid_client"
    wrong = OctKey.import_key(secrets.token_urlsafe(32))
    forged = assertion(secret_client["client_id"], wrong, "HS256", token_url(system))
    answer = client_credentials(system, forged)
    assert answer.status_code in (400, 401) and answer.json()["error"] == "invalid_client"


def test_private_key_jwt_rules(system: RunningSystem, key_client: dict[str, Any], ec_key: ECKey) -> None:
    client_id, url = key_client["client_id"], token_url(system)
    good = assertion(client_id, ec_key, "ES256", url)
    assert client_credentials(system, good).status_code == 200
    # Replayed: the jti works once.
    replay = client_credentials(system, good)
    assert replay.status_code in (400, 401) and replay.json()["error"] == "invalid_client"
    # The issuer is an audience too; anything else is not.
    by_issuer = assertion(client_id, ec_key, "ES256", issuer(system))
    assert client_credentials(system, by_issuer).status_code == 200
    other_aud = client_credentials(system, assertion(client_id, ec_key, "ES256", "https://rp.example/token"))
    assert other_aud.json()["error"] == "invalid_client"
    # Another key, even with the registered kid.
    stranger = ECKey.generate_key("P-256", parameters={"kid": "ec-1"}, private=True)
    assert client_credentials(system, assertion(client_id, stranger, "ES256", url)).json()["error"] == (
        "invalid_client"
    )
    # Too long a life, no exp, no jti, iss other than sub.
    for claims in (
        {"exp": int(time.time()) + 7200},
        {"exp": None},
        {"jti": None},
        {"iss": "someone-else"},
    ):
        token = assertion(client_id, ec_key, "ES256", url, **claims)
        if None in claims.values():
            payload = jwt.decode(token, ec_key).claims
            payload = {k: v for k, v in payload.items() if v is not None}
            token = jwt.encode({"alg": "ES256", "kid": "ec-1"}, payload, ec_key)
        answer = client_credentials(system, token)
        assert answer.json().get("error") == "invalid_client", (claims, answer.text)
    # alg=none is never accepted.
    unsigned = jwt.encode(
        {"alg": "none"},
        {"iss": client_id, "sub": client_id, "aud": url, "exp": int(time.time()) + 60, "jti": "x1"},
        None,
        algorithms=["none"],
    )
    assert client_credentials(system, unsigned).json()["error"] == "invalid_client"
    # client_id in the form must be the assertion's.
    mismatch = client_credentials(system, assertion(client_id, ec_key, "ES256", url), client_id="other")
    assert mismatch.json()["error"] == "invalid_client"


def test_jwks_uri_is_fetched_cached_and_refetched_for_a_new_kid(
    system: RunningSystem, uri_client: dict[str, Any], jwks_server: JwksServer
) -> None:
    old = RSAKey.generate_key(2048, parameters={"kid": "rsa-1"}, private=True)
    jwks_server.keys = [old.as_dict(private=False)]
    client_id, url = uri_client["client_id"], token_url(system)
    before = jwks_server.fetches  # the server serves every database's system in turn
    for _ in range(2):
        assert client_credentials(system, assertion(client_id, old, "PS256", url)).status_code == 200
    assert jwks_server.fetches == before + 1  # cached
    new = RSAKey.generate_key(2048, parameters={"kid": "rsa-2"}, private=True)
    jwks_server.keys = [new.as_dict(private=False)]
    time.sleep(5.5)  # an unknown kid refetches, at most every few seconds
    assert client_credentials(system, assertion(client_id, new, "PS256", url)).status_code == 200
    assert jwks_server.fetches == before + 2
    # The old key left the client's set: a fresh assertion with it fails once the cache has it so.
    answer = client_credentials(system, assertion(client_id, old, "RS256", url))
    assert answer.json()["error"] == "invalid_client"


@pytest.fixture(scope="module")
def hmac_rp_client(system: RunningSystem, rp_urls: dict[str, str]) -> dict[str, Any]:
    return cli(
        system, "oidc-client", "add", "--name", "HMAC RP", "--auth-method", "client_secret_jwt",
        "--redirect-uri", rp_urls["redirect"], "--trusted",
    )  # fmt: skip


def test_code_flow_with_client_secret_jwt_by_pyoidc(
    system: RunningSystem, phone: Path, hmac_rp_client: dict[str, Any]
) -> None:
    """pyoidc signs the assertion itself (its own claims, lifetime and jti) and verifies the ID token."""
    rp = relying_party(system, hmac_rp_client)
    state, code, verifier = log_in(rp, Browser(system), phone)
    tokens = rp.do_access_token_request(
        state=state,
        request_args={"code": code, "code_verifier": verifier, "redirect_uri": rp.redirect_uris[0]},
        authn_method="client_secret_jwt",
    )
    assert "error" not in tokens, tokens.to_dict()
    assert tokens["id_token"]["aud"] == [hmac_rp_client["client_id"]] and tokens["token_type"] == "Bearer"
