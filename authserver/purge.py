"""A periodic purge beside a component's listeners: rows that anyone could create and nobody finished or
used (SFS registrations never completed, MC mailboxes never used) are forgotten after a documented time,
so that self-made device keys cannot make a database grow without bound."""

import logging
from collections.abc import Callable

import gevent
from prometheus_client import Counter

log = logging.getLogger("nextauth.purge")

INTERVAL_SECONDS = 3600.0
PURGED = Counter("nextauth_purged_total", "Rows forgotten by the periodic purges", ["component", "what"])


class PeriodicPurge:
    """Runs ``purge`` (which returns how many rows it forgot) every ``interval`` seconds, first at start.

    Starts and stops like a listener, so a component runs it with its servers; a failure is logged and
    tried again at the next round, never ending the process."""

    def __init__(
        self, component: str, what: str, purge: Callable[[], int], interval: float = INTERVAL_SECONDS
    ) -> None:
        self._component = component
        self._what = what
        self._purge = purge
        self._interval = interval
        self._greenlet: gevent.Greenlet | None = None

    def run_once(self) -> int:
        count = self._purge()
        if count:
            PURGED.labels(self._component, self._what).inc(count)
            log.info("%s: forgot %d %s", self._component, count, self._what)
        return count

    def _run(self) -> None:
        while True:
            try:
                self.run_once()
            except Exception:
                log.exception("%s: purging %s failed; trying again later", self._component, self._what)
            gevent.sleep(self._interval)

    def start(self) -> None:
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._run)

    def stop(self, timeout: float | None = None) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None
