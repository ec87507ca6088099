"""The short-lived store, in-process and on Redis: the same behaviour from both."""

import socket
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import pytest

from authserver.storage.kv import KeyValueStore, MemoryStore, RedisStore, open_kv

T = TypeVar("T")


def _together(count: int, work: Callable[[], T]) -> list[T]:
    """Run ``work`` in ``count`` threads released at the same instant; their results in finishing order."""
    barrier = threading.Barrier(count)
    results: list[T] = []
    lock = threading.Lock()

    def run() -> None:
        barrier.wait()
        result = work()
        with lock:
            results.append(result)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(results) == count
    return results


def test_get_set_delete(store: KeyValueStore) -> None:
    assert store.get("a") is None
    store.set("a", b"1")
    assert store.get("a") == b"1"
    store.set("a", b"\x00\xff")
    assert store.get("a") == b"\x00\xff"
    assert store.delete("a") is True
    assert store.delete("a") is False
    assert store.get("a") is None


def test_get_many_answers_in_the_order_asked(store: KeyValueStore) -> None:
    store.set("m1", b"one")
    store.set("m3", b"three")
    assert store.get_many(["m3", "m2", "m1"]) == [b"three", None, b"one"]
    assert store.get_many([]) == []


def test_a_batch_writes_nothing_until_executed_then_everything(store: KeyValueStore) -> None:
    store.set("gone-1", b"x")
    store.set("gone-2", b"x")
    subscription = store.subscribe("batch-news")
    batch = store.batch()
    batch.set("b1", b"1", ttl=0.3)
    batch.set("b2", b"2")
    batch.delete("gone-1", "gone-2")
    batch.publish("batch-news", b"done")
    assert store.get("b1") is None and store.get("gone-1") == b"x"
    assert subscription.get(timeout=0.1) is None
    batch.execute()
    assert store.get_many(["b1", "b2", "gone-1", "gone-2"]) == [b"1", b"2", None, None]
    assert subscription.get(timeout=5) == b"done"
    time.sleep(0.5)
    assert store.get("b1") is None  # the batch kept its expiry
    with pytest.raises(ValueError):
        store.batch().set("b3", b"3", ttl=0)
    subscription.close()


def test_a_batchs_reads_see_its_earlier_commands_and_come_back_in_order(store: KeyValueStore) -> None:
    store.set("r1", b"old")
    store.set("r2", b"two")
    batch = store.batch()
    batch.get("r1")
    batch.set("r1", b"new")
    batch.delete("r2")
    batch.get("r2")
    batch.get("r1")
    batch.get("r-none")
    assert batch.execute() == [b"old", None, b"new", None]
    assert store.batch().execute() == []
    # A batch is reusable: the next execute returns only its own reads.
    batch.set("r3", b"three")
    batch.get("r3")
    assert batch.execute() == [b"three"]


def test_ttl_expiry(store: KeyValueStore) -> None:
    store.set("short", b"x", ttl=0.2)
    store.set("long", b"y", ttl=30)
    assert store.get("short") == b"x"
    time.sleep(0.35)
    assert store.get("short") is None
    assert store.take("short") is None
    assert store.get("long") == b"y"


def test_bad_ttl_is_refused(store: KeyValueStore) -> None:
    with pytest.raises(ValueError):
        store.set("k", b"v", ttl=0)


def test_set_if_absent_only_once(store: KeyValueStore) -> None:
    assert store.set_if_absent("nonce", b"1", ttl=5) is True
    assert store.set_if_absent("nonce", b"2", ttl=5) is False
    assert store.get("nonce") == b"1"


def test_set_if_absent_again_after_expiry(store: KeyValueStore) -> None:
    assert store.set_if_absent("nonce", b"1", ttl=0.2)
    time.sleep(0.35)
    assert store.set_if_absent("nonce", b"2", ttl=0.2)


def test_set_if_absent_has_one_winner_under_concurrency(store: KeyValueStore) -> None:
    results = _together(8, lambda: store.set_if_absent("jti", b"1", ttl=5))
    assert results.count(True) == 1


def test_take_only_once(store: KeyValueStore) -> None:
    store.set("token", b"secret", ttl=5)
    assert store.take("token") == b"secret"
    assert store.take("token") is None
    assert store.get("token") is None


def test_take_has_one_winner_under_concurrency(store: KeyValueStore) -> None:
    for round_ in range(5):
        store.set(f"qr{round_}", b"payload", ttl=5)
        results = _together(8, lambda key=f"qr{round_}": store.take(key))
        assert results.count(b"payload") == 1 and results.count(None) == 7


