"""Durable per-component state: the service's own keys and the device keys it has met.

Several instances of a component may share one database and start at the same moment, so every write here
is settled by a database constraint rather than by read-then-write in Python.
"""

import hashlib
import logging
import threading
import time
import weakref
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, Insert, select, update
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from authserver.storage import db
from authserver.storage.models import SeenDevice, ServiceKey, utcnow

log = logging.getLogger("nextauth.storage")

KEY_TYPES = ("ed25519", "p256")
# Losing a race costs one retry; more than a handful means something other than a race is wrong.
_ATTEMPTS = 5
_MYSQL_DEADLOCK = 1213
# A device's last_seen moves at most this often: every handshake wrote it before, one write per channel,
# a seventh of a login's server time. Days-old "last seen" is what it is read for.
SEEN_WRITE_INTERVAL = 600.0
_SEEN_MEMORY = 100_000  # devices remembered per engine; past it the memory starts over (more writes)


def key_hash(public_key_raw: bytes) -> str:
    return hashlib.sha256(public_key_raw).hexdigest()


def _slot(component: str, server_id: str | None) -> str:
    return f"{component}/{server_id or ''}"


def _raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _pkcs8(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _load(row: ServiceKey) -> Ed25519PrivateKey:
    key = serialization.load_der_private_key(row.private_key, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"service key {row.key_hash} is not an Ed25519 key")
    return key


def _lost_race(exc: Exception) -> bool:
    """Whether a write failed only because a concurrent writer got there first (so a retry will see it)."""
    if isinstance(exc, IntegrityError):
        return True
    # InnoDB may pick one of two concurrent inserters of the same unique value as a deadlock victim.
    orig: Any = getattr(exc, "orig", None)
    return isinstance(exc, OperationalError) and bool(orig and orig.args and orig.args[0] == _MYSQL_DEADLOCK)


def _store_configured(
    session: Session, component: str, key: Ed25519PrivateKey, server_id: str | None
) -> None:
    raw = _raw_public(key)
    digest = key_hash(raw)
    slot = _slot(component, server_id)
    row = session.scalars(select(ServiceKey).where(ServiceKey.key_hash == digest)).one_or_none()
    if row is not None and (row.component, row.server_id) != (component, server_id):
        # Apps pin a service by key hash: one key answering as two services would confuse them.
        raise ValueError(
            f"configured key {digest} is already the key of {row.component}"
            f"{' server ' + row.server_id if row.server_id else ''}"
        )
    if row is not None and row.active_for == slot:
        return
    # The configured key replaces whatever was active; the old row stays for the record.
    session.execute(
        update(ServiceKey)
        .where(ServiceKey.active_for == slot, ServiceKey.key_hash != digest)
        .values(active=False, active_for=None)
    )
    session.flush()
    if row is None:
        session.add(
            ServiceKey(
                component=component,
                server_id=server_id,
                key_hash=digest,
                public_key=raw,
                private_key=_pkcs8(key),
                active=True,
                active_for=slot,
            )
        )
    else:
        row.active, row.active_for = True, slot
    log.info("%s: configured service key %s is now active", slot, digest)


def _active_or_new(session: Session, component: str, server_id: str | None) -> Ed25519PrivateKey:
    slot = _slot(component, server_id)
    row = session.scalars(select(ServiceKey).where(ServiceKey.active_for == slot)).one_or_none()
    if row is not None:
        return _load(row)
    key = Ed25519PrivateKey.generate()
    raw = _raw_public(key)
    session.add(
        ServiceKey(
            component=component,
            server_id=server_id,
            key_hash=key_hash(raw),
            public_key=raw,
            private_key=_pkcs8(key),
            active=True,
            active_for=slot,
        )
    )
    # Flush inside the caller's transaction so a concurrent creator's row makes this fail before commit.
    session.flush()
    log.info("%s: created service key %s", slot, key_hash(raw))
    return key


def ensure_service_key(
    engine: Engine,
    component: str,
    *,
    configured: Ed25519PrivateKey | None = None,
    server_id: str | None = None,
) -> Ed25519PrivateKey:
    """The active key of ``component`` (or of one of its virtual servers), created on first use.

    A ``configured`` key wins: it is stored and made active, so the database agrees with the configuration.
    """
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            with Session(engine) as session, session.begin():
                if configured is not None:
                    _store_configured(session, component, configured, server_id)
                    return configured
                return _active_or_new(session, component, server_id)
        except (IntegrityError, OperationalError) as exc:
            # Another instance stored a key between our read and our write: a fresh transaction sees it.
            if not _lost_race(exc) or attempt == _ATTEMPTS:
                raise
            log.debug("service key race for %s lost, reading again", _slot(component, server_id))
    raise AssertionError("unreachable")  # pragma: no cover


def _upsert(dialect: str, values: dict[str, Any]) -> Insert:
    # One statement per dialect: the database resolves the race, and a second connection never sees a
    # half-done insert-or-update.
    conflict = ["component", "key_thumbprint"]
    if dialect == "postgresql":
        pg = postgresql.insert(SeenDevice).values(values)
        return pg.on_conflict_do_update(index_elements=conflict, set_={"last_seen": pg.excluded.last_seen})
    if dialect in ("mysql", "mariadb"):
        my = mysql.insert(SeenDevice).values(values)
        return my.on_duplicate_key_update(last_seen=my.inserted.last_seen)
    if dialect == "sqlite":
        lite = sqlite.insert(SeenDevice).values(values)
        return lite.on_conflict_do_update(
            index_elements=conflict, set_={"last_seen": lite.excluded.last_seen}
        )
    raise NotImplementedError(f"no upsert for dialect {dialect}")


class _SeenWrites:
    """When this process last wrote each device's ``last_seen``, per engine (monotonic seconds)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_engine: weakref.WeakKeyDictionary[Engine, dict[tuple[str, str], float]] = (
            weakref.WeakKeyDictionary()
        )

    def due(self, engine: Engine, key: tuple[str, str], now: float, interval: float) -> bool:
        with self._lock:
            written = self._by_engine.setdefault(engine, {})
            last = written.get(key)
            return last is None or now - last >= interval

    def written(self, engine: Engine, key: tuple[str, str], now: float) -> None:
        with self._lock:
            written = self._by_engine.setdefault(engine, {})
            if len(written) >= _SEEN_MEMORY:
                written.clear()
            written[key] = now


_seen_writes = _SeenWrites()


def record_device_seen(
    engine: Engine,
    component: str,
    key_type: str,
    public_key: bytes,
    *,
    interval: float = SEEN_WRITE_INTERVAL,
    clock: Any = time.monotonic,
) -> None:
    """Note that a device key completed a handshake: inserted the first time this process sees it, then
    ``last_seen`` moved at most once per ``interval`` (each instance keeps its own memory, so a device
    new to an instance is always written)."""
    if key_type not in KEY_TYPES:
        raise ValueError(f"unknown device key type {key_type!r}")
    thumbprint = key_hash(public_key)
    moment = clock()
    if not _seen_writes.due(engine, (component, thumbprint), moment, interval):
        return
    now = utcnow()
    values = {
        "component": component,
        "key_thumbprint": thumbprint,
        "key_type": key_type,
        "public_key": public_key,
        "first_seen": now,
        "last_seen": now,
    }
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            db.write_one(engine, _upsert(engine.dialect.name, values), {})
            _seen_writes.written(engine, (component, thumbprint), moment)
            return
        except OperationalError as exc:
            if not _lost_race(exc) or attempt == _ATTEMPTS:
                raise
