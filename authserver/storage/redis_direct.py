"""Commands sent on redis-py's own connections, without its client and pool bookkeeping per command.

For each command redis-py's client takes a connection from its pool under a lock, probes the socket for
unread data (a system call), records pool metrics and dispatches events, then does it all again to give
the connection back: about half of the CPU time of a ``GET`` over loopback (105 against 57 us here).
The store's commands are all of one kind (short, no blocking, no pub/sub), so they take their own idle
connections instead, made by the client's pool (its address, Sentinel's master of the moment, TLS,
password, database and health checks) and retried by the client's ``Retry`` policy on a connection error.

A connection that raised anything but an error reply is disconnected before it is reused (redis-py's
connections do that on their own when a send or read fails; here also for an error between the two), so a
reply left unread by an interrupted command is never read by the next one. An error reply was read whole:
its connection stays. After a fork, the parent's connections are left alone (closing a socket the parent
still uses would cut it off) and the child makes its own.
"""

import hashlib
import os
from collections.abc import Callable, Sequence
from typing import Any, cast

import redis
from redis.connection import AbstractConnection


class DirectCommands:
    def __init__(self, client: redis.Redis) -> None:
        self._pool = client.connection_pool
        self._retry = client.get_retry()
        self._idle: list[AbstractConnection] = []
        self._pid = os.getpid()
        self._digests: dict[str, str] = {}

    def call(self, *args: Any) -> Any:
        """One command's reply (an error reply raises ``redis.ResponseError``)."""
        return self._with_connection(lambda connection: _one(connection, args))

    def pipeline(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Several commands in one round trip, in order; their replies. Any error reply raises, once every
        reply was read."""
        replies: list[Any] = self._with_connection(lambda connection: _several(connection, commands))
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
            for connection in idle:
                connection.disconnect()

    def _with_connection(self, work: Callable[[AbstractConnection], Any]) -> Any:
        if self._pid != os.getpid():
            self._idle, self._pid = [], os.getpid()
        connection: AbstractConnection
        try:
            connection = self._idle.pop()
        except IndexError:
            connection = cast(AbstractConnection, self._pool.make_connection())
        try:
            if self._retry is None:
                return work(connection)
            return self._retry.call_with_retry(lambda: work(connection), lambda _: connection.disconnect())
        except redis.ResponseError:  # an error reply, read whole: the connection is in step
            raise
        except BaseException:
            connection.disconnect()
            raise
        finally:
            self._idle.append(connection)


def _one(connection: AbstractConnection, args: tuple[Any, ...]) -> Any:
    connection.connect()  # a send would connect on its own, but to the configured address, not Sentinel's
    connection.send_command(*args)
    return connection.read_response()


def _several(connection: AbstractConnection, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
    connection.connect()
    connection.send_packed_command(connection.pack_commands(commands))
    replies: list[Any] = []
    failed: redis.ResponseError | None = None
    for _ in commands:
        try:
            replies.append(connection.read_response())
        except redis.ResponseError as exc:
            failed = failed or exc
            replies.append(exc)
    if failed is not None:
        raise failed
    return replies
