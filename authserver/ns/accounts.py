"""A server's users and their accounts, as an application administers them: list, block, unblock, delete,
move to another user."""

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from authserver.audit import AuditTrail
from authserver.ns.errors import ServiceError
from authserver.storage.db import rowcount
from authserver.storage.flow_models import Account, User

# The orders ``list_accounts`` offers: name -> (column, descending). Ties are broken by account id, so
# pages never overlap or skip.
SORTS = {
    "created_at": (Account.created_at, False),
    "-created_at": (Account.created_at, True),
    "last_login_at": (Account.last_login_at, False),
    "-last_login_at": (Account.last_login_at, True),
    "userid": (User.user_id, False),
}
MAX_PAGE = 200


@dataclass(frozen=True)
class AccountQuery:
    user_prefix: str | None = None
    blocked: bool | None = None
    sort: str = "created_at"
    limit: int = 50
    offset: int = 0


def _described(row: Account, user_id: str | None) -> dict[str, Any]:
    return {
        "accountid": row.id,
        "userid": user_id,
        "key_type": row.key_type,
        "thumbprint": row.thumbprint,
        "blocked": row.blocked,
        "second_factor_bound": row.sfs_device is not None,
        "created_at": row.created_at.isoformat(),
        "last_login_at": row.last_login_at.isoformat() if row.last_login_at else None,
    }


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

    def list_accounts(self, server_id: str, query: AccountQuery) -> dict[str, Any]:
        """One page of the server's active accounts, filtered and sorted; ``total`` counts every match."""
        column, descending = SORTS[query.sort]
        conditions = [Account.server_id == server_id, Account.active.is_(True)]
        if query.user_prefix:
            escaped = query.user_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            conditions.append(User.user_id.like(escaped + "%", escape="\\"))
        if query.blocked is not None:
            conditions.append(Account.blocked.is_(query.blocked))
        order = column.desc() if descending else column.asc()
        # NULL last_login_at (never logged in) sorts last either way, the same on every database.
        nulls_last = column.is_(None).asc()
        with Session(self._engine) as db:
            total = db.scalar(
                select(func.count())
                .select_from(Account)
                .outerjoin(User, Account.user_pk == User.id)
                .where(*conditions)
            )
            rows = db.execute(
                select(Account, User.user_id)
                .outerjoin(User, Account.user_pk == User.id)
                .where(*conditions)
                .order_by(nulls_last, order, Account.id.asc())
                .limit(query.limit)
                .offset(query.offset)
            ).all()
        accounts = [_described(account, user_id) for account, user_id in rows]
        following = query.offset + len(accounts)
        return {
            "accounts": accounts,
            "total": total or 0,
            "next_offset": following if following < (total or 0) else None,
        }

    def move(
        self, server_id: str, account_id: str, user_id: str, *, actor: str | None = None
    ) -> dict[str, Any]:
        """Give the account to ``user_id`` (canonical form) on the same server, creating that user if new."""
        with Session(self._engine, expire_on_commit=False) as db, db.begin():
            account = db.get(Account, account_id)
            if account is None or account.server_id != server_id or not account.active:
                raise ServiceError(404, "not_found", "No such account.")
            previous = db.get(User, account.user_pk) if account.user_pk is not None else None
            from_user = previous.user_id if previous is not None else None
            user = db.scalar(select(User).where(User.server_id == server_id, User.user_id == user_id))
            if user is None:
                user = User(server_id=server_id, user_id=user_id)
                db.add(user)
                db.flush()
            account.user_pk = user.id
            moved = _described(account, user_id)
        self.audit.record(
            "account.moved",
            subject=user_id,
            server_id=server_id,
            actor=actor,
            data={"account": account_id, "from_user": from_user},
        )
        return moved
