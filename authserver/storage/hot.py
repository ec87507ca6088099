"""Hot statements: the few SQL statements that every login or token exchange sends, run on the
driver's own connection.

``Connection.execute`` costs about 80 µs of CPU per statement on PostgreSQL beyond what the driver
itself spends (execution context, result wrapping, events, switching the connection to autocommit and
back): as much as the driver's own work. A ``HotStatement`` is compiled once per dialect and set of
parameter names, with the bind and result processors of its column types, and then sent with the pool's
DB-API connection in autocommit mode: one statement that the database commits on its own, as
``db.write_one`` and ``db.read`` already send it, without that overhead. The connection is one of a
few the hot statements keep checked out of the pool, already in autocommit mode (``_Kept``).

Only where the database commits a lone statement by itself and switching the driver to autocommit
costs no round trip (PostgreSQL, SQLite on a file): ``db`` runs the statement through SQLAlchemy
everywhere else. Errors come out as SQLAlchemy's (``IntegrityError``, ``OperationalError``), and a
connection the driver finds dead is dropped from the pool, as SQLAlchemy would."""

import logging
import os
import time
import weakref
from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Dialect, Engine, Executable, event
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.sql.compiler import SQLCompiler

from authserver.storage import liveness

T = TypeVar("T")

log = logging.getLogger("nextauth.storage")


@dataclass(frozen=True)
class _Bind:
    key: str  # the parameter's name as callers pass it
    name: str  # the name rendered in the SQL
    default: Callable[[], Any]  # the value when not passed: a literal of the statement, a column default
    required: bool
    process: Callable[[Any], Any] | None


@dataclass(frozen=True)
class _Compiled:
    sql: str
    positional: bool
    binds: tuple[_Bind, ...]
    row: Callable[..., Any] | None  # a named tuple of the result columns, when they are known
    results: tuple[Callable[[Any], Any] | None, ...]
    # Whether it gives rows back: known when compiled, but for a statement of text (None: the cursor
    # says). Asking psycopg's cursor builds a description of every column, each time.
    fetches: bool | None

    def arguments(self, parameters: Mapping[str, Any]) -> Sequence[Any] | dict[str, Any]:
        values: list[Any] = []
        for bind in self.binds:
            if bind.key in parameters:
                value = parameters[bind.key]
            elif bind.required:
                raise KeyError(f"hot statement: no value for parameter {bind.key!r}")
            else:
                value = bind.default()
            values.append(value if bind.process is None else bind.process(value))
        if self.positional:
            return values
        return {bind.name: value for bind, value in zip(self.binds, values, strict=True)}

    def shape(self, raw: Sequence[Any]) -> Any:
        if self.row is None:
            return tuple(raw)
        return self.row(
            *(
                value if process is None else process(value)
                for process, value in zip(self.results, raw, strict=True)
            )
        )


class HotResult:
    """What a hot statement gave back: its rows (named tuples, columns by name) and the rows it matched."""

    __slots__ = ("_rows", "rowcount")

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def first(self) -> Any:
        return self._rows[0] if self._rows else None

    def all(self) -> list[Any]:
        return list(self._rows)


class HotStatement:
    """A statement declared once (at module level) and sent many times a second."""

    def __init__(self, statement: Executable) -> None:
        self.statement = statement
        self._compiled: dict[tuple[str, tuple[str, ...]], _Compiled] = {}

    def compiled_for(self, dialect: Dialect, parameters: Mapping[str, Any]) -> _Compiled:
        # Compiled for these parameter names, as SQLAlchemy does: an INSERT takes its columns from them.
        key = (dialect.name, tuple(sorted(parameters)))
        found = self._compiled.get(key)
        if found is None:
            found = self._compiled[key] = _compile(self.statement, dialect, key[1])
        return found


def _compile(statement: Executable, dialect: Dialect, column_keys: tuple[str, ...]) -> _Compiled:
    compiled = statement.compile(dialect=dialect, column_keys=list(column_keys))  # type: ignore[attr-defined]
    if not isinstance(compiled, SQLCompiler):
        raise TypeError("hot statements are SQL statements")
    if compiled.literal_execute_params or compiled.post_compile_params:
        raise ValueError("hot statements take plain parameters (no IN lists expanded per call)")
    by_name = {name: bind for bind, name in compiled.bind_names.items()}
    order = list(compiled.positiontup or ()) if compiled.positional else list(by_name)
    # Columns whose default (or value on update) Python computes: SQLAlchemy fills them in per call.
    computed = {column.key: column.default for column in compiled.insert_prefetch}
    computed |= {column.key: column.onupdate for column in compiled.update_prefetch}
    binds = []
    for name in order:
        bind = by_name[name]
        default = computed.get(bind.key)
        binds.append(
            _Bind(
                key=bind.key,
                name=name,
                default=_default_of(default) if default is not None else _constant(bind.effective_value),
                required=bind.required and default is None,
                process=bind.type.dialect_impl(dialect).bind_processor(dialect),
            )
        )
    columns = list(getattr(statement, "exported_columns", None) or ())
    row: Callable[..., Any] | None = None
    results: tuple[Callable[[Any], Any] | None, ...] = ()
    if columns:
        names = [column.key for column in columns]
        if len(set(names)) != len(names):
            raise ValueError(f"hot statement: result columns must have distinct names, not {names}")
        row = namedtuple("HotRow", names)  # type: ignore[misc,no-redef]  # names known only here
        results = tuple(
            column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns
        )
    fetches: bool | None = None
    if columns:
        fetches = True
    elif (compiled.isinsert or compiled.isupdate or compiled.isdelete) and not compiled.effective_returning:
        fetches = False
    return _Compiled(compiled.string, compiled.positional, tuple(binds), row, results, fetches)


