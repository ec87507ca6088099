"""What the OIDC provider hands out and must recognise again.

- Authorization codes: in the shared store under the hash of the code, taken (read and deleted in one step)
  at the token endpoint, so each works once; a code presented again revokes what it was exchanged for.
- Access tokens: opaque, in the shared store under their hash with the token's lifetime, so userinfo and
  introspection need no database query and revocation is a delete.
- Refresh tokens: in the database under their hash, rotated on every use; a used one presented again
  revokes its whole family (it has leaked, RFC 9700 4.14.2).
- Revoking a family (revocation, reuse, a code used twice) also marks it revoked in the shared store for as
  long as its access tokens could live, so they stop working at once (RFC 7009 2.1).
"""

import hashlib
import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from authlib.oauth2.rfc6749 import AuthorizationCodeMixin, TokenMixin
from sqlalchemy import Engine, bindparam, insert, select, update
from sqlalchemy.orm import Session

from authserver.storage.batched_delete import delete_in_batches
from authserver.storage.conditional_take import ThenSet
from authserver.storage.db import rowcount
from authserver.storage.group_insert import GroupInsert
from authserver.storage.kv import KeyValueStore
from idp.models import RefreshToken
from idp.oidc.token_memo import AccessTokenMemo, announce_revoked

CODE_PREFIX = "oidc:code:"
USED_CODE_PREFIX = "oidc:code-used:"
ACCESS_PREFIX = "oidc:at:"
REVOKED_FAMILY_PREFIX = "oidc:family-revoked:"
USED_CODE_SECONDS = 600  # a used code's exchange is remembered this long, to revoke it if the code comes back
MAX_ACCESS_TOKEN_LENGTH = 4096

_INSERT_REFRESH = insert(RefreshToken)
_SELECT_REFRESH = select(
    RefreshToken.token_hash,
    RefreshToken.family,
    RefreshToken.claims_json,
    RefreshToken.expires_at,
    RefreshToken.used_at,
    RefreshToken.revoked_at,
).where(RefreshToken.token_hash == bindparam("hash"))
_USE_REFRESH = (
    update(RefreshToken)
    .where(
        RefreshToken.token_hash == bindparam("hash"),
        RefreshToken.used_at.is_(None),
        RefreshToken.revoked_at.is_(None),
    )
    .values(used_at=bindparam("now"))
)


