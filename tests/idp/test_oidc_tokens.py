"""The OIDC token store's revocation rules, without a running system."""

import dataclasses
import json
from pathlib import Path

import pytest

from authserver.storage import db
from authserver.storage.kv import MemoryStore
from idp.oidc.tokens import ACCESS_PREFIX, Grant, TokenStore, random_token, token_hash

USER_GRANT = Grant(client_id="app", user_id="alice", scope="openid", sid="s1", auth_time=1_800_000_000)


@pytest.fixture
def store(tmp_path: Path) -> TokenStore:
    engine = db.create_engine_for(f"sqlite:///{tmp_path / 'idp.db'}")
    db.upgrade(engine)
    return TokenStore(engine, MemoryStore(), access_token_seconds=900)


def test_a_refresh_token_is_read_back_and_used_once(db_uri: str) -> None:
    """On every database: the statements of the token endpoint's path (issue, read, use)."""
    engine = db.create_engine_for(db_uri)
    db.upgrade(engine)
    tokens = TokenStore(engine, MemoryStore(), access_token_seconds=900)
    value, family = tokens.issue_refresh_token(USER_GRANT)
    stored = tokens.refresh_token(value)
    assert stored is not None and stored.family == family and stored.grant == USER_GRANT
    assert not stored.is_expired() and not stored.is_revoked() and stored.used_at is None
    assert 29 * 86400 < stored.get_expires_in() <= 30 * 86400
    assert tokens.use_refresh_token(stored) is True
    assert tokens.use_refresh_token(stored) is False  # once only, even with the record read before
    used = tokens.refresh_token(value)
    assert used is not None and used.used_at is not None and used.is_revoked()
    assert tokens.refresh_token(value + "x") is None and tokens.refresh_token("") is None
    # A revoked one cannot be used either.
    other, other_family = tokens.issue_refresh_token(USER_GRANT)
    assert tokens.revoke_family(other_family) == 1
    revoked = tokens.refresh_token(other)
    assert revoked is not None and revoked.revoked_at is not None
    assert tokens.use_refresh_token(revoked) is False
    engine.dispose()


def test_revoking_a_family_takes_its_access_tokens_along(store: TokenStore) -> None:
    _, family = store.issue_refresh_token(USER_GRANT)
    _, other_family = store.issue_refresh_token(USER_GRANT)
    store.save_access_token("at-of-family", USER_GRANT, 900, family)
    store.save_access_token("at-of-other", USER_GRANT, 900, other_family)
    store.save_access_token("at-alone", USER_GRANT, 900, None)
    assert store.revoke_family(family) == 1
    assert store.access_token("at-of-family") is None
    assert store.access_token("at-of-other") is not None and store.access_token("at-alone") is not None


def test_ending_a_session_takes_the_access_tokens_of_its_families_along(store: TokenStore) -> None:
    _, family = store.issue_refresh_token(USER_GRANT)
    store.save_access_token("at", USER_GRANT, 900, family)
    assert store.revoke_for_session("s1") == 1
    assert store.access_token("at") is None


def test_a_client_grant_names_no_user_even_when_stored_before_the_flag(store: TokenStore) -> None:
    # A client-credentials access token as stored before ``for_client`` existed: the client id as user id.
    legacy = {
        "client_id": "alice",
        "user_id": "alice",
        "scope": "openid profile",
        "sid": None,
        "auth_time": None,
        "acr": None,
        "amr": [],
    }
    record = {"grant": legacy, "iat": 1, "exp": 2**40, "family": None}
    store._kv.set(ACCESS_PREFIX + token_hash("old-client-token"), json.dumps(record).encode())
    found = store.access_token("old-client-token")
    assert found is not None and found.grant.for_client and found.grant.user_id == ""
    user = store.save_access_token("user-token", USER_GRANT, 900, None)
    assert not user.grant.for_client
    assert store.access_token("user-token").grant == USER_GRANT  # type: ignore[union-attr]


def test_a_grant_travels_whole() -> None:
    """Grant.to_json is spelled out for speed: every field must be in it and come back."""
    grant = Grant(
        client_id="app",
        user_id="alice",
        scope="openid",
        sid="s1",
        auth_time=1,
        acr="urn:x",
        amr=("swk", "pin"),
        for_client=False,
        dpop_jkt="j" * 43,
    )
    assert set(grant.to_json()) == {field.name for field in dataclasses.fields(Grant)}
    assert Grant.from_json(json.loads(json.dumps(grant.to_json()))) == grant


def test_random_tokens_are_long_and_unpredictable() -> None:
    drawn = {random_token() for _ in range(1000)}
    assert len(drawn) == 1000
    assert all(len(token) == 43 and token.replace("-", "").replace("_", "").isalnum() for token in drawn)
