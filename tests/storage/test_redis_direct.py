"""The store's own Redis connections (authserver.storage.redis_direct): what redis-py's pool would have
guarded against, guarded here too, against a real Redis."""

import os
import time
from collections.abc import Iterator

import pytest
import redis

from authserver.storage.kv import RedisStore

pytestmark = pytest.mark.redis


class Interrupted(BaseException):
    """Stands for what can stop a greenlet between two socket calls (gevent.Timeout, GreenletExit)."""


@pytest.fixture
def store(redis_uri: str, redis_prefix: str) -> Iterator[RedisStore]:
    kv = RedisStore(redis_uri, prefix=redis_prefix)
    yield kv
    kv.close()


def _client_id(store: RedisStore) -> int:
    return int(store._direct.call("CLIENT", "ID"))


def test_redis_connection_the_server_closed_is_replaced(store: RedisStore, redis_uri: str) -> None:
    store.set("k", b"1")
    before = _client_id(store)
    admin = redis.Redis.from_url(redis_uri)
    try:
        assert admin.client_kill_filter(_id=before) == 1
    finally:
        admin.close()
    assert store.get("k") == b"1"  # retried on a new connection, no error
    assert _client_id(store) != before


def test_redis_reply_of_an_interrupted_command_is_never_read_by_the_next(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.set("a", b"value of a")
    store.set("b", b"value of b")
    connection = store._direct._idle[-1]
    reads = connection.read_response

    def interrupted_once(*args: object, **kwargs: object) -> object:
        monkeypatch.setattr(connection, "read_response", reads)
        raise Interrupted  # the GET was sent, its reply not read

    monkeypatch.setattr(connection, "read_response", interrupted_once)
    with pytest.raises(Interrupted):
        store.get("a")
    time.sleep(0.05)  # the reply to the interrupted GET has arrived by now, if its connection is still open
    assert store.get("b") == b"value of b"
    assert store.get("a") == b"value of a"


def test_redis_error_reply_in_a_batch_raises_and_the_rest_still_ran(
    store: RedisStore, redis_prefix: str
) -> None:
    store._direct.call("RPUSH", redis_prefix + "list", "x")  # GET on a list is an error reply
    connection = _client_id(store)
    batch = store.batch()
    batch.get("list")
    batch.set("after", b"2")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        batch.execute()
    assert store.get("after") == b"2"  # not a transaction: the SET after the error ran; the connection works
    assert _client_id(store) == connection  # an error reply, read whole, leaves its connection in use


def test_redis_after_fork_the_child_uses_connections_of_its_own(store: RedisStore) -> None:
    store.set("k", b"from the parent")
    parent_connection = _client_id(store)
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        try:
            os.write(write, f"{_client_id(store)} {store.get('k')!r}".encode())
            store.close()  # must leave the parent's sockets alone
        finally:
            os._exit(0)
    os.close(write)
    _, status = os.waitpid(child, 0)
    answer = os.read(read, 200).decode()
    os.close(read)
    assert status == 0
    child_connection, value = answer.split(" ", 1)
    assert value == "b'from the parent'"
    assert int(child_connection) != parent_connection
    assert _client_id(store) == parent_connection  # the parent's connection is still open and its own
    assert store.get("k") == b"from the parent"
