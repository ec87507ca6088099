"""DPoP (RFC 9449): proofs written from the spec with joserfc (no client library ships DPoP for Python
that is not ours). First the proof rules without a server, then the provider: the nonce dance, DPoP-bound
access and refresh tokens, userinfo with ``Authorization: DPoP``, ``dpop_jkt`` at authorize and PAR,
``cnf.jkt`` in introspection, and each rule's negative case."""

import base64
import hashlib
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, OKPKey, RSAKey

from authserver.storage.kv import MemoryStore
from idp.oidc.dpop import DPoP, DPoPError
from tests.fixtures.idp_browser import Browser, query_of
from tests.fixtures.idp_browser import idp_cli as cli
from tests.fixtures.system import RunningSystem
from tests.test_oidc import issuer, phone, pkce, rp_urls

__all__ = ["phone", "rp_urls"]  # fixtures shared with test_oidc

URL = "https://idp.example/oidc/token"


def proof(
    key: Any,
    method: str,
    url: str,
    *,
    nonce: str | None = None,
    access_token: str | None = None,
    alg: str = "ES256",
    **overrides: Any,
) -> str:
    claims: dict[str, Any] = {
        "jti": secrets.token_urlsafe(12),
        "htm": method,
        "htu": url,
        "iat": int(time.time()),
    }
    if nonce is not None:
        claims["nonce"] = nonce
    if access_token is not None:
        digest = hashlib.sha256(access_token.encode()).digest()
        claims["ath"] = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    claims.update(overrides)
    header = {"typ": "dpop+jwt", "alg": alg, "jwk": key.as_dict(private=False)}
    return jwt.encode(header, {k: v for k, v in claims.items() if v is not None}, key, algorithms=[alg])


# -- the proof rules, without a server ---------------------------------------------------------------------


@pytest.fixture
def dpop() -> DPoP:
    return DPoP(MemoryStore())


def refused(dpop: DPoP, value: str, method: str = "POST", url: str = URL, **kwargs: Any) -> str:
    with pytest.raises(DPoPError) as caught:
        dpop.verify(value, method, url, **kwargs)
    return caught.value.error


def test_a_good_proof_gives_the_key_thumbprint_once(dpop: DPoP) -> None:
    key = ECKey.generate_key("P-256", private=True)
    value = proof(key, "POST", URL, nonce=dpop.nonce())
    assert dpop.verify(value, "POST", URL) == key.thumbprint()
    assert refused(dpop, value) == "invalid_dpop_proof"  # reused


@pytest.mark.parametrize(
    "key,alg",
    [
        (OKPKey.generate_key("Ed25519", private=True), "EdDSA"),
        (RSAKey.generate_key(2048, private=True), "PS256"),
        (RSAKey.generate_key(2048, private=True), "RS256"),
    ],
)
def test_every_allowed_alg(dpop: DPoP, key: Any, alg: str) -> None:
    assert dpop.verify(proof(key, "POST", URL, nonce=dpop.nonce(), alg=alg), "POST", URL) == key.thumbprint()


def test_nonce_is_required_and_rotates_in_time(dpop: DPoP) -> None:
    key = ECKey.generate_key("P-256", private=True)
    with pytest.raises(DPoPError) as caught:
        dpop.verify(proof(key, "POST", URL), "POST", URL)
    assert caught.value.error == "use_dpop_nonce" and caught.value.nonce == dpop.nonce()
    assert ("DPoP-Nonce", dpop.nonce()) in caught.value.get_headers()
    assert refused(dpop, proof(key, "POST", URL, nonce="made-up")) == "use_dpop_nonce"


