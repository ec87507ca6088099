"""The store's own Redis connections (authserver.storage.redis_direct): what redis-py's pool would have
guarded against, guarded here too, against a real Redis."""

import os
import socket
import time
from collections.abc import Iterator
from typing import Any

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
    link = store._direct._idle[-1]
    sock = link.connection._sock
    monkeypatch.setattr(link, "_sock", _InterruptedAfterSend(sock))
    monkeypatch.setattr(link.connection, "_sock", link._sock)
    with pytest.raises(Interrupted):
        store.get("a")  # the GET was sent, its reply not read
    monkeypatch.undo()
    time.sleep(0.05)  # the reply to the interrupted GET has arrived by now, if its connection is still open
    assert store.get("b") == b"value of b"
    assert store.get("a") == b"value of a"


class _InterruptedAfterSend:
    """A connection's socket whose first read is interrupted, after the command went out whole."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def send(self, data: bytes) -> int:
        return self._sock.send(data)

    def recv(self, size: int) -> bytes:
        raise Interrupted

    def __getattr__(self, name: str) -> object:
        return getattr(self._sock, name)


def test_redis_read_only_reply_counts_as_a_lost_connection_and_is_retried(store: RedisStore) -> None:
    """After a failover the old master answers READONLY: the connection is dropped and the command retried
    on a new one (which, behind Sentinel, asks for the new master), not handed back as an error."""
    store.set("k", b"1")
    before = _client_id(store)
    connection: Any = store._direct._idle[-1].connection
    connection._sock = _Answering(
        connection._sock, b"-READONLY You can't write against a read only replica.\r\n"
    )
    store.set("k", b"2")
    assert store.get("k") == b"2"
    assert _client_id(store) != before  # the connection that said READONLY was dropped


class _Answering:
    """A connection's socket that sends for real but reads ``answer`` (b"": the end of the stream)."""

    def __init__(self, sock: socket.socket, answer: bytes) -> None:
        self._sock = sock
        self._answer = answer

    def send(self, data: bytes) -> int:
        return self._sock.send(data)

    def recv(self, size: int) -> bytes:
        return self._answer

    def __getattr__(self, name: str) -> object:
        return getattr(self._sock, name)


def test_redis_refusal_that_is_a_connection_error_is_raised_not_returned(store: RedisStore) -> None:
    """NOAUTH (the server restarted with a password, or the connection lost its AUTH) is a connection
    error in redis-py, not a ResponseError: it must be raised (and retried on a new connection), never
    handed back as if it were the value."""
    store.set("k", b"1")
    before = _client_id(store)
    connection: Any = store._direct._idle[-1].connection
    connection._sock = _Answering(connection._sock, b"-NOAUTH Authentication required.\r\n")
    assert store.get("k") == b"1"
    assert _client_id(store) != before


def test_redis_idle_connection_is_checked_with_a_ping_before_its_next_command(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As redis-py's own: a connection idle longer than the client's health check interval is pinged (and
    replaced if the ping fails) before it carries a command; a busy one is not."""
    store.set("k", b"1")
    connection: Any = store._direct._idle[-1].connection
    assert connection.health_check_interval > 0
    checks: list[int] = []
    check = connection.check_health
    monkeypatch.setattr(connection, "check_health", lambda: (checks.append(1), check())[1])
    assert store.get("k") == b"1"
    assert checks == []  # just used: no ping
    connection.next_health_check = time.monotonic() - 1
    assert store.get("k") == b"1"
    assert checks == [1]
    assert connection.next_health_check > time.monotonic()  # the command's reply counts as a sign of life


def test_redis_error_replies_are_redis_pys_exceptions(store: RedisStore) -> None:
    with pytest.raises(redis.exceptions.NoScriptError):
        store._direct.call("EVALSHA", "0" * 40, 0)
    with pytest.raises(redis.ResponseError, match="unknown command"):
        store._direct.call("NOSUCHCOMMAND")
    assert store._direct.call("ECHO", 12) == b"12"  # numbers are sent as redis-py sends them, as text


def test_redis_connection_closed_before_the_reply_is_an_error_after_the_retries(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.set("k", b"1")
    connection: Any = store._direct._idle[-1].connection
    connection.disconnect()
    real_connect = connection.connect
    connects: list[int] = []

    def connect_to_a_closing_server() -> None:
        if connection._sock is None:
            real_connect()
            connects.append(1)
            connection._sock = _Answering(connection._sock, b"")

    monkeypatch.setattr(connection, "connect", connect_to_a_closing_server)
    with pytest.raises(redis.ConnectionError):
        store.get("k")
    assert len(connects) == 3  # the first try and the client's two retries, each on a new connection
    monkeypatch.undo()
    assert store.get("k") == b"1"


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
