"""Whom tokens name: pairwise subjects per sector (OIDC Core 8.1), the same in ID token, userinfo,
introspection and back-channel logout token; and JWT access tokens (RFC 9068), still revocable."""

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from idp.oidc import pairwise
from tests.fixtures.flows import PIN, enrol
from tests.fixtures.idp_browser import Browser, query_of, run_nextauth
from tests.fixtures.idp_browser import idp_cli as cli
from tests.fixtures.system import RunningSystem, free_port, run_app
from tests.test_oidc import Receiver, authorize_url, issuer, pkce, token_request

USER = "sami"
RESOURCE = "https://api.example.com/"


@pytest.fixture(scope="module")
def phone(system: RunningSystem, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("subjects-phone")
    assert run_app(home, "init", "--config", str(system.data_dir / "app-config.json"))[0] == 0
    assert run_app(home, "register", "--pin", PIN)[0] == 0
    enrol(system, home, USER)
    cli(system, "user", "set", USER, "--name", "Sami Salo", "--email", "sami@example.com")
    return home


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.server.shutdown()


def add_client(system: RunningSystem, name: str, host: str, *extra: str) -> dict[str, Any]:
    redirect = f"http://{host}:{free_port()}/callback"
    return cli(system, "oidc-client", "add", "--name", name, "--redirect-uri", redirect, "--trusted", *extra)


@pytest.fixture(scope="module")
def signed_in(system: RunningSystem, phone: Path) -> Iterator[Browser]:
    browser = Browser(system)
    first = add_client(system, "First", "127.0.0.1")
    page = browser.follow(browser.get(authorize_url(system, first, pkce()[1])))
    assert browser.approve_on_phone(page, phone).status_code == 302
    yield browser
    browser.close()


def keys(system: RunningSystem) -> KeySet:
    return KeySet.import_key_set(httpx.get(f"{issuer(system)}/oidc/jwks").json())


def tokens_for(
    system: RunningSystem, browser: Browser, client: dict[str, Any], **form: str
) -> dict[str, Any]:
    verifier, challenge = pkce()
    answer = browser.get(authorize_url(system, client, challenge, scope="openid profile"))
    assert answer.status_code == 302, answer.text[:300]
    issued = token_request(system, client, code=query_of(answer)["code"], code_verifier=verifier, **form)
    assert issued.status_code == 200, issued.text
    return issued.json()  # type: ignore[no-any-return]


def id_claims(system: RunningSystem, tokens: dict[str, Any]) -> dict[str, Any]:
    return jwt.decode(tokens["id_token"], keys(system), algorithms=["ES256", "RS256"]).claims


def userinfo(system: RunningSystem, access_token: str) -> httpx.Response:
    return httpx.get(f"{issuer(system)}/oidc/userinfo", headers={"Authorization": f"Bearer {access_token}"})


def introspect(system: RunningSystem, client: dict[str, Any], token: str) -> dict[str, Any]:
    answer = httpx.post(
        f"{issuer(system)}/oidc/introspect",
        data={"token": token},
        auth=(client["client_id"], client["client_secret"]),
    )
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def test_discovery_offers_pairwise(system: RunningSystem) -> None:
    config = httpx.get(f"{issuer(system)}/.well-known/openid-configuration").json()
    assert set(config["subject_types_supported"]) == {"public", "pairwise"}


def test_pairwise_subjects_per_sector(
    system: RunningSystem, phone: Path, signed_in: Browser, receiver: Receiver
) -> None:
    pairwise = add_client(
        system,
        "Pairwise A",
        "127.0.0.1",
        "--subject-type",
        "pairwise",
        "--backchannel-logout-uri",
        receiver.url,
    )
    assert pairwise["subject_type"] == "pairwise"
    same_sector = add_client(system, "Pairwise A2", "127.0.0.1", "--subject-type", "pairwise")
    other_sector = add_client(system, "Pairwise B", "localhost", "--subject-type", "pairwise")
    public = add_client(system, "Public subjects", "127.0.0.1")

    tokens = tokens_for(system, signed_in, pairwise)
    sub = id_claims(system, tokens)["sub"]
    assert sub != USER and USER not in sub and len(sub) == 43  # base64url of an HMAC-SHA256
    info = userinfo(system, tokens["access_token"])
    assert info.status_code == 200 and info.json()["sub"] == sub and info.json()["name"] == "Sami Salo"
    assert introspect(system, pairwise, tokens["access_token"])["sub"] == sub
    # Stable: the next login, and a refresh, name the same subject.
    again = tokens_for(system, signed_in, pairwise)
    assert id_claims(system, again)["sub"] == sub
    refreshed = httpx.post(
        f"{issuer(system)}/oidc/token",
        data={"grant_type": "refresh_token", "refresh_token": again["refresh_token"]},
        auth=(pairwise["client_id"], pairwise["client_secret"]),
    )
    assert refreshed.status_code == 200 and id_claims(system, refreshed.json())["sub"] == sub

    assert id_claims(system, tokens_for(system, signed_in, same_sector))["sub"] == sub
    other = id_claims(system, tokens_for(system, signed_in, other_sector))["sub"]
    assert other not in (sub, USER)
    assert id_claims(system, tokens_for(system, signed_in, public))["sub"] == USER

    # RP-initiated logout with the pairwise ID token as hint: it names this session, so no question,
    # and the back-channel logout token names the user as this client knows them. (A browser of its own:
    # the others stay logged in.)
    leaving = Browser(system)
    page = leaving.follow(leaving.get(authorize_url(system, pairwise, pkce()[1])))
    assert leaving.approve_on_phone(page, phone).status_code == 302
    hint = tokens_for(system, leaving, pairwise)["id_token"]
    before = len(receiver.tokens)
    logout = leaving.get(
        f"{issuer(system)}/oidc/logout", params={"id_token_hint": hint, "client_id": pairwise["client_id"]}
    )
    assert logout.status_code == 200 and "logged out" in logout.text, logout.text[:300]
    logout_token = receiver.wait_for(before + 1)[-1]
    assert jwt.decode(logout_token, keys(system), algorithms=["ES256"]).claims["sub"] == sub
    assert leaving.get("/whoami", headers={"Accept": "application/json"}).status_code == 401
    leaving.close()


def test_pairwise_needs_one_sector(system: RunningSystem) -> None:
    code, _, stderr = run_nextauth(
        system,
        "oidc-client",
        "add",
        "--name",
        "Two hosts",
        "--subject-type",
        "pairwise",
        "--redirect-uri",
        "http://127.0.0.1:9/cb",
        "--redirect-uri",
        "http://localhost:9/cb",
    )
    assert code == 2 and "one host" in stderr


def test_jwt_access_tokens(system: RunningSystem, phone: Path, signed_in: Browser) -> None:
    client = add_client(
        system,
        "JWT RS",
        "127.0.0.1",
        "--access-token-format",
        "jwt",
        "--subject-type",
        "pairwise",
        "--id-token-alg",
        "RS256",
        "--access-token-audience",
        RESOURCE,
        "--access-token-audience",
        "https://other.example.com/",
    )
    tokens = tokens_for(system, signed_in, client, resource=RESOURCE)
    access = tokens["access_token"]
    decoded = jwt.decode(access, keys(system), algorithms=["RS256"])
    assert decoded.header["typ"] == "at+jwt" and decoded.header["kid"]
    claims = decoded.claims
    sub = id_claims(system, tokens)["sub"]
    assert claims["iss"] == issuer(system) and claims["aud"] == RESOURCE
    assert claims["client_id"] == client["client_id"] and claims["sub"] == sub != USER
    assert claims["scope"] == "openid profile" and claims["jti"]
    assert claims["exp"] - claims["iat"] == tokens["expires_in"]
    assert claims["auth_time"] and "pin" in claims["amr"]
    assert userinfo(system, access).json()["sub"] == sub
    seen = introspect(system, client, access)
    assert seen["active"] is True and seen["sub"] == sub

    # Without a resource: every registered audience. A resource not registered: refused.
    default = jwt.decode(
        tokens_for(system, signed_in, client)["access_token"], keys(system), algorithms=["RS256"]
    )
    assert default.claims["aud"] == [RESOURCE, "https://other.example.com/"]
    verifier, challenge = pkce()
    answer = signed_in.get(authorize_url(system, client, challenge))
    wrong = token_request(
        system,
        client,
        code=query_of(answer)["code"],
        code_verifier=verifier,
        resource="https://evil.example/",
    )
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_target"

    # A tampered token (a claim changed, the signature kept) is nobody's token.
    header, _payload, signature = access.split(".")
    forged_claims = {**claims, "scope": "openid profile groups"}
    forged_payload = base64.urlsafe_b64encode(json.dumps(forged_claims).encode()).rstrip(b"=").decode()
    forged = f"{header}.{forged_payload}.{signature}"
    assert introspect(system, client, forged) == {"active": False}
    assert userinfo(system, forged).status_code == 401

    # Revoked: inactive at once for whoever introspects, and userinfo refuses it.
    revoked = httpx.post(
        f"{issuer(system)}/oidc/revoke",
        data={"token": access},
        auth=(client["client_id"], client["client_secret"]),
    )
    assert revoked.status_code == 200
    assert introspect(system, client, access) == {"active": False}
    assert userinfo(system, access).status_code == 401


def test_client_credentials_jwt_names_the_client(system: RunningSystem) -> None:
    service = cli(
        system,
        "oidc-client",
        "add",
        "--name",
        "JWT job",
        "--grant",
        "client_credentials",
        "--access-token-format",
        "jwt",
    )
    minted = httpx.post(
        f"{issuer(system)}/oidc/token",
        data={"grant_type": "client_credentials"},
        auth=(service["client_id"], service["client_secret"]),
    )
    assert minted.status_code == 200, minted.text
    claims = jwt.decode(minted.json()["access_token"], keys(system), algorithms=["ES256"]).claims
    assert claims["sub"] == service["client_id"] and claims["subject_type"] == "client"
    assert claims["aud"] == service["client_id"] and "auth_time" not in claims


# -- the pieces, without servers -------------------------------------------------------------------------


def test_pairwise_subject_rules(tmp_path: Path) -> None:
    secret = pairwise.load_secret(None, tmp_path / "data")
    assert (tmp_path / "data" / pairwise.SECRET_FILE).stat().st_mode & 0o777 == 0o600
    assert pairwise.load_secret(None, tmp_path / "data") == secret  # stable across restarts
    one = pairwise.pairwise_subject(secret, "app.example.com", "alice")
    assert one == pairwise.pairwise_subject(secret, "app.example.com", "alice")
    assert one != pairwise.pairwise_subject(secret, "other.example.com", "alice")
    assert one != pairwise.pairwise_subject(secret, "app.example.com", "alicf")
    assert one != pairwise.pairwise_subject(b"another secret" * 3, "app.example.com", "alice")
    # Length-prefixed parts: moving a character across the boundary changes the subject.
    assert pairwise.pairwise_subject(secret, "ab", "c") != pairwise.pairwise_subject(secret, "a", "bc")
    with pytest.raises(RuntimeError):
        pairwise.pairwise_subject(b"", "app.example.com", "alice")
    with pytest.raises(ValueError, match="32 characters"):
        pairwise.load_secret("short", tmp_path)
    assert (
        pairwise.sector_of(["https://App.example.com/a", "https://app.example.com:8443/b"])
        == "app.example.com"
    )
    with pytest.raises(ValueError, match="one host"):
        pairwise.sector_of(["https://a.example.com/cb", "https://b.example.com/cb"])
