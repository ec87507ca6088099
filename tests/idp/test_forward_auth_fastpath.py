"""Forward-auth's fast path (idp.forwardauth.fastpath) answers exactly as the Flask view would: the same
status and headers for a user let through, and every other answer left to the view, which gets the
decision already made. Each case is asked of the whole app and of the app without the fast path."""

import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from idp.directory import Profile
from idp.forwardauth.fastpath import FastForwardAuth
from idp.server import build_app, build_services, load_settings

RULES = {
    "default": "authenticated",
    "rules": [
        {"path": "/public", "policy": "public"},
        {"path": "/admin", "groups": ["admins"]},
        {"path": "/closed", "policy": "deny"},
    ],
}
ALICE = Profile("alice", name="Alice Ä", email="alice@example.com", groups=("staff",))


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("NEXTAUTH_IDP_FORWARD_AUTH_HOSTS", "app.example.com")
    monkeypatch.setenv("NEXTAUTH_IDP_FORWARD_AUTH_RULES", json.dumps(RULES))
    settings = load_settings(
        {
            "NEXTAUTH_IDP_SECRET_KEY": "k" * 40,
            "NEXTAUTH_IDP_NS_API_URL": "http://127.0.0.1:1",
            "NEXTAUTH_IDP_NS_API_KEY": "key",
            "NEXTAUTH_IDP_NS_WEBSOCKET_URL": "ws://127.0.0.1:1/ns/websocket",
            "NEXTAUTH_IDP_PUBLIC_URL": "https://id.example.com",
        },
        data_dir=tmp_path,
    )
    services = build_services(settings)
    built = build_app(settings, services)
    assert isinstance(built.wsgi_app, FastForwardAuth)
    yield built
    services.sessions.ended_sessions.stop()


def _call(
    wsgi: Any, path: str = "/auth/forward", method: str = "GET", **headers: str
) -> tuple[str, list[tuple[str, str]], bytes]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "id.example.com",
        "SERVER_PORT": "443",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "https",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "id.example.com",
    }
    environ.update({"HTTP_" + name.upper(): value for name, value in headers.items()})
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        answer["status"], answer["headers"] = status, headers

    body = b"".join(wsgi(environ, start_response))
    return answer["status"], answer["headers"], body


def _asked(uri: str, token: str | None = None, **extra: str) -> dict[str, str]:
    headers = {
        "X_FORWARDED_PROTO": "https",
        "X_FORWARDED_HOST": "app.example.com",
        "X_FORWARDED_URI": uri,
        "X_FORWARDED_METHOD": "GET",
        "ACCEPT": "text/html",
        **extra,
    }
    if token is not None:
        headers["COOKIE"] = f"other=1; nextauth_session={token}"
    return headers


def _both(app: Any, path: str, headers: dict[str, str]) -> tuple[tuple, tuple]:
    fast = _call(app.wsgi_app, path, **headers)
    flask_only = _call(app.wsgi_app._app, path, **headers)
    return fast, flask_only


def _same(fast: tuple, flask_only: tuple) -> None:
    assert fast[0] == flask_only[0]
    assert sorted(fast[1]) == sorted(flask_only[1])
    assert fast[2] == flask_only[2]


