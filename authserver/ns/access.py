"""Who may call the REST API: API keys (stored hashed) with roles, per server or global.

A request names its key in ``X-apikey``. The key's SHA-256 is looked up (a short in-memory cache keeps
the database off the hot path; a revoked key stops working within ``CACHE_SECONDS``). Roles follow the
original product: ``sessions``, ``users``, ``accounts``, ``servers``, ``createserver`` and ``root``; and
``audit``, which reads the audit trail and nothing else.
"""

import hashlib
import hmac
import json
import logging
import os
import threading
import time
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from authserver.audit import AuditTrail
from authserver.ns.common import b64
from authserver.ratelimit import FailureBudget, RateLimiter, Rule
from authserver.storage.admin_models import PermissionGrant
from authserver.storage.flow_models import ApiKey, ClientCertificate
from authserver.storage.models import utcnow
from nextauth_core.digits import only_digits

log = logging.getLogger("nextauth.security")

APIKEY, CERTIFICATE = "apikey", "clientcert"  # the kinds of principal roles are granted to
ROLES = ("sessions", "users", "accounts", "servers", "createserver", "audit", "root")
CACHE_SECONDS = 5.0


def _listing(row: ApiKey | ClientCertificate) -> dict[str, object]:
    return {
        "id": row.id,
        "name": row.name,
        "roles": json.loads(row.roles),
        "server": row.server_id,
        "created_at": row.created_at.isoformat(),
        "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None,
    }


@dataclass(frozen=True)
class Grant:
    name: str
    roles: frozenset[str]
    server_id: str | None  # None: every server
    # Roles held on one server only, granted with /v1/servers/{sid}/permissions: (server id, role).
    granted: frozenset[tuple[str, str]] = frozenset()

    def roles_on(self, server_id: str) -> frozenset[str]:
        if self.server_id not in (None, server_id):
            return frozenset()  # limited to another server: no grant reaches beyond it
        return self.roles | {role for granted_on, role in self.granted if granted_on == server_id}

    def allows(self, role: str, server_id: str | None, *, global_operation: bool = False) -> bool:
        """``server_id`` None: an operation not about one server (verifying evidence); a key limited to a
        server, or holding roles on some servers only, may call it, and the operation itself keeps to
        what the key may see. ``global_operation``: an operation over the whole ns (creating a server,
        listing all servers), which only roles held for every server allow: a key scoped to one server,
        or granted roles on some, must not make or survey others. ``root`` counts only where it is held."""
        if global_operation:
            return self.server_id is None and bool({"root", role} & self.roles)
        if server_id is None:
            held = self.roles | {role for on, role in self.granted if self.server_id in (None, on)}
        else:
            held = self.roles_on(server_id)
        return "root" in held or role in held


class CertificateListed(ValueError):
    """The certificate is listed already; listing it again would change nothing or undo a revocation."""


def granted_roles(db: Session, kind: str, principal_id: int) -> frozenset[tuple[str, str]]:
    rows = db.execute(
        select(PermissionGrant.server_id, PermissionGrant.role).where(
            PermissionGrant.principal_kind == kind, PermissionGrant.principal_id == principal_id
        )
    )
    return frozenset((server_id, role) for server_id, role in rows)


def key_hash(api_key: str) -> str:
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()


