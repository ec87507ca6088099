"""Tables every component has: its own long-term keys and the device keys it has seen.

Portable across SQLite, PostgreSQL and MariaDB: bounded strings (MariaDB cannot index unbounded text), raw
bytes as LargeBinary, and datetimes through ``UTCDateTime`` so all three give back the same aware UTC value.
"""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Boolean, DateTime, Dialect, Integer, LargeBinary, MetaData, String, UniqueConstraint
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator, TypeEngine

# Explicit names make constraint names identical on every database and in every migration, so a later
# migration can drop or alter a constraint by name without asking the database what it called it.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on every database.

    PostgreSQL keeps time zones (timestamptz); SQLite and MariaDB store naive values and would hand back
    naive ones, and MariaDB's DATETIME drops fractions of a second unless asked for them. Storing naive UTC
    there and re-attaching UTC on the way out makes comparisons and arithmetic behave the same everywhere.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            # A naive value could be local time or UTC; guessing would shift stored times by hours.
            raise ValueError("naive datetime: pass an aware datetime (e.g. datetime.now(UTC))")
        value = value.astimezone(UTC)
        return value if dialect.name == "postgresql" else value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ServiceKey(Base):
    """A component's Ed25519 sigmai key; apps pin its hash, so it must survive restarts and be unique.

    ``active_for`` is the portable way to allow one active key per (component, server): it holds
    ``"<component>/<server_id>"`` for the active key and NULL otherwise, and NULLs never collide in a unique
    constraint. That lets two instances racing at first start both insert, and the loser fail on the
    constraint (MariaDB has no partial unique index, and NULL server_ids would not collide in one anyway).
    """

    __tablename__ = "service_keys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    component: Mapped[str] = mapped_column(String(8))  # ns, sfs, mc
    # An ns virtual server owns its own key; None is the component's own key.
    server_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)  # hex SHA-256 of the raw public key
    public_key: Mapped[bytes] = mapped_column(LargeBinary)  # 32 raw bytes
    private_key: Mapped[bytes] = mapped_column(LargeBinary)  # PKCS#8 DER, unencrypted
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    active_for: Mapped[str | None] = mapped_column(String(80), nullable=True, unique=True)


class SeenDevice(Base):
    """A device key that completed a handshake with a component, with when it was first and last seen."""

    __tablename__ = "seen_devices"
    __table_args__ = (UniqueConstraint("component", "key_thumbprint"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    component: Mapped[str] = mapped_column(String(8))
    key_thumbprint: Mapped[str] = mapped_column(String(64))  # hex SHA-256 of the public key bytes
    key_type: Mapped[str] = mapped_column(String(16))  # ed25519, p256
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
