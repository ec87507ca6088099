"""The budget of wrong client credentials per address at the OIDC endpoints that authenticate clients
(idp.oidc.client_budget): wrong secrets and unknown clients count; past the budget every request from that
address is refused with 429 and Retry-After before its credentials are looked at, the right ones included,
through the fast paths as through the views; other addresses are not affected."""

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from authserver import ratelimit
from idp.oidc.clients import build_metadata
from idp.server import build_app, build_services, load_settings
from tests.fixtures.wsgi_calls import IDP_SETTINGS, basic, post

REDIRECT = "https://rp.example.com/cb"
FLOOD = "203.0.113.9"
OTHER = "203.0.113.10"


def _app(tmp_path: Path, limit: str) -> tuple[Any, Any]:
    settings = load_settings(
        {**IDP_SETTINGS, "NEXTAUTH_IDP_RATE_LIMIT_CLIENT_AUTH_FAILURES": limit}, data_dir=tmp_path
    )
    services = build_services(settings)
    return build_app(settings, services), services


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Any]:
    app, services = _app(tmp_path, "3/minute")
    yield app
    services.sessions.ended_sessions.stop()


def _client(app: Any) -> tuple[Any, str]:
    provider = app.extensions["nextauth_oidc"]
    return provider.clients.add("rp", build_metadata(redirect_uris=[REDIRECT]))  # type: ignore[no-any-return]


def _active_token(app: Any, client: Any) -> str:
    """An access token of ``client`` for a logged-in user: introspection's fast path answers for it."""
    from idp.directory import Profile
    from idp.oidc.tokens import Grant

    sessions = app.extensions["nextauth_idp"].sessions
    session = sessions.start(ns_nonce="n" * 32, profile=Profile("alice"), second_factor="pin", method="qr")
    grant = Grant(
        client_id=client.client_id,
        user_id="alice",
        scope="openid",
        sid=sessions.verify(session).sid,
        auth_time=1_800_000_000,
        amr=("pin",),
    )
    token = secrets.token_urlsafe(32)
    app.extensions["nextauth_oidc"].tokens.save_access_token(token, grant, 900, None)
    return token


def _ask(
    app: Any, path: str, client_id: str, secret: str, address: str, token: str = "t" * 43
) -> tuple[str, dict[str, str], Any]:
    body = {
        "/oidc/token": {"grant_type": "authorization_code", "code": "c" * 43, "redirect_uri": REDIRECT},
        "/oidc/introspect": {"token": token},
        "/oidc/revoke": {"token": token},
        "/oidc/par": {"response_type": "code", "redirect_uri": REDIRECT, "scope": "openid"},
        "/oidc/backchannel-authentication": {"scope": "openid", "login_hint": "alice"},
        "/oidc/device-authorization": {"scope": "openid"},
    }[path]
    status, headers, answer = post(
        app.wsgi_app, path, urlencode(body).encode(), basic(client_id, secret), remote_addr=address
    )
    return status, dict(headers), json.loads(answer)


def test_past_the_budget_even_the_right_secret_is_refused_at_every_endpoint(
    app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("WARNING", logger="nextauth.security")
    client, secret = _client(app)
    wrong = secrets.token_urlsafe(32)
    active = _active_token(app, client)
    # Within the budget: the right secret gets the endpoint's own answers (an unknown code is invalid_grant);
    # an active token is introspected by the fast path.
    assert _ask(app, "/oidc/token", client.client_id, secret, FLOOD)[2]["error"] == "invalid_grant"
    assert _ask(app, "/oidc/introspect", client.client_id, secret, FLOOD)[2] == {"active": False}
    assert _ask(app, "/oidc/introspect", client.client_id, secret, FLOOD, active)[2]["active"] is True
    # Three wrong credentials: a wrong secret, an unknown client, a wrong secret at another endpoint.
    for path, client_id, tried in (
        ("/oidc/token", client.client_id, wrong),
        ("/oidc/token", "no-such-client", wrong),
        ("/oidc/revoke", client.client_id, wrong),
    ):
        status, _headers, answer = _ask(app, path, client_id, tried, FLOOD)
        assert status.startswith("401") and answer["error"] == "invalid_client"
    refusals = [r.getMessage() for r in caplog.records if "client authentication refused" in r.getMessage()]
    assert len(refusals) == 3 and all(FLOOD in line for line in refusals), refusals
    assert "the token endpoint" in refusals[0] and "the revocation endpoint" in refusals[2]
    assert not any(wrong in r.getMessage() or secret in r.getMessage() for r in caplog.records)
    every = (
        "/oidc/token",
        "/oidc/introspect",
        "/oidc/revoke",
        "/oidc/par",
        "/oidc/backchannel-authentication",
        "/oidc/device-authorization",
    )
    for path in every:
        for tried in (wrong, secret):
            status, headers, answer = _ask(app, path, client.client_id, tried, FLOOD, active)
            assert status.startswith("429"), (path, status, answer)
            assert answer["error"] == "temporarily_unavailable"
            assert 1 <= int(headers["Retry-After"]) <= 60
            assert secret not in json.dumps(answer)
    # Another address is not affected (and the token was not revoked by the refused requests).
    assert _ask(app, "/oidc/introspect", client.client_id, secret, OTHER, active)[2]["active"] is True


def test_a_client_with_the_right_secret_is_checked_in_the_store_at_most_once_a_second(
    app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, secret = _client(app)
    failures = app.extensions["nextauth_oidc"].client_failures
    now = [1000.0]
    monkeypatch.setattr(ratelimit.time, "monotonic", lambda: now[0])
    asked: list[str] = []
    check = failures.limiter.check
    monkeypatch.setattr(
        failures.limiter, "check", lambda rule, key, **kw: (asked.append(key), check(rule, key, **kw))[1]
    )
    for _ in range(4):
        assert _ask(app, "/oidc/introspect", client.client_id, secret, FLOOD)[2] == {"active": False}
    assert asked == [FLOOD]
    now[0] += ratelimit.UNDER_BUDGET_SECONDS
    _ask(app, "/oidc/introspect", client.client_id, secret, FLOOD)
    assert asked == [FLOOD, FLOOD]
    # After a wrong secret, the next request asks the store whatever it carries.
    _ask(app, "/oidc/introspect", client.client_id, "wrong", FLOOD)
    _ask(app, "/oidc/introspect", client.client_id, secret, FLOOD)
    assert asked == [FLOOD, FLOOD, FLOOD]


def test_the_budget_can_be_turned_off(tmp_path: Path) -> None:
    app, services = _app(tmp_path, "off")
    try:
        client, secret = _client(app)
        for _ in range(5):
            assert _ask(app, "/oidc/revoke", client.client_id, "wrong", FLOOD)[0].startswith("401")
        assert _ask(app, "/oidc/introspect", client.client_id, secret, FLOOD)[2] == {"active": False}
    finally:
        services.sessions.ended_sessions.stop()
