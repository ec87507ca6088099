"""Tables of the flows: ns (servers, users, accounts, enrolments, sessions, transactions, API access),
sfs (app instances with their PIN verifiers and failure counts), mc (mailboxes and their messages), and
the audit trail every component writes to.

Each service uses only its own tables; they share one migration chain so a single database can hold all
three in small deployments, and each can have its own database in large ones.
"""

from datetime import datetime

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from authserver.storage.models import Base, UTCDateTime, utcnow

# -- ns ----------------------------------------------------------------------------------------------


class Server(Base):
    """A virtual server: one isolated tenant of an ns with its own key, name and second-factor policy."""

    __tablename__ = "ns_servers"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    logo_url: Mapped[str | None] = mapped_column(String(500), nullable=True)
    announce: Mapped[str] = mapped_column(Text, default="{}")  # JSON key/value lines shown at login
    login_pin_timeout: Mapped[int] = mapped_column(Integer, default=0)  # -1 never ask, 0 always, n seconds
    transaction_pin_timeout: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class User(Base):
    __tablename__ = "ns_users"
    __table_args__ = (UniqueConstraint("server_id", "user_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    server_id: Mapped[str] = mapped_column(ForeignKey("ns_servers.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(String(255))  # the business application's own user id
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Account(Base):
    """One app instance's key for one user at one server: the app signs in with it."""

    __tablename__ = "ns_accounts"
    __table_args__ = (UniqueConstraint("server_id", "thumbprint"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    server_id: Mapped[str] = mapped_column(ForeignKey("ns_servers.id", ondelete="CASCADE"), index=True)
    # Indexed: a user's accounts are found through it (push, the REST API), and a user deleted sets it NULL.
    user_pk: Mapped[int | None] = mapped_column(
        ForeignKey("ns_users.id", ondelete="SET NULL"), nullable=True, index=True
    )
    key_type: Mapped[str] = mapped_column(String(16))
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    # Indexed on its own too: evidence names the key, not the server, and is checked against every server's.
    thumbprint: Mapped[str] = mapped_column(String(64), index=True)
    sfs_key_hash: Mapped[str] = mapped_column(String(64))
    # The app instance that vouched at enrolment (the attestation's sub: its device key thumbprint at the
    # SFS named by sfs_key_hash). Every later attestation must come from it. NULL: enrolled before the
    # binding existed; such an account is refused wherever a second factor is needed (re-enrol it).
    sfs_device: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Push: which MC (by its key hash; ns maps it to an address it trusts), the mailbox and its app token,
    # and the account's X25519 key that messages are encrypted to.
    mc_key_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    mc_mailbox: Mapped[str | None] = mapped_column(String(64), nullable=True)
    mc_token: Mapped[str | None] = mapped_column(String(128), nullable=True)
    encryption_key: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    blocked: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=False)  # set once the enrolment is confirmed
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Enrolment(Base):
    __tablename__ = "ns_enrolments"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    server_id: Mapped[str] = mapped_column(ForeignKey("ns_servers.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[str] = mapped_column(String(255))
    secret_hash: Mapped[bytes] = mapped_column(LargeBinary)  # SHA-256 of the one-time secret in the QR
    state: Mapped[str] = mapped_column(String(24), default="pending")
    code_hash: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    code_attempts: Mapped[int] = mapped_column(Integer, default=0)
    account_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)  # the retention purge's range
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Session(Base):
    """One login on an application's session (named by its hsid, derived from the nonce). A new login on
    the same hsid ends the previous row rather than replacing it, so what was signed in it stays."""

    __tablename__ = "ns_sessions"
    # A login looks its hsid up on one server, newest first. Every session of a deployment with one
    # virtual server shares its server_id: with an index on hsid alone beside the one on server_id, SQLite
    # (which keeps no statistics) walked the server's every session, three times per login.
    # A user's sessions (the REST API's list, logging a user out everywhere) likewise.
    __table_args__ = (
        Index("ix_ns_sessions_hsid_server_id", "hsid", "server_id", "created_at"),
        Index("ix_ns_sessions_user_id_server_id", "user_id", "server_id"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    hsid: Mapped[str] = mapped_column(String(43))
    server_id: Mapped[str] = mapped_column(ForeignKey("ns_servers.id", ondelete="CASCADE"), index=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("ns_accounts.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    method: Mapped[str] = mapped_column(String(16))  # qr, push, app
    second_factor: Mapped[str] = mapped_column(String(16))  # pin, biometric, none
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)  # the retention purge's range
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ended_by: Mapped[str | None] = mapped_column(String(16), nullable=True)


class Transaction(Base):
    __tablename__ = "ns_transactions"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    server_id: Mapped[str] = mapped_column(ForeignKey("ns_servers.id", ondelete="CASCADE"), index=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("ns_sessions.id", ondelete="CASCADE"), index=True)
    account_id: Mapped[str] = mapped_column(String(32))
    content: Mapped[bytes] = mapped_column(LargeBinary)  # canonical JSON: exactly what the app showed
    status: Mapped[str] = mapped_column(String(16), default="new")
    evidence: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON, verifiable by anyone
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ApiKey(Base):
    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    component: Mapped[str] = mapped_column(String(8))
    name: Mapped[str] = mapped_column(String(200))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)  # hex SHA-256 of the random key
    roles: Mapped[str] = mapped_column(Text)  # JSON list: ["sessions", "users", ...]
    server_id: Mapped[str | None] = mapped_column(String(32), nullable=True)  # None: every server
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ClientCertificate(Base):
    """A client certificate allowed on a REST API, by fingerprint: being CA-signed grants nothing."""

    __tablename__ = "api_client_certificates"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    component: Mapped[str] = mapped_column(String(8))
    name: Mapped[str] = mapped_column(String(200))
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)  # hex SHA-256 of the DER
    roles: Mapped[str] = mapped_column(Text)
    server_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


# -- sfs ---------------------------------------------------------------------------------------------


class AppInstance(Base):
    """An app install registered at this SFS: its OPRF key, PIN verifier and failure count."""

    __tablename__ = "sfs_app_instances"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_thumbprint: Mapped[str] = mapped_column(String(64), unique=True)
    oprf_key: Mapped[bytes] = mapped_column(LargeBinary)
    pin_verifier: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    biometric_key: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# -- mc ----------------------------------------------------------------------------------------------


class Mailbox(Base):
    __tablename__ = "mc_mailboxes"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    device_thumbprint: Mapped[str] = mapped_column(String(64), unique=True)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary)  # SHA-256 of the app token ns presents
    push_provider: Mapped[str] = mapped_column(String(8), default="none")  # fcm, apns, webpush, none
    push_token: Mapped[str | None] = mapped_column(String(256), nullable=True)  # fcm, apns
    # webpush: the subscription as JSON (endpoint and keys), longer than any device token.
    push_subscription: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # First fetched by the app or written to by ns; a mailbox still unused after days is purged.
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class MailboxMessage(Base):
    __tablename__ = "mc_messages"
    __table_args__ = (Index("ix_mc_messages_mailbox_created", "mailbox_id", "created_at"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    mailbox_id: Mapped[str] = mapped_column(ForeignKey("mc_mailboxes.id", ondelete="CASCADE"))
    sender: Mapped[str] = mapped_column(String(64))  # the ns key hash that sent it
    envelope: Mapped[bytes] = mapped_column(LargeBinary)  # HPKE ciphertext the MC cannot read
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    fetched_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


# -- audit (ns and sfs) ------------------------------------------------------------------------------


class AuditEvent(Base):
    """One security-relevant event, kept for the retention time whether or not a sink received it.

    ``id`` orders the events of one database and is the query cursor; ``event_id`` is the CloudEvents id
    sinks see, unique across components and instances."""

    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    time: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    type: Mapped[str] = mapped_column(String(64), index=True)  # io.nextauth.login.succeeded, ...
    component: Mapped[str] = mapped_column(String(8))  # ns, sfs
    source: Mapped[str] = mapped_column(String(200))  # the CloudEvents source: /ns/<instance>
    server_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    subject: Mapped[str | None] = mapped_column(String(255), nullable=True, index=True)  # the user id
    actor: Mapped[str | None] = mapped_column(String(200), nullable=True)  # who did it: API key, phone...
    outcome: Mapped[str] = mapped_column(String(16))  # success, failure
    data: Mapped[str] = mapped_column(Text, default="{}")  # JSON object, the event's own fields
