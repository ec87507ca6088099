"""Virtual servers: one ns hosts many, each with its own id, Ed25519 key, name and policy.

The sigmai listener asks this registry which key answers a ClientHello's key hash; the answer is cached
in memory because keys never change once created (a rotation adds a new server key, apps re-enrol). A
server's name, logo, announce lines and PIN policy can change (``update``): a cached entry older than
``FRESH_SECONDS`` is read again, so every ns instance follows within that time.
"""

import json
import os
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, cast

from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy import Engine, Row, Table, bindparam, select
from sqlalchemy.orm import Session

from authserver.storage import db as database
from authserver.storage.flow_models import Server
from authserver.storage.repository import ensure_service_key
from sigmai import ProtocolError, ServerIdentity


@dataclass(frozen=True)
class VirtualServer:
    id: str
    name: str
    logo_url: str | None
    announce: dict[str, str]
    login_pin_timeout: int
    transaction_pin_timeout: int
    identity: ServerIdentity
    identity_key: ed25519.Ed25519PrivateKey
    loaded_at: float = field(default_factory=time.monotonic, compare=False)

    @property
    def key_hash(self) -> str:
        return self.identity.key_hash.hex()

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "logo_url": self.logo_url,
            "announce": self.announce,
            "key_hash": self.key_hash,
            "public_key": self.identity.public_raw.hex(),
        }

    def described(self) -> dict[str, Any]:
        """What the REST API tells operators: what the phone sees, and the PIN policy."""
        return {
            **self.public(),
            "login_pin_timeout": self.login_pin_timeout,
            "transaction_pin_timeout": self.transaction_pin_timeout,
        }


FRESH_SECONDS = 5.0
# What ``update`` may change; the id and the key never change.
UPDATABLE = ("name", "logo_url", "announce", "login_pin_timeout", "transaction_pin_timeout")
# The refresh every FRESH_SECONDS on the login path: one autocommit read, no ORM session or transaction.
_SERVERS = cast(Table, Server.__table__)
_SERVER_ROW = select(_SERVERS).where(_SERVERS.c.id == bindparam("server_id"))


class ServerRegistry:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self._by_id: dict[str, VirtualServer] = {}
        self._by_key_hash: dict[bytes, VirtualServer] = {}
        self._last_refresh = 0.0

    def _load(self, row: "Server | Row[Any]") -> VirtualServer:
        key = ensure_service_key(self._engine, "ns", server_id=row.id)
        server = VirtualServer(
            id=row.id,
            name=row.name,
            logo_url=row.logo_url,
            announce=json.loads(row.announce or "{}"),
            login_pin_timeout=row.login_pin_timeout,
            transaction_pin_timeout=row.transaction_pin_timeout,
            identity=ServerIdentity(key),
            identity_key=key,
        )
        with self._lock:
            self._by_id[server.id] = server
            self._by_key_hash[server.identity.key_hash] = server
        return server

    def create(
        self,
        name: str,
        *,
        logo_url: str | None = None,
        announce: dict[str, str] | None = None,
        server_id: str | None = None,
    ) -> VirtualServer:
        row = Server(
            id=server_id or os.urandom(12).hex(),
            name=name,
            logo_url=logo_url,
            announce=json.dumps(announce or {}),
        )
        with Session(self._engine, expire_on_commit=False) as session:
            session.add(row)
            session.commit()
            session.refresh(row)
        return self._load(row)

    def get(self, server_id: str) -> VirtualServer | None:
        cached = self._by_id.get(server_id)
        if cached is not None and time.monotonic() - cached.loaded_at < FRESH_SECONDS:
            return cached
        parameters = {"server_id": server_id}
        row = database.read(self._engine, lambda c: c.execute(_SERVER_ROW, parameters).first())
        if row is None:
            return None
        return self._refreshed(cached, row) if cached is not None else self._load(row)

    def _refreshed(self, cached: VirtualServer, row: "Server | Row[Any]") -> VirtualServer:
        """``cached`` with the row's changeable fields (its key stays: keys never change)."""
        server = replace(
            cached,
            name=row.name,
            logo_url=row.logo_url,
            announce=json.loads(row.announce or "{}"),
            login_pin_timeout=row.login_pin_timeout,
            transaction_pin_timeout=row.transaction_pin_timeout,
            loaded_at=time.monotonic(),
        )
        with self._lock:
            self._by_id[server.id] = server
            self._by_key_hash[server.identity.key_hash] = server
        return server

    def update(self, server_id: str, changes: dict[str, Any]) -> VirtualServer | None:
        """Change the fields in ``changes`` (names from ``UPDATABLE``); None if there is no such server."""
        unknown = set(changes) - set(UPDATABLE)
        if unknown:
            raise ValueError(f"cannot change {', '.join(sorted(unknown))}")
        with Session(self._engine, expire_on_commit=False) as session, session.begin():
            row = session.get(Server, server_id)
            if row is None:
                return None
            for name, value in changes.items():
                setattr(row, name, json.dumps(value) if name == "announce" else value)
        cached = self._by_id.get(server_id)
        return self._refreshed(cached, row) if cached is not None else self._load(row)

    def all(self) -> list[VirtualServer]:
        with Session(self._engine, expire_on_commit=False) as session:
            rows = list(session.scalars(select(Server).order_by(Server.created_at)))
        return [self._by_id.get(row.id) or self._load(row) for row in rows]

    def by_key_hash(self, key_hash: bytes) -> VirtualServer | None:
        found = self._by_key_hash.get(key_hash)
        if found is not None and time.monotonic() - found.loaded_at >= FRESH_SECONDS:
            return self.get(found.id)
        # A server created by another ns instance since we last looked; refresh at most every two
        # seconds so ClientHellos with made-up key hashes cannot turn into a database query each.
        if found is None and time.monotonic() - self._last_refresh > 2.0:
            self._last_refresh = time.monotonic()
            self.all()
            found = self._by_key_hash.get(key_hash)
        return found

    def for_channel(self, server_key_hash: bytes) -> VirtualServer:
        """The server an app's channel reached. It was found at the handshake, so only a server deleted
        since then can be missing: the channel is then closed."""
        server = self.by_key_hash(server_key_hash)
        if server is None:
            raise ProtocolError("channel to an unknown server")
        return server

    def identity_for(self, key_hash: bytes) -> ServerIdentity | None:
        server = self.by_key_hash(key_hash)
        return server.identity if server is not None else None

    def ensure_default(self, name: str = "nextAuth demo") -> VirtualServer:
        """The first server, so a fresh install can log someone in without any setup."""
        existing = self.all()
        return existing[0] if existing else self.create(name, server_id="default")
