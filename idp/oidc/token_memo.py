"""Access tokens read from the shared store, remembered in this process for as long as it hears of every
revocation.

Introspection and userinfo read a token's record on every call, and a resource server introspects on every
request it serves: two store round trips each time (the record, then whether its family was revoked). The
record itself never changes; what can change is that the token is revoked (deleted, or its refresh family
marked revoked), and every revocation goes through ``TokenStore``, which announces it on a pub/sub channel.
So a record is kept here, and dropped when its revocation is heard:

- a revocation made in this process is forgotten here at once, before the revoking call returns;
- one made in another process arrives through the channel within milliseconds;
- nothing is remembered, and nothing answered from memory, unless the subscription is live: before it is
  made, after it breaks, and across a reconnection (messages published meanwhile are gone) the memory is
  emptied and every read goes to the store;
- a read that raced with an announcement (read before, stored after) is not kept: each announcement heard
  moves a generation on, and a record is stored only if none was heard while it was read;
- an entry is trusted for ``MAX_AGE_SECONDS`` at most, which bounds an announcement lost on its way out
  (the publishing process could not reach the store, say) while the subscribers stayed connected.

Expiry needs no announcement: a token's ``exp`` is in its record and checked on every use.
"""

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from authserver.storage.follow import follow
from authserver.storage.kv import KeyValueStore

if TYPE_CHECKING:
    from idp.oidc.tokens import AccessToken

log = logging.getLogger("nextauth.idp.oidc")

CHANNEL = "idp:oidc-tokens-revoked"
MAX_ENTRIES = 10_000  # all forgotten at once past it
MAX_AGE_SECONDS = 30.0


class AccessTokenMemo:
    def __init__(
        self,
        kv: KeyValueStore,
        *,
        max_age_seconds: float = MAX_AGE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kv = kv
        self._max_age = max_age_seconds
        self._clock = clock
        self._entries: dict[str, tuple[float, AccessToken]] = {}
        self._generation = 0
        self._live = False
        self._lock = threading.Lock()
        self._listener: threading.Thread | None = None
        self._stopped = threading.Event()

    @property
    def live(self) -> bool:
        return self._live

    def get(self, digest: str) -> "tuple[AccessToken | None, int]":
        """The remembered token of this hash (or None), and the generation to hand back to ``put``."""
        self._start_listening()
        generation = self._generation
        if not self._live:
            return None, generation
        entry = self._entries.get(digest)
        if entry is None or self._clock() - entry[0] > self._max_age:
            return None, generation
        return entry[1], generation

    def put(self, digest: str, token: "AccessToken", generation: int) -> None:
        """Remember a token read from the store, unless a revocation was heard since ``get``."""
        with self._lock:
            if not self._live or generation != self._generation:
                return
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[digest] = (self._clock(), token)

    def announce(self, *, digests: Iterable[str] = (), families: Iterable[str] = ()) -> None:
        """Tokens (by hash) and refresh families just revoked in the store: forgotten here at once, and
        told to every other process."""
        digests, families = list(digests), list(families)
        self._forget(digests, families)
        announce_revoked(self._kv, digests=digests, families=families)

    def stop(self) -> None:
        self._stopped.set()

    def _forget(self, digests: list[str], families: list[str]) -> None:
        with self._lock:
            self._generation += 1
            for digest in digests:
                self._entries.pop(digest, None)
            if families:
                revoked = set(families)
                self._entries = {
                    digest: entry
                    for digest, entry in self._entries.items()
                    if entry[1].refresh_family not in revoked
                }

    def _go_live(self, live: bool) -> None:
        with self._lock:
            self._generation += 1
            self._entries.clear()
            self._live = live

    def _start_listening(self) -> None:
        if self._listener is not None:
            return
        with self._lock:
            if self._listener is not None:
                return
            self._listener = threading.Thread(target=self._run, name="oidc-token-memo", daemon=True)
        self._listener.start()

    def _run(self) -> None:
        follow(
            self._kv,
            CHANNEL,
            stopped=self._stopped,
            # Started afresh (or reconnected): what was published meanwhile is gone, so start empty.
            on_fresh=lambda: self._go_live(True),
            on_message=self._on_message,
            on_lost=lambda: self._go_live(False),
            what="access tokens",
            log=log,
        )

    def _on_message(self, message: bytes) -> None:
        try:
            revoked = json.loads(message)
            digests, families = revoked["tokens"], revoked["families"]
            if not all(isinstance(v, str) for v in (*digests, *families)):
                raise ValueError("not strings")
        except (ValueError, KeyError, TypeError):
            log.warning("access tokens: ignored a malformed message on %s", CHANNEL)
            # Unknown what it revoked: start empty rather than keep something it named.
            self._go_live(True)
            return
        self._forget(digests, families)


def announce_revoked(kv: KeyValueStore, *, digests: Iterable[str] = (), families: Iterable[str] = ()) -> None:
    """Tell every process's memo about tokens (by hash) and refresh families revoked in the store."""
    message = {"tokens": list(digests), "families": list(families)}
    try:
        kv.publish(CHANNEL, json.dumps(message).encode())
    except Exception:
        # The other processes keep what they remember for MAX_AGE_SECONDS at most.
        log.warning("could not announce a revoked token to the other processes", exc_info=True)
