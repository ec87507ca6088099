"""The IdP's admin port: ``/livez``, ``/readyz`` and ``/metrics``, as ns, sfs and mc have theirs.

A listener of its own, never the public one: the port has no authentication, and metrics tell who logs in
how often. Ready means the IdP can log people in: its database answers, and ns answers the session query
the IdP's watch makes (``idp.ns_watch``) with this IdP's API key, so a wrong key shows here as well as an
ns that is down. The 503 names the check and a short reason (``ns: unreachable``), never a URL or key.
"""

from collections.abc import Callable
from wsgiref.types import WSGIApplication

from authserver.admin import NotReady, make_admin_app
from authserver.storage import db
from idp.context import IdpServices
from idp.ns_client import NsError

COMPONENT = "idp"
NS_CHECK_SECONDS = 3.0  # a probe's own timeout is usually 5 s; ns must answer well within it


def readiness_checks(services: IdpServices) -> dict[str, Callable[[], bool]]:
    def database() -> bool:
        if not db.ping(services.engine):
            raise NotReady("the database does not answer")
        return True

    def ns() -> bool:
        try:
            services.ns.check(timeout=NS_CHECK_SECONDS)
        except NsError as exc:
            # The code only (unreachable, unauthenticated, not_found...): short, and no secret in it.
            raise NotReady(f"ns: {exc.code[:64]}") from exc
        return True

    return {"database": database, "ns": ns}


def make_idp_admin_app(services: IdpServices) -> WSGIApplication:
    return make_admin_app(COMPONENT, readiness_checks(services))
