"""Forgets what has expired: IdP sessions (with the record of the applications they logged in to) and
OIDC refresh tokens, a day after they expired. Codes and access tokens expire in the shared store itself.

Beside it, SAML SP metadata registered by URL is fetched again when due (``idp.saml.metadata_fetch``)."""

import logging
import os
from datetime import timedelta

import gevent

from idp.context import IdpServices
from idp.oidc.tokens import TokenStore
from idp.saml import metadata_fetch
from idp.saml.config import load_settings as saml_settings
from idp.saml.registry import Registry

log = logging.getLogger("nextauth.idp.housekeeping")
INTERVAL_SECONDS = 3600.0
METADATA_CHECK_SECONDS = 300.0  # how often to look for SP metadata due for a refresh


def purge(services: IdpServices) -> tuple[int, int]:
    """(sessions, refresh tokens) forgotten; and the IdP's audit events past their retention."""
    services.trail().purge(timedelta(days=services.audit_retention_days))
    return services.sessions.purge_expired(), TokenStore(services.engine, services.kv).purge_expired()


def refresh_metadata(services: IdpServices, default_seconds: float | None = None) -> tuple[int, int]:
    """(refreshed, failed) SAML SPs whose metadata comes from a URL."""
    if default_seconds is None:
        default_seconds = saml_settings(os.environ).metadata_refresh_seconds
    return metadata_fetch.refresh_due(Registry(services.engine), default_seconds)


class Housekeeping:
    def __init__(
        self,
        services: IdpServices,
        interval: float = INTERVAL_SECONDS,
        metadata_interval: float = METADATA_CHECK_SECONDS,
    ) -> None:
        self._services = services
        self._interval = interval
        self._metadata_interval = metadata_interval
        self._greenlet: gevent.Greenlet | None = None
        self._metadata: gevent.Greenlet | None = None

    def _refresh(self) -> None:
        while True:
            try:
                refreshed, failed = refresh_metadata(self._services)
            except Exception:
                log.exception("refreshing SAML SP metadata failed; trying again later")
            else:
                if refreshed or failed:
                    log.info("SAML SP metadata: %d refreshed, %d kept (refresh failed)", refreshed, failed)
            gevent.sleep(self._metadata_interval)

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
        if self._metadata is None:
            self._metadata = gevent.spawn(self._refresh)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None
        if self._metadata is not None:
            self._metadata.kill(block=False)
            self._metadata = None
