"""Browser sessions at the IdP: one per login approved in the app, carried by a signed token in a cookie.

The token is a JWS (alg Ed25519, RFC 9864) that names the session (``sid``) and says who is in it, so
that forward-auth and the Traefik plugin can check it without a database query. Ending a session (logout
at the IdP, a logout or new login at ns) records it in the database and adds it to every IdP process's
in-memory set of ended sessions (``idp.ended_sessions``: at once in this process, through the shared store's
pub/sub in the others, reconciled with the database every few seconds); the plugin fetches the list.

A token whose signature checked out is remembered (``VERIFIED_SECONDS``, never past its ``exp``), so the
requests of one browser cost one signature check per few minutes, not one each; whether the session has
ended is still asked every time, so logging out takes effect at once.
"""

import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwt import JWTClaimsRegistry
from sqlalchemy import Engine, Table, bindparam, delete, exists, select
from sqlalchemy.orm import Session

from authserver.storage import db as database
from authserver.storage.batched_delete import delete_in_batches
from authserver.storage.hot import HotStatement
from authserver.storage.kv import KeyValueStore
from idp.directory import Profile
from idp.ended_sessions import EndedSessions
from idp.keys import KeyRing
from idp.models import BrowserSession, RelyingPartyLogin

log = logging.getLogger("nextauth.idp.sessions")

AUDIENCE = "nextauth-session"
TOKEN_TYPE = "nextauth-session+jwt"  # noqa: S105 - a JWS "typ", not a secret
VERIFIED_SECONDS = 300.0
VERIFIED_MAX = 10_000  # tokens remembered at most; beyond, the memory starts over

# RFC 8176 authentication method references for what the app checked.
SECOND_FACTOR_AMR = {"pin": "pin", "biometric": "bio"}
ACR_MFA = "urn:nextauth:acr:mfa"  # key possession plus PIN or biometric
ACR_POSSESSION = "urn:nextauth:acr:possession"  # key possession only (the server's policy skipped the PIN)


def amr_acr(second_factor: str | None) -> tuple[list[str], str]:
    factor = SECOND_FACTOR_AMR.get(second_factor or "")
    if factor is None:
        return ["swk"], ACR_POSSESSION
    return ["swk", factor, "mfa"], ACR_MFA


def _reason(exc: Exception) -> str:
    """Why a token was refused, for a debug line: the error's name and description, never a value."""
    if isinstance(exc, JoseError):
        return f"{exc.error} ({exc.description})" if exc.description else exc.error
    return exc.__class__.__name__ if isinstance(exc, KeyError) else str(exc)


@dataclass(frozen=True)
class SignedInUser:
    sid: str
    sub: str
    name: str | None
    email: str | None
    email_verified: bool
    groups: tuple[str, ...]
    amr: tuple[str, ...]
    acr: str
    method: str  # qr or push
    auth_time: int
    expires_at: int
    # The same moment to the millisecond, for rules that compare it with the time of a request (ForceAuthn,
    # prompt=login): in whole seconds a login approved just before the request would pass for one after it.
    auth_ms: int | None = None

    @property
    def authenticated_at(self) -> float:
        """When the user approved this session's login, in seconds (to the millisecond where known)."""
        return self.auth_ms / 1000 if self.auth_ms is not None else float(self.auth_time)


# Read at every authorization request and /whoami (whose ns session to ask about): one Core statement
# built once, not an ORM session and a loaded row.
_SESSIONS = cast(Table, BrowserSession.__table__)
_NS_NONCE = HotStatement(select(_SESSIONS.c.ns_nonce).where(_SESSIONS.c.sid == bindparam("sid")))


