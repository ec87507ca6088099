"""Which browser sessions ended before they expired, known inside this process.

Forward-auth asks this for every request it lets through, so the answer must not cost a round trip to
Redis. The set lives in memory and is kept current three ways:

- a session this process ends is added at once (``add``), before ``end`` returns;
- one that another process ends arrives through the shared store's pub/sub channel, within milliseconds;
- the whole set is read again from the database every ``reconcile_seconds`` and whenever the subscription
  was lost and made anew (messages published meanwhile are gone), so a missed message is never missed for
  longer than that.

Until the first read from the database has succeeded, ``contains`` reads it in the caller's request: a
process never answers "not ended" from an empty set it has not filled.
"""

import json
import logging
import threading
import time
from collections.abc import Callable

from authserver.storage.follow import follow
from authserver.storage.kv import KeyValueStore

log = logging.getLogger("nextauth.idp.sessions")

CHANNEL = "idp:sessions-ended"
RECONCILE_SECONDS = 5.0
SUBSCRIBE_WAIT_SECONDS = 2.0

# (sid, expiry as a Unix time) of every session that ended before it expired.
Loader = Callable[[], list[tuple[str, int]]]


class EndedSessions:
    def __init__(
        self,
        load: Loader,
        kv: KeyValueStore,
        *,
        reconcile_seconds: float | None = None,
        clock: Callable[[], float] = time.time,
        listen: bool = True,
    ) -> None:
        self._load = load
        self._kv = kv
        self._reconcile_seconds = RECONCILE_SECONDS if reconcile_seconds is None else reconcile_seconds
        self._clock = clock
        self._listen = listen
        self._ended: dict[str, int] = {}
        self._lock = threading.Lock()
        self._loading = threading.Lock()
        self._loaded_at: float | None = None  # monotonic; None until the database was read once
        self._listener: threading.Thread | None = None
        self._stopped = threading.Event()
        self._subscribed = threading.Event()

    def contains(self, sid: str) -> bool:
        self._start_listening()
        if self._loaded_at is None:
            self.reload()  # raises if the database cannot be read: no answer is better than a wrong one
        elif time.monotonic() - self._loaded_at >= self._reconcile_seconds:
            self._reload_in_passing()
        return sid in self._ended

    def add(self, sid: str, expires: int) -> None:
        """A session this process ended: known here at once, and told to every other process."""
        with self._lock:
            self._ended[sid] = expires
        try:
            self._kv.publish(CHANNEL, json.dumps([sid, expires]).encode())
        except Exception:
            # The database has it; the other processes read it there within reconcile_seconds.
            log.warning("could not announce an ended session to the other processes", exc_info=True)

    def reload(self, *, wait: bool = True) -> bool:
        """Read the set from the database; False if another caller is reading it and ``wait`` is False."""
        if not self._loading.acquire(blocking=wait):
            return False
        try:
            fresh = dict(self._load())
            with self._lock:
                # Sessions added while the query ran are kept: the query may have started before them.
                for sid, expires in self._ended.items():
                    fresh.setdefault(sid, expires)
                # An expired session's token is refused for its age; its mark is no longer needed.
                horizon = self._clock() - 60
                self._ended = {sid: expires for sid, expires in fresh.items() if expires > horizon}
            self._loaded_at = time.monotonic()
        finally:
            self._loading.release()
        return True

    def stop(self) -> None:
        self._stopped.set()

    def _reload_in_passing(self) -> None:
        """One request reads the database again; the others answer from the set as it is meanwhile."""
        try:
            self.reload(wait=False)
        except Exception:
            log.warning("could not read the ended sessions from the database; trying again shortly")
            self._loaded_at = time.monotonic() - self._reconcile_seconds + 1.0

    def _start_listening(self) -> None:
        if self._listener is not None or not self._listen:
            return
        with self._lock:
            if self._listener is not None:
                return
            self._listener = threading.Thread(target=self._run, name="ended-sessions", daemon=True)
        self._listener.start()
        # The first request waits (briefly) until announcements reach this process: one ended meanwhile
        # would otherwise be missed until the next reconciliation.
        self._subscribed.wait(SUBSCRIBE_WAIT_SECONDS)

    def _run(self) -> None:
        follow(
            self._kv,
            CHANNEL,
            stopped=self._stopped,
            on_fresh=self._on_fresh,
            on_message=self._on_message,
            on_lost=self._reload_quietly,
            what="ended sessions",
            log=log,
        )

    def _on_fresh(self) -> None:
        # What was ended before we listened (or while we were not): the database has it.
        self._reload_quietly()
        self._subscribed.set()

    def _on_message(self, message: bytes) -> None:
        try:
            sid, expires = json.loads(message)
            if not isinstance(sid, str) or not isinstance(expires, int):
                raise ValueError("not [sid, expires]")
        except ValueError:
            log.warning("ended sessions: ignored a malformed message on %s", CHANNEL)
            return
        with self._lock:
            self._ended[sid] = expires

    def _reload_quietly(self) -> None:
        try:
            self.reload()
        except Exception:
            log.warning("could not read the ended sessions from the database", exc_info=True)