def _constant(value: Any) -> Callable[[], Any]:
    return lambda: value


def _default_of(default: Any) -> Callable[[], Any]:
    if not getattr(default, "is_scalar", False) and not getattr(default, "is_callable", False):
        raise ValueError("hot statements take column defaults that are values or Python functions")
    if default.is_callable:
        # SQLAlchemy keeps the function wrapped to take an execution context; ours use none.
        return lambda: default.arg(None)
    return _constant(default.arg)


def _autocommit_on(dialect: str, dbapi_connection: Any) -> Callable[[], None]:
    """Put the driver's connection in autocommit mode; returns what puts it back."""
    if dialect == "postgresql":
        # psycopg: the setter only checks that the connection is idle; no round trip.
        was = dbapi_connection.autocommit
        dbapi_connection.autocommit = True

        def restore_psycopg() -> None:
            dbapi_connection.autocommit = was

        return restore_psycopg
    # sqlite3: no isolation level means autocommit (the module's own transaction handling off).
    level = dbapi_connection.isolation_level
    dbapi_connection.isolation_level = None

    def restore_sqlite() -> None:
        dbapi_connection.isolation_level = level

    return restore_sqlite


def _execute(cursor: Any, compiled: _Compiled, arguments: Sequence[Any] | dict[str, Any]) -> HotResult:
    cursor.execute(compiled.sql, arguments)
    fetches = compiled.fetches if compiled.fetches is not None else cursor.description is not None
    rows = [compiled.shape(raw) for raw in cursor.fetchall()] if fetches else []
    return HotResult(rows, cursor.rowcount)


def _failed(
    engine: Engine, pooled: Any, dbapi_connection: Any, exc: Any, cursor: Any, sql: str, arguments: Any
) -> StatementError:
    """SQLAlchemy's error for a driver's; a connection the driver found dead leaves the pool."""
    dialect = engine.dialect
    invalidated = dialect.is_disconnect(exc, dbapi_connection, cursor)
    if invalidated and pooled.dbapi_connection is not None:  # not dropped already
        pooled.invalidate(exc)
    failure: StatementError = DBAPIError.instance(
        sql, arguments, exc, dialect.loaded_dbapi.Error, dialect=dialect, connection_invalidated=invalidated
    )
    return failure


# Connections hot statements keep checked out of an engine's pool, at most this many idle per engine: the
# pool's other connections stay for everything else. Kept no longer than the pool would keep one.
KEEP = 4
KEEP_SECONDS = 1800.0


class _Lent:
    __slots__ = ("_cursor", "dbapi_connection", "pooled", "restore", "since")

    def __init__(self, pooled: Any, dbapi_connection: Any, restore: Callable[[], None]) -> None:
        self.pooled = pooled
        self.dbapi_connection = dbapi_connection
        self.restore = restore
        self.since = time.monotonic()
        self._cursor: Any = None

    @property
    def cursor(self) -> Any:
        """The connection's one cursor for hot statements, made at the first: a new one per statement
        costs psycopg about a fifth of a short statement's CPU (70 against 56 us for a SELECT)."""
        if self._cursor is None:
            self._cursor = self.dbapi_connection.cursor()
        return self._cursor

    def close_cursor(self) -> None:
        cursor, self._cursor = self._cursor, None
        if cursor is not None:
            try:
                cursor.close()
            except Exception:  # noqa: S110 - the connection goes on to be closed or checked in
                pass


