"""The IdP's login pages in-process, with ns played by a fake: the route table, state kept per app, the
page key that lets only the page that started a login complete it, logout at ns, and the error pages."""

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, session
from flask.testing import FlaskClient

from authserver.storage import db
from authserver.storage.kv import open_kv
from idp.context import IdpServices, login_redirect
from idp.directory import Directory
from idp.keys import KeyRing
from idp.ns_client import NsClient, NsError
from idp.sessions import SessionManager
from idp.web import create_app
from idp.web.prelogin import new_nonce

ISSUER = "http://idp.example.test"
WEBSOCKET = "ws://ns.example.test/ns/websocket"


class FakeNs(NsClient):
    """ns as the IdP sees it: a session per nonce, logged in when the test says so."""

    def __init__(self) -> None:
        super().__init__("http://127.0.0.1:9", "unused", "default")
        self.logged_in: dict[str, str] = {}  # nonce -> user id
        self.logged_out: list[str] = []
        self.contexts: dict[str, dict[str, str]] = {}  # nonce -> what the phone is told of who asks
        self.down = False

    def set_context(self, nonce: str, context: dict[str, str] | None) -> None:
        self.contexts[nonce] = dict(context or {})

    def session(self, nonce: str, *, client_ip: str = "", user_agent: str = "") -> dict[str, Any]:
        if self.down:
            raise NsError(503, "unreachable", "down")
        user = self.logged_in.get(nonce)
        state: dict[str, Any] = {"loginqrdata": f"qr-for-{nonce}", "hsid": f"hsid-{nonce[:8]}"}
        return state | ({"loggedin": True, "userid": user} if user else {"loggedin": False})

    def logout(self, nonce: str) -> bool:
        self.logged_out.append(nonce)
        return self.logged_in.pop(nonce, None) is not None


@pytest.fixture
def ns() -> FakeNs:
    return FakeNs()


@pytest.fixture
def services(tmp_path: Path, ns: FakeNs) -> Iterator[IdpServices]:
    engine = db.create_engine_for(f"sqlite:///{tmp_path / 'idp.db'}")
    db.upgrade(engine)
    kv = open_kv(None)
    keys = KeyRing(engine, issuer=ISSUER)
    yield IdpServices(
        ns=ns,
        engine=engine,
        kv=kv,
        keys=keys,
        directory=Directory(engine),
        sessions=SessionManager(engine, kv, keys, issuer=ISSUER),
        issuer=ISSUER,
    )
    engine.dispose()


@pytest.fixture
def app(services: IdpServices) -> Flask:
    return create_app(services, secret_key=b"k" * 32, websocket_url=WEBSOCKET)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def login_key(page: str) -> str:
    found = re.search(r'name="login_key" value="([^"]+)"', page)
    assert found is not None
    return found.group(1)


def pre_login_nonce(client: FlaskClient) -> str:
    with client.session_transaction() as session:
        return str(session["nonce"])


def test_the_pages_keep_their_addresses_and_methods(app: Flask) -> None:
    rules = {
        rule.rule: sorted(rule.methods - {"HEAD", "OPTIONS"})
        for rule in app.url_map.iter_rules()
        if rule.rule in ("/login", "/login/qr", "/login/push", "/login/complete", "/logout", "/whoami")
    }
    assert rules == {
        "/login": ["GET"],
        "/login/qr": ["GET"],
        "/login/push": ["POST"],
        "/login/complete": ["POST"],
        "/logout": ["GET", "POST"],
        "/whoami": ["GET"],
    }


def test_each_app_keeps_its_own_state(services: IdpServices, client: FlaskClient) -> None:
    other = create_app(services, secret_key=b"o" * 32, websocket_url="wss://other.example.test/ws")
    ours, theirs = client.get("/login"), other.test_client().get("/login")
    assert f"connect-src 'self' {WEBSOCKET};" in ours.headers["Content-Security-Policy"]
    assert "connect-src 'self' wss://other.example.test/ws;" in theirs.headers["Content-Security-Policy"]
    assert f'data-ws="{WEBSOCKET}"' in ours.get_data(as_text=True)
    assert 'data-ws="wss://other.example.test/ws"' in theirs.get_data(as_text=True)


def test_the_login_page_and_its_links(client: FlaskClient) -> None:
    page = client.get("/login?next=/somewhere")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert 'data-qr-url="/login/qr"' in text
    assert 'action="/login/complete"' in text and 'action="/login/push"' in text
    assert 'name="next" value="/somewhere"' in text
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert "nextauth_idp=" in page.headers["Set-Cookie"]
    assert "HttpOnly" in page.headers["Set-Cookie"] and "SameSite=Lax" in page.headers["Set-Cookie"]
    renewed = client.get("/login/qr").get_json()
    assert renewed["loggedin"] is False and renewed["svg"].startswith("<svg")


