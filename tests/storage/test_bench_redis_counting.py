"""The benchmark counts the store's own Redis commands (bench/counting.py), which go past redis-py's send
methods: each command once, each write that waits for replies as one round trip."""

from collections.abc import Iterator

import pytest

from authserver.storage import redis_direct
from authserver.storage.kv import RedisStore
from bench import counting

pytestmark = pytest.mark.redis


@pytest.fixture
def store(redis_uri: str, redis_prefix: str) -> Iterator[RedisStore]:
    kv = RedisStore(redis_uri, prefix=redis_prefix)
    yield kv
    kv.close()


def test_the_stores_commands_and_round_trips_are_counted(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Restored after the test: the counting wrappers replace module functions for the whole process.
    monkeypatch.setattr(redis_direct, "_one", redis_direct._one)
    monkeypatch.setattr(redis_direct, "_several", redis_direct._several)
    counters = counting.Counters()
    counting._install_redis_direct(counters, lambda args: "redis " + str(args[0]))
    store.set("a", b"1")
    batch = store.batch()
    batch.set("b", b"2")
    batch.delete("a")
    batch.execute()
    assert store.get_many(["a", "b"]) == [None, b"2"]
    assert counters.values["redis_commands"] == 4
    assert counters.values["redis_round_trips"] == 3
    assert counters.kinds == {"redis SET": 2, "redis DEL": 1, "redis MGET": 1}
