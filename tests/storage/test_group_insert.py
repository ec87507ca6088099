"""Group commit (authserver.storage.group_insert) on each database: rows inserted at the same moment share a
transaction, every caller returns only once its row is committed, and a failure reaches exactly the callers
whose rows it kept out."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gevent
import pytest
from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, func, insert, select
from sqlalchemy.exc import IntegrityError, OperationalError

from authserver.storage import db
from authserver.storage.group_insert import GroupInsert

metadata = MetaData()
rows = Table(
    "group_insert_rows", metadata, Column("id", Integer, primary_key=True), Column("note", String(40))
)


@pytest.fixture
def engine(db_uri: str) -> Iterator[Engine]:
    engine = db.create_engine_for(db_uri)
    metadata.create_all(engine)
    yield engine
    metadata.drop_all(engine)
    engine.dispose()


def _count(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(rows)).scalar_one())


def _visible(engine: Engine, row_id: int) -> bool:
    with engine.connect() as connection:
        return connection.execute(select(rows.c.id).where(rows.c.id == row_id)).first() is not None


def test_rows_inserted_together_share_transactions_and_each_is_committed_on_return(engine: Engine) -> None:
    group = GroupInsert(engine, insert(rows), grouped=True)
    committed: list[bool] = []

    def one(row_id: int) -> None:
        group.insert({"id": row_id, "note": f"row {row_id}"})
        committed.append(_visible(engine, row_id))  # seen from another connection at once

    gevent.joinall([gevent.spawn(one, row_id) for row_id in range(1, 61)], raise_error=True)
    assert committed == [True] * 60 and _count(engine) == 60
    # The first row goes alone; the others arrive while it is written and go together.
    assert group.transactions <= 3
    # One at a time, each is its own transaction.
    before = group.transactions
    group.insert({"id": 100, "note": "alone"})
    assert group.transactions == before + 1 and _visible(engine, 100)


def test_a_bad_row_fails_its_own_caller_only(engine: Engine) -> None:
    group = GroupInsert(engine, insert(rows), grouped=True)
    group.insert({"id": 7, "note": "first"})
    outcomes: dict[int, str] = {}

    def one(row_id: int, key: int) -> None:
        try:
            group.insert({"id": row_id, "note": f"caller {key}"})
        except IntegrityError:
            outcomes[key] = "refused"
        else:
            outcomes[key] = "ok"

    # Caller 0 is written alone; 1-10 share a batch with caller 5's duplicate key.
    gevent.joinall(
        [gevent.spawn(one, 7 if key == 5 else 20 + key, key) for key in range(11)], raise_error=True
    )
    assert outcomes == {key: ("refused" if key == 5 else "ok") for key in range(11)}
    assert _count(engine) == 11  # row 7 once, and the ten others


def test_the_database_away_fails_every_waiting_caller_and_the_next_one_works(
    engine: Engine, tmp_path: Path
) -> None:
    broken = db.create_engine_for(f"sqlite:///{tmp_path}/missing/dir/../../nowhere/x.db")
    group = GroupInsert(broken, insert(rows), grouped=True)  # no such table: every write fails
    failures: list[type] = []

    def one(row_id: int) -> None:
        try:
            group.insert({"id": row_id, "note": "x"})
        except OperationalError as exc:
            failures.append(type(exc))

    gevent.joinall([gevent.spawn(one, row_id) for row_id in range(1, 6)], timeout=30, raise_error=True)
    assert failures == [OperationalError] * 5
    working = GroupInsert(engine, insert(rows), grouped=True)
    working.insert({"id": 1, "note": "after"})
    assert _visible(engine, 1)
    broken.dispose()


def test_outside_gevent_each_row_is_its_own_transaction(engine: Engine) -> None:
    group = GroupInsert(engine, insert(rows), grouped=False)
    for row_id in range(1, 4):
        group.insert({"id": row_id, "note": "plain"})
    assert group.transactions == 3 and _count(engine) == 3


def test_a_row_alone_is_one_statement_without_begin_and_commit_where_the_database_allows(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL and SQLite commit a lone INSERT on their own (one round trip, not three): it goes straight
    to the driver in autocommit mode (``hot``). MariaDB's driver would spend more switching to autocommit
    than BEGIN and COMMIT cost, so it keeps them, through SQLAlchemy."""
    from sqlalchemy import event

    from authserver.storage import hot

    through_sqlalchemy: list[object] = []
    straight: list[str] = []

    def seen(connection: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT"):
            through_sqlalchemy.append(connection.get_execution_options().get("isolation_level"))

    send = hot.send

    def spy(engine: Engine, compiled: Any, arguments: Any) -> Any:
        straight.append(compiled.sql.split()[0].upper())
        return send(engine, compiled, arguments)

    event.listen(engine, "before_cursor_execute", seen)
    monkeypatch.setattr(hot, "send", spy)
    group = GroupInsert(engine, insert(rows), grouped=True)
    group.insert({"id": 7, "note": "alone"})
    assert _visible(engine, 7)
    if engine.dialect.name in ("mysql", "mariadb"):
        assert (through_sqlalchemy, straight) == ([None], [])
    else:
        assert (through_sqlalchemy, straight) == ([], ["INSERT"])


def test_a_batch_is_one_insert_straight_to_the_driver_where_the_database_allows(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Several rows at once: one multi-row INSERT in autocommit mode on PostgreSQL and SQLite (one round
    trip, all rows or none); rows whose columns differ, and MariaDB, go through SQLAlchemy in a
    transaction."""
    from authserver.storage import hot

    straight: list[int] = []
    send = hot.send

    def spy(engine: Engine, compiled: Any, arguments: Any) -> Any:
        straight.append(compiled.sql.upper().count("VALUES") and len(arguments))
        return send(engine, compiled, arguments)

    monkeypatch.setattr(hot, "send", spy)
    group = GroupInsert(engine, insert(rows), grouped=True)

    def one(row: dict[str, Any]) -> None:
        group.insert(row)

    first = [{"id": i, "note": f"row {i}"} for i in range(1, 6)]
    gevent.joinall([gevent.spawn(one, row) for row in first], raise_error=True)
    # Rows without a note: the same columns as each other, not as the rows above.
    second = [{"id": i} for i in range(11, 15)]
    gevent.joinall(
        [gevent.spawn(one, row) for row in [*second, {"id": 20, "note": "mixed"}]], raise_error=True
    )
    assert _count(engine) == 10 and _visible(engine, 14)
    with engine.connect() as connection:
        notes = dict(connection.execute(select(rows.c.id, rows.c.note)).all())
    assert notes[3] == "row 3" and notes[12] is None and notes[20] == "mixed"
    if engine.dialect.name in ("mysql", "mariadb"):
        assert straight == []
    else:
        # Rows 1-5 queued before the writer ran: one INSERT of 10 values; then rows whose columns differ.
        assert straight == [10]