def test_proof_rules(dpop: DPoP) -> None:
    key = ECKey.generate_key("P-256", private=True)
    nonce = dpop.nonce()
    assert refused(dpop, proof(key, "GET", URL, nonce=nonce)) == "invalid_dpop_proof"  # other method
    other_url = proof(key, "POST", "https://idp.example/oidc/userinfo", nonce=nonce)
    assert refused(dpop, other_url) == "invalid_dpop_proof"
    # htu compares without query and fragment
    assert dpop.verify(proof(key, "POST", URL + "?x=1", nonce=nonce), "POST", URL)
    assert (
        refused(dpop, proof(key, "POST", URL, nonce=nonce, iat=int(time.time()) - 300))
        == "invalid_dpop_proof"
    )
    assert (
        refused(dpop, proof(key, "POST", URL, nonce=nonce, iat=int(time.time()) + 300))
        == "invalid_dpop_proof"
    )
    assert refused(dpop, proof(key, "POST", URL, nonce=nonce, jti=None)) == "invalid_dpop_proof"
    # ath: the hash of the very token presented
    with_ath = proof(key, "GET", URL, nonce=nonce, access_token="token-a")
    assert refused(dpop, with_ath, "GET", access_token="token-b") == "invalid_dpop_proof"
    assert dpop.verify(proof(key, "GET", URL, nonce=nonce, access_token="t"), "GET", URL, access_token="t")
    # A header key other than the signer: the signature fails.
    other = ECKey.generate_key("P-256", private=True)
    claims = {"jti": "j1", "htm": "POST", "htu": URL, "iat": int(time.time()), "nonce": nonce}
    forged = jwt.encode({"typ": "dpop+jwt", "alg": "ES256", "jwk": key.as_dict(private=False)}, claims, other)
    assert refused(dpop, forged) == "invalid_dpop_proof"
    # Wrong typ, HMAC, private key in the header, nothing.
    wrong_typ = jwt.encode({"typ": "JWT", "alg": "ES256", "jwk": key.as_dict(private=False)}, claims, key)
    assert refused(dpop, wrong_typ) == "invalid_dpop_proof"
    private = jwt.encode({"typ": "dpop+jwt", "alg": "ES256", "jwk": key.as_dict(private=True)}, claims, key)
    assert refused(dpop, private) == "invalid_dpop_proof"
    assert refused(dpop, "") == "invalid_dpop_proof"
    assert refused(dpop, "not.a.jws") == "invalid_dpop_proof"


# -- against the provider ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def spa(system: RunningSystem, rp_urls: dict[str, str]) -> dict[str, Any]:
    return cli(
        system, "oidc-client", "add", "--name", "DPoP SPA", "--public", "--redirect-uri", rp_urls["redirect"],
        "--trusted",
    )  # fmt: skip


@pytest.fixture(scope="module")
def service(system: RunningSystem) -> dict[str, Any]:
    return cli(system, "oidc-client", "add", "--name", "DPoP job", "--grant", "client_credentials")


@pytest.fixture(scope="module")
def browser(system: RunningSystem, phone: Path, spa: dict[str, Any]) -> Iterator[Browser]:
    running = Browser(system)
    answer = running.follow(running.get(authorize_url(system, spa, pkce()[1])))
    answer = running.approve_on_phone(answer, phone)
    assert answer.status_code == 302
    yield running
    running.close()


def authorize_url(system: RunningSystem, client: dict[str, Any], challenge: str, **extra: str) -> str:
    params = {
        "response_type": "code",
        "client_id": client["client_id"],
        "redirect_uri": client["redirect_uris"][0],
        "scope": "openid profile",
        "state": "s",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }
    return f"{issuer(system)}/oidc/authorize?{urlencode(params)}"


class DPoPClient:
    """A client following RFC 9449 by hand: a key, and the server's latest nonce."""

    def __init__(self, system: RunningSystem) -> None:
        self.key = ECKey.generate_key("P-256", private=True)
        self.base = issuer(system)
        self.nonce: str | None = None

    def send(self, method: str, path: str, *, token: str | None = None, **kwargs: Any) -> httpx.Response:
        """Sends with a proof; on use_dpop_nonce, once more with the nonce given."""
        for _ in range(2):
            headers = dict(kwargs.pop("headers", {}))
            headers["DPoP"] = proof(self.key, method, self.base + path, nonce=self.nonce, access_token=token)
            if token is not None:
                headers["Authorization"] = f"DPoP {token}"
            answer = httpx.request(method, self.base + path, headers=headers, **kwargs)
            self.nonce = answer.headers.get("DPoP-Nonce", self.nonce)
            if not _asks_for_nonce(answer):
                return answer
            kwargs["headers"] = {k: v for k, v in headers.items() if k not in ("DPoP", "Authorization")}
        return answer


