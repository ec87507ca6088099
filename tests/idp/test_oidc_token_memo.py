"""Access tokens remembered per process (idp.oidc.token_memo): read from the store once, and refused at once
everywhere when revoked anywhere. Two TokenStores on one shared store stand for two IdP processes."""

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from authserver.storage import db
from authserver.storage.kv import KeyValueStore, MemoryStore, open_kv
from idp.oidc.consents import revoke_consent
from idp.oidc.token_memo import CHANNEL, AccessTokenMemo
from idp.oidc.tokens import AccessToken, Grant, TokenStore, token_hash

GRANT = Grant(client_id="app", user_id="alice", scope="openid", sid="s1", auth_time=1_800_000_000)


class CountingStore:
    """The shared store, counting the reads that reach it."""

    def __init__(self, kv: KeyValueStore) -> None:
        self.kv = kv
        self.reads = 0

    def get(self, key: str) -> bytes | None:
        self.reads += 1
        return self.kv.get(key)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.kv, name)


@pytest.fixture(
    params=[pytest.param("memory", id="memory"), pytest.param("redis", id="redis", marks=pytest.mark.redis)]
)
def shared(request: pytest.FixtureRequest, redis_prefix: str) -> Iterator[Callable[[], KeyValueStore]]:
    """Opens a connection to one shared store per call (one per process)."""
    opened: list[KeyValueStore] = []
    memory = MemoryStore()

    def connect() -> KeyValueStore:
        if request.param == "memory":
            return memory
        kv = open_kv(request.getfixturevalue("redis_uri"), prefix=redis_prefix)
        opened.append(kv)
        return kv

    yield connect
    for kv in opened:
        kv.close()


@pytest.fixture
def engine(tmp_path: Path) -> Any:
    engine = db.create_engine_for(f"sqlite:///{tmp_path / 'idp.db'}")
    db.upgrade(engine)
    yield engine
    engine.dispose()


def _process(engine: Any, kv: KeyValueStore) -> tuple[TokenStore, CountingStore]:
    counting = CountingStore(kv)
    return TokenStore(engine, counting, access_token_seconds=900), counting


def _live(*stores: TokenStore) -> None:
    for store in stores:
        store.access_token("warm-up")  # starts the listener
        deadline = time.monotonic() + 5
        while not store.memo.live:
            assert time.monotonic() < deadline, "the memo never subscribed"
            time.sleep(0.01)


def _until(check: Callable[[], bool], seconds: float = 2.0) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def test_a_token_is_read_from_the_store_once(engine: Any, shared: Callable[[], KeyValueStore]) -> None:
    tokens, counting = _process(engine, shared())
    _live(tokens)
    _, family = tokens.issue_refresh_token(GRANT)
    tokens.save_access_token("at", GRANT, 900, family)
    first = tokens.access_token("at")
    reads = counting.reads
    assert reads >= 2  # the record and its family
    for _ in range(5):
        assert tokens.access_token("at") == first
    assert counting.reads == reads
    tokens.stop()


def test_revoked_in_one_process_refused_at_once_in_the_other(
    engine: Any, shared: Callable[[], KeyValueStore]
) -> None:
    one, _ = _process(engine, shared())
    two, two_reads = _process(engine, shared())
    _live(one, two)
    _, family = one.issue_refresh_token(GRANT)
    one.save_access_token("alone", GRANT, 900, None)
    one.save_access_token("in-family", GRANT, 900, family)
    one.save_access_token("other", GRANT, 900, None)
    for value in ("alone", "in-family", "other"):
        assert two.access_token(value) is not None
        assert one.access_token(value) is not None
    reads = two_reads.reads
    assert two.access_token("alone") is not None and two_reads.reads == reads  # remembered

    assert one.revoke_access_token("alone")
    assert one.access_token("alone") is None  # in the revoking process, before the call returned
    assert _until(lambda: two.access_token("alone") is None)
    assert one.revoke_family(family) == 1
    assert one.access_token("in-family") is None
    assert _until(lambda: two.access_token("in-family") is None)
    # Nothing else forgotten with them.
    reads = two_reads.reads
    assert two.access_token("other") is not None and two_reads.reads == reads
    one.stop()
    two.stop()


