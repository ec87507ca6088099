"""IdP session tokens: what forward-auth and the Traefik plugin trust. Each rule with its negative case."""

import base64
import json
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from joserfc import jwt
from joserfc.jwk import OKPKey
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session as DbSession

from authserver.storage import db
from authserver.storage.kv import KeyValueStore, MemoryStore, open_kv
from idp import ended_sessions, sessions
from idp.context import IdpServices
from idp.directory import Directory, Profile
from idp.housekeeping import purge
from idp.keys import KeyRing
from idp.models import BrowserSession, RefreshToken, RelyingPartyLogin
from idp.oidc.tokens import Grant, TokenStore
from idp.sessions import ACR_MFA, ACR_POSSESSION, SessionManager

ISSUER = "https://id.example.com"
ALICE = Profile("alice", name="Alice", email="alice@example.com", groups=("admins",))


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def parts(tmp_path: Path) -> tuple[SessionManager, KeyRing, MemoryStore, Clock]:
    engine = db.create_engine_for(f"sqlite:///{tmp_path / 'idp.db'}")
    db.upgrade(engine)
    ring = KeyRing(engine, issuer=ISSUER)
    store, clock = MemoryStore(), Clock()
    manager = SessionManager(engine, store, ring, issuer=ISSUER, lifetime=timedelta(hours=1), clock=clock)
    return manager, ring, store, clock


def _segments(token: str) -> list[str]:
    return token.split(".")


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_a_started_session_verifies_with_who_and_how(parts: tuple) -> None:
    manager, *_ = parts
    user = manager.verify(manager.start(ns_nonce="n" * 32, profile=ALICE, second_factor="pin", method="qr"))
    assert user is not None
    assert (user.sub, user.name, user.email, user.groups) == (
        "alice",
        "Alice",
        "alice@example.com",
        ("admins",),
    )
    assert user.amr == ("swk", "pin", "mfa") and user.acr == ACR_MFA and user.method == "qr"
    without = manager.verify(
        manager.start(ns_nonce="m" * 32, profile=ALICE, second_factor="none", method="push")
    )
    assert without is not None and without.amr == ("swk",) and without.acr == ACR_POSSESSION


def test_tampered_tokens_are_refused(parts: tuple) -> None:
    manager, *_ = parts
    token = manager.start(ns_nonce="n" * 32, profile=ALICE, second_factor="pin", method="qr")
    header, payload, signature = _segments(token)
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged = f"{header}.{_b64({**claims, 'sub': 'mallory', 'groups': ['admins']})}.{signature}"
    assert manager.verify(forged) is None
    assert manager.verify(f"{header}.{payload}.{signature[:-4]}AAAA") is None
    assert manager.verify(f"{_b64({'alg': 'none'})}.{payload}.") is None
    assert manager.verify("") is None and manager.verify(None) is None and manager.verify("x" * 9000) is None


def test_a_token_signed_by_another_key_is_refused(parts: tuple) -> None:
    manager, ring, *_ = parts
    genuine = manager.start(ns_nonce="n" * 32, profile=ALICE, second_factor="pin", method="qr")
    claims = manager.verify_signature(genuine)
    assert claims is not None
    kid = ring.active("session", "Ed25519").kid
    stranger = OKPKey.generate_key("Ed25519")
    forged = jwt.encode(
        {"alg": "Ed25519", "kid": kid, "typ": "nextauth-session+jwt"},
        claims,
        stranger,
        algorithms=["Ed25519"],
    )
    assert manager.verify(forged) is None


def test_an_oidc_key_cannot_sign_sessions(parts: tuple) -> None:
    manager, ring, *_ = parts
    claims = manager.verify_signature(
        manager.start(ns_nonce="n" * 32, profile=ALICE, second_factor="pin", method="qr")
    )
    oidc = ring.active("oidc", "ES256")
    forged = jwt.encode({"alg": "ES256", "kid": oidc.kid, "typ": "nextauth-session+jwt"}, claims, oidc.jose)
    assert manager.verify(forged) is None


def test_wrong_audience_issuer_or_type_is_refused(parts: tuple) -> None:
    manager, ring, *_ = parts
    claims = manager.verify_signature(
        manager.start(ns_nonce="n" * 32, profile=ALICE, second_factor="pin", method="qr")
    )
    key = ring.active("session", "Ed25519")

    def sign(header: dict, body: dict) -> str:
        return jwt.encode(
            {"alg": "Ed25519", "kid": key.kid, **header}, body, key.jose, algorithms=["Ed25519"]
        )

    typ = {"typ": "nextauth-session+jwt"}
    assert manager.verify(sign(typ, claims)) is not None  # the control: re-signed as is, it passes
    assert manager.verify(sign(typ, {**claims, "aud": "some-client"})) is None
    assert manager.verify(sign(typ, {**claims, "iss": "https://evil.example"})) is None
    assert manager.verify(sign({"typ": "JWT"}, claims)) is None


