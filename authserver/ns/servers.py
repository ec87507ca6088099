"""Virtual servers: one ns hosts many, each with its own id, Ed25519 key, name and policy.

The sigmai listener asks this registry which key answers a ClientHello's key hash; the answer is cached
in memory because keys never change once created (a rotation adds a new server key, apps re-enrol).
"""

import json
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

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


class ServerRegistry:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self._by_id: dict[str, VirtualServer] = {}
        self._by_key_hash: dict[bytes, VirtualServer] = {}
        self._last_refresh = 0.0

    def _load(self, row: Server) -> VirtualServer:
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
        if cached is not None:
            return cached
        with Session(self._engine, expire_on_commit=False) as session:
            row = session.get(Server, server_id)
        return self._load(row) if row is not None else None

    def all(self) -> list[VirtualServer]:
        with Session(self._engine, expire_on_commit=False) as session:
            rows = list(session.scalars(select(Server).order_by(Server.created_at)))
        return [self._by_id.get(row.id) or self._load(row) for row in rows]

    def by_key_hash(self, key_hash: bytes) -> VirtualServer | None:
        found = self._by_key_hash.get(key_hash)
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