def test_every_kind_of_revocation_reaches_the_other_process(
    engine: Any, shared: Callable[[], KeyValueStore]
) -> None:
    one, _ = _process(engine, shared())
    two, _ = _process(engine, shared())
    _live(one, two)
    # A browser session ended: its families revoked.
    _, family = one.issue_refresh_token(GRANT)
    one.save_access_token("of-session", GRANT, 900, family)
    # A code used twice: what it was exchanged for revoked.
    _, code_family = one.issue_refresh_token(GRANT)
    one.save_access_token("of-code", GRANT, 900, code_family, exchanged_code=token_hash("the-code"))
    # Consent withdrawn: the client's families revoked by the consent code (no TokenStore of its own).
    bob = Grant(client_id="app", user_id="bob", scope="openid", sid="s2", auth_time=1_800_000_000)
    _, bob_family = one.issue_refresh_token(bob)
    one.save_access_token("of-consent", bob, 900, bob_family)
    for value in ("of-session", "of-code", "of-consent"):
        assert two.access_token(value) is not None

    assert one.revoke_for_session("s1") == 2
    assert _until(lambda: two.access_token("of-session") is None)
    assert one.revoke_exchange_of("the-code")
    assert _until(lambda: two.access_token("of-code") is None)
    revoked = revoke_consent(engine, "bob", "app", kv=one._kv, access_token_seconds=900, memo=one.memo)
    assert revoked["refresh_tokens_revoked"] == 1
    assert one.access_token("of-consent") is None  # the IdP process that withdrew it: at once
    assert _until(lambda: two.access_token("of-consent") is None)
    one.stop()
    two.stop()


def test_nothing_is_remembered_without_a_subscription(engine: Any) -> None:
    class NoPubSub(MemoryStore):
        def subscribe(self, channel: str) -> Any:
            raise ConnectionError("no pub/sub")

    tokens, counting = _process(engine, NoPubSub())
    tokens.save_access_token("at", GRANT, 900, None)
    for expected_reads in range(1, 4):
        assert tokens.access_token("at") is not None
        assert counting.reads == expected_reads  # every read goes to the store
    assert not tokens.memo.live
    tokens.stop()


def test_a_read_that_raced_with_a_revocation_is_not_kept(engine: Any) -> None:
    kv = MemoryStore()
    memo = AccessTokenMemo(kv)
    memo.get("warm-up")
    assert _until(lambda: memo.live)
    token = AccessToken(GRANT, 1, 2**40)
    _, generation = memo.get("d")
    kv.publish(CHANNEL, json.dumps({"tokens": ["other"], "families": []}).encode())  # heard meanwhile
    assert _until(lambda: memo._generation != generation)
    memo.put("d", token, generation)
    assert memo.get("d")[0] is None
    # Read again after the announcement: kept.
    _, generation = memo.get("d")
    memo.put("d", token, generation)
    assert memo.get("d")[0] == token
    memo.stop()


def test_a_reconnection_or_a_garbled_announcement_empties_the_memo(engine: Any) -> None:
    class Reconnecting:
        """A subscription whose connection is made anew once (what redis-py does after a drop)."""

        def __init__(self) -> None:
            self.reconnects = 0
            self.closed = False
            self.script: list[Callable[[], bytes | None]] = []

        def get(self, timeout: float | None = None) -> bytes | None:
            if self.script:
                return self.script.pop(0)()
            time.sleep(0.01)
            return None

        def close(self) -> None:
            self.closed = True

    subscription = Reconnecting()

    class Store(MemoryStore):
        def subscribe(self, channel: str) -> Any:
            return subscription

    memo = AccessTokenMemo(Store())
    memo.get("warm-up")
    assert _until(lambda: memo.live)
    token = AccessToken(GRANT, 1, 2**40)

    def remembered() -> bool:
        _, generation = memo.get("d")
        memo.put("d", token, generation)
        return memo.get("d")[0] == token

    assert remembered()

    def reconnect() -> None:
        subscription.reconnects += 1

    subscription.script.append(lambda: reconnect())
    assert _until(lambda: memo.get("d")[0] is None)
    assert remembered()
    subscription.script.append(lambda: b"not json")
    assert _until(lambda: memo.get("d")[0] is None)
    memo.stop()


def test_an_entry_is_trusted_for_a_bounded_time(engine: Any) -> None:
    now = [1000.0]
    memo = AccessTokenMemo(MemoryStore(), max_age_seconds=30, clock=lambda: now[0])
    memo.get("warm-up")
    assert _until(lambda: memo.live)
    token = AccessToken(GRANT, 1, 2**40)
    _, generation = memo.get("d")
    memo.put("d", token, generation)
    now[0] += 29
    assert memo.get("d")[0] == token
    now[0] += 2
    assert memo.get("d")[0] is None
    memo.stop()
