"""OAuth needs https (RFC 6749 3.1). Behind a TLS proxy the IdP is spoken to in plain HTTP: its https://
public URL says so and the OIDC endpoints work. With an http:// public URL away from this machine they
refuse clearly, never with "something went wrong"."""

from pathlib import Path

import pytest
from flask import Flask

from idp.server import build_app, build_services, load_settings


def _app(tmp_path: Path, public_url: str) -> Flask:
    settings = load_settings(
        {
            "NEXTAUTH_IDP_SECRET_KEY": "k" * 40,
            "NEXTAUTH_IDP_NS_API_URL": "http://127.0.0.1:1",
            "NEXTAUTH_IDP_NS_API_KEY": "key",
            "NEXTAUTH_IDP_NS_WEBSOCKET_URL": "wss://id.example.com/ns/websocket",
            "NEXTAUTH_IDP_PUBLIC_URL": public_url,
        },
        data_dir=tmp_path,
    )
    return build_app(settings, build_services(settings))


TOKEN_REQUEST = {"grant_type": "authorization_code", "code": "c" * 43, "redirect_uri": "https://rp/cb"}


def test_behind_a_tls_proxy_the_token_endpoint_answers(tmp_path: Path) -> None:
    client = _app(tmp_path, "https://id.example.com").test_client()
    # The proxy ended TLS: plain HTTP with the public host name.
    answer = client.post("/oidc/token", base_url="http://id.example.com", data=TOKEN_REQUEST, auth=("x", "y"))
    assert answer.status_code == 401 and answer.json["error"] == "invalid_client"
    introspection = client.post("/oidc/introspect", base_url="http://id.example.com", data={"token": "t"})
    assert introspection.status_code == 401 and introspection.json["error"] == "invalid_client"
    # Even a client claiming the request came over http changes nothing: the scheme is configuration.
    spoofed = client.post(
        "/oidc/token",
        base_url="http://id.example.com",
        data=TOKEN_REQUEST,
        auth=("x", "y"),
        headers={"X-Forwarded-Proto": "http"},
    )
    assert spoofed.status_code == 401


@pytest.mark.parametrize("path", ["/oidc/token", "/oidc/introspect", "/oidc/revoke", "/oidc/par"])
def test_an_http_idp_away_from_this_machine_refuses_clearly(tmp_path: Path, path: str) -> None:
    client = _app(tmp_path, "http://id.example.com").test_client()
    answer = client.post(path, base_url="http://id.example.com", data=TOKEN_REQUEST, auth=("x", "y"))
    assert answer.status_code == 400, answer.data[:200]
    assert answer.json["error"] == "insecure_transport" and "https" in answer.json["error_description"]


def test_an_http_idp_shows_a_page_for_the_browser(tmp_path: Path) -> None:
    client = _app(tmp_path, "http://id.example.com").test_client()
    page = client.get(
        "/oidc/authorize?client_id=x&response_type=code&scope=openid&redirect_uri=https://rp/cb",
        base_url="http://id.example.com",
        headers={"Accept": "text/html"},
    )
    assert page.status_code == 400
    assert b"secure connection" in page.data and b"https://" in page.data


def test_on_this_machine_http_is_allowed(tmp_path: Path) -> None:
    client = _app(tmp_path, "http://127.0.0.1:8000").test_client()
    answer = client.post("/oidc/token", base_url="http://127.0.0.1:8000", data=TOKEN_REQUEST, auth=("x", "y"))
    assert answer.status_code == 401 and answer.json["error"] == "invalid_client"
