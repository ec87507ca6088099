"""A login's lookups of its hsid go through the index on (hsid, server_id, created_at) on every database,
however many sessions the one virtual server of a deployment holds.

Every session of such a deployment shares its server_id. With an index on hsid alone beside the one on
server_id, SQLite, which keeps no statistics unless told to ANALYZE, took the one on server_id and
walked every session of the server, three times per login (tests/test_login_budget.py counts what that
costs). PostgreSQL and MariaDB plan from statistics, gathered here as their background jobs would."""

import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, insert, text
from sqlalchemy.orm import Session

from authserver.ns.login import _CURRENT_ROW, _REPLACE_SESSIONS
from authserver.storage.flow_models import Account, Server, User
from authserver.storage.flow_models import Session as LoginSession
from authserver.storage.hot import HotStatement
from authserver.storage.models import utcnow

SESSIONS = 3000
INDEX = "ix_ns_sessions_hsid_server_id"


def _fill(engine: Engine) -> str:
    """One server, one account, ``SESSIONS`` sessions of it; the hsid of one of them."""
    with Session(engine) as db:
        db.add(Server(id="shop", name="Shop"))
        db.flush()
        user = User(server_id="shop", user_id="alice")
        db.add(user)
        db.flush()
        db.add(
            Account(
                id="acct",
                server_id="shop",
                user_pk=user.id,
                key_type="ec-p256",
                public_key=b"k",
                thumbprint="t" * 43,
                sfs_key_hash="h" * 43,
                active=True,
            )
        )
        db.commit()
    now = utcnow()
    rows = [
        {
            "id": secrets.token_hex(16),
            "hsid": secrets.token_urlsafe(32),
            "server_id": "shop",
            "account_id": "acct",
            "method": "qr",
            "second_factor": "pin",
            "created_at": now,
            "expires_at": now + timedelta(hours=1),
        }
        for _ in range(SESSIONS)
    ]
    with engine.begin() as connection:
        connection.execute(insert(LoginSession), rows)
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("ANALYZE ns_sessions"))
        elif engine.dialect.name in ("mysql", "mariadb"):
            connection.execute(text("ANALYZE TABLE ns_sessions"))
    return str(rows[SESSIONS // 2]["hsid"])


def _plan(engine: Engine, statement: HotStatement, parameters: dict[str, Any]) -> str:
    """The database's plan for the statement as the login sends it, as one text."""
    compiled = statement.statement.compile(dialect=engine.dialect)
    values = compiled.construct_params(parameters)
    arguments: Any = (
        tuple(values[name] for name in compiled.positiontup or ()) if compiled.positional else values
    )
    explain = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
    with engine.connect() as connection:
        result = connection.exec_driver_sql(explain + compiled.string, arguments)
        if engine.dialect.name in ("mysql", "mariadb"):  # the index it chose, not those it could have
            return "\n".join(f"{row['type']} | {row['key']} | {row['Extra']}" for row in result.mappings())
        return "\n".join(" | ".join(str(value) for value in row) for row in result)


def test_a_logins_session_lookups_use_the_hsid_index(engine: Engine) -> None:
    hsid = _fill(engine)
    current = _plan(engine, _CURRENT_ROW, {"hsid": hsid, "server_id": "shop"})
    replace = _plan(engine, _REPLACE_SESSIONS, {"this_hsid": hsid, "this_server": "shop", "now": utcnow()})
    for plan in (current, replace):
        assert INDEX in plan, plan
        assert "ix_ns_sessions_server_id" not in plan, plan
    if engine.dialect.name == "sqlite":
        # The index holds created_at after hsid and server_id: the newest comes first, no sort.
        assert "TEMP B-TREE" not in current, current
