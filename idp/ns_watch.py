"""Ends IdP sessions whose ns session has ended: the user logged out in the app, the account was blocked,
the application ended it, or a new login replaced it. Ending the IdP session tells every application that
used it (OIDC back-channel logout, SAML single logout) and forward-auth stops letting it through.

The IdP asks ns about its running sessions in batches, every ``interval`` seconds; a request for a page
asks ns on its own (``/whoami``, the authorization endpoint), so this bounds how long the rest can lag.
"""

import logging

import gevent

from idp.context import IdpServices
from idp.ns_client import NsError
from nextauth_core.hsid import hsid_for

log = logging.getLogger("nextauth.idp.ns_watch")
BATCH = 500  # ns answers up to this many ids per request


class NsSessionWatch:
    def __init__(self, services: IdpServices, interval: float) -> None:
        self._services = services
        self._interval = interval
        self._greenlet: gevent.Greenlet | None = None

    def check_once(self) -> int:
        """One pass over every running session; returns how many were ended."""
        sessions, ended, after = self._services.sessions, 0, ""
        while True:
            page = sessions.running(after=after, limit=BATCH)
            if not page:
                return ended
            by_hsid = {hsid_for(nonce): sid for sid, nonce in page}
            active = self._services.ns.active(list(by_hsid))
            for hsid, sid in by_hsid.items():
                if hsid not in active and sessions.end(sid, by="ns"):
                    ended += 1
            after = page[-1][0]

    def _run(self) -> None:
        while True:
            gevent.sleep(self._interval)
            try:
                ended = self.check_once()
            except NsError as exc:
                log.warning(
                    "cannot ask ns about sessions (%s); trying again in %.0f s", exc.code, self._interval
                )
                continue
            except Exception:
                log.exception("checking sessions with ns failed")
                continue
            if ended:
                log.info("%d sessions ended because ns ended theirs", ended)

    def start(self) -> None:
        if self._interval > 0 and self._greenlet is None:
            self._greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None
