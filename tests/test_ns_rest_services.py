"""What the REST views hand to the services, checked on the services themselves (accounts, session
queries), and that the views stay a translation: no SQL in ``authserver/ns/rest``."""

import ast
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session as DbSession

import authserver.ns.rest
from authserver.ns.accounts import AccountService
from authserver.ns.common import now
from authserver.ns.errors import ServiceError
from authserver.ns.login import LoginService
from authserver.ns.servers import ServerRegistry
from authserver.storage import db
from authserver.storage.flow_models import Account, Session, User
from authserver.storage.kv import MemoryStore


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    engine = db.create_engine_for(f"sqlite:///{tmp_path / 'ns.db'}")
    db.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def servers(engine: Engine) -> tuple[str, str]:
    registry = ServerRegistry(engine)
    return registry.ensure_default().id, registry.create("other").id


def _account(engine: Engine, server_id: str, user_id: str, account_id: str, *, active: bool = True) -> None:
    with DbSession(engine) as session:
        user = session.query(User).filter_by(server_id=server_id, user_id=user_id).one_or_none()
        if user is None:
            user = User(server_id=server_id, user_id=user_id)
            session.add(user)
            session.flush()
        session.add(
            Account(
                id=account_id,
                server_id=server_id,
                user_pk=user.id,
                key_type="ed25519",
                public_key=b"k" * 32,
                thumbprint=f"tp-{account_id}",
                sfs_key_hash="s" * 64,
                sfs_device="device" if account_id != "old" else None,
                active=active,
            )
        )
        session.commit()


def _session(
    engine: Engine, server_id: str, hsid: str, account_id: str, user_id: str, **extra: object
) -> None:
    with DbSession(engine) as session:
        session.add(
            Session(
                id=f"s-{hsid}",
                hsid=hsid,
                server_id=server_id,
                account_id=account_id,
                user_id=user_id,
                method="qr",
                second_factor="pin",
                expires_at=extra.pop("expires_at", now() + timedelta(hours=1)),
                **extra,
            )
        )
        session.commit()


def test_a_users_accounts_are_its_active_ones_on_that_server(
    engine: Engine, servers: tuple[str, str]
) -> None:
    default, other = servers
    _account(engine, default, "ann", "a1")
    _account(engine, default, "ann", "old")
    _account(engine, default, "ann", "pending", active=False)
    _account(engine, other, "ann", "elsewhere")
    accounts = AccountService(engine).user_accounts(default, "ann")
    assert {a["accountid"]: a["second_factor_bound"] for a in accounts} == {"a1": True, "old": False}
    assert AccountService(engine).user_accounts(default, "bob") == []


def test_blocking_and_deleting_keep_to_the_server(engine: Engine, servers: tuple[str, str]) -> None:
    default, other = servers
    _account(engine, default, "ann", "a1")
    accounts = AccountService(engine)
    for refused in (lambda: accounts.set_blocked(other, "a1", True), lambda: accounts.delete(other, "a1")):
        with pytest.raises(ServiceError) as caught:
            refused()
        assert (caught.value.status, caught.value.code) == (404, "not_found")
    accounts.set_blocked(default, "a1", True)
    assert accounts.user_accounts(default, "ann")[0]["blocked"] is True
    accounts.set_blocked(default, "a1", False)
    assert accounts.user_accounts(default, "ann")[0]["blocked"] is False
    accounts.delete(default, "a1")
    assert accounts.user_accounts(default, "ann") == []
    with pytest.raises(ServiceError):
        accounts.delete(default, "a1")


def test_session_queries_see_only_live_sessions_of_that_server(
    engine: Engine, servers: tuple[str, str]
) -> None:
    default, other = servers
    _account(engine, default, "ann", "a1")
    _account(engine, other, "ann", "a2")
    _session(engine, default, "live", "a1", "ann")
    _session(engine, default, "ended", "a1", "ann", ended_at=now())
    _session(engine, default, "expired", "a1", "ann", expires_at=now() - timedelta(seconds=1))
    _session(engine, other, "elsewhere", "a2", "ann")
    login = LoginService(engine, MemoryStore(), ServerRegistry(engine), {}, "ws://127.0.0.1:1/")
    assert login.active_hsids(default, ["live", "ended", "expired", "elsewhere", "unknown"]) == {"live"}
    assert [s["hsid"] for s in login.user_sessions(default, "ann")] == ["live"]
    assert login.user_sessions(default, "bob") == []


def test_rest_views_run_no_sql() -> None:
    """The views translate HTTP to the services; queries belong in the services."""
    for module in Path(authserver.ns.rest.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.ImportFrom | ast.Import):
                names = (
                    [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                )
                assert not any(name.split(".")[0] == "sqlalchemy" for name in names), module.name
                assert not any(name.startswith("authserver.storage") for name in names), module.name


def test_a_changed_server_reaches_every_registry(
    engine: Engine, servers: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two ns instances share a database: one changes a server, the other follows once its copy is older
    than FRESH_SECONDS (its key, found by key hash at the handshake, included)."""
    default, _other = servers
    here, there = ServerRegistry(engine), ServerRegistry(engine)
    before = there.get(default)
    assert before is not None and before.login_pin_timeout == 0
    changed = here.update(default, {"name": "Renamed", "login_pin_timeout": 120, "announce": {"a": "b"}})
    assert changed is not None and changed.name == "Renamed" and changed.identity_key is not None
    assert there.get(default) == before  # within FRESH_SECONDS, the copy it has
    monkeypatch.setattr("authserver.ns.servers.FRESH_SECONDS", 0.0)
    fresh = there.get(default)
    assert fresh is not None and (fresh.name, fresh.login_pin_timeout, fresh.announce) == (
        "Renamed",
        120,
        {"a": "b"},
    )
    assert fresh.key_hash == before.key_hash
    found = there.by_key_hash(before.identity.key_hash)
    assert found is not None and found.name == "Renamed"
    assert here.update("no-such-server", {"name": "x"}) is None
    with pytest.raises(ValueError, match="cannot change"):
        here.update(default, {"id": "other"})
