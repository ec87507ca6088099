"""URI handling, engine settings and health checks."""

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from authserver.storage import db
from tests.storage import server_side


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@h:5432/d", "postgresql+psycopg://u:p@h:5432/d"),
        ("postgresql://u@h/d", "postgresql+psycopg://u@h/d"),
        ("postgresql+psycopg://u@h/d", "postgresql+psycopg://u@h/d"),
        ("mysql://root@h:3306/d", "mysql+pymysql://root@h:3306/d?charset=utf8mb4"),
        ("mariadb://root:pw@h/d", "mysql+pymysql://root:pw@h/d?charset=utf8mb4"),
        ("mysql://root@h/d?charset=latin1", "mysql+pymysql://root@h/d?charset=latin1"),
        ("sqlite:///:memory:", "sqlite:///:memory:"),
    ],
)
def test_normalize_uri(given: str, expected: str) -> None:
    assert db.normalize_uri(given) == expected
    assert db.normalize_uri(expected) == expected  # idempotent: safe to normalize twice


def test_normalize_uri_keeps_special_characters_in_password() -> None:
    assert db.normalize_uri("postgres://u:p%40ss%2Fw@h/d") == "postgresql+psycopg://u:p%40ss%2Fw@h/d"


def test_normalize_sqlite_creates_parent_directory(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "x.db"
    assert db.normalize_uri(f"sqlite:///{target}") == f"sqlite:///{target}"
    assert target.parent.is_dir()


@pytest.mark.parametrize("uri", ["oracle://scott:tiger@h/d", "redis://:tiger@h/0", "no scheme at all"])
def test_unknown_scheme_is_refused_without_revealing_the_password(uri: str) -> None:
    with pytest.raises(ValueError) as caught:
        db.normalize_uri(uri)
    assert "tiger" not in str(caught.value)
    assert "sqlite" in str(caught.value) or "invalid" in str(caught.value)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u:secret@h:5432/d", "postgresql://u:***@h:5432/d"),
        ("redis://:secret@h:6379/0", "redis://:***@h:6379/0"),
        ("mysql://root@h/d", "mysql://root@h/d"),
        ("sqlite:////var/lib/x.db", "sqlite:////var/lib/x.db"),
        ("redis://h/0?password=secret&db=1", "redis://h/0?password=***&db=1"),
        ("postgresql://u:p@ss:word@h/d", "postgresql://u:***@h/d"),
        ("postgresql://u:p/ss@h/d", "postgresql://u:***@h/d"),
        ("not a uri", "not a uri"),
    ],
)
def test_mask_uri(given: str, expected: str) -> None:
    assert db.mask_uri(given) == expected


def test_ping(bare_engine: Engine) -> None:
    assert db.ping(bare_engine)


@pytest.mark.parametrize("uri", ["postgresql://postgres:pw@127.0.0.1:1/x", "mysql://root:pw@127.0.0.1:1/x"])
def test_ping_unreachable_is_false_and_quick(uri: str) -> None:
    engine = db.create_engine_for(uri)
    try:
        started = time.monotonic()
        assert db.ping(engine) is False
        assert time.monotonic() - started < 2
    finally:
        engine.dispose()


def test_sqlite_connection_settings(sqlite_uri: str) -> None:
    engine = db.create_engine_for(sqlite_uri)
    try:
        with engine.connect() as connection:
            assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert connection.execute(text("PRAGMA busy_timeout")).scalar() == db.SQLITE_BUSY_TIMEOUT_MS
    finally:
        engine.dispose()


def test_in_memory_sqlite_is_one_database_for_all_threads() -> None:
    engine = db.create_engine_for("sqlite:///:memory:")
    try:
        db.upgrade(engine)
        seen: list[bool] = []

        def check() -> None:
            with engine.connect() as connection:
                seen.append(connection.execute(text("SELECT count(*) FROM service_keys")).scalar() == 0)

        thread = threading.Thread(target=check)
        thread.start()
        thread.join()
        assert seen == [True]
    finally:
        engine.dispose()


@pytest.mark.parametrize("how", ["read", "transaction"])
def test_a_pooled_connection_the_server_closed_is_replaced_without_an_error(engine: Engine, how: str) -> None:
    if engine.dialect.name == "sqlite":
        pytest.skip("a file has no server to close connections")
    pings: list[object] = []
    original = engine.dialect.do_ping
    engine.dialect.do_ping = lambda *args: pings.append(args) or original(*args)  # type: ignore[method-assign]
    first = db.read(engine, lambda c: server_side.connection_id(c, engine.dialect.name))
    server_side.kill(engine, first)
    run = db.read if how == "read" else db.transaction
    calls: list[object] = []

    def work(connection: object) -> int:
        calls.append(connection)
        return server_side.connection_id(connection, engine.dialect.name)

    assert run(engine, work) != first
    assert len(calls) == 1  # the dead connection was never handed out: no failed try, no retry
    assert pings == []  # found at checkout without a round trip


def test_a_transaction_whose_connection_dies_before_the_commit_runs_once_more(engine: Engine) -> None:
    if engine.dialect.name == "sqlite":
        pytest.skip("a file has no server to close connections")
    attempts: list[int] = []

    def work(connection: object) -> int:
        server_id = server_side.connection_id(connection, engine.dialect.name)
        attempts.append(server_id)
        if len(attempts) == 1:
            # mid-transaction: its next statement fails, nothing was committed
            server_side.kill(engine, server_id)
        return int(connection.execute(text("SELECT 1")).scalar())  # type: ignore[attr-defined]

    assert db.transaction(engine, work) == 1
    assert len(attempts) == 2 and attempts[0] != attempts[1]


def test_a_transaction_is_not_run_again_for_other_errors(engine: Engine) -> None:
    attempts: list[int] = []

    def work(connection: object) -> None:
        attempts.append(1)
        connection.execute(text("SELECT * FROM no_such_table"))  # type: ignore[attr-defined]

    with pytest.raises(Exception, match="no_such_table"):
        db.transaction(engine, work)
    assert attempts == [1]


def test_a_burst_keeps_the_connections_it_opened(db_uri: str) -> None:
    """Fifteen transactions at once open fifteen connections, and the pool keeps them: the next burst
    opens none (a pool that closed its extra ones reopened a connection for most transactions)."""
    from sqlalchemy import event

    engine = db.create_engine_for(db_uri)
    opened: list[object] = []
    event.listen(engine, "connect", lambda *_args: opened.append(1))
    try:
        for _burst in range(2):
            held = [engine.connect() for _ in range(15)]
            for connection in held:
                connection.execute(text("SELECT 1"))
            for connection in held:
                connection.close()
        assert len(opened) == 15
        assert engine.pool.checkedin() == 15  # type: ignore[attr-defined]
    finally:
        engine.dispose()