def test_incr(store: KeyValueStore) -> None:
    assert store.incr("count") == 1
    assert store.incr("count") == 2
    assert store.get("count") == b"2"
    results = _together(8, lambda: store.incr("count"))
    assert sorted(results) == list(range(3, 11))


def test_incr_ttl_is_set_when_created_and_not_extended(store: KeyValueStore) -> None:
    assert store.incr("window", ttl=0.3) == 1
    time.sleep(0.15)
    assert store.incr("window", ttl=0.3) == 2  # does not push the expiry back
    time.sleep(0.25)
    assert store.get("window") is None
    assert store.incr("window", ttl=0.3) == 1


def test_pubsub_delivers_to_every_subscriber_of_the_channel(store: KeyValueStore) -> None:
    first, second, other = store.subscribe("events"), store.subscribe("events"), store.subscribe("other")
    try:
        store.publish("events", b"LOGIN")
        store.publish("events", b"LOGOUT")
        assert [first.get(timeout=2), first.get(timeout=2)] == [b"LOGIN", b"LOGOUT"]
        assert second.get(timeout=2) == b"LOGIN"
        assert other.get(timeout=0.2) is None
        started = time.monotonic()
        assert first.get(timeout=0.2) is None
        assert 0.15 < time.monotonic() - started < 2
    finally:
        for subscription in (first, second, other):
            subscription.close()


def test_pubsub_wakes_a_blocked_reader(store: KeyValueStore) -> None:
    subscription = store.subscribe("wake")
    received: list[bytes | None] = []
    reader = threading.Thread(target=lambda: received.append(subscription.get(timeout=5)))
    reader.start()
    time.sleep(0.1)
    store.publish("wake", b"hello")
    reader.join(5)
    subscription.close()
    assert received == [b"hello"]


def test_publish_without_subscribers_is_fine(store: KeyValueStore) -> None:
    store.publish("nobody", b"x")


def test_ping(store: KeyValueStore) -> None:
    assert store.ping() is True


def test_keys_are_prefixed(redis_uri: str, redis_prefix: str) -> None:
    one = RedisStore(redis_uri, prefix=redis_prefix + "one:")
    two = RedisStore(redis_uri, prefix=redis_prefix + "two:")
    try:
        one.set("k", b"1")
        assert two.get("k") is None
    finally:
        one.close()
        two.close()


def test_ping_false_quickly_for_unreachable_redis() -> None:
    store = open_kv("redis://127.0.0.1:1/0")
    try:
        started = time.monotonic()
        assert store.ping() is False
        assert time.monotonic() - started < 1.5
    finally:
        store.close()


def test_ping_false_quickly_for_unresponsive_redis() -> None:
    # A server that accepts connections but never answers: only the socket timeouts end the wait.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    try:
        store = RedisStore(f"redis://127.0.0.1:{listener.getsockname()[1]}/0", socket_timeout=0.3)
        started = time.monotonic()
        assert store.ping() is False
        # About a second (three tries of 0.3 s); the bound only tells "ends" from "hangs" on a busy machine.
        assert time.monotonic() - started < 10
        store.close()
    finally:
        listener.close()


def test_open_kv() -> None:
    assert isinstance(open_kv(None), MemoryStore)
    assert isinstance(open_kv(""), MemoryStore)
    with pytest.raises(ValueError) as caught:
        open_kv("memcached://user:hunter2@h")
    assert "hunter2" not in str(caught.value)


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_memory_store_sweeps_expired_keys_nobody_reads() -> None:
    clock = _Clock()
    store = MemoryStore(sweep_interval=10, clock=clock)
    for index in range(100):
        store.set(f"nonce{index}", b"1", ttl=5)
    store.set("kept", b"1")
    assert len(store) == 101
    clock.now = 11
    store.set("trigger", b"1")
    assert len(store) == 2


def test_memory_subscription_close_wakes_blocked_reader() -> None:
    store = MemoryStore()
    subscription = store.subscribe("c")
    received: list[bytes | None] = [b"unset"]
    reader = threading.Thread(target=lambda: received.__setitem__(0, subscription.get(timeout=None)))
    reader.start()
    time.sleep(0.05)
    subscription.close()
    reader.join(2)
    assert not reader.is_alive() and received == [None]
    store.publish("c", b"after close")  # no subscriber left, nothing queued
