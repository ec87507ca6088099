"""Group commit: rows that many requests insert at about the same moment go to the database in one
transaction, and each request returns once the transaction that carries its row has committed.

Under load a token endpoint inserts a refresh token per exchange. One transaction each costs a commit each
(an fsync on SQLite, three round trips on a server database); written together, a burst of exchanges pays
for one. Nothing is given up for it: a caller's ``insert`` returns only after its row is durable, and
raises what the database raised if it is not, exactly as a transaction of its own would.

The first caller to find no writer running starts one (a greenlet); callers that arrive while it writes
queue their rows for its next transaction. Where the database commits a lone statement on its own
(PostgreSQL, SQLite files), a batch is one multi-row INSERT sent as a hot statement: one round trip, all
rows or none. A batch that fails is written again row by row, so one bad row fails only its own caller.
Outside a gevent-patched process (a test calling the app in plain threads) there is no hub to share: each
row is its own transaction, as before.
"""

import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine, Executable, bindparam
from sqlalchemy.sql.dml import Insert

from authserver.storage import db as database
from authserver.storage.hot import HotStatement

log = logging.getLogger("nextauth.storage")

MAX_ROWS = 200


def _gevent_patched() -> bool:
    try:
        from gevent import monkey
    except ImportError:  # pragma: no cover - gevent is a dependency
        return False
    return bool(monkey.is_module_patched("threading"))


class GroupInsert:
    def __init__(self, engine: Engine, statement: Executable, *, grouped: bool | None = None) -> None:
        self._engine = engine
        self._statement = statement
        self._alone = HotStatement(statement)
        self._together: dict[tuple[tuple[str, ...], int], HotStatement] = {}  # by columns and row count
        self._grouped = _gevent_patched() if grouped is None else grouped
        self._queued: list[tuple[Mapping[str, Any], Any]] = []
        self._writing = False
        self.transactions = 0  # how many it took, for tests and benchmarks

    def insert(self, row: Mapping[str, Any]) -> None:
        """Insert ``row``; returns when it is committed, raises if it could not be."""
        if not self._grouped:
            self._write([row])
            return
        from gevent.event import AsyncResult

        done = AsyncResult()
        self._queued.append((row, done))
        if not self._writing:
            self._writing = True
            import gevent

            gevent.spawn(self._drain)
        done.get()

    def _drain(self) -> None:
        batch: list[tuple[Mapping[str, Any], Any]] = []
        try:
            while self._queued:
                batch, self._queued = self._queued[:MAX_ROWS], self._queued[MAX_ROWS:]
                try:
                    self._write([row for row, _done in batch])
                except Exception as exc:
                    if len(batch) == 1:
                        batch[0][1].set_exception(exc)
                    else:
                        log.info("a grouped insert of %d rows failed; writing them one by one", len(batch))
                        self._one_by_one(batch)
                else:
                    for _row, done in batch:
                        done.set(None)
                batch = []
        except BaseException as exc:  # killed while writing: nobody may wait for ever
            for _row, done in [*batch, *self._queued]:
                if not done.ready():
                    done.set_exception(exc)
            self._queued = []
            raise
        finally:
            self._writing = False

    def _one_by_one(self, batch: list[tuple[Mapping[str, Any], Any]]) -> None:
        for row, done in batch:
            try:
                self._write([row])
            except Exception as exc:
                done.set_exception(exc)
            else:
                done.set(None)

    def _write(self, rows: list[Mapping[str, Any]]) -> None:
        columns = tuple(sorted(rows[0]))
        if len(rows) == 1:
            # Alone: one statement the database commits on its own where that spares BEGIN and COMMIT.
            database.write_one(self._engine, self._alone, dict(rows[0]))
        elif (together := self._together_for(columns, rows)) is not None:
            values = {f"{column}_{i}": row[column] for i, row in enumerate(rows) for column in columns}
            database.write_one(self._engine, together, values)
        else:
            # SQLAlchemy takes the columns of many rows from the first one: rows alike go together.
            alike: dict[tuple[str, ...], list[Mapping[str, Any]]] = {}
            for row in rows:
                alike.setdefault(tuple(sorted(row)), []).append(row)
            with self._engine.begin() as connection:
                for group in alike.values():
                    connection.execute(self._statement, group)
        self.transactions += 1

    def _together_for(self, columns: tuple[str, ...], rows: list[Mapping[str, Any]]) -> HotStatement | None:
        """One INSERT of all ``rows`` (each with ``columns``) as a hot statement, where hot statements go
        straight to the driver; None elsewhere, or when the rows' columns differ."""
        if not database.autocommits(self._engine) or not isinstance(self._statement, Insert):
            return None
        if any(tuple(sorted(row)) != columns for row in rows):
            return None
        key = (columns, len(rows))
        found = self._together.get(key)
        if found is None:
            binds: list[dict[str, Any]] = [
                {column: bindparam(f"{column}_{i}") for column in columns} for i in range(len(rows))
            ]
            found = self._together[key] = HotStatement(self._statement.values(binds))
        return found