def test_only_the_page_that_started_a_login_completes_it_once(client: FlaskClient, ns: FakeNs) -> None:
    key = login_key(client.get("/login").get_data(as_text=True))
    nonce = pre_login_nonce(client)
    ns.logged_in[nonce] = "alice"
    assert client.post("/login/complete", data={"login_key": "forged", "next": "/"}).status_code == 403
    done = client.post("/login/complete", data={"login_key": key, "next": "/after"})
    assert done.status_code == 302 and done.headers["Location"] == "/after"
    cookie = next(c for c in done.headers.getlist("Set-Cookie") if c.startswith("nextauth_session="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert client.get("/whoami").get_json()["sub"] == "alice"
    again = client.post("/login/complete", data={"login_key": key, "next": "/"})
    assert again.status_code == 403


def test_completing_before_ns_says_logged_in_goes_back_to_the_page(client: FlaskClient) -> None:
    key = login_key(client.get("/login").get_data(as_text=True))
    back = client.post("/login/complete", data={"login_key": key, "next": "/x"})
    assert back.status_code == 302 and back.headers["Location"] == "/login?next=/x"


def test_logout_ends_the_session_here_and_at_ns(client: FlaskClient, ns: FakeNs) -> None:
    key = login_key(client.get("/login").get_data(as_text=True))
    nonce = pre_login_nonce(client)
    ns.logged_in[nonce] = "alice"
    client.post("/login/complete", data={"login_key": key, "next": "/"})
    confirm = client.get("/logout")
    assert confirm.status_code == 200 and 'action="/logout"' in confirm.get_data(as_text=True)
    assert client.post("/logout", headers={"Origin": "https://evil.example"}).status_code == 403
    out = client.post("/logout")
    assert out.status_code == 302 and out.headers["Location"] == "/login"
    assert ns.logged_out == [nonce]
    assert client.get("/whoami").status_code == 401


def test_error_pages(client: FlaskClient, ns: FakeNs) -> None:
    whoami = client.get("/whoami")
    assert whoami.status_code == 401
    assert whoami.get_json() == {"error": "unauthenticated", "message": "Log in first."}
    ns.down = True
    down = client.get("/login")
    assert down.status_code == 503 and "The login service is unavailable" in down.get_data(as_text=True)
    assert 'href="/login"' in down.get_data(as_text=True)
    too_large = client.post("/login/push", data={"username": "x" * (300 * 1024)})
    assert too_large.status_code == 413


def test_push_without_a_username_is_refused(client: FlaskClient) -> None:
    answer = client.post("/login/push", data={"username": ""}, headers={"Accept": "application/json"})
    assert answer.status_code == 400
    assert answer.get_json() == {"message": "Enter your username.", "kind": "error", "number": None}


def test_new_nonces_are_unpadded_base64url_of_24_bytes() -> None:
    nonces = {new_nonce() for _ in range(100)}
    assert len(nonces) == 100
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{32}", each) for each in nonces)


# -- who asks --------------------------------------------------------------------------------------------


def _asking(client: FlaskClient, target: str, until: float, **context: str) -> None:
    with client.session_transaction() as session:
        session["login_context"] = {**context, "for": target, "until": until}


def test_who_asks_shows_for_its_own_login_only(client: FlaskClient, ns: FakeNs) -> None:
    target = "/oidc/authorize?client_id=abc&state=1"
    _asking(client, target, time.time() + 60, client_name="Photo Printer")
    page = client.get("/login", query_string={"next": target}).get_data(as_text=True)
    assert "<h1>Log in to Photo Printer</h1>" in page
    assert ns.contexts[pre_login_nonce(client)] == {"client_name": "Photo Printer"}
    # Another login in the same browser (another tab, another application) names nobody, and the phone
    # is told so.
    other = client.get("/login", query_string={"next": "/somewhere"}).get_data(as_text=True)
    assert "<h1>Log in</h1>" in other and "Photo Printer" not in other
    assert ns.contexts[pre_login_nonce(client)] == {}


def test_an_old_context_is_forgotten(client: FlaskClient, ns: FakeNs) -> None:
    _asking(client, "/x", time.time() - 1, client_name="Stale App")
    page = client.get("/login?next=/x").get_data(as_text=True)
    assert "Stale App" not in page and "<h1>Log in</h1>" in page
    with client.session_transaction() as session:
        assert "login_context" not in session
    assert ns.contexts == {}


def test_only_phone_fields_reach_ns(client: FlaskClient, ns: FakeNs) -> None:
    _asking(client, "/d", time.time() + 60, client_name="TV", user_code="BDWP-HQPK", logo="https://evil/")
    page = client.get("/login?next=/d").get_data(as_text=True)
    assert "BDWP-HQPK" in page
    assert ns.contexts[pre_login_nonce(client)] == {"client_name": "TV", "user_code": "BDWP-HQPK"}


def test_forward_auth_logins_name_only_protected_hosts(
    services: IdpServices, ns: FakeNs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEXTAUTH_IDP_FORWARD_AUTH_HOSTS", "wiki.example.org")
    client = create_app(services, secret_key=b"k" * 32, websocket_url=WEBSOCKET).test_client()
    target = "/auth/return?url=https%3A%2F%2Fwiki.example.org%2Fpage%3Fa%3D1"
    page = client.get("/login", query_string={"next": target}).get_data(as_text=True)
    assert "<h1>Log in to wiki.example.org</h1>" in page
    assert ns.contexts[pre_login_nonce(client)] == {"client_name": "wiki.example.org"}
    # Anyone can make a link naming another host: neither the page nor the phone vouches for it.
    for other in ("https%3A%2F%2Fyourbank.example%2F", "javascript:alert(1)"):
        page = client.get("/login", query_string={"next": f"/auth/return?url={other}"}).get_data(as_text=True)
        assert "<h1>Log in</h1>" in page and "yourbank" not in page.split("<h1>")[1].split("</h1>")[0]
        assert ns.contexts.get(pre_login_nonce(client), {}) == {}


def test_login_redirect_remembers_who_asks(app: Flask) -> None:
    with app.test_request_context("/oidc/authorize"):
        answer = login_redirect("/oidc/authorize?x=1", asking="  Example\n  RP " + "x" * 200)
        assert answer.status_code == 302
        context = session["login_context"]
        assert context["for"] == "/oidc/authorize?x=1"
        assert context["client_name"].startswith("Example RP x") and len(context["client_name"]) == 100
