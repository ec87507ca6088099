"""Introspection's fast path (idp.oidc.fast_introspection) answers exactly as the Flask view would: the same
status, headers and body for an active token, and every other request left to the view, which reads the
same body. Each case is asked of the whole app and of the app without the fast path."""

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from idp.oidc.clients import build_metadata
from idp.oidc.fast_introspection import FastIntrospection
from idp.oidc.fast_post import basic_credentials
from idp.oidc.tokens import ACCESS_PREFIX, Grant, token_hash
from idp.server import build_app, build_services, load_settings
from tests.fixtures.wsgi_calls import IDP_SETTINGS, basic, counter, post, wrapped

REDIRECT = ["https://rp.example.com/cb"]


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Any]:
    settings = load_settings(IDP_SETTINGS, data_dir=tmp_path)
    services = build_services(settings)
    built = build_app(settings, services)
    yield built
    services.sessions.ended_sessions.stop()


def _fast(app: Any) -> FastIntrospection:
    return wrapped(app, FastIntrospection)  # type: ignore[no-any-return]


def _call(wsgi: Any, body: bytes, headers: dict[str, str], scheme: str = "https") -> tuple[str, list, bytes]:
    return post(wsgi, "/oidc/introspect", body, headers, scheme)


def _both(app: Any, body: bytes, headers: dict[str, str], scheme: str = "https") -> tuple[tuple, tuple]:
    fast = _fast(app)
    return _call(fast, body, headers, scheme), _call(fast._app, body, headers, scheme)


def _same(fast: tuple, flask_only: tuple) -> None:
    assert fast[0] == flask_only[0]
    assert sorted(fast[1]) == sorted(flask_only[1])
    assert json.loads(fast[2]) == json.loads(flask_only[2])
    assert fast[2] == flask_only[2]


class World:
    """Clients and tokens: a resource server (client credentials), the token's own client, another one."""

    def __init__(self, app: Any) -> None:
        provider = app.extensions["nextauth_oidc"]
        self.provider = provider
        clients = provider.clients
        self.rs, self.rs_secret = clients.add(
            "api", build_metadata(redirect_uris=[], grant_types=["client_credentials"])
        )
        self.rp, self.rp_secret = clients.add("rp", build_metadata(redirect_uris=REDIRECT))
        self.post, self.post_secret = clients.add(
            "post", build_metadata(redirect_uris=REDIRECT, auth_method="client_secret_post")
        )
        self.other, self.other_secret = clients.add("other", build_metadata(redirect_uris=REDIRECT))
        self.public, _ = clients.add("spa", build_metadata(redirect_uris=REDIRECT, public=True))
        sessions = app.extensions["nextauth_idp"].sessions
        self.sessions = sessions
        from idp.directory import Profile

        token = sessions.start(ns_nonce="n" * 32, profile=Profile("alice"), second_factor="pin", method="qr")
        self.sid = sessions.verify(token).sid
        self.user = Grant(
            client_id=self.rp.client_id,
            user_id="alice",
            scope="openid profile",
            sid=self.sid,
            auth_time=1_800_000_000,
            amr=("pin",),
        )
        tokens = provider.tokens
        self.user_token = "u" * 43
        tokens.save_access_token(self.user_token, self.user, 900, None)
        _, family = tokens.issue_refresh_token(self.user)
        self.family_token = "f" * 43
        tokens.save_access_token(self.family_token, self.user, 900, family)
        self.family = family
        self.dpop_token = "d" * 43
        dpop_grant = Grant(**{**self.user.to_json(), "amr": ("pin",), "dpop_jkt": "j" * 43})
        tokens.save_access_token(self.dpop_token, dpop_grant, 900, None)
        self.client_token = "c" * 43
        tokens.save_access_token(
            self.client_token,
            Grant(client_id=self.rs.client_id, user_id="", scope="api", for_client=True),
            900,
            None,
        )
        self.post_token = "p" * 43
        post_grant = Grant(**{**self.user.to_json(), "amr": ("pin",), "client_id": self.post.client_id})
        tokens.save_access_token(self.post_token, post_grant, 900, None)


def _form(**fields: str) -> bytes:
    return urlencode(fields).encode()


