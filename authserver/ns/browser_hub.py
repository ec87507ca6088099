"""One subscription per process for every login page it holds: events for all sessions arrive on one
channel and go to the pages registered for their hsid.

A connection to Redis per waiting page would run Redis out of clients long before ns runs out of sockets;
one subscription is enough because an event names its hsid. When the subscription breaks (Redis restarts,
the network drops it), the hub subscribes again with growing pauses and then lets every open page catch up
on what it may have missed (a page that missed ``LOGIN`` would otherwise wait for ever).
"""

import logging
from collections.abc import Callable
from typing import Protocol

import gevent
from prometheus_client import Counter

from authserver.storage.kv import KeyValueStore, Subscription

log = logging.getLogger("nextauth.ns.browser")

CHANNEL = "browser"
_POLL_SECONDS = 5.0  # how soon a stop or a silently reconnected subscription is noticed
CATCH_UP_SECONDS = 3.0  # at a stop, for every open page together

RESUBSCRIBES = Counter("nextauth_ns_browser_resubscribes_total", "Browser event subscriptions re-established")


class Page(Protocol):
    def deliver(self, event: str) -> None: ...
    def catch_up(self) -> None: ...
    def close(self) -> None: ...


def encode(hsid: str, event: str) -> bytes:
    return f"{hsid} {event}".encode("ascii")


class BrowserHub:
    def __init__(
        self,
        kv: KeyValueStore,
        *,
        backoff_start: float = 0.2,
        backoff_cap: float = 5.0,
        sleep: Callable[[float], None] = gevent.sleep,
    ) -> None:
        self._kv = kv
        self._pages: dict[str, set[Page]] = {}
        self._backoff = (backoff_start, backoff_cap)
        self._sleep = sleep
        self._running = False
        self._greenlet: gevent.Greenlet | None = None
        self._subscription: Subscription | None = None
        self.subscribed = gevent.event.Event()

    def add(self, hsid: str, page: Page) -> None:
        self._pages.setdefault(hsid, set()).add(page)

    def remove(self, hsid: str, page: Page) -> None:
        pages = self._pages.get(hsid)
        if pages is not None:
            pages.discard(page)
            if not pages:
                del self._pages[hsid]

    @property
    def page_count(self) -> int:
        return sum(len(pages) for pages in self._pages.values())

    def start(self) -> None:
        if self._greenlet is None:
            self._running = True
            self._greenlet = gevent.spawn(self._run)

    def stop(self, timeout: float | None = None) -> None:
        """Stop listening; every open page is closed as "service restart" and reconnects elsewhere.

        Each page first catches up: a login that another process finished just before this one stopped
        may have its event still on the way here (in Redis' answer not yet read, or read and not yet
        sent), and the page would otherwise reconnect only after the login's code was spent."""
        pages = [page for hsid_pages in self._pages.values() for page in hsid_pages]
        gevent.joinall([gevent.spawn(page.catch_up) for page in pages], timeout=CATCH_UP_SECONDS)
        for page in pages:
            page.close()
        self._running = False
        if self._subscription is not None:
            self._subscription.close()
        if self._greenlet is not None:
            self._greenlet.kill(timeout=timeout or 2)
            self._greenlet = None

    def _run(self) -> None:
        delay = self._backoff[0]
        lost = False
        while self._running:
            try:
                subscription = self._kv.subscribe(CHANNEL)
            except Exception as exc:  # whatever the client raises, the pages must not stay deaf
                log.warning("browser events: cannot subscribe (%s); next try in %.1f s", _short(exc), delay)
                self._sleep(delay)
                delay = min(delay * 2, self._backoff[1])
                lost = True
                continue
            self._subscription = subscription
            self.subscribed.set()
            if lost:
                log.info("browser events: subscribed again; %d open pages catch up", self.page_count)
                RESUBSCRIBES.inc()
                self._catch_up()
            delay, lost = self._backoff[0], False
            try:
                self._listen(subscription)
            except Exception as exc:
                if self._running:
                    log.warning("browser events: subscription lost (%s)", _short(exc))
            finally:
                self.subscribed.clear()
                subscription.close()
                self._subscription = None
            if self._running:
                lost = True
                self._sleep(delay)

    def _listen(self, subscription: Subscription) -> None:
        reconnects = subscription.reconnects
        while self._running and not subscription.closed:
            message = subscription.get(timeout=_POLL_SECONDS)
            if subscription.reconnects != reconnects:
                reconnects = subscription.reconnects
                log.info("browser events: the store reconnected; %d open pages catch up", self.page_count)
                RESUBSCRIBES.inc()
                self._catch_up()
            if message is not None:
                self._dispatch(message)

    def _dispatch(self, message: bytes) -> None:
        hsid, _, event = message.decode("ascii", "replace").partition(" ")
        for page in list(self._pages.get(hsid, ())):
            # Each page writes in its own greenlet: one slow client must not hold up the others.
            gevent.spawn(page.deliver, event)

    def _catch_up(self) -> None:
        for pages in list(self._pages.values()):
            for page in list(pages):
                gevent.spawn(page.catch_up)


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:200]
