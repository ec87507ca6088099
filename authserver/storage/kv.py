"""Short-lived state shared between instances: pending logins, single-use nonces, counters, browser events.

Redis when configured (several ns instances behind a load balancer must see one another's state); an
in-process store otherwise, for a single instance. Nothing stored here may be needed after a restart.
"""

import functools
import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, cast

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry

from authserver.storage import conditional_take, sentinel
from authserver.storage.conditional_take import ThenSet
from authserver.storage.db import mask_uri
from authserver.storage.redis_direct import DirectCommands

log = logging.getLogger("nextauth.kv")

DEFAULT_PREFIX = "nextauth:"
# The URI schemes of Redis (unix:// a socket; redis+sentinel:// the master a set of Sentinels names).
REDIS_SCHEMES = ("redis", "rediss", "unix", sentinel.SCHEME)
KV_URI_PREFIXES = tuple(f"{scheme}://" for scheme in (*REDIS_SCHEMES, "memory"))


class Subscription(Protocol):
    def get(self, timeout: float | None = None) -> bytes | None: ...
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...
    @property
    def reconnects(self) -> int:
        """How often the subscription was silently re-established; messages published meanwhile are lost."""
        ...


class Batch(Protocol):
    """Commands queued to go to the store together (``KeyValueStore.batch``): with Redis one round trip
    instead of one per command, run in the order queued. Not a transaction: each command is atomic on its
    own, as when sent alone. ``execute`` returns what the batch's reads (``get``) found, in their order."""

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None: ...
    def delete(self, *keys: str) -> None: ...
    def publish(self, channel: str, message: bytes) -> None: ...
    def get(self, key: str) -> None: ...
    def execute(self) -> list[bytes | None]: ...


class KeyValueStore(Protocol):
    def get(self, key: str) -> bytes | None: ...
    def get_many(self, keys: Sequence[str]) -> list[bytes | None]: ...
    def batch(self) -> Batch: ...
    def set(self, key: str, value: bytes, ttl: float | None = None) -> None: ...
    def set_if_absent(self, key: str, value: bytes, ttl: float | None = None) -> bool: ...
    def take(self, key: str) -> bytes | None: ...
    def take_if(
        self,
        key: str,
        equal: Mapping[str, str | None],
        words_within: Mapping[str, str] | None = None,
        then_set: Sequence[ThenSet] = (),
    ) -> tuple[bytes | None, bool]:
        """The value of ``key`` (a JSON record; None if there is none) and whether it was taken: only when
        it meets the conditions (``conditional_take``), atomically; and, when taken, ``then_set`` written in
        the same step."""
        ...

    def delete(self, key: str) -> bool: ...
    def incr(self, key: str, ttl: float | None = None) -> int: ...
    def publish(self, channel: str, message: bytes) -> None: ...
    def subscribe(self, channel: str) -> Subscription: ...
    def ping(self) -> bool: ...
    def close(self) -> None: ...


def _check_ttl(ttl: float | None) -> None:
    # Redis rejects a zero or negative expiry; refusing it here too keeps both stores alike.
    if ttl is not None and not ttl > 0:
        raise ValueError(f"ttl must be positive seconds or None, not {ttl!r}")


# -- in-process --------------------------------------------------------------------------------------------


class _MemorySubscription:
    # Bounded like Redis' output buffer for slow subscribers: a reader that stopped reading must not make
    # the process grow without limit. Past the bound, new messages for it are dropped.
    MAX_PENDING = 10_000

    def __init__(self, on_close: Callable[["_MemorySubscription"], None]) -> None:
        self._queue: queue.Queue[bytes | None] = queue.Queue(self.MAX_PENDING)
        self._on_close = on_close
        self._closed = False

    def deliver(self, message: bytes) -> None:
        try:
            self._queue.put_nowait(message)
        except queue.Full:
            log.warning("subscriber not reading: message dropped")

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def reconnects(self) -> int:
        return 0  # in the process: never lost

    def get(self, timeout: float | None = None) -> bytes | None:
        if self._closed:
            return None
        try:
            message = self._queue.get(timeout=timeout) if timeout != 0 else self._queue.get_nowait()
        except queue.Empty:
            return None
        if message is None:  # close() wakes a blocked reader with this
            self._closed = True
        return message

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._on_close(self)
            try:
                self._queue.put_nowait(None)
            except queue.Full:
                pass


