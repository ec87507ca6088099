"""Tables of the IdP: its user directory, signing keys, browser sessions and the applications that used them
(OIDC clients and SAML service providers), refresh tokens and consents.

The IdP is an application of ns: ns knows who logged in (a user id); the IdP adds what web applications
ask for (name, e-mail, groups) and what the standards need it to remember.
"""

from datetime import datetime

from sqlalchemy import Boolean, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import Mapped, mapped_column

from authserver.storage.models import Base, UTCDateTime, utcnow

# SAML metadata can exceed MySQL's 64 KiB TEXT.
LONG_TEXT = Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")


class DirectoryUser(Base):
    """What the IdP tells applications about a user id that ns logs in."""

    __tablename__ = "idp_users"
    user_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    email_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    groups: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of group names
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SigningKey(Base):
    """A key the IdP signs with: browser session tokens (EdDSA), ID tokens (ES256, RS256), SAML (RS256).

    Retired keys stay published until everything they signed has expired (``retired_at`` + the longest
    lifetime), so rotation never breaks a token already handed out."""

    __tablename__ = "idp_signing_keys"
    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(16))  # session, oidc, saml
    alg: Mapped[str] = mapped_column(String(16))  # EdDSA, ES256, RS256
    private_key: Mapped[bytes] = mapped_column(LargeBinary)  # PKCS#8 DER
    certificate: Mapped[str | None] = mapped_column(Text, nullable=True)  # PEM, for SAML
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class BrowserSession(Base):
    """One login of a browser at the IdP (its ``sid``), tied to the ns session it came from."""

    __tablename__ = "idp_sessions"
    sid: Mapped[str] = mapped_column(String(64), primary_key=True)
    ns_nonce: Mapped[str] = mapped_column(String(64), index=True)
    user_id: Mapped[str] = mapped_column(String(255), index=True)
    amr: Mapped[str] = mapped_column(String(100))  # JSON list, e.g. ["qr", "pin"]
    acr: Mapped[str] = mapped_column(String(100))
    auth_time: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    ended_by: Mapped[str | None] = mapped_column(String(16), nullable=True)


class RelyingPartyLogin(Base):
    """An application the browser session signed in to: told when the session ends (back-channel logout,
    SAML single logout)."""

    __tablename__ = "idp_rp_logins"
    # A SAML LogoutRequest names the SP and the user (NameID): its lookup uses the second index.
    __table_args__ = (
        UniqueConstraint("sid", "protocol", "client_id"),
        Index("ix_idp_rp_logins_client_id_name_id", "client_id", "name_id"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sid: Mapped[str] = mapped_column(String(64), index=True)
    protocol: Mapped[str] = mapped_column(String(8))  # oidc, saml
    client_id: Mapped[str] = mapped_column(String(255))  # OIDC client id or SAML entity id
    name_id: Mapped[str | None] = mapped_column(String(255), nullable=True)  # SAML
    session_index: Mapped[str | None] = mapped_column(String(100), nullable=True)  # SAML
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OidcClient(Base):
    __tablename__ = "oidc_clients"
    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    secret_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)  # None: public client
    name: Mapped[str] = mapped_column(String(200))
    metadata_json: Mapped[str] = mapped_column(Text)  # RFC 7591 client metadata
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)


class RefreshToken(Base):
    """Stored by hash. Rotation: using one marks it used and issues its successor; a used token presented
    again revokes the whole family (the RFC 6819 / OAuth 2.1 reuse rule)."""

    __tablename__ = "oidc_refresh_tokens"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    family: Mapped[str] = mapped_column(String(64), index=True)
    client_id: Mapped[str] = mapped_column(String(64), index=True)
    user_id: Mapped[str] = mapped_column(String(255))
    sid: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    scope: Mapped[str] = mapped_column(Text)
    claims_json: Mapped[str] = mapped_column(Text, default="{}")  # amr, acr, auth_time, nonce-free
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Consent(Base):
    __tablename__ = "oidc_consents"
    __table_args__ = (UniqueConstraint("user_id", "client_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(255))
    client_id: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(Text)  # space-separated scopes granted
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SamlServiceProvider(Base):
    __tablename__ = "saml_service_providers"
    entity_id: Mapped[str] = mapped_column(String(500), primary_key=True)
    metadata_xml: Mapped[str] = mapped_column(LONG_TEXT)
    name_id_format: Mapped[str] = mapped_column(String(100))  # persistent, transient, email
    attributes: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of released attribute names
    encrypt_assertions: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    # JSON (idp.saml.spoptions): signing, lifetime, attribute names, where the metadata is fetched from.
    options: Mapped[str | None] = mapped_column(Text, nullable=True)


Index("ix_oidc_refresh_tokens_expires_at", RefreshToken.expires_at)
