"""One logout told to every application of a session at once, whatever the protocol.

A fan-out is the list of applications (targets) a logout must reach, kept in the shared store under a
random key that only the browser doing the logout holds. Front-channel targets are reached by the browser
(one hidden frame each), back-channel ones by the IdP itself (greenlets); each target's result is a
separate key, written once, so that concurrent answers (frames, greenlets, other IdP instances) never
overwrite each other and a second answer for the same target is refused. The fan-out ends when every
target answered or its deadline passed; whatever did not answer by then counts as not reached.
"""

import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import gevent

from authserver.storage.kv import KeyValueStore

log = logging.getLogger("nextauth.idp.logout")

PREFIX = "logout:fanout:"
# Long enough for a slow browser to load the page and for the user to read the result; the deadline
# itself is the (shorter) timeout setting.
KEEP_SECONDS = 10 * 60
DEFAULT_TIMEOUT = 8.0

REACHED = b"reached"
REFUSED = b"refused"


@dataclass
class Target:
    name: str  # what the user is shown
    protocol: str  # saml or oidc
    channel: str  # front (a frame in the browser), back (server to server) or none (cannot be told)
    entity_id: str  # the SAML entity id or the OIDC client id
    request_id: str | None = None  # the LogoutRequest's ID an answer must be InResponseTo
    frame: dict[str, Any] | None = None  # front: {"redirect": url} or {"post": url, "fields": {...}}


@dataclass
class Fanout:
    targets: list[Target]
    deadline: float  # time.time() after which nothing more is waited for
    initiator: dict[str, str | None] | None = None  # an SP-initiated SAML logout: who gets the answer
    key: str = field(default="", compare=False)

    def dumps(self) -> bytes:
        fields = asdict(self)
        fields.pop("key")
        return json.dumps(fields).encode()

    @classmethod
    def loads(cls, data: bytes, key: str) -> "Fanout":
        fields = json.loads(data)
        fields["targets"] = [Target(**t) for t in fields["targets"]]
        return cls(**fields, key=key)


@dataclass(frozen=True)
class Outcome:
    reached: list[Target]
    missed: list[Target]

    @property
    def complete(self) -> bool:
        return not self.missed


def new_key() -> str:
    return secrets.token_urlsafe(24)


def save(kv: KeyValueStore, fanout: Fanout) -> None:
    if not fanout.key:
        fanout.key = new_key()
    kv.set(PREFIX + fanout.key, fanout.dumps(), ttl=KEEP_SECONDS)


def _valid_key(key: str) -> bool:
    return 16 <= len(key) <= 64 and key.isascii() and all(c.isalnum() or c in "-_" for c in key)


def load(kv: KeyValueStore, key: str) -> Fanout | None:
    data = kv.get(PREFIX + key) if _valid_key(key) else None
    return Fanout.loads(data, key) if data is not None else None


def take(kv: KeyValueStore, key: str) -> Fanout | None:
    """The fan-out, removed: its result is shown (or sent) once."""
    data = kv.take(PREFIX + key) if _valid_key(key) else None
    return Fanout.loads(data, key) if data is not None else None


def _result_key(key: str, index: int) -> str:
    return f"{PREFIX}{key}:{index}"


def record(kv: KeyValueStore, fanout: Fanout, index: int, reached: bool) -> bool:
    """The answer of one target, once; False if it had answered already or the fan-out is over."""
    if time.time() > fanout.deadline:
        return False
    return kv.set_if_absent(_result_key(fanout.key, index), REACHED if reached else REFUSED, ttl=KEEP_SECONDS)


def results(kv: KeyValueStore, fanout: Fanout) -> list[bytes | None]:
    return [kv.get(_result_key(fanout.key, index)) for index in range(len(fanout.targets))]


def finished(kv: KeyValueStore, fanout: Fanout) -> bool:
    """Every target answered (either way), or the deadline passed."""
    return time.time() > fanout.deadline or all(result is not None for result in results(kv, fanout))


def outcome(kv: KeyValueStore, fanout: Fanout) -> Outcome:
    reached: list[Target] = []
    missed: list[Target] = []
    for target, result in zip(fanout.targets, results(kv, fanout), strict=True):
        (reached if result == REACHED else missed).append(target)
    for index in range(len(fanout.targets)):
        kv.delete(_result_key(fanout.key, index))
    return Outcome(reached, missed)


def in_background(
    kv: KeyValueStore, fanout: Fanout, index: int, deliver: Callable[[], bool]
) -> gevent.Greenlet:
    """Run one back-channel delivery in its own greenlet and record whether it arrived."""

    def run() -> None:
        try:
            arrived = deliver()
        except Exception:
            log.exception("back-channel logout to %s failed", fanout.targets[index].entity_id)
            arrived = False
        record(kv, fanout, index, arrived)

    return gevent.spawn(run)


def watch(kv: KeyValueStore, fanout: Fanout, index: int, job: gevent.Greenlet) -> gevent.Greenlet:
    """Record the result of a delivery another component started (a greenlet whose value says if it
    arrived), waiting for it no longer than the fan-out's deadline."""

    def run() -> None:
        job.join(timeout=max(0.0, fanout.deadline - time.time()))
        record(kv, fanout, index, job.ready() and job.value is True)

    return gevent.spawn(run)


def same_key(given: str, expected: str) -> bool:
    """Compare a key or message ID a stranger may have sent with ours, in constant time."""
    return hmac.compare_digest(given.encode(), expected.encode())
