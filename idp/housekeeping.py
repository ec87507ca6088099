"""Forgets what has expired: IdP sessions (with the record of the applications they logged in to) and
OIDC refresh tokens, a day after they expired. Codes and access tokens expire in the shared store itself."""

import logging

import gevent

from idp.context import IdpServices
from idp.oidc.tokens import TokenStore

log = logging.getLogger("nextauth.idp.housekeeping")
INTERVAL_SECONDS = 3600.0


def purge(services: IdpServices) -> tuple[int, int]:
    """(sessions, refresh tokens) forgotten."""
    return services.sessions.purge_expired(), TokenStore(services.engine, services.kv).purge_expired()


class Housekeeping:
    def __init__(self, services: IdpServices, interval: float = INTERVAL_SECONDS) -> None:
        self._services = services
        self._interval = interval
        self._greenlet: gevent.Greenlet | None = None

    def _run(self) -> None:
        while True:
            try:
                sessions, tokens = purge(self._services)
            except Exception:
                log.exception("forgetting expired sessions and tokens failed; trying again later")
            else:
                if sessions or tokens:
                    log.info("forgot %d expired sessions and %d expired refresh tokens", sessions, tokens)
            gevent.sleep(self._interval)

    def start(self) -> None:
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None
