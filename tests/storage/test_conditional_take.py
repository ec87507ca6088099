"""Take a record only if it is the one expected (KeyValueStore.take_if): the in-process store and the Redis
script decide alike, and of callers racing for one record, one takes it."""

import json
import threading
import time

import pytest

from authserver.storage.conditional_take import ThenSet
from authserver.storage.kv import KeyValueStore, open_kv

RECORD = {
    "grant": {"client_id": "rp", "scope": "openid profile", "dpop_jkt": None},
    "redirect_uri": "https://rp.example.com/cb",
    "code_challenge": "abc",
}
EXPECTED = {"grant.client_id": "rp", "redirect_uri": "https://rp.example.com/cb", "grant.dpop_jkt": None}


def _put(store: KeyValueStore, record: object = RECORD) -> bytes:
    raw = json.dumps(record).encode()
    store.set("code", raw, ttl=60)
    return raw


def test_a_record_that_meets_every_condition_is_taken_once(store: KeyValueStore) -> None:
    raw = _put(store)
    assert store.take_if("code", EXPECTED, {"grant.scope": "openid profile email"}) == (raw, True)
    assert store.get("code") is None
    assert store.take_if("code", EXPECTED) == (None, False)


@pytest.mark.parametrize(
    ("equal", "words_within"),
    [
        ({**EXPECTED, "grant.client_id": "other"}, {}),  # another value
        ({**EXPECTED, "grant.client_id": "r"}, {}),  # a prefix of it
        ({**EXPECTED, "grant.client_id": None}, {}),  # present, not absent
        ({**EXPECTED, "grant.dpop_jkt": "key"}, {}),  # null, not that text
        ({**EXPECTED, "grant.missing": "x"}, {}),  # absent
        ({**EXPECTED, "redirect_uri.deeper": "x"}, {}),  # a path through a text
        ({"code_challenge": "abc"}, {"grant.scope": "openid"}),  # a word not allowed
        ({"code_challenge": "abc"}, {"grant.scope": ""}),  # none allowed
        ({"code_challenge": "abc"}, {"grant.missing": "openid"}),
    ],
)
def test_a_record_that_misses_a_condition_stays(
    store: KeyValueStore, equal: dict[str, str | None], words_within: dict[str, str]
) -> None:
    raw = _put(store)
    assert store.take_if("code", equal, words_within) == (raw, False)
    assert store.get("code") == raw


@pytest.mark.parametrize(
    ("scope", "taken"),
    [
        ("", True),  # no scope at all is within any
        ("openid", True),
        ("profile openid", True),  # order is the record's own
        ("openid  profile", False),  # not single spaces
        (" openid", False),
        ("openid ", False),
        ("openid\tprofile", False),
        ("openid email", False),
    ],
)
def test_words_within_takes_only_single_spaced_allowed_words(
    store: KeyValueStore, scope: str, taken: bool
) -> None:
    raw = _put(store, {**RECORD, "grant": {**RECORD["grant"], "scope": scope}})  # type: ignore[dict-item]
    assert store.take_if("code", {}, {"grant.scope": "openid profile"}) == (raw, taken)


THEN = (
    ThenSet("made", (b'{"took": ', b', "n": 1}'), ttl=30),
    ThenSet("mark", (b"used",), ttl=0.5),
)


def test_what_a_record_is_taken_for_is_written_in_the_same_step(store: KeyValueStore) -> None:
    raw = _put(store)
    assert store.take_if("code", EXPECTED, then_set=THEN) == (raw, True)
    assert json.loads(store.get("made") or b"") == {"took": RECORD, "n": 1}
    assert store.get("mark") == b"used"
    time.sleep(0.7)
    assert store.get("mark") is None and store.get("made") is not None  # each for its own lifetime


def test_a_record_left_in_place_writes_nothing(store: KeyValueStore) -> None:
    raw = _put(store)
    store.set("mark", b"before", ttl=60)
    assert store.take_if("code", {"grant.client_id": "other"}, then_set=THEN) == (raw, False)
    assert store.get("made") is None and store.get("mark") == b"before"
    store.delete("code")
    assert store.take_if("code", EXPECTED, then_set=THEN) == (None, False)  # no record at all
    assert store.get("made") is None and store.get("mark") == b"before"


def test_a_lifetime_that_is_not_positive_is_refused_before_anything_is_taken(store: KeyValueStore) -> None:
    raw = _put(store)
    with pytest.raises(ValueError, match="ttl"):
        store.take_if("code", EXPECTED, then_set=[ThenSet("made", (b"x",), ttl=0)])
    assert store.get("code") == raw and store.get("made") is None


def test_a_value_that_is_not_a_json_object_is_never_taken(store: KeyValueStore) -> None:
    for raw in (b"not json", b"[1, 2]", b'"text"', b"\xff\xfe"):
        store.set("code", raw, ttl=60)
        assert store.take_if("code", {}) == (raw, False)


def test_of_callers_racing_for_a_record_one_takes_it(store: KeyValueStore) -> None:
    _put(store)
    barrier = threading.Barrier(8)
    outcomes: list[bool] = []

    def one() -> None:
        barrier.wait()
        outcomes.append(store.take_if("code", EXPECTED)[1])

    threads = [threading.Thread(target=one) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == [False] * 7 + [True]


@pytest.mark.redis
def test_redis_the_script_is_sent_again_after_redis_forgot_it(redis_uri: str, redis_prefix: str) -> None:
    import redis

    store = open_kv(redis_uri, prefix=redis_prefix)
    try:
        raw = _put(store)
        assert store.take_if("code", {"grant.client_id": "other"}) == (raw, False)  # the script is cached
        admin = redis.Redis.from_url(redis_uri)
        try:
            admin.script_flush()
        finally:
            admin.close()
        assert store.take_if("code", EXPECTED) == (raw, True)
    finally:
        store.close()