def test_an_active_token_gets_the_views_answer_without_the_view(
    app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = World(app)
    rs = basic(world.rs.client_id, world.rs_secret)
    rp = basic(world.rp.client_id, world.rp_secret)
    cases = [
        (_form(token=world.user_token), rs),  # a resource server with client credentials
        (_form(token=world.user_token, token_type_hint="access_token"), rs),
        (_form(token=world.user_token), rp),  # the token's own client
        (_form(token=world.family_token), rp),
        (_form(token=world.dpop_token), rs),  # cnf.jkt and token_type DPoP
        (_form(token=world.client_token), rs),  # a client's own token: no sub
        (_form(token=world.user_token, client_id=world.rs.client_id), rs),
        (
            _form(token=world.post_token, client_id=world.post.client_id, client_secret=world.post_secret),
            {},
        ),
    ]
    for body, headers in cases:
        fast, flask_only = _both(app, body, headers)
        assert fast[0] == "200 OK", fast
        assert json.loads(fast[2])["active"] is True
        _same(fast, flask_only)
    assert "sub" not in json.loads(_call(_fast(app), *cases[5])[2])
    assert json.loads(_call(_fast(app), *cases[4])[2])["cnf"] == {"jkt": "j" * 43}

    # Flask is not involved: with the view broken, the answer is the same and is counted.
    counted = {"component": "idp", "route": "/oidc/introspect", "method": "POST", "status": "200"}
    requests_before = counter("nextauth_rest_requests_total", **counted)
    oidc_before = counter("nextauth_idp_oidc_requests_total", endpoint="introspect", outcome="ok")
    fast_path = _fast(app)
    monkeypatch.setattr(fast_path, "_app", lambda *a: [b"broken"])
    body, headers = cases[0]
    status, answer_headers, answer = _call(fast_path, body, headers)
    assert status == "200 OK" and json.loads(answer)["sub"] == "alice"
    assert ("Content-Length", str(len(answer))) in answer_headers
    assert counter("nextauth_rest_requests_total", **counted) == requests_before + 1
    assert counter("nextauth_idp_oidc_requests_total", endpoint="introspect", outcome="ok") == oidc_before + 1


def test_everything_else_is_the_views_answer(app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    world = World(app)
    rs = basic(world.rs.client_id, world.rs_secret)
    other = basic(world.other.client_id, world.other_secret)
    refresh, _ = world.provider.tokens.issue_refresh_token(world.user)
    expired = "e" * 43
    # Past its exp while the store still holds it (the store's expiry is a second late, say).
    now = int(time.time())
    record = {"grant": world.user.to_json(), "iat": now - 905, "exp": now - 5, "family": None}
    world.provider.tokens._kv.set(ACCESS_PREFIX + token_hash(expired), json.dumps(record).encode(), ttl=60)
    cases: list[tuple[bytes, dict[str, str]]] = [
        (_form(token="unknown-token-value"), rs),  # active: false
        (_form(token=world.user_token), other),  # not this client's token to see: active false
        (_form(token=world.user_token), basic(world.rs.client_id, "wrong")),  # 401
        (_form(token=world.user_token), basic("nobody", "secret")),
        (_form(token=world.user_token), {"Authorization": "Basic !!!"}),
        (_form(token=world.user_token), {"Authorization": "Bearer " + world.user_token}),
        (_form(token=world.user_token), {}),  # no client at all
        (_form(token=world.user_token, client_id=world.rp.client_id, client_secret=world.rp_secret), {}),
        (_form(token=world.post_token), basic(world.post.client_id, world.post_secret)),  # not its method
        (_form(token=world.user_token, client_id=world.public.client_id), {}),  # a public client
        (_form(token=world.user_token, client_secret=world.rs_secret), rs),  # two methods at once
        (_form(token=world.user_token, client_id=world.rp.client_id), rs),  # names another client
        (_form(token=world.user_token, token_type_hint="refresh_token"), rs),
        (_form(token=world.user_token, token_type_hint="id_token"), rs),  # unsupported_token_type
        (_form(token=refresh), rs),  # a refresh token: from the database
        (_form(token=expired), rs),
        (_form(token_type_hint="access_token"), rs),  # no token: invalid_request
        (b"token=" + world.user_token.encode() + b"&token=x", rs),  # a field twice
        (b"token=" + world.user_token.encode() + b"&extra=1", rs),  # a field we do not know
        (b"token=" + world.user_token.encode() + b"&", rs),
        ("token=ä".encode(), rs),
        (b"token=%ff" + world.user_token.encode(), rs),  # a percent escape that is not UTF-8
        (_form(token=world.user_token), {**rs, "Origin": "https://evil.example"}),  # a browser's: 403
        (_form(token=world.user_token), {**rs, "Sec-Fetch-Site": "cross-site"}),
        (_form(token=world.user_token), {**rs, "Content-Type": "application/json"}),
        (
            _form(token=world.user_token),
            {**rs, "Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
        ),
    ]
    # Through the fast path's own refusals too: it hands the view the body it read.
    for body, headers in cases:
        fast, flask_only = _both(app, body, headers)
        assert fast[0] == flask_only[0], (body, headers, fast, flask_only)
        assert sorted(fast[1]) == sorted(flask_only[1])
        assert fast[2] == flask_only[2]
    # Some of them the view answers as active (a charset parameter; Basic and a client_secret, where Basic
    # wins): the fast path leaves those rare ways to the view too.
    assert json.loads(_call(_fast(app), *cases[-1])[2])["active"] is True
    # The token's session ended, or its family revoked: inactive at once, as the view says.
    world.provider.tokens.revoke_family(world.family)
    assert world.sessions.end(world.sid, by="test")
    for token in (world.family_token, world.user_token):
        fast, flask_only = _both(app, _form(token=token), rs)
        assert fast == flask_only and json.loads(fast[2]) == {"active": False}
    # With the view broken, none of these is answered by the fast path.
    monkeypatch.setattr(_fast(app), "_app", lambda environ, start: (start("599 View", []), [b"view"])[1])
    for body, headers in cases:
        assert _call(_fast(app), body, headers)[0] == "599 View"


def test_the_store_away_is_the_views_answer(app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    world = World(app)
    fast = _fast(app)

    def away(_token: str) -> None:
        raise ConnectionError("store away")

    monkeypatch.setattr(world.provider.tokens, "access_token", away)
    monkeypatch.setattr(
        fast, "_app", lambda environ, start: (start("503 Away", []), [environ["wsgi.input"].read()])[1]
    )
    body = _form(token=world.user_token)
    status, _, seen = _call(fast, body, basic(world.rs.client_id, world.rs_secret))
    assert status == "503 Away" and seen == body  # the view read the same body


def test_plain_http_away_from_this_machine_is_the_views_refusal(tmp_path: Path) -> None:
    """Authlib refuses OAuth over http except on loopback: the fast path leaves that to the view."""
    settings = load_settings(
        {
            "NEXTAUTH_IDP_SECRET_KEY": "k" * 40,
            "NEXTAUTH_IDP_NS_API_URL": "http://127.0.0.1:1",
            "NEXTAUTH_IDP_NS_API_KEY": "key",
            "NEXTAUTH_IDP_NS_WEBSOCKET_URL": "ws://127.0.0.1:1/ns/websocket",
            "NEXTAUTH_IDP_PUBLIC_URL": "http://id.example.com",
        },
        data_dir=tmp_path,
    )
    services = build_services(settings)
    try:
        app = build_app(settings, services)
        world = World(app)
        body, rs = _form(token=world.user_token), basic(world.rs.client_id, world.rs_secret)
        fast, flask_only = _both(app, body, {**rs, "Host": "id.example.com"}, "http")
        assert fast == flask_only and fast[0].startswith("400")
        assert json.loads(fast[2])["error"] == "insecure_transport"
        # On this machine plain http is allowed, and answered by the fast path alone.
        fast_path = _fast(app)
        fast_path._app = lambda *a: [b"broken"]
        seen = _call(fast_path, body, {**rs, "Host": "127.0.0.1:8080"}, "http")
        assert seen[0] == "200 OK" and json.loads(seen[2])["active"] is True
    finally:
        services.sessions.ended_sessions.stop()


def test_basic_credentials_are_read_as_authlib_reads_them() -> None:
    from authlib.oauth2.rfc6749.util import extract_basic_authorization

    for client_id, secret in [("a", "b"), ("a b", "c:d"), ("ä%", "x+y"), ("id", "s%3Ae")]:
        header = basic(client_id, secret)["Authorization"]
        assert basic_credentials(header) == extract_basic_authorization({"Authorization": header})
        assert basic_credentials(header) == (client_id, secret)
    for header in (
        "Basic",
        "Basic YQ==",
        "Digest abc",
        "Basic !!!",
        "Basic " + base64.b64encode(b"\xff:x").decode(),
    ):
        assert basic_credentials(header) is None