class SessionManager:
    def __init__(
        self,
        engine: Engine,
        kv: KeyValueStore,
        keys: KeyRing,
        *,
        issuer: str,
        lifetime: timedelta = timedelta(hours=8),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._engine = engine
        self._kv = kv
        self._keys = keys
        self._issuer = issuer
        self.lifetime = lifetime
        self._clock = clock
        self.ended_sessions = EndedSessions(self._ended_pairs, kv, clock=clock)
        self._verified: dict[str, tuple[float, dict[str, Any]]] = {}  # token -> (until, claims)
        self._verified_lock = threading.Lock()
        self.on_end: list[Callable[[str], None]] = []  # called with the sid of every session that ends

    # -- starting and reading ------------------------------------------------------------------------

    def start(self, *, ns_nonce: str, profile: Profile, second_factor: str | None, method: str) -> str:
        """Record a new session for a login ns confirmed; returns its token."""
        clock = self._clock()
        now = int(clock)
        amr, acr = amr_acr(second_factor)
        sid = secrets.token_urlsafe(24)
        expires = now + int(self.lifetime.total_seconds())
        with Session(self._engine) as db, db.begin():
            db.add(
                BrowserSession(
                    sid=sid,
                    ns_nonce=ns_nonce,
                    user_id=profile.user_id,
                    amr=json.dumps(amr),
                    acr=acr,
                    auth_time=datetime.fromtimestamp(now, UTC),
                    expires_at=datetime.fromtimestamp(expires, UTC),
                )
            )
        log.info("session %s… started for %s (%s)", sid[:8], profile.user_id, "+".join(amr))
        return self._token(sid, profile, amr, acr, method, clock, expires)

    def reauthenticate(
        self, sid: str, *, ns_nonce: str, profile: Profile, second_factor: str | None, method: str
    ) -> str | None:
        """The same user approved a new login in the app (OIDC prompt=login, max_age): the session keeps
        its id, so what logged in with it stays tied to it, and gets a new authentication time. None if
        the session has ended meanwhile."""
        clock = self._clock()
        now = int(clock)
        amr, acr = amr_acr(second_factor)
        expires = now + int(self.lifetime.total_seconds())
        with Session(self._engine) as db, db.begin():
            row = db.get(BrowserSession, sid)
            if row is None or row.ended_at is not None or row.user_id != profile.user_id:
                return None
            row.ns_nonce = ns_nonce
            row.amr, row.acr = json.dumps(amr), acr
            row.auth_time = datetime.fromtimestamp(now, UTC)
            row.expires_at = datetime.fromtimestamp(expires, UTC)
        log.info("session %s… re-authenticated (%s)", sid[:8], "+".join(amr))
        return self._token(sid, profile, amr, acr, method, clock, expires)

    def _token(
        self, sid: str, profile: Profile, amr: list[str], acr: str, method: str, clock: float, expires: int
    ) -> str:
        key = self._keys.active("session", "Ed25519")
        now = int(clock)
        claims: dict[str, Any] = {
            "iss": self._issuer,
            "aud": AUDIENCE,
            "sid": sid,
            "sub": profile.user_id,
            "groups": list(profile.groups),
            "amr": amr,
            "acr": acr,
            "method": method,
            "auth_time": now,
            "auth_ms": int(clock * 1000),
            "iat": now,
            "exp": expires,
        }
        if profile.name:
            claims["name"] = profile.name
        if profile.email:
            claims["email"] = profile.email
            claims["email_verified"] = profile.email_verified
        return jwt.encode(
            {"alg": "Ed25519", "kid": key.kid, "typ": TOKEN_TYPE}, claims, key.jose, algorithms=["Ed25519"]
        )

    def verify(self, token: str | None) -> SignedInUser | None:
        """The user of a session token if it is genuine, current and not ended; None otherwise."""
        if not token or len(token) > 8192:
            return None
        claims = self.verify_signature(token)
        if claims is None:
            return None
        if self.is_ended(claims["sid"]):
            log.debug("session token refused: session %s… has ended", claims["sid"][:8])
            return None
        return SignedInUser(
            sid=claims["sid"],
            sub=claims["sub"],
            name=claims.get("name"),
            email=claims.get("email"),
            email_verified=bool(claims.get("email_verified", False)),
            groups=tuple(claims.get("groups", ())),
            amr=tuple(claims.get("amr", ())),
            acr=claims.get("acr", ACR_POSSESSION),
            method=claims.get("method", "qr"),
            auth_time=int(claims["auth_time"]),
            expires_at=int(claims["exp"]),
            auth_ms=int(claims["auth_ms"]) if isinstance(claims.get("auth_ms"), int) else None,
        )

    def remember_until(self, token: str) -> float:
        """Until when an answer made from ``token`` (which ``verify`` just accepted) may be given again
        without verifying it: as long as its checked signature is remembered (``VERIFIED_SECONDS`` from that
        check, never past its ``exp``), not a moment longer; 0 when it is not remembered."""
        with self._verified_lock:
            known = self._verified.get(token)
        return known[0] if known is not None else 0.0

    def still_current(self, sid: str, until: float) -> bool:
        """A session whose token ``verify`` accepted: inside ``until`` (``remember_until``) and not ended."""
        return self._clock() < until and not self.is_ended(sid)

    def verify_signature(self, token: str) -> dict[str, Any] | None:
        """Signature, issuer, audience, type and lifetime; not whether the session has ended since."""
        now = self._clock()
        with self._verified_lock:
            known = self._verified.get(token)
        if known is not None and now < known[0]:
            return dict(known[1])
        claims = self._checked_claims(token)
        if claims is not None:
            until = min(float(claims["exp"]), now + VERIFIED_SECONDS)
            with self._verified_lock:
                if len(self._verified) >= VERIFIED_MAX:
                    self._verified.clear()
                self._verified[token] = (until, claims)
            return dict(claims)
        return None

    def _checked_claims(self, token: str) -> dict[str, Any] | None:
        try:
            decoded = jwt.decode(token, self._key_for, algorithms=["Ed25519"])
        except (JoseError, ValueError, KeyError) as exc:
            # Debug only: anyone can send tokens, and a line each would let them fill the log.
            log.debug("session token refused: %s", _reason(exc))
            return None
        if decoded.header.get("typ") != TOKEN_TYPE:
            log.debug("session token refused: typ %.40r", decoded.header.get("typ"))  # the sender's text: cut
            return None
        registry = JWTClaimsRegistry(
            now=int(self._clock()),
            iss={"essential": True, "value": self._issuer},
            aud={"essential": True, "value": AUDIENCE},
            sid={"essential": True},
            sub={"essential": True},
            exp={"essential": True},
            auth_time={"essential": True},
        )
        try:
            registry.validate(decoded.claims)
        except JoseError as exc:
            log.debug("session token refused: %s", _reason(exc))
            return None
        return dict(decoded.claims)

    def _key_for(self, token: Any) -> Any:
        kid = token.headers().get("kid")
        key = self._keys.by_kid(kid) if isinstance(kid, str) else None
        if key is None or key.purpose != "session":
            raise ValueError("unknown session key")
        return key.jose

    # -- ending ----------------------------------------------------------------------------------------

    def is_ended(self, sid: str) -> bool:
        return self.ended_sessions.contains(sid)

    def end(self, sid: str, *, by: str) -> bool:
        """End one session; True if it was still running. Listeners (back-channel logout, SAML single
        logout) are told."""
        now = datetime.now(UTC)
        with Session(self._engine) as db, db.begin():
            row = db.get(BrowserSession, sid)
            if row is None or row.ended_at is not None:
                return False
            row.ended_at, row.ended_by = now, by
            expires_at = row.expires_at
        self.ended_sessions.add(sid, int(expires_at.timestamp()))
        log.info("session %s… ended by %s", sid[:8], by)
        for listener in self.on_end:
            try:
                listener(sid)
            except Exception:
                log.exception("a session-end listener failed")
        return True

    def ended(self) -> list[dict[str, Any]]:
        """Sessions ended before they expired: the revocation list the Traefik plugin fetches."""
        return [{"sid": sid, "exp": expires} for sid, expires in self._ended_pairs()]

    def _ended_pairs(self) -> list[tuple[str, int]]:
        now = datetime.now(UTC)
        with Session(self._engine) as db:
            rows = db.execute(
                select(BrowserSession.sid, BrowserSession.expires_at).where(
                    BrowserSession.ended_at.is_not(None), BrowserSession.expires_at > now
                )
            ).all()
        return [(sid, int(expires.timestamp())) for sid, expires in rows]

    def ns_nonce(self, sid: str) -> str | None:
        row = database.read_first(self._engine, _NS_NONCE, {"sid": sid})
        return row.ns_nonce if row is not None else None

    def running(self, *, after: str = "", limit: int = 500) -> list[tuple[str, str]]:
        """(sid, ns nonce) of running sessions, a page at a time in sid order (``after`` the last sid)."""
        now = datetime.now(UTC)
        with Session(self._engine) as db:
            rows = db.execute(
                select(BrowserSession.sid, BrowserSession.ns_nonce)
                .where(
                    BrowserSession.ended_at.is_(None),
                    BrowserSession.expires_at > now,
                    BrowserSession.sid > after,
                )
                .order_by(BrowserSession.sid)
                .limit(limit)
            ).all()
        return [(sid, nonce) for sid, nonce in rows]

    def purge_expired(self) -> int:
        """Forget sessions that expired more than a day ago, with the record of what they logged in to."""
        horizon = datetime.now(UTC) - timedelta(days=1)

        def their_logins(db: Session, sids: list[Any]) -> None:
            gone = ~exists().where(BrowserSession.sid == RelyingPartyLogin.sid)
            db.execute(delete(RelyingPartyLogin).where(RelyingPartyLogin.sid.in_(sids), gone))

        expired = (BrowserSession.expires_at < horizon,)
        return delete_in_batches(self._engine, BrowserSession.sid, expired, dependents=their_logins)
