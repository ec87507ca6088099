"""Hot statements (authserver.storage.hot) on each database: the same rows and values as SQLAlchemy gives,
committed on their own, the connection given back to the pool as it was lent, errors as SQLAlchemy's,
and a connection that died is dropped and the read sent again."""

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


def test_a_read_whose_connection_died_is_sent_again_on_a_fresh_one(engine: Engine) -> None:
    """The pool's own check at checkout is switched off, so the dead connection is handed out: the driver
    fails, the connection is dropped, and the read goes once more on a new connection."""
    if engine.dialect.name == "sqlite":
        pytest.skip("a file has no server to close connections")
    db.write_one(engine, ADD, {"id": "i"})
    event.remove(engine, "checkout", db._drop_if_closed)
    engine.pool.dispose()  # one connection in the pool: the next checkout gets the one killed below
    victim = _backend_id(engine)
    server_side.kill(engine, victim)
    assert db.read_first(engine, READ, {"id": "i"}).id == "i"
    assert _backend_id(engine) != victim


def test_a_write_whose_connection_died_fails_and_is_not_sent_again(engine: Engine) -> None:
    """It may have been applied before the connection died: the caller decides."""
    if engine.dialect.name != "postgresql":
        pytest.skip("the straight path's own handling of a dead connection (MariaDB goes through SQLAlchemy)")
    event.remove(engine, "checkout", db._drop_if_closed)
    engine.pool.dispose()
    victim = _backend_id(engine)
    server_side.kill(engine, victim)
    with pytest.raises(OperationalError) as failed:
        db.write_one(engine, ADD, {"id": "j"})
    assert failed.value.connection_invalidated
    db.write_one(engine, ADD, {"id": "j"})  # the dead connection left the pool
    assert _count(engine) == 1


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