def token_hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def random_token(*_args: Any, **_kwargs: Any) -> str:
    """An opaque access token or code: 256 random bits, base64url. (Authlib's default draws one character
    at a time from SystemRandom, about 0.4 ms per token.)"""
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Grant:
    """Who logged in and how, carried from the authorize request to every token issued for it."""

    client_id: str
    user_id: str
    scope: str
    sid: str | None = None  # the IdP session; None for client credentials and offline access
    auth_time: int | None = None
    acr: str | None = None
    amr: tuple[str, ...] = ()
    # Client credentials: the client acts for itself. No user at all (``user_id`` is empty), so a client
    # whose id equals a user id can never pass for that user.
    for_client: bool = False
    # DPoP (RFC 9449): the thumbprint of the key a token is bound to; on a code, the authorize request's
    # dpop_jkt, which the token request's proof must match.
    dpop_jkt: str | None = None

    def get_user_id(self) -> str:
        return self.user_id

    def to_json(self) -> dict[str, Any]:
        # Spelled out: dataclasses.asdict deep-copies field by field and was a tenth of a code exchange.
        return {
            "client_id": self.client_id,
            "user_id": self.user_id,
            "scope": self.scope,
            "sid": self.sid,
            "auth_time": self.auth_time,
            "acr": self.acr,
            "amr": list(self.amr),
            "for_client": self.for_client,
            "dpop_jkt": self.dpop_jkt,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Grant":
        if "for_client" not in data and data.get("auth_time") is None:
            # Stored before the flag existed: only client-credentials grants lack an authentication time.
            data = {**data, "user_id": "", "for_client": True}
        return cls(**{**data, "amr": tuple(data.get("amr") or ())})


@dataclass(frozen=True)
class AuthorizationCode(AuthorizationCodeMixin):  # type: ignore[misc]
    grant: Grant
    redirect_uri: str
    nonce: str | None
    code_challenge: str
    code_challenge_method: str
    code_hash: str = ""

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.grant.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int | None:
        return self.grant.auth_time

    def get_acr(self) -> str | None:
        return self.grant.acr

    def get_amr(self) -> list[str] | None:
        return list(self.grant.amr) or None


class _GrantedToken(TokenMixin):  # type: ignore[misc]
    """What access and refresh tokens answer alike: they carry a grant."""

    grant: Grant

    @property
    def scope(self) -> str:
        return self.grant.scope

    def check_client(self, client: Any) -> bool:
        return bool(client.get_client_id() == self.grant.client_id)

    def get_scope(self) -> str:
        return self.grant.scope


@dataclass(frozen=True)
class AccessToken(_GrantedToken):
    grant: Grant
    issued_at: int
    expires_at: int
    refresh_family: str | None = None
    revoked: bool = field(default=False, compare=False)

    def get_expires_in(self) -> int:
        return self.expires_at - self.issued_at

    def is_expired(self) -> bool:
        return time.time() >= self.expires_at

    def is_revoked(self) -> bool:
        return self.revoked

    # Filled in by the provider, which knows the directory and the client registry.
    def get_user(self) -> Any:
        return self.grant

    def get_client(self) -> Any:
        return self.grant.client_id


@dataclass(frozen=True)
class StoredRefreshToken(_GrantedToken):
    token_hash: str
    family: str
    grant: Grant
    expires_at: datetime
    used_at: datetime | None
    revoked_at: datetime | None

    def get_expires_in(self) -> int:
        return max(0, int((self.expires_at - datetime.now(UTC)).total_seconds()))

    def is_expired(self) -> bool:
        return datetime.now(UTC) >= self.expires_at

    def is_revoked(self) -> bool:
        return self.revoked_at is not None or self.used_at is not None

    def get_user(self) -> Any:
        return self.grant


@dataclass(frozen=True)
class Exchange:
    """An access token (by its hash) and the refresh token family issued for a code, stored as the code is
    taken (``TokenStore.take_code_if``)."""

    access_digest: str
    issued_at: int
    expires_in: int
    family: str | None

    def then_set(self, code_digest: str) -> list[ThenSet]:
        # The access token's record holds the code's record whole, as the store took it: its grant is the
        # token's (the conditions of the take made its client the requesting one).
        times = {"iat": self.issued_at, "exp": self.issued_at + self.expires_in, "family": self.family}
        head = json.dumps(times)[:-1].encode() + b', "code": '
        used = {"access": self.access_digest, "family": self.family}
        return [
            ThenSet(ACCESS_PREFIX + self.access_digest, (head, b"}"), ttl=self.expires_in),
            ThenSet(USED_CODE_PREFIX + code_digest, (json.dumps(used).encode(),), ttl=USED_CODE_SECONDS),
        ]


class TokenStore:
    def __init__(
        self,
        engine: Engine,
        kv: KeyValueStore,
        *,
        code_seconds: int = 60,
        refresh_lifetime: timedelta = timedelta(days=30),
        access_token_seconds: int = 900,
    ) -> None:
        self._engine = engine
        self._kv = kv
        self.code_seconds = code_seconds
        self.refresh_lifetime = refresh_lifetime
        self.access_token_seconds = access_token_seconds
        self.memo = AccessTokenMemo(kv)
        # A burst of code exchanges commits its refresh tokens together, each answered once its row is in.
        self._refresh_inserts = GroupInsert(engine, _INSERT_REFRESH)

    def stop(self) -> None:
        self.memo.stop()

    # -- codes -----------------------------------------------------------------------------------------

    def save_code(self, code: str, authorization_code: AuthorizationCode) -> None:
        record = {
            "grant": authorization_code.grant.to_json(),
            "redirect_uri": authorization_code.redirect_uri,
            "nonce": authorization_code.nonce,
            "code_challenge": authorization_code.code_challenge,
            "code_challenge_method": authorization_code.code_challenge_method,
        }
        self._kv.set(CODE_PREFIX + token_hash(code), json.dumps(record).encode(), ttl=self.code_seconds)

    def take_code(self, code: str) -> AuthorizationCode | None:
        """The code's record, removed so that it works once. None if unknown, expired or already used."""
        digest = token_hash(code)
        return _authorization_code(self._kv.take(CODE_PREFIX + digest), digest)

    def take_code_if(
        self,
        code: str,
        *,
        client_id: str,
        redirect_uri: str,
        code_challenge: str,
        allowed_scope: str,
        exchange: Exchange | None = None,
    ) -> AuthorizationCode | None:
        """The code's record, taken (used up), when it was issued to ``client_id`` for ``redirect_uri`` with
        this S256 ``code_challenge``, is not bound to a DPoP key, and its scope is within ``allowed_scope``;
        otherwise None, and the code (if any) is left in place, decided in one step with the store.

        With ``exchange``, what the code is exchanged for is stored in the same step: the access token, its
        grant the code's own (``save_access_token`` with ``exchanged_code``, without a round trip of its
        own)."""
        digest = token_hash(code)
        raw, taken = self._kv.take_if(
            CODE_PREFIX + digest,
            {
                "grant.client_id": client_id,
                "redirect_uri": redirect_uri,
                "code_challenge_method": "S256",
                "code_challenge": code_challenge,
                "grant.dpop_jkt": None,
            },
            {"grant.scope": allowed_scope},
            exchange.then_set(digest) if exchange is not None else (),
        )
        return _authorization_code(raw, digest) if taken else None

    def peek_code(self, code: str) -> AuthorizationCode | None:
        """The code's record, left in place (to look at: nothing that redeems a code may rely on it)."""
        digest = token_hash(code)
        return _authorization_code(self._kv.get(CODE_PREFIX + digest), digest)

    def revoke_exchange_of(self, code: str) -> bool:
        """A used code came back: revoke the tokens it produced (RFC 6749 4.1.2). True if there were any."""
        raw = self._kv.take(USED_CODE_PREFIX + token_hash(code))
        if raw is None:
            return False
        record = json.loads(raw)
        self._kv.delete(ACCESS_PREFIX + record["access"])
        self.memo.announce(digests=[record["access"]])
        if record.get("family"):
            self.revoke_family(record["family"])
        return True

    # -- access tokens -------------------------------------------------------------------------------

    def save_access_token(
        self,
        access_token: str,
        grant: Grant,
        expires_in: int,
        refresh_family: str | None,
        *,
        exchanged_code: str | None = None,
    ) -> AccessToken:
        """Keep an access token. With ``exchanged_code`` (the hash of the code it was issued for), also what
        the code was exchanged for, kept a while so a second use of the code can revoke it; in the same
        round trip."""
        now = int(time.time())
        token = AccessToken(grant, now, now + expires_in, refresh_family)
        digest = token_hash(access_token)
        record = {"grant": grant.to_json(), "iat": now, "exp": now + expires_in, "family": refresh_family}
        batch = self._kv.batch()
        batch.set(ACCESS_PREFIX + digest, json.dumps(record).encode(), ttl=expires_in)
        if exchanged_code is not None:
            exchange = {"access": digest, "family": refresh_family}
            batch.set(USED_CODE_PREFIX + exchanged_code, json.dumps(exchange).encode(), ttl=USED_CODE_SECONDS)
        batch.execute()
        return token

    def access_token(self, access_token: str | None) -> AccessToken | None:
        # Opaque tokens are short; JWT access tokens (RFC 9068) with an RS256 signature are not.
        if not access_token or len(access_token) > MAX_ACCESS_TOKEN_LENGTH:
            return None
        digest = token_hash(access_token)
        known, generation = self.memo.get(digest)
        if known is not None:
            return known
        raw = self._kv.get(ACCESS_PREFIX + digest)
        if raw is None:
            return None
        record = json.loads(raw)
        family = record["family"]
        if family and self._kv.get(REVOKED_FAMILY_PREFIX + family) is not None:
            return None
        # Saved by save_access_token, or with the code it was exchanged for (Exchange): the code's grant.
        grant = record["grant"] if "grant" in record else record["code"]["grant"]
        token = AccessToken(Grant.from_json(grant), record["iat"], record["exp"], family)
        self.memo.put(digest, token, generation)
        return token

    def revoke_access_token(self, access_token: str) -> bool:
        digest = token_hash(access_token)
        deleted = self._kv.delete(ACCESS_PREFIX + digest)
        self.memo.announce(digests=[digest])
        return deleted

    # -- refresh tokens ------------------------------------------------------------------------------

    # Issuing, reading and using a refresh token are on the token endpoint's path: Core statements (the
    # ORM's unit of work cost about three times the CPU); new ones are committed in groups (GroupInsert).

    def issue_refresh_token(self, grant: Grant, family: str | None = None) -> tuple[str, str]:
        """A new refresh token (returned once) in ``family`` (a new family if None); returns it and the
        family."""
        value = secrets.token_urlsafe(32)
        family = family or secrets.token_hex(16)
        # offline_access outlives the browser session; other refresh tokens end with it.
        sid = None if "offline_access" in grant.scope.split() else grant.sid
        now = datetime.now(UTC)
        self._refresh_inserts.insert(
            {
                "token_hash": token_hash(value),
                "family": family,
                "client_id": grant.client_id,
                "user_id": grant.user_id,
                "sid": sid,
                "scope": grant.scope,
                "claims_json": json.dumps(grant.to_json()),
                "created_at": now,
                "expires_at": now + self.refresh_lifetime,
                "used_at": None,
                "revoked_at": None,
            }
        )
        return value, family

    def refresh_token(self, value: str | None) -> StoredRefreshToken | None:
        if not value or len(value) > 512:
            return None
        with self._engine.connect() as connection:
            row = connection.execute(_SELECT_REFRESH, {"hash": token_hash(value)}).first()
        if row is None:
            return None
        grant = Grant.from_json(json.loads(row.claims_json))
        return StoredRefreshToken(
            row.token_hash, row.family, grant, row.expires_at, row.used_at, row.revoked_at
        )

    def use_refresh_token(self, stored: StoredRefreshToken) -> bool:
        """Mark a refresh token used, atomically: False if another request used it first."""
        with self._engine.begin() as connection:
            result = connection.execute(_USE_REFRESH, {"hash": stored.token_hash, "now": datetime.now(UTC)})
            return bool(rowcount(result) == 1)

    def revoke_family(self, family: str) -> int:
        """The family's refresh tokens and the access tokens issued with them."""
        self._mark_family_revoked(family)
        with Session(self._engine) as db, db.begin():
            result = db.execute(
                update(RefreshToken)
                .where(RefreshToken.family == family, RefreshToken.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC))
            )
            return int(rowcount(result))

    def _mark_family_revoked(self, family: str) -> None:
        mark_families_revoked(self._kv, self.memo, [family], self.access_token_seconds)

    def revoke_for_session(self, sid: str) -> int:
        """Refresh tokens bound to a browser session that has ended (not offline_access ones)."""
        with Session(self._engine) as db, db.begin():
            families = db.scalars(select(RefreshToken.family).where(RefreshToken.sid == sid).distinct()).all()
            if not families:
                return 0
            mark_families_revoked(self._kv, self.memo, families, self.access_token_seconds)
            result = db.execute(
                update(RefreshToken)
                .where(RefreshToken.family.in_(families), RefreshToken.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC))
            )
            return int(rowcount(result))

    def purge_expired(self) -> int:
        """Forget refresh tokens that expired more than a day ago."""
        horizon = datetime.now(UTC) - timedelta(days=1)
        return delete_in_batches(self._engine, RefreshToken.token_hash, (RefreshToken.expires_at < horizon,))


def _authorization_code(raw: bytes | None, digest: str) -> AuthorizationCode | None:
    if raw is None:
        return None
    record = json.loads(raw)
    return AuthorizationCode(
        grant=Grant.from_json(record["grant"]),
        redirect_uri=record["redirect_uri"],
        nonce=record["nonce"],
        code_challenge=record["code_challenge"],
        code_challenge_method=record["code_challenge_method"],
        code_hash=digest,
    )


def mark_families_revoked(
    kv: KeyValueStore, memo: AccessTokenMemo | None, families: Sequence[str], access_token_seconds: int
) -> None:
    """Mark refresh families revoked in the store, so their access tokens stop working at once: for as long
    as a family's newest access token can live, a minute more for clock steps. Announced to every process
    that remembers access tokens (``idp.oidc.token_memo``)."""
    for family in families:
        kv.set(REVOKED_FAMILY_PREFIX + family, b"1", ttl=access_token_seconds + 60)
    if not families:
        return
    if memo is not None:
        memo.announce(families=families)
    else:
        announce_revoked(kv, families=families)