class AccessControl:
    def __init__(
        self, engine: Engine, component: str, root_api_key: str | None, audit: AuditTrail | None = None
    ) -> None:
        self._engine = engine
        self.audit = audit if audit is not None else AuditTrail(engine, component)
        self._component = component
        self._root_hash = key_hash(root_api_key) if root_api_key else None
        self._cache: dict[str, tuple[float, Grant | None]] = {}
        self._lock = threading.Lock()
        self.failures: FailureBudget | None = None

    def limit_failures(self, limiter: RateLimiter, rule: Rule) -> None:
        """Refuse a client (``RateLimited``) once its wrong API keys reach ``rule``, before any lookup."""
        self.failures = FailureBudget(limiter, rule, "wrong API keys")

    def authenticate_from(self, api_key: str | None, client: str) -> Grant | None:
        """``authenticate`` for a request from the address ``client``: a client over its budget of wrong
        keys is refused without a lookup (even with a right key, or guessing would go on), and each wrong
        key is logged, without the key. The budget is read from the store at most once a second for a
        client whose keys were right since; after a wrong one, on its next request (``FailureBudget``)."""
        if self.failures is not None:
            self.failures.check(client)
        grant = self.authenticate(api_key)
        if grant is None:
            log.warning("API key refused (unknown, revoked or malformed) from client %s", client or "?")
            self.audit.record("apikey.refused", data={"client": client or None})
            if self.failures is not None:
                self.failures.failed(client)
        return grant

    def create_key(
        self, name: str, roles: list[str], server_id: str | None = None, *, actor: str | None = None
    ) -> str:
        return self.create_key_with_id(name, roles, server_id, actor=actor)[1]

    def create_key_with_id(
        self, name: str, roles: list[str], server_id: str | None = None, *, actor: str | None = None
    ) -> tuple[int, str]:
        """A new key: its id (for list and revoke) and the key itself, which is never stored."""
        unknown = set(roles) - set(ROLES)
        if unknown or not roles:
            raise ValueError(f"roles must be among {', '.join(ROLES)}")
        api_key = "na_" + b64(os.urandom(32))
        row = ApiKey(
            component=self._component,
            name=name,
            key_hash=key_hash(api_key),
            roles=json.dumps(sorted(roles)),
            server_id=server_id,
        )
        with Session(self._engine, expire_on_commit=False) as db:
            db.add(row)
            db.commit()
        log.warning("API key %s (%s) created with roles %s", row.id, name, ",".join(sorted(roles)))
        self.audit.record(
            "apikey.created",
            server_id=server_id,
            actor=actor,
            data={"key": str(row.id), "name": name, "roles": sorted(roles)},
        )
        return row.id, api_key

    def add_certificate(
        self,
        name: str,
        roles: list[str],
        certificate_pem: bytes,
        server_id: str | None = None,
        *,
        actor: str | None = None,
    ) -> str:
        return self.add_certificate_with_id(name, roles, certificate_pem, server_id, actor=actor)[1]

    def add_certificate_with_id(
        self,
        name: str,
        roles: list[str],
        certificate_pem: bytes,
        server_id: str | None = None,
        *,
        actor: str | None = None,
    ) -> tuple[int, str]:
        """List a client certificate (by SHA-256 fingerprint of its DER form) with its roles: its id and
        fingerprint. ``ValueError`` for unknown roles, a PEM that holds no certificate, or one listed
        already (revoked ones included: a revoked certificate stays revoked)."""
        unknown = set(roles) - set(ROLES)
        if unknown or not roles:
            raise ValueError(f"roles must be among {', '.join(ROLES)}")
        certificate = x509.load_pem_x509_certificate(certificate_pem)
        fingerprint = certificate.fingerprint(hashes.SHA256()).hex()
        row = ClientCertificate(
            component=self._component,
            name=name,
            fingerprint=fingerprint,
            roles=json.dumps(sorted(roles)),
            server_id=server_id,
        )
        with Session(self._engine, expire_on_commit=False) as db:
            if db.scalar(select(ClientCertificate.id).where(ClientCertificate.fingerprint == fingerprint)):
                raise CertificateListed(f"the certificate {fingerprint} is listed already (or was revoked)")
            db.add(row)
            db.commit()
        log.warning(
            "client certificate %s (%s) listed with roles %s", fingerprint, name, ",".join(sorted(roles))
        )
        self.audit.record(
            "clientcert.created",
            server_id=server_id,
            actor=actor,
            data={"certificate": str(row.id), "name": name, "roles": sorted(roles), "sha256": fingerprint},
        )
        return row.id, fingerprint

    def list_keys(self, server_id: str | None = None) -> list[dict[str, object]]:
        """Every API key of this component (never the key itself: only its hash is kept)."""
        with Session(self._engine) as db:
            query = select(ApiKey).where(ApiKey.component == self._component).order_by(ApiKey.id)
            if server_id is not None:
                query = query.where(ApiKey.server_id == server_id)
            return [_listing(row) for row in db.scalars(query)]

    def revoke_key(self, key_id: str, *, actor: str | None = None) -> bool:
        """Revoke by id; False if there is no such live key. Other processes see it within CACHE_SECONDS."""
        if not only_digits(key_id):
            raise ValueError(f"API key id {key_id!r}: a number (see list)")
        with Session(self._engine) as db, db.begin():
            row = db.get(ApiKey, int(key_id))
            if row is None or row.component != self._component or row.revoked_at is not None:
                return False
            row.revoked_at = utcnow()
            digest, name, server_id = row.key_hash, row.name, row.server_id
        with self._lock:
            self._cache.pop(digest, None)
        log.warning("API key %s (%s) revoked", key_id, name)
        self.audit.record(
            "apikey.revoked", server_id=server_id, actor=actor, data={"key": key_id, "name": name}
        )
        return True

    def list_certificates(self, server_id: str | None = None) -> list[dict[str, object]]:
        with Session(self._engine) as db:
            query = (
                select(ClientCertificate)
                .where(ClientCertificate.component == self._component)
                .order_by(ClientCertificate.id)
            )
            if server_id is not None:
                query = query.where(ClientCertificate.server_id == server_id)
            return [{**_listing(row), "sha256": row.fingerprint} for row in db.scalars(query)]

    def revoke_certificate(self, id_or_fingerprint: str, *, actor: str | None = None) -> bool:
        """Revoke by id or by SHA-256 fingerprint; False if there is no such live certificate."""
        text = id_or_fingerprint.strip().lower().replace(":", "")
        with Session(self._engine) as db, db.begin():
            column = ClientCertificate.id if only_digits(text) else ClientCertificate.fingerprint
            row = db.scalar(
                select(ClientCertificate).where(
                    column == (int(text) if only_digits(text) else text),
                    ClientCertificate.component == self._component,
                    ClientCertificate.revoked_at.is_(None),
                )
            )
            if row is None:
                return False
            row.revoked_at = utcnow()
            fingerprint, name, server_id, number = row.fingerprint, row.name, row.server_id, row.id
        with self._lock:
            self._cache.pop("cert:" + fingerprint, None)
        log.warning("client certificate %s (%s) revoked", fingerprint, name)
        self.audit.record(
            "clientcert.revoked",
            server_id=server_id,
            actor=actor,
            data={"certificate": str(number), "name": name, "sha256": fingerprint},
        )
        return True

    def authenticate_certificate(self, fingerprint: str | None) -> Grant | None:
        """Access by a listed certificate only: that some CA signed it grants nothing."""
        if not fingerprint:
            return None
        cache_key = "cert:" + fingerprint
        with self._lock:
            cached = self._cache.get(cache_key)
        if cached is not None and time.monotonic() - cached[0] < CACHE_SECONDS:
            return cached[1]
        with Session(self._engine) as db:
            row = db.scalar(
                select(ClientCertificate).where(
                    ClientCertificate.fingerprint == fingerprint,
                    ClientCertificate.component == self._component,
                    ClientCertificate.revoked_at.is_(None),
                )
            )
            grant = (
                Grant(
                    f"certificate {row.name}",
                    frozenset(json.loads(row.roles)),
                    row.server_id,
                    granted_roles(db, CERTIFICATE, row.id),
                )
                if row
                else None
            )
        with self._lock:
            self._cache[cache_key] = (time.monotonic(), grant)
        return grant

    def forget_cached(self) -> None:
        """After roles change: this process sees the change at once, others within CACHE_SECONDS."""
        with self._lock:
            self._cache.clear()

    def authenticate(self, api_key: str | None) -> Grant | None:
        if not api_key or len(api_key) > 256:
            return None
        digest = key_hash(api_key)
        if self._root_hash is not None and hmac.compare_digest(digest.encode(), self._root_hash.encode()):
            return Grant("root (configured)", frozenset({"root"}), None)
        with self._lock:
            cached = self._cache.get(digest)
        if cached is not None and time.monotonic() - cached[0] < CACHE_SECONDS:
            return cached[1]
        # The lookup is by the hash of a 256-bit random key: an equality match on it reveals nothing
        # useful to a timing attacker, who would have to guess a preimage.
        with Session(self._engine, expire_on_commit=False) as db:
            row = db.scalar(
                select(ApiKey).where(
                    ApiKey.key_hash == digest,
                    ApiKey.component == self._component,
                    ApiKey.revoked_at.is_(None),
                )
            )
            grant = (
                Grant(
                    row.name,
                    frozenset(json.loads(row.roles)),
                    row.server_id,
                    granted_roles(db, APIKEY, row.id),
                )
                if row is not None
                else None
            )
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (time.monotonic(), grant)
        return grant