def _asks_for_nonce(answer: httpx.Response) -> bool:
    if answer.status_code == 400:
        return bool(answer.json().get("error") == "use_dpop_nonce")
    return answer.status_code == 401 and "use_dpop_nonce" in answer.headers.get("WWW-Authenticate", "")


def code_exchange(
    system: RunningSystem, browser: Browser, spa: dict[str, Any], rp: DPoPClient, **extra: str
) -> tuple[dict[str, str], httpx.Response]:
    verifier, challenge = pkce()
    answer = browser.follow(browser.get(authorize_url(system, spa, challenge, **extra)))
    assert answer.status_code == 302, answer.text[:300]
    form = {
        "grant_type": "authorization_code",
        "code": query_of(answer)["code"],
        "code_verifier": verifier,
        "redirect_uri": spa["redirect_uris"][0],
        "client_id": spa["client_id"],
    }
    return form, rp.send("POST", "/oidc/token", data=form)


def test_discovery(system: RunningSystem) -> None:
    config = httpx.get(f"{issuer(system)}/.well-known/openid-configuration").json()
    assert config["dpop_signing_alg_values_supported"] == ["ES256", "EdDSA", "RS256", "PS256"]


def test_dpop_bound_tokens_for_a_public_client(
    system: RunningSystem, browser: Browser, spa: dict[str, Any], service: dict[str, Any]
) -> None:
    rp = DPoPClient(system)
    _, answer = code_exchange(system, browser, spa, rp)
    assert answer.status_code == 200, answer.text
    tokens = answer.json()
    assert tokens["token_type"] == "DPoP" and answer.headers["DPoP-Nonce"]
    access = tokens["access_token"]
    # userinfo: with a proof of the key, for this method and URL, with ath
    info = rp.send("GET", "/oidc/userinfo", token=access)
    assert info.status_code == 200 and info.json()["sub"] == "olivia"
    # As a bearer token: refused.
    bearer = httpx.get(f"{issuer(system)}/oidc/userinfo", headers={"Authorization": f"Bearer {access}"})
    assert bearer.status_code == 401 and "DPoP" in bearer.headers["WWW-Authenticate"]
    # A proof reused, for another URL, another method, or by another key: refused.
    headers = {"Authorization": f"DPoP {access}"}
    once = proof(rp.key, "GET", f"{issuer(system)}/oidc/userinfo", nonce=rp.nonce, access_token=access)
    assert httpx.get(f"{issuer(system)}/oidc/userinfo", headers={**headers, "DPoP": once}).status_code == 200
    again = httpx.get(f"{issuer(system)}/oidc/userinfo", headers={**headers, "DPoP": once})
    assert again.status_code == 401 and "invalid_dpop_proof" in again.headers["WWW-Authenticate"]
    elsewhere = proof(rp.key, "GET", f"{issuer(system)}/oidc/token", nonce=rp.nonce, access_token=access)
    assert (
        httpx.get(f"{issuer(system)}/oidc/userinfo", headers={**headers, "DPoP": elsewhere}).status_code
        == 401
    )
    posted = proof(rp.key, "POST", f"{issuer(system)}/oidc/userinfo", nonce=rp.nonce, access_token=access)
    assert (
        httpx.get(f"{issuer(system)}/oidc/userinfo", headers={**headers, "DPoP": posted}).status_code == 401
    )
    thief = DPoPClient(system)
    thief.nonce = rp.nonce
    assert thief.send("GET", "/oidc/userinfo", token=access).status_code == 401
    # Introspection tells a resource server the binding.
    introspected = httpx.post(
        f"{issuer(system)}/oidc/introspect",
        data={"token": access},
        auth=(service["client_id"], service["client_secret"]),
    ).json()
    assert introspected["active"] and introspected["token_type"] == "DPoP"
    assert introspected["cnf"] == {"jkt": rp.key.thumbprint()}
    # The public client's refresh token is bound too: without a proof, or with another key, it fails.
    refresh = {
        "grant_type": "refresh_token",
        "refresh_token": tokens["refresh_token"],
        "client_id": spa["client_id"],
    }
    assert httpx.post(f"{issuer(system)}/oidc/token", data=refresh).json()["error"] == "invalid_grant"
    assert thief.send("POST", "/oidc/token", data=refresh).json()["error"] == "invalid_grant"
    renewed = rp.send("POST", "/oidc/token", data=refresh)
    assert renewed.status_code == 200 and renewed.json()["token_type"] == "DPoP", renewed.text


