"""The code exchange's fast path (idp.oidc.fast_token) issues what the Flask view issues: each case mints the
same authorization code twice and exchanges one copy through the whole app, the other through the app
without the fast path, then compares the answers (headers, fields, ID token claims and signature) and what
each left in the store. Every request the fast path does not answer reaches the view with its body as sent
and its code still unused."""

import base64
import hashlib
import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from joserfc import jwt

from idp.directory import Profile
from idp.oidc.clients import build_metadata
from idp.oidc.fast_token import FastCodeExchange
from idp.oidc.tokens import ACCESS_PREFIX, AuthorizationCode, Exchange, Grant, token_hash
from idp.server import build_app, build_services, load_settings
from tests.fixtures.wsgi_calls import IDP_SETTINGS, ISSUER, basic, counter, post, wrapped

REDIRECT = "https://rp.example.com/cb"


def _settings(tmp_path: Path, issuer: str = ISSUER) -> Any:
    return load_settings({**IDP_SETTINGS, "NEXTAUTH_IDP_PUBLIC_URL": issuer}, data_dir=tmp_path)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Any]:
    settings = _settings(tmp_path)
    services = build_services(settings)
    yield build_app(settings, services)
    services.sessions.ended_sessions.stop()


def _fast(app: Any) -> FastCodeExchange:
    return wrapped(app, FastCodeExchange)  # type: ignore[no-any-return]


def _call(wsgi: Any, body: bytes, headers: dict[str, str], scheme: str = "https") -> tuple[str, list, bytes]:
    return post(wsgi, "/oidc/token", body, headers, scheme)


def _as_rp(app: Any, world: "World", body: bytes) -> tuple[str, list, bytes]:
    """``body`` posted to the fast path with the main client's credentials (client_secret_basic)."""
    return _call(_fast(app), body, basic(world.rp.client_id, world.rp_secret))


def _challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


class World:
    """Clients of every kind, a logged-in user, and codes minted as the authorize endpoint mints them."""

    def __init__(self, app: Any) -> None:
        provider = app.extensions["nextauth_oidc"]
        self.provider = provider
        self.tokens = provider.tokens
        clients = provider.clients

        def add(name: str, **metadata: Any) -> tuple[Any, Any]:
            return clients.add(name, build_metadata(redirect_uris=[REDIRECT], **metadata))

        self.rp, self.rp_secret = add("rp")  # basic, refresh tokens, ES256
        self.post, self.post_secret = add("post", auth_method="client_secret_post")
        self.no_refresh, self.no_refresh_secret = add("no-refresh", grant_types=["authorization_code"])
        self.rs256, self.rs256_secret = add("rs256", id_token_alg="RS256")
        self.public, _ = add("spa", public=True)
        self.jwt_client, self.jwt_secret = add("jwt", access_token_format="jwt")
        self.narrow, self.narrow_secret = add("narrow", scope="openid")
        self.other, self.other_secret = add("other")
        sessions = app.extensions["nextauth_idp"].sessions
        self.sessions = sessions
        token = sessions.start(ns_nonce="n" * 32, profile=Profile("alice"), second_factor="pin", method="qr")
        self.sid = sessions.verify(token).sid

    def code(
        self, client: Any, *, copies: int = 1, scope: str = "openid profile", **changes: Any
    ) -> tuple[list[str], str]:
        """``copies`` codes with one record (as one authorization request would make), and their verifier."""
        verifier = secrets.token_urlsafe(48)
        fields: dict[str, Any] = {
            "redirect_uri": REDIRECT,
            "nonce": "n-" + secrets.token_hex(4),
            "code_challenge": _challenge(verifier),
            "code_challenge_method": "S256",
        }
        grant = Grant(
            client_id=client.client_id,
            user_id="alice",
            scope=scope,
            sid=self.sid,
            auth_time=1_800_000_000,
            amr=("pin", "hwk"),
            dpop_jkt=changes.pop("dpop_jkt", None),
        )
        fields.update(changes)
        codes = [secrets.token_urlsafe(32) for _ in range(copies)]
        for code in codes:
            self.tokens.save_code(code, AuthorizationCode(grant=grant, **fields))
        return codes, verifier


