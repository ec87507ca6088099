"""Tables of ns administration beyond the API keys themselves: roles granted per virtual server, and the
key/value attributes integrators keep at ns (global, per server, privileged per server, per user)."""

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from authserver.storage.models import Base, UTCDateTime, utcnow


class PermissionGrant(Base):
    """One role an API key or a client certificate holds on one virtual server, on top of the roles it
    holds by itself. Only server-specific roles are granted here: what spans servers stays on the key."""

    __tablename__ = "api_grants"
    __table_args__ = (UniqueConstraint("principal_kind", "principal_id", "server_id", "role"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    principal_kind: Mapped[str] = mapped_column(String(12))  # apikey, clientcert
    principal_id: Mapped[int] = mapped_column(Integer)  # api_keys.id or api_client_certificates.id
    server_id: Mapped[str] = mapped_column(ForeignKey("ns_servers.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Attribute(Base):
    """One key/value attribute. ``scope`` is global, server, privileged or user; ``server_id`` and
    ``user_id`` are empty strings where the scope has none, since NULLs would escape the unique
    constraint on PostgreSQL and MariaDB."""

    __tablename__ = "ns_attributes"
    __table_args__ = (UniqueConstraint("scope", "server_id", "user_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(10))
    server_id: Mapped[str] = mapped_column(String(32), default="")
    user_id: Mapped[str] = mapped_column(String(255), default="")
    name: Mapped[str] = mapped_column(String(64))
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