def test_dpop_jkt_at_authorize_binds_the_code(
    system: RunningSystem, browser: Browser, spa: dict[str, Any]
) -> None:
    rp, other = DPoPClient(system), DPoPClient(system)
    _, answer = code_exchange(system, browser, spa, other, dpop_jkt=rp.key.thumbprint())
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"
    form, answer = code_exchange(system, browser, spa, rp, dpop_jkt=rp.key.thumbprint())
    assert answer.status_code == 200 and answer.json()["token_type"] == "DPoP"
    # Without a proof at all, a bound code is useless.
    verifier, challenge = pkce()
    bound = browser.follow(browser.get(authorize_url(system, spa, challenge, dpop_jkt=rp.key.thumbprint())))
    plain = httpx.post(
        f"{issuer(system)}/oidc/token",
        data={**form, "code": query_of(bound)["code"], "code_verifier": verifier},
    )
    assert plain.json()["error"] == "invalid_grant"


def test_dpop_for_a_confidential_client_and_a_bearer_client_stays_bearer(
    system: RunningSystem, service: dict[str, Any]
) -> None:
    rp = DPoPClient(system)
    answer = rp.send(
        "POST",
        "/oidc/token",
        data={"grant_type": "client_credentials"},
        auth=(service["client_id"], service["client_secret"]),
    )
    assert answer.status_code == 200 and answer.json()["token_type"] == "DPoP", answer.text
    plain = httpx.post(
        f"{issuer(system)}/oidc/token",
        data={"grant_type": "client_credentials"},
        auth=(service["client_id"], service["client_secret"]),
    )
    assert plain.json()["token_type"] == "Bearer"
    # A proof for another URL at the token endpoint.
    wrong = proof(rp.key, "POST", f"{issuer(system)}/oidc/par", nonce=rp.nonce)
    refused_answer = httpx.post(
        f"{issuer(system)}/oidc/token",
        data={"grant_type": "client_credentials"},
        auth=(service["client_id"], service["client_secret"]),
        headers={"DPoP": wrong},
    )
    assert refused_answer.status_code == 400 and refused_answer.json()["error"] == "invalid_dpop_proof"


def test_dpop_proof_at_par_binds_the_code(
    system: RunningSystem, browser: Browser, spa: dict[str, Any]
) -> None:
    rp, other = DPoPClient(system), DPoPClient(system)
    verifier, challenge = pkce()
    params = {
        "response_type": "code",
        "client_id": spa["client_id"],
        "redirect_uri": spa["redirect_uris"][0],
        "scope": "openid",
        "state": "p",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    pushed = rp.send("POST", "/oidc/par", data=params)
    assert pushed.status_code == 201, pushed.text
    query = urlencode({"client_id": spa["client_id"], "request_uri": pushed.json()["request_uri"]})
    answer = browser.follow(browser.get(f"{issuer(system)}/oidc/authorize?{query}"))
    assert answer.status_code == 302, answer.text[:300]
    form = {
        "grant_type": "authorization_code",
        "code": query_of(answer)["code"],
        "code_verifier": verifier,
        "redirect_uri": spa["redirect_uris"][0],
        "client_id": spa["client_id"],
    }
    # The code is bound to the key that pushed: another key's proof cannot redeem it.
    stolen = other.send("POST", "/oidc/token", data=form)
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
