"""OpenID Connect Back-Channel Logout 1.0: when an IdP session ends (logout at the IdP, at a client, or
at ns), every client that logged in with it and registered a ``backchannel_logout_uri`` receives a signed
logout token naming the session (``sid``) and the user, and its refresh tokens for that session stop
working."""

import logging
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING

import gevent
from joserfc import jwt
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from idp.models import BrowserSession, RelyingPartyLogin

if TYPE_CHECKING:
    from idp.oidc.clients import Client
    from idp.oidc.provider import Provider

log = logging.getLogger("nextauth.idp.oidc.backchannel")

EVENT = "http://schemas.openid.net/event/backchannel-logout"
TIMEOUT_SECONDS = 5.0
SENT_KEPT_SECONDS = 60.0


RECORDED_MAX = 10_000  # (session, client) pairs this process remembers having recorded


def record_login(provider: "Provider", sid: str, client_id: str) -> None:
    """Remember that this session logged in to this client, once. A pair this process has recorded (or
    found recorded) before costs nothing: the row outlives the session, so it is still there."""
    pair = (sid, client_id)
    if pair in provider.recorded_logins:
        return
    try:
        with Session(provider.services.engine) as db, db.begin():
            exists = db.scalar(
                select(RelyingPartyLogin.id).where(
                    RelyingPartyLogin.sid == sid,
                    RelyingPartyLogin.protocol == "oidc",
                    RelyingPartyLogin.client_id == client_id,
                )
            )
            if exists is None:
                db.add(RelyingPartyLogin(sid=sid, protocol="oidc", client_id=client_id))
    except IntegrityError:
        pass  # a concurrent authorize request recorded it first
    if len(provider.recorded_logins) >= RECORDED_MAX:
        provider.recorded_logins.clear()
    provider.recorded_logins.add(pair)


class BackchannelLogout:
    """A session-end listener (``SessionManager.on_end``)."""

    def __init__(self, provider: "Provider") -> None:
        self._provider = provider
        self.pending: list[gevent.Greenlet] = []
        # (when, sid, client id, client name, job): kept a minute for single logout to report on.
        self._sent: list[tuple[float, str, str, str, gevent.Greenlet]] = []

    def __call__(self, sid: str) -> None:
        provider = self._provider
        revoked = provider.tokens.revoke_for_session(sid)
        if revoked:
            log.info("session %s… ended: %d refresh tokens revoked", sid[:8], revoked)
        with Session(provider.services.engine) as db:
            row = db.get(BrowserSession, sid)
            user_id = row.user_id if row is not None else None
            client_ids = db.scalars(
                select(RelyingPartyLogin.client_id).where(
                    RelyingPartyLogin.sid == sid, RelyingPartyLogin.protocol == "oidc"
                )
            ).all()
        self.pending = [job for job in self.pending if not job.dead]
        now = time.monotonic()
        self._sent = [entry for entry in self._sent if now - entry[0] < SENT_KEPT_SECONDS]
        for client_id in client_ids:
            client = provider.clients.get(client_id)
            if client is not None and client.backchannel_logout_uri and user_id is not None:
                job = gevent.spawn(self._send, client, sid, user_id)
                self.pending.append(job)
                self._sent.append((now, sid, client.client_id, client.name, job))

    def deliveries(self, sid: str) -> list[tuple[str, str, gevent.Greenlet]]:
        """The logout tokens being sent for this session: (client id, client name, the job whose value
        says whether the client accepted it), for single logout to wait for and report."""
        return [(client_id, name, job) for _, each, client_id, name, job in self._sent if each == sid]

    def logout_token(self, client: "Client", sid: str, user_id: str) -> str:
        key = self._provider.services.keys.active("oidc", client.id_token_signed_response_alg)
        now = int(time.time())
        claims = {
            "iss": self._provider.services.issuer,
            "aud": client.client_id,
            "iat": now,
            "exp": now + 120,
            "jti": secrets.token_urlsafe(16),
            "sub": self._provider.subject(client, user_id),
            "sid": sid,
            "events": {EVENT: {}},
        }
        return jwt.encode({"alg": key.alg, "kid": key.kid, "typ": "logout+jwt"}, claims, key.jose)

    def _send(self, client: "Client", sid: str, user_id: str) -> bool:
        uri = client.backchannel_logout_uri
        assert uri is not None
        body = urllib.parse.urlencode({"logout_token": self.logout_token(client, sid, user_id)}).encode()
        request = urllib.request.Request(  # noqa: S310 - a registered https (or loopback http) URI
            uri,
            data=body,
            method="POST",
            headers={"Content-Type": "application/x-www-form-urlencoded", "Cache-Control": "no-store"},
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
                ok: bool = 200 <= response.status < 300
        except urllib.error.HTTPError as exc:
            log.warning("back-channel logout to %s: HTTP %d", client.client_id, exc.code)
            return False
        except OSError as exc:
            log.warning("back-channel logout to %s failed: %s", client.client_id, exc)
            return False
        log.info("back-channel logout delivered to %s", client.client_id)
        return ok
