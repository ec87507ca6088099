"""My account's rules in-process, where the test controls the clock of the IdP session: a change that
adds or removes a phone needs a recent approval in the app; the form token is bound to one session and
one secret key. ns is played by a small stand-in that records what the page asked of it; the pages
against the real ns, and in Chromium, are in tests/test_my_account.py."""

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from idp.context import IdpServices
from idp.directory import Profile
from idp.ns_client import NsClient
from idp.sessions import SessionManager
from idp.web import create_app
from idp.web.account import RECENT_LOGIN_SECONDS, csrf_token
from tests.fixtures.idp_offline import offline_idp_services

ISSUER = "http://idp.example.test"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


class RecordingNs(NsClient):
    """ns for one person, ann, with two phones; this browser's session was approved by the first."""

    def __init__(self) -> None:
        super().__init__("http://127.0.0.1:9", "unused", "default")
        self.deleted: list[str] = []
        self.invited: list[str] = []

    def session(self, nonce: str, *, client_ip: str = "", user_agent: str = "") -> dict[str, Any]:
        return {"loggedin": True, "userid": "ann", "accountid": "phone-one"}

    def user_accounts(self, user_id: str) -> list[dict[str, Any]]:
        if user_id != "ann":
            return []
        return [
            {"accountid": "phone-one", "created_at": "2026-12-01T10:00:00+00:00", "last_login_at": None},
            {"accountid": "phone-two", "created_at": "2026-12-02T10:00:00+00:00", "last_login_at": None},
        ]

    def user_sessions(self, user_id: str) -> list[dict[str, Any]]:
        return []

    def audit_events(self, user_id: str, types: list[str], since: str, **_: Any) -> Any:
        return {"events": [], "next_cursor": None}

    def delete_account(self, account_id: str) -> None:
        self.deleted.append(account_id)

    def create_invite(self, user_id: str, ttl: int) -> dict[str, Any]:
        self.invited.append(user_id)
        return {"invite": "inv", "token": "inv.secret", "userid": user_id}


@pytest.fixture
def ns() -> RecordingNs:
    return RecordingNs()


@pytest.fixture
def services(tmp_path: Path, ns: RecordingNs) -> Iterator[IdpServices]:
    offline = offline_idp_services(tmp_path / "idp.db", ISSUER)
    offline.ns = ns
    yield offline
    offline.engine.dispose()


@pytest.fixture
def app(services: IdpServices) -> Flask:
    return create_app(services, secret_key=b"k" * 32, websocket_url="ws://ns.example.test/ws")


def logged_in(client: FlaskClient, services: IdpServices, *, minutes_ago: float = 0) -> str:
    """An IdP session for ann, approved ``minutes_ago``; the page's form token."""
    then = time.time() - minutes_ago * 60
    past = SessionManager(services.engine, services.kv, services.keys, issuer=ISSUER, clock=lambda: then)
    token = past.start(ns_nonce="n" * 32, profile=Profile(user_id="ann"), second_factor="pin", method="qr")
    client.set_cookie(services.cookie_name, token)
    page = client.get("/account/")
    assert page.status_code == 200, page.get_data(as_text=True)[:300]
    found = CSRF.search(page.get_data(as_text=True))
    assert found is not None
    return found.group(1)


def test_an_anonymous_visitor_is_sent_to_the_login(app: Flask) -> None:
    client = app.test_client()
    for answer in (client.get("/account/"), client.post("/account/devices/add", data={"csrf": "x"})):
        assert answer.status_code == 302
        target = urlsplit(answer.headers["Location"])
        assert target.path == "/login" and parse_qs(target.query) == {"next": ["/account/"]}


def test_adding_a_phone_needs_a_recent_approval(app: Flask, services: IdpServices, ns: RecordingNs) -> None:
    client = app.test_client()
    token = logged_in(client, services, minutes_ago=RECENT_LOGIN_SECONDS / 60 + 1)
    stale = client.post("/account/devices/add", data={"csrf": token})
    assert stale.status_code == 302 and ns.invited == []
    query = parse_qs(urlsplit(stale.headers["Location"]).query)
    assert query == {"next": ["/account/?done=reauthenticated"], "reauth": ["1"]}
    fresh = app.test_client()
    token = logged_in(fresh, services, minutes_ago=1)
    added = fresh.post("/account/devices/add", data={"csrf": token})
    assert added.status_code == 303 and added.headers["Location"] == "/enrol/inv.secret"
    assert ns.invited == ["ann"]


def test_removing_a_phone_needs_a_recent_approval(app: Flask, services: IdpServices, ns: RecordingNs) -> None:
    client = app.test_client()
    token = logged_in(client, services, minutes_ago=RECENT_LOGIN_SECONDS / 60 + 1)
    confirm = client.get("/account/devices/remove?account=phone-two")
    assert confirm.status_code == 302 and "reauth=1" in confirm.headers["Location"]
    stale = client.post("/account/devices/remove", data={"csrf": token, "account": "phone-two"})
    assert stale.status_code == 302 and ns.deleted == []
    fresh = app.test_client()
    token = logged_in(fresh, services)
    assert fresh.get("/account/devices/remove?account=phone-two").status_code == 200
    removed = fresh.post("/account/devices/remove", data={"csrf": token, "account": "phone-two"})
    assert removed.status_code == 303 and ns.deleted == ["phone-two"]
    # The phone that approved this session stays, whatever the form says.
    kept = fresh.post("/account/devices/remove", data={"csrf": token, "account": "phone-one"})
    assert kept.status_code == 409 and ns.deleted == ["phone-two"]


def test_the_form_token_belongs_to_one_session_and_one_key(
    app: Flask, services: IdpServices, ns: RecordingNs
) -> None:
    first, second = app.test_client(), app.test_client()
    first_token, second_token = logged_in(first, services), logged_in(second, services)
    assert first_token != second_token
    for sent in (second_token, "", first_token.upper()):
        refused = first.post("/account/devices/add", data={"csrf": sent})
        assert refused.status_code == 400 and refused.headers["Cache-Control"] == "no-store"
    assert ns.invited == []
    other_key = create_app(services, secret_key=b"o" * 32, websocket_url="ws://ns.example.test/ws")
    with app.test_request_context(), other_key.test_request_context():
        user = services.sessions.verify(first.get_cookie(services.cookie_name).value)  # type: ignore[union-attr]
        assert user is not None and csrf_token(user) != first_token