class _QueuedBatch:
    """A batch for a store whose commands cost no round trip: run them in order at ``execute``."""

    def __init__(self, store: "KeyValueStore") -> None:
        self._store = store
        self._queued: list[Callable[[], object]] = []
        self._reads: set[int] = set()  # positions in _queued whose results execute returns

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        _check_ttl(ttl)
        self._queued.append(functools.partial(self._store.set, key, value, ttl))

    def delete(self, *keys: str) -> None:
        self._queued += [functools.partial(self._store.delete, key) for key in keys]

    def publish(self, channel: str, message: bytes) -> None:
        self._queued.append(functools.partial(self._store.publish, channel, message))

    def get(self, key: str) -> None:
        self._reads.add(len(self._queued))
        self._queued.append(functools.partial(self._store.get, key))

    def execute(self) -> list[bytes | None]:
        queued, self._queued = self._queued, []
        reads, self._reads = self._reads, set()
        found: list[bytes | None] = []
        for position, command in enumerate(queued):
            result = command()
            if position in reads:
                found.append(cast("bytes | None", result))
        return found


class MemoryStore:
    """The single-instance store. Thread-safe; under gevent the lock and queues are cooperative."""

    def __init__(self, *, sweep_interval: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._data: dict[str, tuple[bytes, float | None]] = {}  # key -> (value, monotonic expiry)
        self._subscribers: dict[str, set[_MemorySubscription]] = {}
        self._clock = clock
        self._sweep_interval = sweep_interval
        self._next_sweep = clock() + sweep_interval

    def _expiry(self, ttl: float | None) -> float | None:
        _check_ttl(ttl)
        return None if ttl is None else self._clock() + ttl

    def _live(self, key: str, now: float) -> tuple[bytes, float | None] | None:
        """The entry if present and unexpired; an expired one is dropped. Caller holds the lock."""
        entry = self._data.get(key)
        if entry is not None and entry[1] is not None and entry[1] <= now:
            del self._data[key]
            return None
        return entry

    def _maybe_sweep(self, now: float) -> None:
        # Reads only drop the keys they touch; keys nobody reads again (unused nonces, abandoned logins)
        # would otherwise stay forever. Caller holds the lock.
        if now < self._next_sweep:
            return
        self._next_sweep = now + self._sweep_interval
        for key in [k for k, (_, expiry) in self._data.items() if expiry is not None and expiry <= now]:
            del self._data[key]

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)

    def get(self, key: str) -> bytes | None:
        with self._lock:
            entry = self._live(key, self._clock())
            return None if entry is None else entry[0]

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return [self.get(key) for key in keys]

    def batch(self) -> Batch:
        return _QueuedBatch(self)

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        expiry = self._expiry(ttl)
        with self._lock:
            self._maybe_sweep(self._clock())
            self._data[key] = (bytes(value), expiry)

    def set_if_absent(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        expiry = self._expiry(ttl)
        with self._lock:
            now = self._clock()
            self._maybe_sweep(now)
            if self._live(key, now) is not None:
                return False
            self._data[key] = (bytes(value), expiry)
            return True

    def take(self, key: str) -> bytes | None:
        with self._lock:
            entry = self._live(key, self._clock())
            if entry is None:
                return None
            del self._data[key]
            return entry[0]

    def take_if(
        self,
        key: str,
        equal: Mapping[str, str | None],
        words_within: Mapping[str, str] | None = None,
        then_set: Sequence[ThenSet] = (),
    ) -> tuple[bytes | None, bool]:
        expiries = [self._expiry(setting.ttl) for setting in then_set]  # a bad lifetime fails before the take
        with self._lock:
            entry = self._live(key, self._clock())
            if entry is None:
                return None, False
            if not conditional_take.matches(entry[0], equal, words_within or {}):
                return entry[0], False
            del self._data[key]
            for setting, expiry in zip(then_set, expiries, strict=True):
                self._data[setting.key] = (setting.value(entry[0]), expiry)
            return entry[0], True

    def delete(self, key: str) -> bool:
        with self._lock:
            return self._live(key, self._clock()) is not None and self._data.pop(key, None) is not None

    def incr(self, key: str, ttl: float | None = None) -> int:
        expiry = self._expiry(ttl)
        with self._lock:
            now = self._clock()
            self._maybe_sweep(now)
            entry = self._live(key, now)
            if entry is None:
                value, keep = 1, expiry
            else:
                try:
                    value, keep = int(entry[0]) + 1, entry[1]
                except ValueError:
                    raise ValueError(f"value of {key!r} is not an integer") from None
            self._data[key] = (str(value).encode(), keep)
            return value

    def publish(self, channel: str, message: bytes) -> None:
        with self._lock:
            subscribers = list(self._subscribers.get(channel, ()))
        for subscriber in subscribers:
            subscriber.deliver(bytes(message))

    def subscribe(self, channel: str) -> Subscription:
        def unsubscribe(subscription: _MemorySubscription) -> None:
            with self._lock:
                remaining = self._subscribers.get(channel)
                if remaining is not None:
                    remaining.discard(subscription)
                    if not remaining:
                        del self._subscribers[channel]

        subscription = _MemorySubscription(unsubscribe)
        with self._lock:
            self._subscribers.setdefault(channel, set()).add(subscription)
        return subscription

    def ping(self) -> bool:
        return True

    def close(self) -> None:
        with self._lock:
            subscribers = [s for group in self._subscribers.values() for s in group]
            self._data.clear()
        for subscription in subscribers:
            subscription.close()


# -- Redis -------------------------------------------------------------------------------------------------

# INCR then PEXPIRE as one step: a crash between the two would leave a counter that never expires, and a
# rate limit that never lifts.
_INCR_WITH_TTL = """
local value = redis.call('INCR', KEYS[1])
if value == 1 and ARGV[1] ~= '' then
    redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return value
"""


def _ms(ttl: float) -> int:
    return max(1, math.ceil(ttl * 1000))


class _RedisSubscription:
    def __init__(self, pubsub: redis.client.PubSub) -> None:
        self._pubsub = pubsub
        self._closed = False
        self._reconnects = 0

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def reconnects(self) -> int:
        return self._reconnects

    def get(self, timeout: float | None = None) -> bytes | None:
        if self._closed:
            return None
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            # None waits without limit; redis-py's annotation says float only.
            message = self._pubsub.get_message(timeout=remaining)  # type: ignore[arg-type]
            if message is not None and message["type"] == "message":
                data: bytes = message["data"]
                return data
            if message is not None and message["type"] == "subscribe":
                # subscribe() consumed the first confirmation: another one means redis-py lost the
                # connection and subscribed again on a new one, so messages may have been missed.
                self._reconnects += 1
            # Nothing, or a (un)subscribe confirmation: wait out what is left of the timeout.
            if deadline is not None and time.monotonic() >= deadline:
                return None

    def close(self) -> None:
        self._closed = True
        try:
            self._pubsub.close()
        except redis.RedisError:
            log.debug("closing a Redis subscription failed", exc_info=True)


class _RedisBatch:
    def __init__(self, commands: DirectCommands, key: Callable[[str], str]) -> None:
        self._direct = commands
        self._key = key
        self._commands: list[tuple[Any, ...]] = []
        self._reads: list[int] = []  # positions of the reads among the queued commands

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        _check_ttl(ttl)
        self._commands.append(_set_command(self._key(key), value, ttl))

    def delete(self, *keys: str) -> None:
        if keys:
            self._commands.append(("DEL", *(self._key(key) for key in keys)))

    def publish(self, channel: str, message: bytes) -> None:
        self._commands.append(("PUBLISH", self._key(channel), message))

    def get(self, key: str) -> None:
        self._reads.append(len(self._commands))
        self._commands.append(("GET", self._key(key)))

    def execute(self) -> list[bytes | None]:
        commands, reads, self._commands, self._reads = self._commands, self._reads, [], []
        if not commands:
            return []
        results = self._direct.pipeline(commands)
        return [results[position] for position in reads]


def _set_command(key: str, value: bytes, ttl: float | None, *options: str) -> tuple[Any, ...]:
    return ("SET", key, value, *options) if ttl is None else ("SET", key, value, "PX", _ms(ttl), *options)


class RedisStore:
    """Shared store on Redis (6.2 or later: GETDEL). Every key and channel is prefixed, so instances of
    different deployments, or test runs, can share one Redis without seeing each other."""

    def __init__(
        self,
        uri: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        connect_timeout: float = 1.0,
        socket_timeout: float = 5.0,
    ) -> None:
        self._prefix = prefix
        self._socket_timeout = socket_timeout
        options: dict[str, Any] = {
            # redis-py's default retries ten times with up to 1 s pauses; a readiness probe against a dead
            # Redis must answer in about a second, and a request should fail fast rather than hang.
            "retry": Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.2), retries=2),
            "health_check_interval": 30,
        }
        if sentinel.is_sentinel(uri):  # the master of the moment, asked of the Sentinels
            self._client = sentinel.master_client(
                uri, connect_timeout=connect_timeout, socket_timeout=socket_timeout, **options
            )
        else:
            self._client = redis.Redis.from_url(
                uri, socket_connect_timeout=connect_timeout, socket_timeout=socket_timeout, **options
            )
        self._direct = DirectCommands(self._client)

    def _key(self, key: str) -> str:
        return self._prefix + key

    # Commands and scripts go through ``DirectCommands``; subscriptions and pings through the client. No
    # decode_responses: values come back as bytes.

    def get(self, key: str) -> bytes | None:
        return cast(bytes | None, self._direct.call("GET", self._key(key)))

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        return cast(list[bytes | None], self._direct.call("MGET", *(self._key(key) for key in keys)))

    def batch(self) -> Batch:
        return _RedisBatch(self._direct, self._key)

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        _check_ttl(ttl)
        self._direct.call(*_set_command(self._key(key), value, ttl))

    def set_if_absent(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        _check_ttl(ttl)
        # Redis answers OK when it set the key, nothing when the key was there.
        return self._direct.call(*_set_command(self._key(key), value, ttl, "NX")) is not None

    def take(self, key: str) -> bytes | None:
        return cast(bytes | None, self._direct.call("GETDEL", self._key(key)))

    def take_if(
        self,
        key: str,
        equal: Mapping[str, str | None],
        words_within: Mapping[str, str] | None = None,
        then_set: Sequence[ThenSet] = (),
    ) -> tuple[bytes | None, bool]:
        for setting in then_set:
            _check_ttl(setting.ttl)
        arguments = conditional_take.script_arguments(equal, words_within or {}, then_set)
        keys = [self._key(key), *(self._key(setting.key) for setting in then_set)]
        reply = self._direct.script(conditional_take.SCRIPT, keys, arguments)
        if reply is None:
            return None, False
        taken, raw = reply
        return cast(bytes, raw), int(taken) == 1

    def delete(self, key: str) -> bool:
        return int(self._direct.call("DEL", self._key(key))) > 0

    def incr(self, key: str, ttl: float | None = None) -> int:
        _check_ttl(ttl)
        return int(self._direct.script(_INCR_WITH_TTL, [self._key(key)], ["" if ttl is None else _ms(ttl)]))

    def publish(self, channel: str, message: bytes) -> None:
        self._direct.call("PUBLISH", self._key(channel), message)

    def subscribe(self, channel: str) -> Subscription:
        pubsub = self._client.pubsub()
        try:
            pubsub.subscribe(self._key(channel))
            # Wait for Redis to confirm, so that a message published once subscribe() has returned is
            # delivered rather than racing the SUBSCRIBE command.
            deadline = time.monotonic() + self._socket_timeout
            while True:
                message = pubsub.get_message(timeout=max(0.0, deadline - time.monotonic()))
                if message is not None and message["type"] == "subscribe":
                    break
                if time.monotonic() >= deadline:
                    raise redis.TimeoutError("Redis did not confirm the subscription")
        except BaseException:
            pubsub.close()
            raise
        return _RedisSubscription(pubsub)

    def ping(self) -> bool:
        try:
            return bool(self._client.ping())
        except Exception:
            log.debug("Redis ping failed", exc_info=True)
            return False

    def close(self) -> None:
        self._direct.close()
        self._client.close()


def open_kv(uri: str | None, *, prefix: str = DEFAULT_PREFIX) -> KeyValueStore:
    """The store for a configured URI: Redis for redis://, rediss:// or unix://, in-process for none."""
    if not uri or uri == "memory://":
        return MemoryStore()
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    if scheme in REDIS_SCHEMES:
        return RedisStore(uri, prefix=prefix)
    raise ValueError(
        f"unsupported key-value store URI {mask_uri(uri)!r}: "
        "use redis://, rediss://, redis+sentinel:// or none"
    )