def test_expired_sessions_are_refused(parts: tuple) -> None:
    manager, _ring, _store, clock = parts
    token = manager.start(ns_nonce="n" * 32, profile=ALICE, second_factor="pin", method="qr")
    clock.now += 3599
    assert manager.verify(token) is not None
    clock.now += 2
    assert manager.verify(token) is None


def test_an_ended_session_is_refused_at_once(parts: tuple) -> None:
    manager, _ring, _store, _clock = parts
    token = manager.start(ns_nonce="n" * 32, profile=ALICE, second_factor="pin", method="qr")
    user = manager.verify(token)
    assert user is not None
    ended: list[str] = []
    manager.on_end.append(ended.append)
    assert manager.end(user.sid, by="user") is True
    assert manager.end(user.sid, by="user") is False  # once
    assert ended == [user.sid] and manager.verify(token) is None
    assert [entry["sid"] for entry in manager.ended()] == [user.sid]


def _other_process(parts: tuple, store: KeyValueStore) -> SessionManager:
    """A second IdP process: the same database and keys, its own memory of ended sessions."""
    manager, ring, _store, clock = parts
    return SessionManager(
        manager._engine, store, ring, issuer=ISSUER, lifetime=timedelta(hours=1), clock=clock
    )


def _refused_within(manager: SessionManager, token: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while manager.verify(token) is not None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.mark.parametrize("kind", ["memory", pytest.param("redis", marks=pytest.mark.redis)])
def test_another_process_hears_of_the_end_at_once(
    parts: tuple, kind: str, request: pytest.FixtureRequest, redis_prefix: str
) -> None:
    if kind == "redis":
        uri = request.getfixturevalue("redis_uri")
        here, there_store = open_kv(uri, prefix=redis_prefix), open_kv(uri, prefix=redis_prefix)
        manager = _other_process(parts, here)
    else:
        manager, there_store = parts[0], parts[2]
    other = _other_process(parts, there_store)
    token = manager.start(ns_nonce="n" * 32, profile=ALICE, second_factor="pin", method="qr")
    user = other.verify(token)
    assert user is not None  # the other process has read the set and listens
    began = time.monotonic()
    assert manager.end(user.sid, by="user")
    # Far sooner than the database would be read again (RECONCILE_SECONDS): the announcement did it.
    assert _refused_within(other, token, 1.0), "the other process still lets the session in"
    assert time.monotonic() - began < ended_sessions.RECONCILE_SECONDS
    manager.ended_sessions.stop()
    other.ended_sessions.stop()


def test_a_lost_announcement_is_made_good_from_the_database(
    parts: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ended_sessions, "RECONCILE_SECONDS", 0.3)
    manager, *_ = parts
    other = _other_process(parts, MemoryStore())  # a store the first one does not publish to
    token = manager.start(ns_nonce="n" * 32, profile=ALICE, second_factor="pin", method="qr")
    user = other.verify(token)
    assert user is not None
    assert manager.end(user.sid, by="user")
    assert manager.verify(token) is None
    assert other.verify(token) is not None  # not told: it still trusts its set, for a moment
    assert _refused_within(other, token, 2.0), "the database was not read again"


def test_without_the_database_no_session_is_trusted(parts: tuple) -> None:
    """Before this process has read the ended sessions once, it cannot say a session is running."""
    manager, ring, store, clock = parts
    token = manager.start(ns_nonce="n" * 32, profile=ALICE, second_factor="pin", method="qr")
    broken = SessionManager(manager._engine, store, ring, issuer=ISSUER, clock=clock)
    broken.verify_signature(token)  # the key is loaded; now the database goes away

    def unreachable() -> list[tuple[str, int]]:
        raise OperationalError("SELECT", {}, Exception("database is down"))

    broken.ended_sessions._load = unreachable
    with pytest.raises(OperationalError):
        broken.verify(token)


def test_reauthentication_keeps_the_session_and_renews_its_time(parts: tuple) -> None:
    manager, _ring, _store, clock = parts
    first = manager.verify(manager.start(ns_nonce="n" * 32, profile=ALICE, second_factor="none", method="qr"))
    assert first is not None
    clock.now += 100
    again = manager.reauthenticate(
        first.sid, ns_nonce="m" * 32, profile=ALICE, second_factor="pin", method="qr"
    )
    user = manager.verify(again)
    assert user is not None and user.sid == first.sid and user.auth_time == first.auth_time + 100
    assert user.acr == ACR_MFA and manager.ns_nonce(first.sid) == "m" * 32
    other = Profile("bob")
    assert (
        manager.reauthenticate(first.sid, ns_nonce="o" * 32, profile=other, second_factor="pin", method="qr")
        is None
    )
    manager.end(first.sid, by="user")
    assert (
        manager.reauthenticate(first.sid, ns_nonce="p" * 32, profile=ALICE, second_factor="pin", method="qr")
        is None
    )


@pytest.mark.parametrize("database", ["sqlite", "postgres", "mariadb"])
def test_the_ns_session_asked_about_is_the_latest_login_of_the_session(
    database: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    # Read at every authorization request with a prepared statement (straight on PostgreSQL and SQLite,
    # through SQLAlchemy on MariaDB): after a re-authentication it must name the new ns session, or the
    # IdP would keep asking ns about the old one.
    uri = (
        f"sqlite:///{tmp_path / 'idp.db'}"
        if database == "sqlite"
        else request.getfixturevalue(f"{database}_uri")
    )
    engine = db.create_engine_for(uri)
    db.upgrade(engine)
    try:
        clock = Clock()
        manager = SessionManager(
            engine, MemoryStore(), KeyRing(engine, issuer=ISSUER), issuer=ISSUER, clock=clock
        )
        user = manager.verify(
            manager.start(ns_nonce="n" * 32, profile=ALICE, second_factor="pin", method="qr")
        )
        assert user is not None and manager.ns_nonce(user.sid) == "n" * 32
        clock.now += 10
        manager.reauthenticate(user.sid, ns_nonce="m" * 32, profile=ALICE, second_factor="pin", method="qr")
        assert manager.ns_nonce(user.sid) == "m" * 32
        assert manager.ns_nonce("no-such-session") is None
    finally:
        engine.dispose()


def test_rotation_keeps_old_tokens_valid_and_publishes_both_keys(parts: tuple) -> None:
    manager, ring, *_ = parts
    old_token = manager.start(ns_nonce="n" * 32, profile=ALICE, second_factor="pin", method="qr")
    old_kid = ring.active("session", "Ed25519").kid
    new_kid = ring.rotate("session", "Ed25519").kid
    assert new_kid != old_kid
    assert {key["kid"] for key in ring.jwks("session")["keys"]} == {old_kid, new_kid}
    assert manager.verify(old_token) is not None
    new_token = manager.start(ns_nonce="m" * 32, profile=ALICE, second_factor="pin", method="qr")
    assert (
        jwt.decode(new_token, ring.active("session", "Ed25519").jose, algorithms=["Ed25519"]).header["kid"]
        == new_kid
    )


def test_made_up_key_ids_do_not_each_cost_a_database_query(
    parts: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    _manager, ring, *_ = parts
    ring.active("session", "Ed25519")
    reloads = []
    original = ring.reload
    monkeypatch.setattr(ring, "reload", lambda: (reloads.append(1), original())[1])
    for n in range(50):
        assert ring.by_kid(f"made-up-{n}") is None
    assert len(reloads) == 0  # the ring was just loaded: within a few seconds, no second look


def test_one_request_refreshes_the_keys_while_others_use_what_they_have(parts: tuple) -> None:
    _manager, ring, *_ = parts
    ring.active("session", "Ed25519")
    ring._loaded_at = float("-inf")  # the refresh is due
    queries = []
    original = ring.reload
    ring.reload = lambda: (queries.append(1), original())[1]  # type: ignore[method-assign]
    assert ring._refreshing.acquire()  # another request is refreshing right now
    try:
        assert ring.published("session")  # served from the keys in hand
        assert queries == []
    finally:
        ring._refreshing.release()
    assert ring.published("session") and queries == [1]  # the next one refreshes


def test_a_new_key_asked_for_during_another_reload_waits_for_that_reload(parts: tuple) -> None:
    """Two requests bring tokens of a key another instance just made: the first reloads, the second waits
    for that reload and finds the key in it (it was refused before), with one database query between
    them."""
    _manager, ring, *_ = parts
    ring.active("session", "Ed25519")
    other_instance = KeyRing(ring._engine, issuer=ISSUER)
    new_kid = other_instance.rotate("session", "Ed25519").kid
    ring._loaded_at = float("-inf")  # past the unknown-kid pause, not yet refreshed
    queries = []
    original = ring.reload
    ring.reload = lambda: (queries.append(1), original())[1]  # type: ignore[method-assign]
    assert ring._refreshing.acquire()  # the first request is loading right now...

    def first_request_finishes() -> None:
        time.sleep(0.3)
        try:
            ring.reload()
        finally:
            ring._refreshing.release()

    loader = threading.Thread(target=first_request_finishes)
    loader.start()
    found = ring.by_kid(new_kid)  # ...and the second one asks meanwhile
    loader.join()
    assert found is not None and found.kid == new_kid
    assert queries == [1]
    assert ring.by_kid("made-up") is None and queries == [1]  # just loaded: no query for a made-up kid


def test_housekeeping_forgets_what_expired_a_day_ago(tmp_path: Path) -> None:
    engine = db.create_engine_for(f"sqlite:///{tmp_path / 'idp.db'}")
    db.upgrade(engine)
    ring, store = KeyRing(engine, issuer=ISSUER), MemoryStore()
    now = time.time()
    old = SessionManager(
        engine, store, ring, issuer=ISSUER, lifetime=timedelta(hours=1), clock=lambda: now - 3 * 86400
    )
    current = SessionManager(engine, store, ring, issuer=ISSUER, lifetime=timedelta(hours=1))
    stale = old.start(ns_nonce="o" * 32, profile=ALICE, second_factor="pin", method="qr")
    assert current.verify(stale) is None  # expired long ago: no longer valid, but still in the database
    kept = current.verify(current.start(ns_nonce="c" * 32, profile=ALICE, second_factor="pin", method="qr"))
    assert kept is not None
    with DbSession(engine) as session, session.begin():
        for sid in [s for (s,) in session.execute(select(BrowserSession.sid))]:
            session.add(RelyingPartyLogin(sid=sid, protocol="oidc", client_id="app"))
    tokens = TokenStore(engine, store, refresh_lifetime=timedelta(days=-2))
    tokens.issue_refresh_token(Grant(client_id="app", user_id="alice", scope="openid"))
    TokenStore(engine, store).issue_refresh_token(Grant(client_id="app", user_id="alice", scope="openid"))
    services = IdpServices(
        ns=None,
        engine=engine,
        kv=store,
        keys=ring,
        directory=Directory(engine),  # type: ignore[arg-type]
        sessions=current,
        issuer=ISSUER,
    )
    assert purge(services) == (1, 1)
    with DbSession(engine) as session:
        assert [s for (s,) in session.execute(select(BrowserSession.sid))] == [kept.sid]
        assert [s for (s,) in session.execute(select(RelyingPartyLogin.sid))] == [kept.sid]
        assert session.scalar(select(func.count()).select_from(RefreshToken)) == 1
    assert purge(services) == (0, 0)


def test_a_checked_token_is_remembered_and_ending_still_counts_at_once(
    parts: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager, _ring, _store, clock = parts
    token = manager.start(ns_nonce="n" * 32, profile=ALICE, second_factor="pin", method="qr")
    decoded: list[str] = []
    real_decode = sessions.jwt.decode
    monkeypatch.setattr(sessions.jwt, "decode", lambda *a, **k: decoded.append("x") or real_decode(*a, **k))
    first = manager.verify(token)
    for _ in range(5):
        assert manager.verify(token) == first
    assert len(decoded) == 1  # one signature check for six requests
    clock.now += sessions.VERIFIED_SECONDS + 1
    assert manager.verify(token) == first and len(decoded) == 2  # checked again after a while
    # A copy with a changed byte is its own token: checked, and refused.
    assert manager.verify(token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]) is None
    assert first is not None and manager.end(first.sid, by="user")
    assert manager.verify(token) is None  # remembered or not, an ended session is refused at once
    # Remembered never past exp.
    other = manager.start(ns_nonce="m" * 32, profile=ALICE, second_factor="pin", method="qr")
    assert manager.verify(other) is not None
    clock.now += 3601
    assert manager.verify(other) is None


def test_why_a_token_was_refused_is_logged_at_debug_without_the_token(
    parts: tuple, caplog: pytest.LogCaptureFixture
) -> None:
    manager, ring, *_ = parts
    token = manager.start(ns_nonce="n" * 32, profile=ALICE, second_factor="pin", method="qr")
    claims = manager.verify_signature(token)
    assert claims is not None
    key = ring.active("session", "Ed25519")
    other_audience = jwt.encode(
        {"alg": "Ed25519", "kid": key.kid, "typ": "nextauth-session+jwt"},
        {**claims, "aud": "some-client"},
        key.jose,
        algorithms=["Ed25519"],
    )
    wrong_type = jwt.encode({"alg": "Ed25519", "kid": key.kid}, claims, key.jose, algorithms=["Ed25519"])
    header, payload, signature = _segments(token)
    tampered = f"{header}.{payload}.{signature[:-4]}AAAA"
    manager.end(claims["sid"], by="user")
    with caplog.at_level("DEBUG", logger="nextauth.idp.sessions"):
        for refused in (other_audience, wrong_type, tampered, token):
            assert manager.verify(refused) is None
    reasons = [record.getMessage() for record in caplog.records if "refused" in record.getMessage()]
    assert reasons == [
        "session token refused: invalid_claim (Invalid claim: 'aud')",
        "session token refused: typ 'JWT'",
        "session token refused: bad_signature",
        f"session token refused: session {claims['sid'][:8]}… has ended",
    ]
    assert all(record.levelname == "DEBUG" for record in caplog.records)
    assert not any(part in caplog.text for part in (signature, payload, claims["sid"]))
