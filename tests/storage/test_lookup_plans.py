"""Lookups that run per login, per push or per API call find their rows through an index on what picks
them out, on every database, however many rows one virtual server holds.

Every row of a deployment with one virtual server shares its server_id. With an index on hsid alone
beside the one on server_id, SQLite, which keeps no statistics unless told to ANALYZE, took the one on
server_id and walked every session of the server, three times per login (tests/test_login_budget.py
counts what that costs); a user's accounts and sessions, and the account of a key that evidence names,
were found by walking the table. PostgreSQL and MariaDB plan from statistics, gathered here as their
background jobs would. Each statement is the one the code sends: the hot ones as declared, the others
caught as the services run them."""

import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, insert, select, text
from sqlalchemy.orm import Session

from authserver.ns.accounts import AccountService
from authserver.ns.login import _CURRENT_ROW, _REPLACE_SESSIONS, LoginService
from authserver.ns.servers import ServerRegistry
from authserver.ns.transactions import TransactionService
from authserver.storage.flow_models import Account, Server, User
from authserver.storage.flow_models import Session as LoginSession
from authserver.storage.hot import HotStatement
from authserver.storage.kv import MemoryStore
from authserver.storage.models import utcnow
from idp.models import RelyingPartyLogin

USERS = 300
SESSIONS_PER_USER = 10
ALICE = "user-150"


def _fill(engine: Engine) -> None:
    """One server, ``USERS`` users with one account each, ``SESSIONS_PER_USER`` sessions each, and a SAML
    login record per session."""
    with Session(engine) as db:
        db.add(Server(id="shop", name="Shop"))
        db.commit()
    now = utcnow()
    with engine.begin() as connection:
        users_rows = [{"server_id": "shop", "user_id": f"user-{i}"} for i in range(USERS)]
        connection.execute(insert(User), users_rows)
        users = {row.user_id: row.id for row in connection.execute(select(User.user_id, User.id))}
        connection.execute(
            insert(Account),
            [
                {
                    "id": f"acct-{i}",
                    "server_id": "shop",
                    "user_pk": users[f"user-{i}"],
                    "key_type": "ec-p256",
                    "public_key": b"k",
                    "thumbprint": f"thumb-{i}",
                    "sfs_key_hash": "h" * 43,
                    "active": True,
                    "mc_mailbox": f"mailbox-{i}",
                }
                for i in range(USERS)
            ],
        )
        sessions = [
            {
                "id": secrets.token_hex(16),
                "hsid": secrets.token_urlsafe(32),
                "server_id": "shop",
                "account_id": f"acct-{i}",
                "user_id": f"user-{i}",
                "method": "qr",
                "second_factor": "pin",
                "created_at": now,
                "expires_at": now + timedelta(hours=1),
            }
            for i in range(USERS)
            for _ in range(SESSIONS_PER_USER)
        ]
        connection.execute(insert(LoginSession), sessions)
        connection.execute(
            insert(RelyingPartyLogin),
            [
                {
                    "sid": row["id"],
                    "protocol": "saml",
                    "client_id": "https://sp.example/metadata",
                    "name_id": row["user_id"],
                    "session_index": secrets.token_hex(8),
                    "created_at": now,
                }
                for row in sessions
            ],
        )
    with engine.begin() as connection:
        for table in ("ns_sessions", "ns_accounts", "ns_users", "idp_rp_logins"):
            if engine.dialect.name == "postgresql":
                connection.execute(text(f"ANALYZE {table}"))
            elif engine.dialect.name in ("mysql", "mariadb"):
                connection.execute(text(f"ANALYZE TABLE {table}"))


def _explain(engine: Engine, statement: str, arguments: Any) -> str:
    """The database's plan for a statement as the driver was given it, as one text."""
    explain = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
    with engine.connect() as connection:
        result = connection.exec_driver_sql(explain + statement, arguments)
        if engine.dialect.name in ("mysql", "mariadb"):  # the index it chose, not those it could have
            return "\n".join(
                f"{row['table']} | {row['type']} | {row['key']} | {row['Extra']}" for row in result.mappings()
            )
        return "\n".join(" | ".join(str(value) for value in row) for row in result)