def _counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_user_let_through_gets_the_views_answer_without_the_view(
    app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = app.extensions["nextauth_idp"].sessions.start(
        ns_nonce="n" * 32, profile=ALICE, second_factor="pin", method="qr"
    )
    for path in ("/auth/forward", "/auth/nginx"):
        fast, flask_only = _both(app, path, _asked("/reports?x=1", token))
        assert fast[0] == "200 OK"
        _same(fast, flask_only)
        assert ("Remote-User", "alice") in fast[1] and ("Remote-Auth-Method", "qr+pin") in fast[1]
        assert ("Remote-Name", "Alice Ä".encode().decode("latin-1")) in fast[1]
    # Flask is not involved: with its view broken, the answer is the same.
    allowed_before = _counter("nextauth_idp_forward_auth_total", decision="allowed")
    requests_before = _counter(
        "nextauth_rest_requests_total", component="idp", route="/auth/forward", method="GET", status="200"
    )
    monkeypatch.setattr(app, "wsgi_app", FastForwardAuth(lambda *a: [b"broken"], **_parts(app)))
    assert _call(app.wsgi_app, **_asked("/reports", token))[0] == "200 OK"
    assert _counter("nextauth_idp_forward_auth_total", decision="allowed") == allowed_before + 1
    assert (
        _counter(
            "nextauth_rest_requests_total", component="idp", route="/auth/forward", method="GET", status="200"
        )
        == requests_before + 1
    )


def _parts(app: Any) -> dict[str, Any]:
    fast: FastForwardAuth = app.wsgi_app
    return {
        "settings": fast._settings,
        "sessions": fast._sessions,
        "cookie_name": fast._cookie_name,
        "security_headers": fast._fixed[3:],
    }


@pytest.mark.parametrize(
    ("uri", "with_session", "extra", "status"),
    [
        ("/reports", False, {}, "302 FOUND"),  # log in first (a browser)
        ("/reports", False, {"ACCEPT": "application/json"}, "401 UNAUTHORIZED"),  # an API client
        ("/admin/users", True, {}, "403 FORBIDDEN"),  # logged in, not in the group
        ("/closed", True, {}, "403 FORBIDDEN"),  # nobody
        ("/reports", True, {"X_FORWARDED_HOST": "elsewhere.example.com"}, "200 OK"),  # rules decide
        ("/reports", True, {"X_FORWARDED_METHOD": "GE T"}, "400 BAD REQUEST"),  # a proxy to fix
        ("reports", True, {}, "400 BAD REQUEST"),
        ("/public", False, {}, "200 OK"),  # anonymous, empty identity headers
    ],
)
def test_every_answer_is_the_same_with_and_without_the_fast_path(
    app: Any, uri: str, with_session: bool, extra: dict[str, str], status: str
) -> None:
    token = None
    if with_session:
        token = app.extensions["nextauth_idp"].sessions.start(
            ns_nonce="n" * 32, profile=ALICE, second_factor="pin", method="qr"
        )
    fast, flask_only = _both(app, "/auth/forward", _asked(uri, token, **extra))
    assert fast[0] == status
    _same(fast, flask_only)


def test_an_ended_session_is_refused_on_the_next_request(app: Any) -> None:
    sessions = app.extensions["nextauth_idp"].sessions
    token = sessions.start(ns_nonce="n" * 32, profile=ALICE, second_factor="pin", method="qr")
    assert _call(app.wsgi_app, **_asked("/reports", token))[0] == "200 OK"
    sid = sessions.verify(token).sid
    assert sessions.end(sid, by="user")
    status, headers, _ = _call(app.wsgi_app, **_asked("/reports", token))
    assert status == "302 FOUND"
    assert dict(headers)["Location"].startswith("https://id.example.com/login?next=")


def test_forged_and_foreign_cookies_are_not_let_through(app: Any) -> None:
    token = app.extensions["nextauth_idp"].sessions.start(
        ns_nonce="n" * 32, profile=ALICE, second_factor="pin", method="qr"
    )
    head, claims, signature = token.split(".")
    tampered = f"{head}.{claims[:-4]}AAAA.{signature}"
    for cookie in (tampered, "", "x" * 9000, token + "x"):
        assert _call(app.wsgi_app, **_asked("/reports", cookie))[0] == "302 FOUND"
    # The token under another cookie name is not the session.
    other = _asked("/reports", COOKIE=f"nextauth_sessionx={token}")
    assert _call(app.wsgi_app, **other)[0] == "302 FOUND"


def test_other_methods_and_paths_go_to_flask(app: Any) -> None:
    token = app.extensions["nextauth_idp"].sessions.start(
        ns_nonce="n" * 32, profile=ALICE, second_factor="pin", method="qr"
    )
    asked = _asked("/reports", token)
    fast = FastForwardAuth(lambda environ, start: (start("418 TEAPOT", []), [b"flask"])[1], **_parts(app))
    assert _call(fast, "/auth/forwardx", **asked)[2] == b"flask"
    assert _call(fast, "/auth/keys", **asked)[2] == b"flask"
    assert _call(fast, "/auth/forward", "POST", **asked)[2] == b"flask"
    assert _call(fast, "/auth/forward", **asked)[0] == "200 OK"


COOKIE_PARTS = ["nextauth_session", "other", "a", "n=x", 'q="v"', "sp ace", "", "=v", "k", "\t", ",", "é"]
COOKIE_VALUES = ["tok.en-_~", "", "a=b", '"quoted;value"', '"es\\"caped"', "sp ace", "x,y", "\t", "é", '"']


@pytest.mark.parametrize("seed", range(4))
def test_the_session_cookie_is_read_as_werkzeug_reads_it(seed: int) -> None:
    """session_cookie's plain-pairs path and werkzeug's parser find the same first value, for headers
    as browsers send them and for ones werkzeug would partly skip or unquote."""
    import random

    from werkzeug.http import parse_cookie

    from idp.forwardauth.fastpath import _PLAIN_COOKIES, session_cookie

    rng = random.Random(seed)
    plain = 0
    for _ in range(3000):
        parts = []
        for _ in range(rng.randint(0, 5)):
            name = rng.choice(COOKIE_PARTS[:3]) if rng.random() < 0.7 else rng.choice(COOKIE_PARTS)
            value = "tok.en" if rng.random() < 0.6 else rng.choice(COOKIE_VALUES)
            joiner = rng.choice(["=", " = ", "=", "\t=", ""])
            parts.append(name + joiner + value)
        header = rng.choice(["; ", ";", " ;", ";;"]).join(parts) + rng.choice(["", ";", " "])
        for name in ("nextauth_session", "other", "n"):
            try:
                expected = parse_cookie(header).get(name)
            except UnicodeDecodeError:  # not UTF-8 (a WSGI string carries raw bytes): both give up alike
                with pytest.raises(UnicodeDecodeError):
                    session_cookie(header, name)
                continue
            assert session_cookie(header, name) == expected, (header, name)
        plain += _PLAIN_COOKIES.fullmatch(header) is not None
    assert 300 < plain < 2900, plain  # both paths were taken


def test_each_token_keeps_its_own_headers_and_an_ended_session_gets_none(app: Any) -> None:
    """The fast path makes a token's identity headers once: each user still gets their own, the list a
    server is handed is its own to add to, and a session ended since is refused all the same."""
    sessions = app.extensions["nextauth_idp"].sessions
    alice = sessions.start(ns_nonce="a" * 32, profile=ALICE, second_factor="pin", method="qr")
    bob_profile = Profile("bob", name="Bob", groups=("staff",))
    bob = sessions.start(ns_nonce="b" * 32, profile=bob_profile, second_factor="biometric", method="push")
    for _ in range(2):
        for token, user, method in ((alice, "alice", "qr+pin"), (bob, "bob", "push+bio")):
            status, headers, _body = _call(app.wsgi_app, **_asked("/reports", token))
            assert status == "200 OK"
            assert ("Remote-User", user) in headers and ("Remote-Auth-Method", method) in headers
            headers.append(("Date", "added by the server"))  # gevent does this to the list it gets
    assert ("Date", "added by the server") not in _call(app.wsgi_app, **_asked("/reports", alice))[1]
    sessions.end(sessions.verify(alice).sid, by="user")
    assert _call(app.wsgi_app, **_asked("/reports", alice))[0] != "200 OK"
    assert _call(app.wsgi_app, **_asked("/reports", bob))[0] == "200 OK"


def _counting_verify(monkeypatch: pytest.MonkeyPatch, sessions: Any) -> list[str | None]:
    calls: list[str | None] = []
    verify = sessions.verify

    def counted(token: str | None) -> Any:
        calls.append(token)
        return verify(token)

    monkeypatch.setattr(sessions, "verify", counted)
    return calls


def test_a_request_asked_again_is_answered_from_memory_while_its_session_is_current(
    app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same headers again: the same answer without reading the token again; past the time a verified
    signature is remembered, or the session's end, the token is read again (and an expired one refused)."""
    from idp.sessions import VERIFIED_SECONDS

    sessions = app.extensions["nextauth_idp"].sessions
    now = [1_900_000_000.0]
    monkeypatch.setattr(sessions, "_clock", lambda: now[0])
    token = sessions.start(ns_nonce="n" * 32, profile=ALICE, second_factor="pin", method="qr")
    calls = _counting_verify(monkeypatch, sessions)
    first = _call(app.wsgi_app, **_asked("/reports", token))
    assert first[0] == "200 OK" and len(calls) == 1
    assert _call(app.wsgi_app, **_asked("/reports", token)) == first and len(calls) == 1
    now[0] += VERIFIED_SECONDS + 1
    assert _call(app.wsgi_app, **_asked("/reports", token))[0] == "200 OK" and len(calls) == 2
    now[0] += sessions.lifetime.total_seconds()  # the session's end has passed
    status, headers, _ = _call(app.wsgi_app, **_asked("/reports", token))
    assert status == "302 FOUND" and len(calls) == 3
    assert ("Remote-User", "alice") not in headers


@pytest.mark.parametrize(
    ("changed", "status"),
    [
        ({"X_FORWARDED_URI": "/admin/users"}, "403 FORBIDDEN"),
        ({"X_FORWARDED_URI": "/closed"}, "403 FORBIDDEN"),
        ({"X_FORWARDED_METHOD": "GE T"}, "400 BAD REQUEST"),
        ({"X_FORWARDED_PROTO": "gopher"}, "400 BAD REQUEST"),
        ({"X_FORWARDED_HOST": "app.example.com/x"}, "400 BAD REQUEST"),
        ({"X_ORIGINAL_METHOD": "POST"}, "400 BAD REQUEST"),  # disagrees with X-Forwarded-Method
        ({"X_ORIGINAL_URL": "https://app.example.com/elsewhere"}, "400 BAD REQUEST"),
        ({"COOKIE": "nextauth_session=forged"}, "302 FOUND"),
    ],
)
def test_a_remembered_answer_is_not_given_to_a_request_that_differs_in_any_deciding_header(
    app: Any, changed: dict[str, str], status: str
) -> None:
    token = app.extensions["nextauth_idp"].sessions.start(
        ns_nonce="n" * 32, profile=ALICE, second_factor="pin", method="qr"
    )
    assert _call(app.wsgi_app, **_asked("/reports", token))[0] == "200 OK"
    other = _asked("/reports", None if "COOKIE" in changed else token, **changed)
    assert _call(app.wsgi_app, **other)[0] == status
    # nginx's auth_request takes a 401 where Traefik and Caddy take the redirect to the login page.
    assert _call(app.wsgi_app, "/auth/nginx", **other)[0] == status.replace("302 FOUND", "401 UNAUTHORIZED")


def test_the_memory_of_answers_is_bounded(app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from idp.forwardauth import fastpath

    monkeypatch.setattr(fastpath, "ALLOWED_MEMO_MAX", 8)
    token = app.extensions["nextauth_idp"].sessions.start(
        ns_nonce="n" * 32, profile=ALICE, second_factor="pin", method="qr"
    )
    for number in range(30):
        assert _call(app.wsgi_app, **_asked(f"/reports/{number}", token))[0] == "200 OK"
        assert len(app.wsgi_app._allowed_memo) <= 8
    assert _call(app.wsgi_app, **_asked("/reports/29", token))[0] == "200 OK"
    # A request with long headers is answered, not remembered.
    long_uri = "/reports/" + "x" * fastpath.ALLOWED_KEY_MAX
    app.wsgi_app._allowed_memo.clear()
    for _ in range(2):
        assert _call(app.wsgi_app, **_asked(long_uri, token))[0] == "200 OK"
    assert app.wsgi_app._allowed_memo == {}


def test_a_request_first_seen_late_in_the_signatures_memory_lapses_with_it(
    app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An answer remembered just before the token's checked signature is forgotten is not given past that
    moment: the memory of answers never outlives the memory of the signature it was made from."""
    from idp.sessions import VERIFIED_SECONDS

    sessions = app.extensions["nextauth_idp"].sessions
    now = [1_900_000_000.0]
    monkeypatch.setattr(sessions, "_clock", lambda: now[0])
    token = sessions.start(ns_nonce="n" * 32, profile=ALICE, second_factor="pin", method="qr")
    calls = _counting_verify(monkeypatch, sessions)
    assert _call(app.wsgi_app, **_asked("/first", token))[0] == "200 OK"
    now[0] += VERIFIED_SECONDS - 1
    assert _call(app.wsgi_app, **_asked("/late", token))[0] == "200 OK"  # signature still remembered
    verified = len(calls)
    now[0] += 2  # past the signature's memory, long before the session's end
    assert _call(app.wsgi_app, **_asked("/late", token))[0] == "200 OK"
    assert len(calls) == verified + 1  # the token was read again