class _Kept:
    """Connections of one engine kept checked out, in autocommit mode, between hot statements.

    A statement on a connection the pool lends and takes back costs about half as much again as the
    statement itself (checkout, the pool's check, autocommit on and off, the rollback at checkin). Idle
    ones are checked again before reuse as the pool checks them (``liveness``); one that failed, or was
    interrupted mid-statement, is not kept. After a fork the parent's are left alone, and
    ``engine.dispose()`` closes them."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._idle: list[_Lent] = []
        self._forsaken: list[_Lent] = []
        self._pid = os.getpid()
        self._check = engine.dialect.name != "sqlite"  # a file has no server to close it

    def take(self) -> _Lent:
        if self._pid != os.getpid():
            # Never let go of the parent's: a connection given back to the pool would be handed out here,
            # and one closed would end the parent's session with the server.
            self._forsaken.extend(self._idle)
            self._idle, self._pid = [], os.getpid()
        while self._idle:
            lent = self._idle.pop()
            if self._check and liveness.closed_by_server(lent.dbapi_connection):
                self.drop(lent)
                continue
            return lent
        pooled = self._engine.raw_connection()
        dbapi_connection = pooled.dbapi_connection
        try:
            restore = _autocommit_on(self._engine.dialect.name, dbapi_connection)
        except BaseException:
            pooled.close()
            raise
        return _Lent(pooled, dbapi_connection, restore)

    def give_back(self, lent: _Lent) -> None:
        fresh = time.monotonic() - lent.since < KEEP_SECONDS
        if len(self._idle) < KEEP and fresh and self._pid == os.getpid():
            self._idle.append(lent)
            return
        self._return_to_pool(lent)

    def drop(self, lent: _Lent, exc: Exception | None = None) -> None:
        """Not to be used again: closed, and given back to the pool as invalid."""
        lent.close_cursor()
        if lent.pooled.dbapi_connection is not None:  # not invalidated already
            lent.pooled.invalidate(exc)

    def close(self, *_: Any) -> None:
        idle, self._idle = self._idle, []
        if self._pid == os.getpid():
            for lent in idle:
                self.drop(lent)

    def connections(self) -> list[Any]:
        return [lent.dbapi_connection for lent in self._idle]

    @staticmethod
    def _return_to_pool(lent: _Lent) -> None:
        lent.close_cursor()
        try:
            lent.restore()
        except Exception as exc:  # a connection left in autocommit mode would break transactions
            lent.pooled.invalidate(exc)
        lent.pooled.close()


_kept: "weakref.WeakKeyDictionary[Engine, _Kept]" = weakref.WeakKeyDictionary()


def _kept_for(engine: Engine) -> _Kept:
    kept = _kept.get(engine)
    if kept is None:
        kept = _kept[engine] = _Kept(engine)
        event.listen(engine, "engine_disposed", kept.close)
    return kept


def kept_connections(engine: Engine) -> list[Any]:
    """The driver's connections hot statements keep idle for ``engine`` (for tests and diagnostics)."""
    kept = _kept.get(engine)
    return [] if kept is None else kept.connections()


def send(engine: Engine, compiled: _Compiled, arguments: Sequence[Any] | dict[str, Any]) -> HotResult:
    """One statement in autocommit mode on a kept connection (``_Kept``). A connection the driver found
    dead, or whose statement was interrupted, is closed and never used again."""
    kept = _kept_for(engine)
    lent = kept.take()
    cursor = None
    try:
        cursor = lent.cursor
        result = _execute(cursor, compiled, arguments)
    except engine.dialect.loaded_dbapi.Error as exc:
        failure = _failed(engine, lent.pooled, lent.dbapi_connection, exc, cursor, compiled.sql, arguments)
        if lent.pooled.dbapi_connection is not None:  # not found dead: a refused statement (a constraint)
            kept.give_back(lent)
        raise failure from exc
    except BaseException as exc:  # interrupted mid-statement: what the connection holds is not known
        kept.drop(lent, exc if isinstance(exc, Exception) else None)
        raise
    kept.give_back(lent)
    return result


def run(engine: Engine, statement: HotStatement, parameters: Mapping[str, Any]) -> HotResult:
    compiled = statement.compiled_for(engine.dialect, parameters)
    return send(engine, compiled, compiled.arguments(parameters))


class HotTransaction:
    """Hot statements in one transaction (``transaction()``)."""

    def __init__(self, engine: Engine, cursor: Any) -> None:
        self._dialect = engine.dialect
        self._cursor = cursor
        self.statements = 0

    def run(self, statement: HotStatement, parameters: Mapping[str, Any]) -> HotResult:
        compiled = statement.compiled_for(self._dialect, parameters)
        self.statements += 1
        return _execute(self._cursor, compiled, compiled.arguments(parameters))


def transaction(engine: Engine, work: Callable[[HotTransaction], T]) -> T:
    """``work``'s hot statements in one transaction, committed; once more on a fresh connection when the
    connection died before the commit was sent (that transaction was rolled back by the database), as
    ``db.transaction`` does. ``work`` must only talk to the database. Anything else propagates, and the
    pool rolls the connection back as it takes it back."""
    for attempt in (1, 2):
        pooled = engine.raw_connection()
        dbapi_connection: Any = pooled.dbapi_connection
        cursor = None
        committing = False
        try:
            cursor = dbapi_connection.cursor()
            result = work(HotTransaction(engine, cursor))
            committing = True
            dbapi_connection.commit()
            return result
        except engine.dialect.loaded_dbapi.Error as exc:
            failure = _failed(engine, pooled, dbapi_connection, exc, cursor, "(a hot transaction)", None)
            if attempt == 2 or committing or not getattr(failure, "connection_invalidated", False):
                raise failure from exc
            log.info("database connection lost before the commit; running the transaction again")
        finally:
            pooled.close()
    raise AssertionError("unreachable")  # pragma: no cover
