"""Users' consents to OIDC clients: list them and revoke them, for the CLI (``nextauth oidc-consent``) and
the IdP's admin API (``idp.oidc.consent_api``). Revoking a consent also revokes the refresh tokens that
client holds for that user (and, where the shared store is at hand, the access tokens issued with them),
so the client must ask the user again."""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, delete, select, update
from sqlalchemy.orm import Session

from authserver.storage.db import rowcount
from authserver.storage.kv import KeyValueStore
from idp.models import Consent, OidcClient, RefreshToken
from idp.oidc.token_memo import AccessTokenMemo
from idp.oidc.tokens import mark_families_revoked

MAX_LISTED = 1000
MAX_ID_LENGTH = 255


def _checked(value: str | None, what: str) -> str | None:
    if value is not None and (not value or len(value) > MAX_ID_LENGTH or not value.isprintable()):
        raise ValueError(f"{what}: 1 to {MAX_ID_LENGTH} printable characters")
    return value


def list_consents(
    engine: Engine, *, user_id: str | None = None, client_id: str | None = None
) -> list[dict[str, Any]]:
    """Consents, optionally of one user and/or one client, oldest first (at most ``MAX_LISTED``)."""
    query = select(Consent, OidcClient.name).outerjoin(OidcClient, OidcClient.client_id == Consent.client_id)
    if _checked(user_id, "user") is not None:
        query = query.where(Consent.user_id == user_id)
    if _checked(client_id, "client") is not None:
        query = query.where(Consent.client_id == client_id)
    with Session(engine) as db:
        rows = db.execute(query.order_by(Consent.granted_at, Consent.id).limit(MAX_LISTED)).all()
    return [
        {
            "user_id": consent.user_id,
            "client_id": consent.client_id,
            "client_name": name,
            "scope": consent.scope,
            "granted_at": consent.granted_at.isoformat(),
        }
        for consent, name in rows
    ]


def revoke_consent(
    engine: Engine,
    user_id: str,
    client_id: str,
    kv: KeyValueStore | None,
    *,
    access_token_seconds: int = 900,
    memo: AccessTokenMemo | None = None,
) -> dict[str, Any]:
    """Forget the consent and end the client's refresh tokens for the user. With ``kv`` (the IdP's shared
    store) the access tokens of those refresh families stop working at once too."""
    _checked(user_id, "user")
    _checked(client_id, "client")
    with Session(engine) as db, db.begin():
        removed = rowcount(
            db.execute(delete(Consent).where(Consent.user_id == user_id, Consent.client_id == client_id))
        )
        families = db.scalars(
            select(RefreshToken.family)
            .where(
                RefreshToken.user_id == user_id,
                RefreshToken.client_id == client_id,
                RefreshToken.revoked_at.is_(None),
            )
            .distinct()
        ).all()
        revoked = 0
        if families:
            revoked = rowcount(
                db.execute(
                    update(RefreshToken)
                    .where(RefreshToken.family.in_(families), RefreshToken.revoked_at.is_(None))
                    .values(revoked_at=datetime.now(UTC))
                )
            )
    if kv is not None:
        # As TokenStore.revoke_family marks them, and told to every process that remembers access tokens
        # (this one's ``memo`` at once, when the caller is the IdP).
        mark_families_revoked(kv, memo, families, access_token_seconds)
    return {
        "user_id": user_id,
        "client_id": client_id,
        "consent_revoked": removed > 0,
        "refresh_tokens_revoked": revoked,
        "access_tokens_revoked": kv is not None,
    }
