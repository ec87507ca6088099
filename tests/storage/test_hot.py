"""Hot statements (authserver.storage.hot) on each database: the same rows and values as SQLAlchemy gives,
committed on their own, the connection given back to the pool as it was lent, errors as SQLAlchemy's,
and a connection that died is dropped and the read sent again."""

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import (
    Boolean,
    Column,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    bindparam,
    event,
    func,
    insert,
    literal_column,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError, OperationalError

from authserver.storage import db, hot
from authserver.storage.hot import HotStatement
from authserver.storage.models import UTCDateTime
from tests.storage import server_side

metadata = MetaData()
items = Table(
    "hot_items",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("count", Integer, nullable=False, default=0),
    Column("secret", LargeBinary, nullable=True),
    Column("active", Boolean, nullable=False, default=True),
    Column("seen_at", UTCDateTime, nullable=True),
)
READ = HotStatement(
    select(items.c.id, items.c.count, items.c.secret, items.c.active, items.c.seen_at).where(
        items.c.id == bindparam("id")
    )
)
ADD = HotStatement(insert(items))
# A literal in the statement (the 1) alongside passed values: the bind SQLAlchemy names for itself.
BUMP = HotStatement(
    update(items)
    .where(items.c.id == bindparam("item"))
    .values(count=items.c.count + 1, seen_at=bindparam("now"))
    .returning(items.c.count, items.c.seen_at)
)
MOMENT = datetime(2026, 12, 6, 7, 30, 15, 123456, tzinfo=UTC)


@pytest.fixture
def engine(db_uri: str) -> Iterator[Engine]:
    engine = db.create_engine_for(db_uri)
    metadata.create_all(engine)
    yield engine
    metadata.drop_all(engine)
    engine.dispose()


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The statements that went straight to the driver."""
    seen: list[str] = []
    send = hot.send

    def spy(engine: Engine, compiled: Any, arguments: Any) -> hot.HotResult:
        seen.append(compiled.sql)
        return send(engine, compiled, arguments)

    monkeypatch.setattr(hot, "send", spy)
    return seen


def _straight(engine: Engine) -> bool:
    return engine.dialect.name in ("postgresql", "sqlite")


def _count(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(items)).scalar_one())


def test_a_row_reads_back_with_the_values_sqlalchemy_gives(engine: Engine, sent: list[str]) -> None:
    db.write_one(
        engine, ADD, {"id": "a", "count": 3, "secret": b"\x00\xff", "active": True, "seen_at": MOMENT}
    )
    row = db.read_first(engine, READ, {"id": "a"})
    with engine.connect() as connection:
        expected = connection.execute(READ.statement, {"id": "a"}).first()
    assert expected is not None
    assert tuple(row) == tuple(expected) == ("a", 3, b"\x00\xff", True, MOMENT)
    assert (row.id, row.count, row.secret, row.active, row.seen_at) == tuple(expected)
    assert row.seen_at.tzinfo is not None  # aware UTC on every database, as UTCDateTime promises
    assert db.read_first(engine, READ, {"id": "nobody"}) is None
    assert len(sent) == (3 if _straight(engine) else 0)


def test_an_update_returns_what_it_wrote_and_counts_the_rows_it_matched(engine: Engine) -> None:
    db.write_one(engine, ADD, {"id": "b", "count": 1})
    if not engine.dialect.update_returning:
        pytest.skip("this database cannot return what an UPDATE wrote")
    later = MOMENT.replace(second=16)
    row = db.write_one(engine, BUMP, {"item": "b", "now": later}, take=lambda result: result.first())
    assert (row.count, row.seen_at) == (2, later)
    assert db.write_one(engine, BUMP, {"item": "b", "now": later}) == 1  # the default: rows matched
    assert db.write_one(engine, BUMP, {"item": "nobody", "now": later}) == 0
    assert db.read_first(engine, READ, {"id": "b"}).count == 3


def test_whether_rows_come_back_is_known_from_the_statement_or_else_asked_of_the_cursor(
    engine: Engine,
) -> None:
    db.write_one(engine, ADD, {"id": "r", "count": 7})
    plain_update = HotStatement(update(items).where(items.c.id == bindparam("item")).values(count=8))
    counted = HotStatement(text("SELECT count FROM hot_items WHERE id = :item"))
    dialect = engine.dialect
    assert READ.compiled_for(dialect, {"id": "r"}).fetches is True
    assert ADD.compiled_for(dialect, {"id": "r"}).fetches is False
    assert plain_update.compiled_for(dialect, {"item": "r"}).fetches is False
    assert counted.compiled_for(dialect, {"item": "r"}).fetches is None  # text: the cursor says
    assert db.write_one(engine, plain_update, {"item": "r"}) == 1
    assert tuple(db.read_first(engine, counted, {"item": "r"})) == (8,)
    assert db.read_first(engine, counted, {"item": "nobody"}) is None


def test_a_write_is_committed_on_its_own_and_the_connection_goes_back_out_of_autocommit(
    engine: Engine,
) -> None:
    db.write_one(engine, ADD, {"id": "c"})
    assert _count(engine) == 1  # seen from another connection: committed

    # The next transaction on the pool's connections must still be one: a failure rolls all of it back.
    def insert_then_fail(connection: Any) -> None:
        connection.execute(insert(items), {"id": "d"})
        raise RuntimeError("stop here")

    for _ in range(3):  # whichever pooled connection the write used
        with pytest.raises(RuntimeError):
            db.transaction(engine, insert_then_fail)
    assert _count(engine) == 1


def test_a_constraint_failure_is_sqlalchemys_integrity_error_and_the_pool_carries_on(engine: Engine) -> None:
    db.write_one(engine, ADD, {"id": "e"})
    with pytest.raises(IntegrityError):
        db.write_one(engine, ADD, {"id": "e"})
    db.write_one(engine, ADD, {"id": "f"})
    assert _count(engine) == 2


def test_each_set_of_parameters_gets_its_own_insert(engine: Engine) -> None:
    """An INSERT's columns come from the parameters, as with SQLAlchemy: the column left out takes its
    default, not the value of an earlier call."""
    db.write_one(engine, ADD, {"id": "g", "count": 9})
    db.write_one(engine, ADD, {"id": "h"})
    assert db.read_first(engine, READ, {"id": "g"}).count == 9
    assert db.read_first(engine, READ, {"id": "h"}).count == 0


def test_a_missing_parameter_is_refused_before_anything_is_sent(engine: Engine, sent: list[str]) -> None:
    if not _straight(engine):
        pytest.skip("SQLAlchemy sends it on this database")
    with pytest.raises(KeyError, match="id"):
        db.read_first(engine, READ, {})
    assert sent == []


def test_statements_that_cannot_go_straight_are_refused_when_first_sent(engine: Engine) -> None:
    expanding = HotStatement(select(items.c.id).where(items.c.id.in_(bindparam("ids", expanding=True))))
    if not _straight(engine):
        pytest.skip("SQLAlchemy sends it on this database")
    with pytest.raises(ValueError, match="IN lists"):
        db.read_first(engine, expanding, {"ids": ["a"]})
    duplicate = HotStatement(select(items.c.id, literal_column("'x'").label("id")))
    with pytest.raises(ValueError, match="distinct names"):
        db.read_first(engine, duplicate, {})


def _backend_id(engine: Engine) -> int:
    return db.read(engine, lambda connection: server_side.connection_id(connection, engine.dialect.name))


def _kept_backend_id(engine: Engine) -> int:
    """The server's id of the connection hot statements keep (one, after one statement)."""
    [kept] = hot.kept_connections(engine)
    return int(kept.info.backend_pid)


def _unchecked(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Dead connections are handed out: the pool's check at checkout and the kept ones' check off."""
    event.remove(engine, "checkout", db._drop_if_closed)
    monkeypatch.setattr(hot.liveness, "closed_by_server", lambda _connection: False)


def test_a_read_whose_connection_died_is_sent_again_on_a_fresh_one(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checks are switched off, so the dead connection is used: the driver fails, the connection is
    dropped, and the read goes once more on a new connection."""
    if engine.dialect.name != "postgresql":
        pytest.skip(
            "the straight path's own handling of a dead connection (a file has no server; MariaDB "
            "goes through SQLAlchemy)"
        )
    db.write_one(engine, ADD, {"id": "i"})
    _unchecked(engine, monkeypatch)
    victim = _kept_backend_id(engine)
    server_side.kill(engine, victim)
    assert db.read_first(engine, READ, {"id": "i"}).id == "i"
    assert _kept_backend_id(engine) != victim


def test_a_write_whose_connection_died_fails_and_is_not_sent_again(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It may have been applied before the connection died: the caller decides."""
    if engine.dialect.name != "postgresql":
        pytest.skip("the straight path's own handling of a dead connection (MariaDB goes through SQLAlchemy)")
    db.read_first(engine, READ, {"id": "none"})
    _unchecked(engine, monkeypatch)
    victim = _kept_backend_id(engine)
    server_side.kill(engine, victim)
    with pytest.raises(OperationalError) as failed:
        db.write_one(engine, ADD, {"id": "j"})
    assert failed.value.connection_invalidated
    assert hot.kept_connections(engine) == []  # the dead connection is not kept
    db.write_one(engine, ADD, {"id": "j"})
    assert _count(engine) == 1


def test_a_kept_connection_the_server_closed_is_replaced_before_use(engine: Engine) -> None:
    """A restart or an idle limit ends a kept connection: the next statement, a write, which is never sent
    twice, goes on a new connection without an error."""
    if engine.dialect.name != "postgresql":
        pytest.skip("connections kept by hot statements are on PostgreSQL and SQLite files")
    db.read_first(engine, READ, {"id": "none"})
    victim = _kept_backend_id(engine)
    server_side.kill(engine, victim)
    db.write_one(engine, ADD, {"id": "o"})
    assert _count(engine) == 1
    assert _kept_backend_id(engine) != victim


def test_connections_kept_are_few_and_closed_with_the_engine(engine: Engine) -> None:
    if not _straight(engine):
        pytest.skip("SQLAlchemy sends it on this database")
    lent = [hot._kept_for(engine).take() for _ in range(hot.KEEP + 2)]  # as many statements at once
    for one in lent:
        hot._kept_for(engine).give_back(one)
    kept = hot.kept_connections(engine)
    assert len(kept) == hot.KEEP  # the others went back to the pool
    assert engine.pool.checkedout() == hot.KEEP  # type: ignore[attr-defined]  # a QueuePool
    engine.dispose()
    assert hot.kept_connections(engine) == []
    assert all(_closed(connection) for connection in kept)


def _closed(dbapi_connection: Any) -> bool:
    closed = getattr(dbapi_connection, "closed", None)  # psycopg
    if closed is not None:
        return bool(closed)
    try:  # sqlite3
        dbapi_connection.execute("SELECT 1")
    except Exception:
        return True
    return False


class Interrupted(BaseException):
    """Stands for what can stop a greenlet mid-statement (gevent.Timeout, GreenletExit)."""


def test_a_connection_whose_statement_was_interrupted_is_not_used_again(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not _straight(engine):
        pytest.skip("SQLAlchemy sends it on this database")
    db.read_first(engine, READ, {"id": "none"})
    [connection] = hot.kept_connections(engine)
    execute = hot._execute

    def interrupted(cursor: Any, compiled: Any, arguments: Any) -> Any:
        cursor.execute(compiled.sql, arguments)  # sent, its answer not read
        raise Interrupted

    monkeypatch.setattr(hot, "_execute", interrupted)
    with pytest.raises(Interrupted):
        db.write_one(engine, ADD, {"id": "p"})
    monkeypatch.setattr(hot, "_execute", execute)
    assert hot.kept_connections(engine) == []
    assert _closed(connection)
    assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]  # a QueuePool
    assert db.read_first(engine, READ, {"id": "p"}).id == "p"  # autocommit: it was applied, once


def test_a_refused_statement_keeps_its_connection(engine: Engine) -> None:
    if not _straight(engine):
        pytest.skip("SQLAlchemy sends it on this database")
    db.write_one(engine, ADD, {"id": "q"})
    [connection] = hot.kept_connections(engine)
    with pytest.raises(IntegrityError):
        db.write_one(engine, ADD, {"id": "q"})
    assert hot.kept_connections(engine) == [connection]
    assert db.read_first(engine, READ, {"id": "q"}).id == "q"


def _cursor_closed(cursor: Any) -> bool:
    if hasattr(cursor, "closed"):  # psycopg
        return bool(cursor.closed)
    try:  # sqlite3 says so only when asked to work
        cursor.execute("SELECT 1")
    except Exception as exc:
        return "closed" in str(exc)
    return False


def test_a_kept_connection_sends_every_statement_on_one_cursor_closed_when_it_leaves(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not _straight(engine):
        pytest.skip("SQLAlchemy sends it on this database")
    used: list[Any] = []
    execute = hot._execute

    def noted(cursor: Any, compiled: Any, arguments: Any) -> Any:
        used.append(cursor)
        return execute(cursor, compiled, arguments)

    monkeypatch.setattr(hot, "_execute", noted)
    db.write_one(engine, ADD, {"id": "c1"})
    db.write_one(engine, BUMP, {"item": "c1", "now": MOMENT})
    with pytest.raises(IntegrityError):  # a refused statement: the connection and its cursor stay
        db.write_one(engine, ADD, {"id": "c1"})
    assert db.read_first(engine, READ, {"id": "c1"}).count == 1
    assert len(used) == 4 and all(cursor is used[0] for cursor in used)
    engine.dispose()  # the kept connections leave, closed: their cursor with them
    assert _cursor_closed(used[0])
    assert db.read_first(engine, READ, {"id": "c1"}).count == 1  # a new connection, a new cursor
    assert used[-1] is not used[0]


def test_a_forked_child_does_not_use_the_parents_kept_connections(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("a server's connection ids tell the connections apart")
    db.write_one(engine, ADD, {"id": "r"})
    parent = _kept_backend_id(engine)
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        try:
            found = db.read_first(engine, READ, {"id": "r"})
            os.write(write, f"{found.id} {_kept_backend_id(engine)}".encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    answer = os.read(read, 100).decode().split()
    os.close(read)
    assert answer[0] == "r" and int(answer[1]) != parent
    assert _kept_backend_id(engine) == parent
    assert db.read_first(engine, READ, {"id": "r"}).id == "r"  # the parent's connection still works


def test_a_hot_transaction_commits_its_statements_together_or_none(engine: Engine) -> None:
    def two(statements: Any) -> int:
        statements.run(ADD, {"id": "k"})
        return int(statements.run(READ, {"id": "k"}).first().count)

    assert db.hot_transaction(engine, two) == 0
    assert _count(engine) == 1

    def then_a_duplicate(statements: Any) -> None:
        statements.run(ADD, {"id": "l"})
        statements.run(ADD, {"id": "k"})

    with pytest.raises(IntegrityError):
        db.hot_transaction(engine, then_a_duplicate)

    def then_a_failure(statements: Any) -> None:
        statements.run(ADD, {"id": "m"})
        raise RuntimeError("stop here")

    with pytest.raises(RuntimeError):
        db.hot_transaction(engine, then_a_failure)
    assert _count(engine) == 1  # neither "l" nor "m"


def test_a_hot_transaction_whose_connection_died_before_the_commit_runs_once_more(engine: Engine) -> None:
    if engine.dialect.name == "sqlite":
        pytest.skip("a file has no server to close connections")
    event.remove(engine, "checkout", db._drop_if_closed)
    engine.pool.dispose()
    victim = _backend_id(engine)
    server_side.kill(engine, victim)
    attempts: list[int] = []

    def add(statements: Any) -> None:
        attempts.append(1)
        statements.run(ADD, {"id": "n"})

    db.hot_transaction(engine, add)
    assert (len(attempts), _count(engine)) == (2, 1)
