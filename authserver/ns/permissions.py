"""Roles per virtual server: which roles an API key or a client certificate holds on one server, and
granting or revoking them there (the original product's ``/servers/{sid}/permissions/{roleid}``).

A principal is named ``apikey-<id>`` or ``clientcert-<id>`` (the ids of the key and certificate lists).
Its roles on a server are its own roles (when it is held for every server, or for that one) plus what was
granted there. Only roles about one server can be granted: ``createserver`` and ``audit`` act across
servers and stay with the key itself. A principal limited to another server cannot be granted anything
here, so a grant never widens a key's reach beyond the server its owner gave it.
"""

import json
import re
from dataclasses import dataclass

from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session

from authserver.audit import AuditTrail
from authserver.ns.access import APIKEY, CERTIFICATE, AccessControl
from authserver.ns.conflicts import retried_on_conflict
from authserver.ns.errors import ServiceError
from authserver.storage.admin_models import PermissionGrant
from authserver.storage.flow_models import ApiKey, ClientCertificate

GRANTABLE = ("sessions", "users", "accounts", "servers", "root")
PRINCIPAL = re.compile(r"^(apikey|clientcert)-([0-9]{1,12})$")


@dataclass(frozen=True)
class Principal:
    kind: str  # apikey or clientcert
    id: int
    name: str
    roles: frozenset[str]  # its own roles
    server_id: str | None  # None: held for every server

    @property
    def roleid(self) -> str:
        return f"{self.kind}-{self.id}"


class Permissions:
    def __init__(self, engine: Engine, access: AccessControl, audit: AuditTrail) -> None:
        self._engine = engine
        self._access = access
        self._audit = audit

    def _principals(self, db: Session) -> list[Principal]:
        keys = db.scalars(
            select(ApiKey).where(ApiKey.component == "ns", ApiKey.revoked_at.is_(None)).order_by(ApiKey.id)
        )
        certificates = db.scalars(
            select(ClientCertificate)
            .where(ClientCertificate.component == "ns", ClientCertificate.revoked_at.is_(None))
            .order_by(ClientCertificate.id)
        )
        return [
            Principal(kind, row.id, row.name, frozenset(json.loads(row.roles)), row.server_id)
            for kind, rows in ((APIKEY, keys), (CERTIFICATE, certificates))
            for row in rows
        ]

    def _principal(self, db: Session, roleid: str, server_id: str) -> Principal:
        """A live principal that may hold roles on ``server_id``; one limited to another server is
        unknown here, so a server's administrators learn nothing about other servers' keys."""
        found = PRINCIPAL.match(roleid)
        row: ApiKey | ClientCertificate | None = None
        if found is not None:
            number = int(found.group(2))
            row = db.get(ApiKey, number) if found.group(1) == APIKEY else db.get(ClientCertificate, number)
        if (
            found is None
            or row is None
            or row.component != "ns"
            or row.revoked_at is not None
            or row.server_id not in (None, server_id)
        ):
            raise ServiceError(
                404,
                "not_found",
                "No such API key or client certificate for this server.",
            )
        return Principal(found.group(1), row.id, row.name, frozenset(json.loads(row.roles)), row.server_id)

    @staticmethod
    def _granted(db: Session, principal: Principal, server_id: str) -> set[str]:
        return set(
            db.scalars(
                select(PermissionGrant.role).where(
                    PermissionGrant.principal_kind == principal.kind,
                    PermissionGrant.principal_id == principal.id,
                    PermissionGrant.server_id == server_id,
                )
            )
        )

    @staticmethod
    def _described(principal: Principal, granted: set[str], server_id: str) -> dict[str, object]:
        own = principal.roles if principal.server_id in (None, server_id) else frozenset()
        return {
            "roleid": principal.roleid,
            "name": principal.name,
            "server": principal.server_id,
            "own_roles": sorted(own),
            "granted": sorted(granted),
            "roles": sorted(own | granted),
        }

    def list(self, server_id: str) -> list[dict[str, object]]:
        """Every live key and certificate that holds a role on ``server_id``, and those roles."""
        with Session(self._engine) as db:
            grants: dict[tuple[str, int], set[str]] = {}
            for kind, principal_id, role in db.execute(
                select(
                    PermissionGrant.principal_kind, PermissionGrant.principal_id, PermissionGrant.role
                ).where(PermissionGrant.server_id == server_id)
            ):
                grants.setdefault((kind, principal_id), set()).add(role)
            described = [
                self._described(principal, grants.get((principal.kind, principal.id), set()), server_id)
                for principal in self._principals(db)
                if principal.server_id in (None, server_id)
            ]
        return [entry for entry in described if entry["roles"]]

    def get(self, server_id: str, roleid: str) -> dict[str, object]:
        with Session(self._engine) as db:
            principal = self._principal(db, roleid, server_id)
            return self._described(principal, self._granted(db, principal, server_id), server_id)

    def change(
        self, server_id: str, roleid: str, *, grant: set[str], revoke: set[str] | None, actor: str
    ) -> dict[str, object]:
        """Grant ``grant`` and revoke ``revoke`` (None: every role not in ``grant``, a replacement) on
        ``server_id``; one audit event for what was granted and one for what was revoked."""
        unknown = (grant | (revoke or set())) - set(GRANTABLE)
        if unknown:
            raise ServiceError(
                400,
                "bad_request",
                f"roles must be among {', '.join(GRANTABLE)}: the roles about one server"
                f" (not {', '.join(sorted(unknown))}).",
            )
        principal, added, removed, after = retried_on_conflict(
            lambda: self._apply(server_id, roleid, grant, revoke), "These roles"
        )
        self._access.forget_cached()
        for kind, roles in (("permission.granted", added), ("permission.revoked", removed)):
            if roles:
                self._audit.record(
                    kind,
                    server_id=server_id,
                    actor=actor,
                    data={"principal": principal.roleid, "name": principal.name, "roles": sorted(roles)},
                )
        return self._described(principal, after, server_id)

    def _apply(
        self, server_id: str, roleid: str, grant: set[str], revoke: set[str] | None
    ) -> tuple[Principal, set[str], set[str], set[str]]:
        with Session(self._engine) as db, db.begin():
            principal = self._principal(db, roleid, server_id)
            before = self._granted(db, principal, server_id)
            removed = (before - grant) if revoke is None else (before & revoke)
            added = grant - before
            if removed:
                db.execute(
                    delete(PermissionGrant).where(
                        PermissionGrant.principal_kind == principal.kind,
                        PermissionGrant.principal_id == principal.id,
                        PermissionGrant.server_id == server_id,
                        PermissionGrant.role.in_(sorted(removed)),
                    )
                )
            for role in sorted(added):
                db.add(
                    PermissionGrant(
                        principal_kind=principal.kind,
                        principal_id=principal.id,
                        server_id=server_id,
                        role=role,
                    )
                )
            after = (before - removed) | added
        return principal, added, removed, after