def _exchange(code: str, verifier: str, **extra: str) -> bytes:
    fields = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    fields["code_verifier"] = verifier
    return urlencode({**fields, **extra}).encode()


def _claims(provider: Any, token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    decoded = jwt.decode(token, provider.server_jwks(), algorithms=["ES256", "RS256"])
    return dict(decoded.header), dict(decoded.claims)


def _at_hash(access_token: str) -> str:
    """OIDC Core 3.1.3.6 written out: the left half of the token's SHA-256, base64url without padding."""
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


def _same_issue(world: World, fast: tuple, view: tuple) -> None:
    """Two answers for two copies of one code: equal but for the random values, which must be fresh."""
    assert fast[0] == view[0] == "200 OK", (fast, view)
    assert sorted(h for h in fast[1] if h[0] != "Content-Length") == sorted(
        h for h in view[1] if h[0] != "Content-Length"
    )
    ours, theirs = json.loads(fast[2]), json.loads(view[2])
    assert sorted(ours) == sorted(theirs)
    for name in ("token_type", "expires_in", "scope"):
        assert ours.get(name) == theirs.get(name)
    for name in ("access_token", "refresh_token"):
        if name in ours:
            assert len(ours[name]) == len(theirs[name]) and ours[name] != theirs[name]
    if "id_token" in theirs:
        (ours_header, ours_claims), (theirs_header, theirs_claims) = (
            _claims(world.provider, ours["id_token"]),
            _claims(world.provider, theirs["id_token"]),
        )
        assert ours_header == theirs_header
        assert ours_claims["at_hash"] == _at_hash(ours["access_token"])
        assert theirs_claims["at_hash"] == _at_hash(theirs["access_token"])
        assert abs(ours_claims["iat"] - theirs_claims["iat"]) <= 2
        moving = ("at_hash", "iat", "exp")
        assert {k: v for k, v in ours_claims.items() if k not in moving} == {
            k: v for k, v in theirs_claims.items() if k not in moving
        }
        assert list(ours_claims) == list(theirs_claims)  # the same claims in the same order
    # What each left behind works alike: the access token, the refresh token's record.
    tokens = world.tokens
    assert (
        tokens.access_token(ours["access_token"]).grant == tokens.access_token(theirs["access_token"]).grant
    )
    if "refresh_token" in theirs:
        assert (
            tokens.refresh_token(ours["refresh_token"]).grant
            == tokens.refresh_token(theirs["refresh_token"]).grant
        )


def _both(world: World, app: Any, client: Any, secret: str | None, headers: Any = None, **code: Any) -> Any:
    (first, second), verifier = world.code(client, copies=2, **code)
    auth = headers if headers is not None else basic(client.client_id, secret or "")
    fast = _call(_fast(app), _exchange(first, verifier), auth)
    view = _call(_fast(app)._app, _exchange(second, verifier), auth)
    return fast, view


def test_a_code_exchange_gets_the_views_tokens_without_the_view(
    app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = World(app)
    cases = [
        (world.rp, world.rp_secret, None, {}),  # refresh token, ES256
        (world.no_refresh, world.no_refresh_secret, None, {}),  # no refresh token
        (world.rs256, world.rs256_secret, None, {}),
        (world.rp, world.rp_secret, None, {"scope": "openid profile email groups offline_access"}),
        (world.rp, world.rp_secret, None, {"scope": "profile"}),  # OAuth only: no ID token
        (world.rp, world.rp_secret, None, {"nonce": None}),
        (world.narrow, world.narrow_secret, None, {"scope": "openid"}),
    ]
    for client, secret, headers, code in cases:
        fast, view = _both(world, app, client, secret, headers, **code)
        _same_issue(world, fast, view)
    assert "id_token" not in json.loads(_both(world, app, world.rp, world.rp_secret, scope="profile")[0][2])
    # client_secret_post, the client named in the form.
    (first, second), verifier = world.code(world.post, copies=2)
    form = {"client_id": world.post.client_id, "client_secret": world.post_secret}
    fast = _call(_fast(app), _exchange(first, verifier, **form), {})
    view = _call(_fast(app)._app, _exchange(second, verifier, **form), {})
    _same_issue(world, fast, view)

    # Flask is not involved: with the view broken, a code is still exchanged, and counted.
    counted = {"component": "idp", "route": "/oidc/token", "method": "POST", "status": "200"}
    before = (
        counter("nextauth_rest_requests_total", **counted),
        counter("nextauth_idp_oidc_requests_total", endpoint="token", outcome="ok"),
        counter("nextauth_idp_token_grants_total", grant_type="authorization_code", outcome="issued"),
    )
    fast_path = _fast(app)
    monkeypatch.setattr(fast_path, "_app", lambda *a: [b"broken"])
    (code,), verifier = world.code(world.rp)
    status, headers, body = _call(
        fast_path, _exchange(code, verifier), basic(world.rp.client_id, world.rp_secret)
    )
    assert status == "200 OK" and ("Content-Length", str(len(body))) in headers
    assert _claims(world.provider, json.loads(body)["id_token"])[1]["sub"] == "alice"
    after = (
        counter("nextauth_rest_requests_total", **counted),
        counter("nextauth_idp_oidc_requests_total", endpoint="token", outcome="ok"),
        counter("nextauth_idp_token_grants_total", grant_type="authorization_code", outcome="issued"),
    )
    assert after == tuple(value + 1 for value in before)


def test_a_code_works_once_and_its_second_use_revokes_what_it_gave(app: Any) -> None:
    world = World(app)
    (code,), verifier = world.code(world.rp)
    auth = basic(world.rp.client_id, world.rp_secret)
    status, _, body = _call(_fast(app), _exchange(code, verifier), auth)
    assert status == "200 OK"
    issued = json.loads(body)
    assert world.tokens.access_token(issued["access_token"]) is not None
    # Again: the fast path finds no code and hands on; the view refuses and revokes the first exchange.
    status, _, body = _call(_fast(app), _exchange(code, verifier), auth)
    assert status.startswith("400") and json.loads(body)["error"] == "invalid_grant"
    assert world.tokens.access_token(issued["access_token"]) is None
    assert world.tokens.refresh_token(issued["refresh_token"]).revoked_at is not None


def test_the_access_token_is_stored_in_the_step_that_takes_the_code(
    app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No write of its own: the exchange goes to the store with the take (and reads back as the view's)."""
    world = World(app)
    (code,), verifier = world.code(world.rp)
    monkeypatch.setattr(world.tokens, "save_access_token", None)  # a call would fail
    asked = _spy_exchanges(world.tokens, monkeypatch)
    status, _, body = _as_rp(app, world, _exchange(code, verifier))
    assert status == "200 OK"
    issued = json.loads(body)
    token = world.tokens.access_token(issued["access_token"])
    assert token is not None and (token.grant.client_id, token.grant.user_id) == (world.rp.client_id, "alice")
    assert token.expires_at - token.issued_at == world.provider.access_token_seconds
    assert token.refresh_family == world.tokens.refresh_token(issued["refresh_token"]).family
    assert asked[0].access_digest == token_hash(issued["access_token"])
    assert json.loads(_stored(world, asked[0]) or b"")["code"]["grant"]["client_id"] == world.rp.client_id


def test_the_refresh_token_it_issues_refreshes_at_the_view(app: Any) -> None:
    world = World(app)
    (code,), verifier = world.code(world.rp, scope="openid offline_access")
    auth = basic(world.rp.client_id, world.rp_secret)
    issued = json.loads(_call(_fast(app), _exchange(code, verifier), auth)[2])
    body = urlencode({"grant_type": "refresh_token", "refresh_token": issued["refresh_token"]}).encode()
    status, _, refreshed = _call(_fast(app), body, auth)
    assert status == "200 OK", refreshed
    assert json.loads(refreshed)["refresh_token"] != issued["refresh_token"]


def test_a_refresh_token_it_issues_outlives_a_restart(tmp_path: Path) -> None:
    """The exchange writes the refresh token to the database (the store only takes the code): an IdP started
    again on the same database, with its in-process store empty, refreshes it once and only once."""
    settings = _settings(tmp_path)
    before = build_services(settings)
    first = build_app(settings, before)
    world = World(first)
    (code,), verifier = world.code(world.rp, scope="openid offline_access")
    auth = basic(world.rp.client_id, world.rp_secret)
    issued = json.loads(_call(_fast(first), _exchange(code, verifier), auth)[2])
    family = world.tokens.refresh_token(issued["refresh_token"]).family
    before.sessions.ended_sessions.stop()

    after = build_services(_settings(tmp_path))
    try:
        again = build_app(settings, after)
        tokens = again.extensions["nextauth_oidc"].tokens
        assert tokens is not world.tokens
        assert tokens.access_token(issued["access_token"]) is None  # the in-process store went with it
        body = urlencode({"grant_type": "refresh_token", "refresh_token": issued["refresh_token"]}).encode()
        status, _, refreshed = _call(_fast(again), body, auth)
        assert status == "200 OK", refreshed
        answer = json.loads(refreshed)
        assert tokens.access_token(answer["access_token"]).grant.user_id == "alice"
        assert tokens.refresh_token(answer["refresh_token"]).family == family
        status, _, reused = _call(_fast(again), body, auth)  # used once: a second use is refused
        assert status == "400 BAD REQUEST" and json.loads(reused)["error"] == "invalid_grant", reused
    finally:
        after.sessions.ended_sessions.stop()


def test_everything_else_is_the_views_answer_with_the_code_unused(
    app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = World(app)
    rp = basic(world.rp.client_id, world.rp_secret)
    wrong_verifier = secrets.token_urlsafe(48)

    def case(
        client: Any = None, *, body: Any = None, headers: Any = None, **code: Any
    ) -> tuple[bytes, Any, str]:
        (minted,), verifier = world.code(client or world.rp, **code)
        made = body(minted, verifier) if body else _exchange(minted, verifier)
        made = made.encode() if isinstance(made, str) else made
        return made, (rp if headers is None else headers), minted

    cases = [
        case(body=lambda c, v: _exchange(c, wrong_verifier)),  # invalid_grant
        case(body=lambda c, v: _exchange(c, v[:42])),  # too short: invalid_request
        case(body=lambda c, v: _exchange(c, v + "!")),
        case(body=lambda c, v: _exchange(c, v, redirect_uri="https://rp.example.com/other")),
        case(
            body=lambda c, v: urlencode({"grant_type": "authorization_code", "code": c, "code_verifier": v})
        ),
        case(world.other),  # another client's code
        case(headers=basic(world.rp.client_id, "wrong")),  # invalid_client
        case(headers=basic("nobody", "secret")),
        case(headers={}),  # no client authentication at all
        case(world.post, headers=basic(world.post.client_id, world.post_secret)),  # not its method
        case(world.public, headers={}, body=lambda c, v: _exchange(c, v, client_id=world.public.client_id)),
        case(world.jwt_client, headers=basic(world.jwt_client.client_id, world.jwt_secret)),
        case(
            world.narrow, headers=basic(world.narrow.client_id, world.narrow_secret)
        ),  # scope narrowed since
        case(dpop_jkt="j" * 43),  # bound to a DPoP key: needs the proof
        case(headers={**rp, "DPoP": "not-a-proof"}),
        case(headers={**rp, "Origin": "https://rp.example.com"}),  # a browser's: CORS
        case(headers={**rp, "Sec-Fetch-Site": "cross-site"}),
        case(headers={**rp, "Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}),
        case(body=lambda c, v: _exchange(c, v, scope="openid")),  # a field the exchange does not take
        case(body=lambda c, v: _exchange(c, v, resource="https://api.example.com")),
        case(body=lambda c, v: _exchange(c, v) + b"&code=" + c.encode()),  # a field twice
        case(body=lambda c, v: _exchange(c, v, grant_type="refresh_token")),
        case(body=lambda c, v: _exchange(c, v, client_secret=world.rp_secret)),  # two methods at once
        case(body=lambda c, v: _exchange(c, v) + b"&"),
        case(body=lambda c, v: _exchange(c, v).replace(b"code=", b"code=%ff")),
        case(code_challenge_method="plain"),
    ]
    unknown_code = _exchange("unknown-" + secrets.token_urlsafe(24), secrets.token_urlsafe(48))
    seen: list[bytes] = []

    def view(environ: dict[str, Any], start: Any) -> list[bytes]:
        seen.append(environ["wsgi.input"].read())
        start("599 View", [])
        return [b"view"]

    monkeypatch.setattr(_fast(app), "_app", view)
    for body, headers, minted in [*cases, (unknown_code, rp, "")]:
        seen.clear()
        assert _call(_fast(app), body, headers)[0] == "599 View", (body, headers)
        assert seen == [body]  # the view reads the body as it was sent
        if minted:
            assert world.tokens.peek_code(minted) is not None  # and the code is still there for it
    monkeypatch.undo()
    # The view answers them as it did before: refusals mostly, and the rare forms it accepts.
    answers = [_call(_fast(app), body, headers) for body, headers, _minted in cases]
    ok = None
    assert [(status[:3], json.loads(body).get("error")) for status, _, body in answers] == [
        ("400", "invalid_grant"), ("400", "invalid_request"), ("400", "invalid_request"),
        ("400", "invalid_grant"), ("400", "invalid_grant"), ("400", "invalid_grant"),
        ("401", "invalid_client"), ("401", "invalid_client"), ("401", "invalid_client"),
        ("401", "invalid_client"),
        ("200", ok), ("200", ok), ("200", ok),  # public, JWT access tokens, the scope narrowed
        ("400", "invalid_grant"), ("400", "invalid_dpop_proof"),
        ("200", ok), ("200", ok), ("200", ok),  # Origin and fetch metadata (CORS decides), a charset
        ("200", ok), ("200", ok), ("200", ok),  # fields the exchange ignores or reads once
        ("400", "invalid_request"),
        ("200", ok), ("200", ok),  # Basic wins over a client_secret in the form; a trailing "&"
        ("400", "invalid_grant"), ("400", "invalid_grant"),
    ]  # fmt: skip


def test_a_code_taken_by_another_request_first_is_the_views(
    app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Used by a parallel request an instant before this one asks: the view refuses it."""
    world = World(app)
    (code,), verifier = world.code(world.rp)
    tokens = world.tokens
    real_take_if = tokens.take_code_if

    def raced(value: str, **conditions: Any) -> Any:
        tokens.take_code(value)  # the other request
        return real_take_if(value, **conditions)

    monkeypatch.setattr(tokens, "take_code_if", raced)
    status, _, body = _as_rp(app, world, _exchange(code, verifier))
    assert status.startswith("400") and json.loads(body)["error"] == "invalid_grant"


def test_a_code_the_store_let_through_that_fails_the_checks_is_refused(
    app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store's check and the exchange's own must agree; if they ever do not, no tokens."""
    world = World(app)
    (code,), verifier = world.code(world.rp)
    tokens = world.tokens
    asked = _spy_exchanges(tokens, monkeypatch)
    spied_take_if = tokens.take_code_if

    def lenient(value: str, **conditions: Any) -> Any:
        # Takes the code whatever verifier came, and stores the exchange with it.
        return spied_take_if(value, **{**conditions, "code_challenge": _challenge(verifier)})

    revoke = tokens.revoke_access_token
    stored_when_refused: list[bytes | None] = []

    def revoked(access_token: str) -> bool:
        stored_when_refused.append(_stored(world, asked[0]))
        return revoke(access_token)

    monkeypatch.setattr(tokens, "take_code_if", lenient)
    monkeypatch.setattr(tokens, "revoke_access_token", revoked)
    wrong_verifier = secrets.token_urlsafe(48)
    status, _, body = _as_rp(app, world, _exchange(code, wrong_verifier))
    assert status.startswith("400") and json.loads(body)["error"] == "invalid_grant"
    assert "access_token" not in json.loads(body)
    assert stored_when_refused and stored_when_refused[0] is not None  # the take had stored one
    assert _stored(world, asked[0]) is None  # and it is gone


def _spy_exchanges(tokens: Any, monkeypatch: pytest.MonkeyPatch) -> list[Exchange]:
    """The exchanges the fast path asks the store to keep with a code's take, as it asks."""
    asked: list[Exchange] = []
    take_code_if = tokens.take_code_if

    def spied(value: str, **conditions: Any) -> Any:
        asked.append(conditions["exchange"])
        return take_code_if(value, **conditions)

    monkeypatch.setattr(tokens, "take_code_if", spied)
    return asked


def _stored(world: World, exchange: Exchange) -> bytes | None:
    """The record of the access token stored with a take; None when there is none."""
    return world.provider.tokens._kv.get(ACCESS_PREFIX + exchange.access_digest)


def test_the_store_away_is_the_views_answer(app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    world = World(app)
    (code,), verifier = world.code(world.rp)

    def away(_code: str, **_conditions: Any) -> None:
        raise ConnectionError("store away")

    monkeypatch.setattr(world.tokens, "take_code_if", away)
    fast = _fast(app)
    monkeypatch.setattr(
        fast, "_app", lambda environ, start: (start("503 Away", []), [environ["wsgi.input"].read()])[1]
    )
    body = _exchange(code, verifier)
    status, _, seen = _call(fast, body, basic(world.rp.client_id, world.rp_secret))
    assert status == "503 Away" and seen == body


def test_trouble_after_the_code_is_used_is_logged_and_the_code_stays_used(
    app: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The database away while the refresh token is written: the code is gone, the view refuses it, and
    the log says why (the view cannot: it only finds the code used)."""
    import sqlalchemy.exc

    world = World(app)
    (code,), verifier = world.code(world.rp)

    def away(*_args: Any, **_kwargs: Any) -> None:
        raise sqlalchemy.exc.OperationalError("INSERT", {}, ConnectionRefusedError("refused"))

    monkeypatch.setattr(world.tokens, "issue_refresh_token", away)
    asked = _spy_exchanges(world.tokens, monkeypatch)
    with caplog.at_level("WARNING", logger="nextauth.idp.oidc"):
        status, _, body = _as_rp(app, world, _exchange(code, verifier))
    assert status.startswith("400") and json.loads(body)["error"] == "invalid_grant"
    assert world.tokens.peek_code(code) is None
    assert len(asked) == 1 and _stored(world, asked[0]) is None  # never handed out, and not left behind
    logged = [r.getMessage() for r in caplog.records if "could not be issued" in r.getMessage()]
    assert logged and "ConnectionRefusedError: refused" in logged[0] and world.rp.client_id in logged[0]


def test_plain_http_away_from_this_machine_is_the_views_refusal(tmp_path: Path) -> None:
    settings = _settings(tmp_path, "http://id.example.com")
    services = build_services(settings)
    try:
        app = build_app(settings, services)
        world = World(app)
        auth = basic(world.rp.client_id, world.rp_secret)
        (code,), verifier = world.code(world.rp)
        status, _, body = _call(
            _fast(app), _exchange(code, verifier), {**auth, "Host": "id.example.com"}, "http"
        )
        assert status.startswith("400") and json.loads(body)["error"] == "insecure_transport"
        assert world.tokens.peek_code(code) is not None
        fast_path = _fast(app)
        fast_path._app = lambda *a: [b"broken"]
        status, _, body = _call(
            fast_path, _exchange(code, verifier), {**auth, "Host": "127.0.0.1:8080"}, "http"
        )
        assert status == "200 OK" and "id_token" in json.loads(body)
    finally:
        services.sessions.ended_sessions.stop()


def test_id_tokens_say_when_the_user_logged_in_not_when_the_code_was_exchanged(app: Any) -> None:
    world = World(app)
    (code,), verifier = world.code(world.rp)
    before = int(time.time())
    body = _as_rp(app, world, _exchange(code, verifier))[2]
    _header, claims = _claims(world.provider, json.loads(body)["id_token"])
    assert claims["auth_time"] == 1_800_000_000 and claims["amr"] == ["pin", "hwk"]
    assert claims["sid"] == world.sid and claims["aud"] == [world.rp.client_id]
    assert claims["iss"] == ISSUER and before <= claims["iat"] <= claims["exp"] - 60
    # An independent relying party's check of at_hash, Authlib's client side.
    from authlib.oidc.core import CodeIDToken

    checked = CodeIDToken(claims, {"alg": "ES256"}, params={"access_token": json.loads(body)["access_token"]})
    checked.validate_at_hash()
