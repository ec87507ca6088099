"""A server's users and their accounts, as an application administers them: list, block, unblock, delete."""

from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from authserver.audit import AuditTrail
from authserver.ns.errors import ServiceError
from authserver.storage.db import rowcount
from authserver.storage.flow_models import Account, User


class AccountService:
    def __init__(self, engine: Engine, audit: AuditTrail | None = None) -> None:
        self._engine = engine
        self.audit = audit if audit is not None else AuditTrail(engine, "ns")

    def _user_of(self, db: Session, account_id: str) -> str | None:
        return db.scalar(
            select(User.user_id).join(Account, Account.user_pk == User.id).where(Account.id == account_id)
        )

    def user_accounts(self, server_id: str, user_id: str) -> list[dict[str, Any]]:
        """The active accounts of one user of this server (none: an empty list)."""
        with Session(self._engine, expire_on_commit=False) as db:
            rows = db.execute(
                select(Account)
                .join(User, Account.user_pk == User.id)
                .where(User.server_id == server_id, User.user_id == user_id, Account.active.is_(True))
            ).scalars()
            return [
                {
                    "accountid": row.id,
                    "key_type": row.key_type,
                    "thumbprint": row.thumbprint,
                    "blocked": row.blocked,
                    # False: enrolled before accounts were bound to an app instance; must be re-enrolled.
                    "second_factor_bound": row.sfs_device is not None,
                    "created_at": row.created_at.isoformat(),
                    "last_login_at": row.last_login_at.isoformat() if row.last_login_at else None,
                }
                for row in rows
            ]

    def set_blocked(
        self, server_id: str, account_id: str, blocked: bool, *, actor: str | None = None
    ) -> None:
        with Session(self._engine, expire_on_commit=False) as db:
            result = db.execute(
                update(Account)
                .where(Account.id == account_id, Account.server_id == server_id)
                .values(blocked=blocked)
            )
            db.commit()
            user_id = self._user_of(db, account_id)
        if not rowcount(result):
            raise ServiceError(404, "not_found", "No such account.")
        self.audit.record(
            "account.blocked" if blocked else "account.unblocked",
            subject=user_id,
            server_id=server_id,
            actor=actor,
            data={"account": account_id},
        )

    def delete(self, server_id: str, account_id: str, *, actor: str | None = None) -> None:
        with Session(self._engine, expire_on_commit=False) as db:
            account = db.get(Account, account_id)
            if account is None or account.server_id != server_id:
                raise ServiceError(404, "not_found", "No such account.")
            user_id = self._user_of(db, account_id)
            db.delete(account)
            db.commit()
        self.audit.record(
            "account.deleted", subject=user_id, server_id=server_id, actor=actor, data={"account": account_id}
        )
