"""Commands sent on redis-py's own connections, without its client and pool bookkeeping per command.

For each command redis-py's client takes a connection from its pool under a lock, probes the socket for
unread data (a system call), records pool metrics and dispatches events, then does it all again to give
the connection back: about half of the CPU time of a ``GET`` over loopback (105 against 57 us here).
Its connection's own send and read add layers of checks and wrappers around hiredis: sent and read here,
a ``GET`` costs 6.6 us of CPU instead of 10.8 with Redis on the same core (37.7 against 44.6 on the other,
where waking up costs the rest). The store's commands are all of one kind (short, no blocking, no
pub/sub), so they take their own idle connections instead, made by the client's pool (its address,
Sentinel's master of the moment, TLS, password, database and health checks), write the commands hiredis
packs straight to the connection's socket and read the replies with a hiredis reader of their own, and are
retried by the client's ``Retry`` policy on a connection error. An error reply raises the exception
redis-py would raise for it; ``READONLY`` (the server was a master and is a replica now, after a failover)
drops the connection and counts as a connection error, as redis-py's Sentinel connections do, so the retry
finds the new master.

A connection that raised anything but an error reply is disconnected before it is reused (redis-py's
connections do that on their own when a send or read fails; here also for an error between the two), so a
reply left unread by an interrupted command is never read by the next one. An error reply was read whole:
its connection stays. After a fork, the parent's connections are left alone (closing a socket the parent
still uses would cut it off) and the child makes its own.
"""

import hashlib
import os
import time
from collections.abc import Callable, Sequence
from typing import Any, cast

import hiredis
import redis
from redis._parsers.base import BaseParser
from redis.connection import AbstractConnection

_READ_SIZE = 65536  # as redis-py's connections read


class DirectCommands:
    def __init__(self, client: redis.Redis) -> None:
        self._pool = client.connection_pool
        self._retry = client.get_retry()
        self._idle: list[_Link] = []
        self._pid = os.getpid()
        self._digests: dict[str, str] = {}

    def call(self, *args: Any) -> Any:
        """One command's reply (an error reply raises ``redis.ResponseError``)."""
        return self._with_connection(lambda link: _one(link, args))

    def pipeline(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Several commands in one round trip, in order; their replies. Any error reply raises, once every
        reply was read."""
        replies: list[Any] = self._with_connection(lambda link: _several(link, commands))
        return replies

    def script(self, script: str, keys: Sequence[str], arguments: Sequence[Any]) -> Any:
        """A Lua script's reply: by its digest, sent whole (and so cached by Redis) the first time and
        whenever Redis has forgotten it (a restart, SCRIPT FLUSH, another server after a failover)."""
        digest = self._digests.get(script)
        if digest is None:
            digest = self._digests[script] = hashlib.sha1(script.encode(), usedforsecurity=False).hexdigest()
        try:
            return self.call("EVALSHA", digest, len(keys), *keys, *arguments)
        except redis.exceptions.NoScriptError:
            return self.call("EVAL", script, len(keys), *keys, *arguments)

    def close(self) -> None:
        idle, self._idle = self._idle, []
        if self._pid == os.getpid():
            for link in idle:
                link.connection.disconnect()

    def _with_connection(self, work: Callable[["_Link"], Any]) -> Any:
        if self._pid != os.getpid():
            self._idle, self._pid = [], os.getpid()
        link: _Link
        try:
            link = self._idle.pop()
        except IndexError:
            link = _Link(cast(AbstractConnection, self._pool.make_connection()))
        connection = link.connection
        try:
            if self._retry is None:
                return work(link)
            return self._retry.call_with_retry(lambda: work(link), lambda _: connection.disconnect())
        except redis.ResponseError:  # an error reply, read whole: the connection is in step
            raise
        except BaseException:
            connection.disconnect()
            raise
        finally:
            self._idle.append(link)


class _Link:
    """One of the store's connections, with the hiredis reader of the socket it has now."""

    __slots__ = ("_reader", "_sock", "connection")

    def __init__(self, connection: AbstractConnection) -> None:
        self.connection = connection
        self._sock: Any = None
        self._reader: Any = None

    def exchange(self, packed: bytes, replies: int) -> list[Any]:
        """Send ``packed`` (``replies`` commands) and read their replies, error replies as exceptions."""
        connection = self.connection
        interval = connection.health_check_interval
        if connection._sock is None:
            connection.connect()  # to the configured address, or Sentinel's master of the moment
        elif interval and time.monotonic() > connection.next_health_check:
            connection.check_health()  # a PING after the client's interval of idleness
        sock: Any = connection._sock
        if sock is not self._sock:  # connected anew: a new reader, with nothing of the old socket in it
            self._sock = sock
            self._reader = hiredis.Reader(
                protocolError=redis.exceptions.InvalidResponse, replyError=BaseParser.parse_error
            )
        reader = self._reader
        answers: list[Any] = []
        try:
            # One send for what fits the socket's buffer, as commands here do; gevent's sendall() asks the
            # kernel for the buffer's size first, every time.
            sent = sock.send(packed)
            if sent < len(packed):
                sock.sendall(memoryview(packed)[sent:])
            while len(answers) < replies:
                answer = reader.gets()
                if answer is False:
                    data = sock.recv(_READ_SIZE)
                    if not data:
                        raise redis.ConnectionError("Connection closed by server.")
                    reader.feed(data)
                else:
                    answers.append(answer)
        except TimeoutError as exc:
            raise redis.TimeoutError("Timeout talking to Redis") from exc
        except OSError as exc:
            raise redis.ConnectionError(f"Error talking to Redis: {exc}") from exc
        if interval:
            connection.next_health_check = time.monotonic() + interval  # type: ignore[assignment]
        for answer in answers:
            if isinstance(answer, redis.exceptions.ReadOnlyError):
                raise redis.ConnectionError("the Redis master is a replica now") from answer
        return answers


def _one(link: _Link, args: tuple[Any, ...]) -> Any:
    (answer,) = link.exchange(hiredis.pack_command(args), 1)
    if isinstance(answer, Exception):  # an error reply (NOAUTH is a ConnectionError, not a ResponseError)
        raise answer
    return answer


def _several(link: _Link, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
    replies = link.exchange(b"".join([hiredis.pack_command(command) for command in commands]), len(commands))
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply  # once every reply was read
    return replies