def _hot_plan(engine: Engine, statement: HotStatement, parameters: dict[str, Any]) -> str:
    compiled = statement.statement.compile(dialect=engine.dialect)
    values = compiled.construct_params(parameters)
    arguments: Any = (
        tuple(values[name] for name in compiled.positiontup or ()) if compiled.positional else values
    )
    return _explain(engine, compiled.string, arguments)


@contextmanager
def _sent(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    """The statements (with their arguments) sent through ``engine`` meanwhile."""
    sent: list[tuple[str, Any]] = []

    def caught(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_rest: Any) -> None:
        sent.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", caught)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", caught)


def _plan_of(engine: Engine, run: Callable[[], object], table: str) -> str:
    """The plan of the one statement on ``table`` that ``run`` sends."""
    with _sent(engine) as sent:
        run()
    on_table = [(s, p) for s, p in sent if f"FROM {table}" in s and s.lstrip().upper().startswith("SELECT")]
    assert len(on_table) == 1, sent
    return _explain(engine, *on_table[0])


def _assert_uses(plan: str, index: str, table: str) -> None:
    assert index in plan, plan
    assert f"SCAN {table}\n" not in plan + "\n" and f"SCAN {table} |" not in plan, plan  # SQLite
    assert f"Seq Scan on {table}" not in plan and f"{table} | ALL" not in plan, plan  # PostgreSQL, MariaDB


@pytest.fixture
def filled(engine: Engine) -> Engine:
    _fill(engine)
    return engine


def test_a_logins_session_lookups_use_the_hsid_index(filled: Engine) -> None:
    with Session(filled) as db:
        hsid = db.scalar(select(LoginSession.hsid).where(LoginSession.user_id == ALICE).limit(1))
    current = _hot_plan(filled, _CURRENT_ROW, {"hsid": hsid, "server_id": "shop"})
    replace = _hot_plan(
        filled, _REPLACE_SESSIONS, {"this_hsid": hsid, "this_server": "shop", "now": utcnow()}
    )
    for plan in (current, replace):
        _assert_uses(plan, "ix_ns_sessions_hsid_server_id", "ns_sessions")
    if filled.dialect.name == "sqlite":
        # The index holds created_at after hsid and server_id: the newest comes first, no sort.
        assert "TEMP B-TREE" not in current, current


def test_a_users_sessions_and_accounts_are_found_through_indexes(filled: Engine) -> None:
    kv = MemoryStore()
    login = LoginService(filled, kv, ServerRegistry(filled), {}, "ws://127.0.0.1/sigmai")
    sessions = _plan_of(filled, lambda: login.user_sessions("shop", ALICE), "ns_sessions")
    _assert_uses(sessions, "ix_ns_sessions_user_id_server_id", "ns_sessions")
    accounts = _plan_of(filled, lambda: AccountService(filled).user_accounts("shop", ALICE), "ns_accounts")
    _assert_uses(accounts, "ix_ns_accounts_user_pk", "ns_accounts")


def test_the_account_that_evidence_names_is_found_through_its_key(filled: Engine) -> None:
    kv = MemoryStore()
    servers = ServerRegistry(filled)
    login = LoginService(filled, kv, servers, {}, "ws://127.0.0.1/sigmai")
    transactions = TransactionService(filled, kv, servers, login, {}, "ws://127.0.0.1/sigmai")
    record = {"account_key": {"thumbprint": "thumb-150"}}
    plan = _plan_of(
        filled,
        lambda: transactions._account_for_record(record, {"server": "shop"}, lambda _server: True),
        "ns_accounts",
    )
    _assert_uses(plan, "ix_ns_accounts_thumbprint", "ns_accounts")


def test_a_saml_logout_request_finds_its_logins_through_an_index(filled: Engine) -> None:
    # The query idp/saml/slo.py builds for a LogoutRequest with a NameID and a SessionIndex.
    query = select(RelyingPartyLogin.sid).where(
        RelyingPartyLogin.protocol == "saml",
        RelyingPartyLogin.client_id == "https://sp.example/metadata",
        RelyingPartyLogin.name_id == ALICE,
        RelyingPartyLogin.session_index.in_(["0011223344556677"]),
    )
    plan = _plan_of(filled, lambda: Session(filled).execute(query).all(), "idp_rp_logins")
    _assert_uses(plan, "ix_idp_rp_logins_client_id_name_id", "idp_rp_logins")
