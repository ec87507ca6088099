"""Database connection: URI handling, engine set-up, migrations and health.

Operators write the short URI forms they know (``postgres://``, ``mysql://``); we pin the driver we ship so a
URI never silently picks a driver that is not installed.
"""

import hashlib
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast
from urllib.parse import parse_qsl, urlencode

import sqlalchemy
from sqlalchemy import Connection, CursorResult, Engine, Executable, Result, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, DisconnectionError
from sqlalchemy.pool import StaticPool

from authserver.storage import hot, liveness, multihost, pg_gevent
from authserver.storage.hot import HotStatement

if TYPE_CHECKING:
    from alembic.config import Config

T = TypeVar("T")

log = logging.getLogger("nextauth.storage")

MIGRATIONS = Path(__file__).resolve().parent / "migrations"

_POSTGRES = "postgresql+psycopg"
_MYSQL = "mysql+pymysql"
_SQLITE = "sqlite"
_DRIVERS = {
    "postgres": _POSTGRES,
    "postgresql": _POSTGRES,
    "postgresql+psycopg": _POSTGRES,
    "mysql": _MYSQL,
    "mariadb": _MYSQL,
    "mysql+pymysql": _MYSQL,
    "mariadb+pymysql": _MYSQL,
    "sqlite": _SQLITE,
    "sqlite+pysqlite": _SQLITE,
}
# Fails a connection attempt to an unreachable server well before a readiness probe gives up, instead of
# hanging for the OS default of minutes.
CONNECT_TIMEOUT_SECONDS = 5
SQLITE_BUSY_TIMEOUT_MS = 10_000
# Connections a pool may hold, opened as they are needed and kept once opened (recycled after 30 min).
# A pool that closes what it opened beyond a smaller kept number ("overflow") opened and closed a
# connection for most transactions under a burst: SQLAlchemy's 5 kept did so with ten phones logging in
# at once, 10 kept with a hundred (0.8 connections opened per login on PostgreSQL, a backend started for
# each). The most a process holds is unchanged (10 kept + 10 overflow before): 20, all kept.
POOL_SIZE = 20
POOL_OVERFLOW = 0
# A fixed advisory-lock key/name shared by every process migrating the same database.
_LOCK_NAME = "nextauth-migrations"
_PG_LOCK_KEY = int.from_bytes(hashlib.sha256(_LOCK_NAME.encode()).digest()[:8], "big", signed=True)
_MYSQL_LOCK_WAIT_SECONDS = 300

_SECRET_QUERY_KEYS = {"password", "passwd", "pass", "secret", "token"}


def mask_uri(uri: str) -> str:
    """The URI with any password (userinfo or query parameter) replaced by ``***``, fit for logs/errors.

    Works on the string rather than through urlsplit, which both reshapes URIs (``sqlite:////x`` loses two
    slashes) and stops the authority at an unescaped ``/`` in a password, which would then be shown.
    """
    head, sep, rest = uri.partition("://")
    if not sep:
        return uri
    ends = [i for i in (rest.find("?"), rest.find("#")) if i >= 0]
    at = rest.rfind("@", 0, min(ends, default=len(rest)))
    if at >= 0:
        user, colon, _ = rest[:at].partition(":")
        rest = user + (":***" if colon else "") + rest[at:]
    before, question, after = rest.partition("?")
    if question:
        query, hash_, fragment = after.partition("#")
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() in _SECRET_QUERY_KEYS for k, _ in pairs):
            query = urlencode(
                [(k, "***" if k.lower() in _SECRET_QUERY_KEYS else v) for k, v in pairs], safe="*"
            )
        rest = f"{before}?{query}{hash_}{fragment}"
    return head + sep + rest


def _parse(uri: str) -> URL:
    try:
        url = make_url(multihost.rewrite(uri))  # postgresql://db1,db2/...: several hosts
    except (ArgumentError, ValueError) as exc:
        raise ValueError(f"invalid database URI {mask_uri(uri)!r}") from exc
    if url.drivername.lower() not in _DRIVERS:
        raise ValueError(
            f"unsupported database URI scheme {url.drivername!r} in {mask_uri(uri)!r}: "
            "use sqlite:///path, postgresql://... or mysql://... (mariadb://...)"
        )
    return url.set(drivername=_DRIVERS[url.drivername.lower()])


def _is_memory_sqlite(url: URL) -> bool:
    return url.database in (None, "", ":memory:")


def normalize_uri(uri: str) -> str:
    """The SQLAlchemy URI with our driver; for SQLite, also create the file's directory."""
    url = _parse(uri)
    if url.drivername == _MYSQL and "charset" not in url.query:
        # utf8 in MySQL means 3-byte utf8mb3, which cannot hold every user-supplied string.
        url = url.update_query_dict({"charset": "utf8mb4"})
    if url.drivername == _SQLITE:
        if not _is_memory_sqlite(url):
            assert url.database is not None
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        # Returned as given: re-rendering would percent-escape the path (":memory:" -> "%3Amemory%3A").
        return uri
    return url.render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # Off by default in SQLite, and per connection: without it ON DELETE CASCADE does nothing.
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        # WAL lets readers run while one writer writes (greenlets serving requests); persists in the file.
        # Switching to it needs an exclusive lock for which SQLite does not call the busy handler, so two
        # processes opening a new database together can see "database is locked": wait and retry.
        for attempt in range(100):
            try:
                if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                    cursor.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == 99:
                    raise
                time.sleep(0.05)
    finally:
        cursor.close()


def create_engine_for(uri: str) -> Engine:
    """An engine for the URI, safe to share between threads and greenlets.

    No pre-ping: a ``SELECT 1`` round trip before every checkout doubled the round trips of a short
    transaction. A connection the server closed while it sat in the pool is found at checkout instead,
    without a round trip (``_drop_if_closed``); one that dies later fails its transaction before the
    commit, and ``transaction()`` runs that once more on a fresh connection. Connections are recycled
    before idle limits of servers and proxies close them."""
    url = make_url(normalize_uri(uri))
    if url.drivername == _SQLITE:
        # The pool hands a connection to whichever thread checks it out next, so pysqlite's
        # same-thread check only gets in the way.
        connect_args: dict[str, Any] = {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        if _is_memory_sqlite(url):
            # One shared connection, or every checkout would see its own empty in-memory database.
            engine = sqlalchemy.create_engine(url, connect_args=connect_args, poolclass=StaticPool)
        else:
            # A file has no server that could close the connection: nothing to check at checkout.
            engine = sqlalchemy.create_engine(
                url, connect_args=connect_args, pool_size=POOL_SIZE, max_overflow=POOL_OVERFLOW
            )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    connect_args = {}
    if "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_SECONDS
    # pool_recycle stays under MariaDB's default wait_timeout (8 h) and typical proxy idle limits.
    engine = sqlalchemy.create_engine(
        url, connect_args=connect_args, pool_recycle=1800, pool_size=POOL_SIZE, max_overflow=POOL_OVERFLOW
    )
    event.listen(engine, "checkout", _drop_if_closed)
    pg_gevent.install(engine)
    return engine


def _drop_if_closed(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Pool checkout: refuse a connection whose server has closed it (``liveness``), without the round
    trip of a pre-ping. ``DisconnectionError`` makes the pool discard the connection and hand out another."""
    if liveness.closed_by_server(dbapi_connection):
        raise DisconnectionError("the database closed this connection while it was idle in the pool")


def rowcount(result: Result[Any]) -> int:
    """Rows an UPDATE or DELETE matched. ``Session.execute`` is annotated as returning ``Result``; for
    those statements it is a ``CursorResult``, which carries the count."""
    return cast(CursorResult[Any], result).rowcount


def transaction(engine: Engine, work: Callable[[Connection], T]) -> T:
    """``work`` in one transaction, committed; once more on a fresh connection if the connection died
    before the commit was sent.

    That transaction never reached its COMMIT, so the database rolled it back: running it again is safe
    as long as ``work`` only talks to the database. A failure during the commit itself is not retried
    (it may have committed). Anything else propagates, after a rollback."""
    for attempt in (1, 2):
        committing = False
        try:
            with engine.connect() as connection:
                result = work(connection)
                committing = True
                connection.commit()
            return result
        except DBAPIError as exc:
            if attempt == 2 or committing or not exc.connection_invalidated:
                raise
            log.info("database connection lost before the commit; running the transaction again")
    raise AssertionError("unreachable")  # pragma: no cover


def autocommits(engine: Engine) -> bool:
    # PostgreSQL's and SQLite's drivers switch a connection to autocommit and back without a round trip;
    # PyMySQL sends a command each way, which costs more than the BEGIN and COMMIT it would save. An
    # in-memory SQLite database is one connection shared by every checkout: switching it could end
    # another checkout's transaction.
    return engine.dialect.name in ("postgresql", "sqlite") and not isinstance(engine.pool, StaticPool)


def write_one(
    engine: Engine,
    statement: "Executable | HotStatement",
    parameters: dict[str, Any],
    take: Callable[[Any], T] = rowcount,  # type: ignore[assignment]
) -> T:
    """One write statement, atomic on its own; ``take`` reads its result (by default, the rows it
    matched) before the connection goes back to the pool. Outside an explicit transaction where that
    saves round trips (PostgreSQL, SQLite: the database commits the statement, durably, as a transaction
    of its own: one round trip instead of BEGIN, statement and COMMIT), in a ``transaction()`` elsewhere.
    A ``HotStatement`` goes straight to the driver there (``hot``); ``take`` then gets a ``HotResult``,
    which has the same ``first()``, ``all()`` and ``rowcount``.

    Not retried on a dead connection: the statement may have been applied before the connection died
    (``_drop_if_closed`` keeps connections that died in the pool from being used)."""
    if isinstance(statement, HotStatement):
        if autocommits(engine):
            return take(hot.run(engine, statement, parameters))
        statement = statement.statement
    sql = statement
    if not autocommits(engine):
        return transaction(
            engine,
            lambda connection: take(cast(CursorResult[Any], connection.execute(sql, parameters))),
        )
    with engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT")
        return take(cast(CursorResult[Any], connection.execute(sql, parameters)))


def read_first(engine: Engine, statement: HotStatement, parameters: dict[str, Any]) -> Any:
    """The first row a hot SELECT gives (columns by name), or None; outside a transaction where that
    saves round trips, and once more on a fresh connection when the first one had died, like ``read``."""
    if not autocommits(engine):
        return read(engine, lambda connection: connection.execute(statement.statement, parameters).first())
    for attempt in (1, 2):
        try:
            return hot.run(engine, statement, parameters).first()
        except DBAPIError as exc:
            if attempt == 2 or not exc.connection_invalidated:
                raise
            log.info("database connection lost; reading again")
    raise AssertionError("unreachable")  # pragma: no cover


class _ThroughSqlalchemy:
    """``HotTransaction.run`` on a SQLAlchemy connection, where hot statements do not go straight."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def run(self, statement: HotStatement, parameters: dict[str, Any]) -> Any:
        return self._connection.execute(statement.statement, parameters)


def hot_transaction(engine: Engine, work: Callable[[Any], T]) -> T:
    """``work`` runs hot statements (``.run(statement, parameters)``, which gives ``first()``, ``all()``
    and ``rowcount``) in one transaction, committed; straight on the driver where single statements go
    so (``hot.transaction``), through SQLAlchemy elsewhere. Retried like ``transaction()``."""
    if autocommits(engine):
        return hot.transaction(engine, work)
    return transaction(engine, lambda connection: work(_ThroughSqlalchemy(connection)))


def read(engine: Engine, work: Callable[[Connection], T]) -> T:
    """``work`` (reads only) outside a transaction where that saves round trips: on PostgreSQL and SQLite
    the connection is in autocommit mode, so a single SELECT is one round trip, not BEGIN, SELECT and
    ROLLBACK. (On MariaDB switching the mode costs round trips itself.) Retried like ``transaction()``."""
    autocommit = autocommits(engine)
    for attempt in (1, 2):
        try:
            with engine.connect() as connection:
                if autocommit:
                    connection.execution_options(isolation_level="AUTOCOMMIT")
                return work(connection)
        except DBAPIError as exc:
            if attempt == 2 or not exc.connection_invalidated:
                raise
            log.info("database connection lost; reading again")
    raise AssertionError("unreachable")  # pragma: no cover


def alembic_config(connection: Connection) -> "Config":
    """Alembic configured from code: no alembic.ini, no URL, the caller's connection."""
    # Imported here: only migrations need Alembic, and it is a tenth of a second of every command's start.
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


@contextmanager
def _migration_lock(connection: Connection) -> Iterator[None]:
    """Serialize migrations across processes sharing the database.

    Without it, two instances starting together both see an empty database and both run CREATE TABLE; one
    fails (and on MariaDB, whose DDL is not transactional, could leave a half-migrated schema). The lock
    holder migrates; the other waits, then finds the schema at head and does nothing.
    """
    dialect = connection.dialect.name
    if dialect == "postgresql":
        # Transaction-scoped: released by the commit that also makes the migrated schema visible.
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        yield
    elif dialect in ("mysql", "mariadb"):
        # MariaDB's named locks are server-wide (PostgreSQL's advisory locks are per database): name it
        # after the database so migrations of unrelated databases on one server do not wait on each other.
        database = connection.execute(text("SELECT DATABASE()")).scalar() or ""
        name = f"{_LOCK_NAME}:{hashlib.sha256(database.encode()).hexdigest()[:32]}"
        got = connection.execute(
            text("SELECT GET_LOCK(:name, :wait)"), {"name": name, "wait": _MYSQL_LOCK_WAIT_SECONDS}
        ).scalar()
        if got != 1:
            raise TimeoutError(f"could not get the migration lock within {_MYSQL_LOCK_WAIT_SECONDS} s")
        try:
            yield
        finally:
            connection.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": name})
    elif dialect == "sqlite":
        # Takes SQLite's write lock now (waiting up to busy_timeout) rather than at the first write, so a
        # second process reads the version table only after the first committed.
        connection.exec_driver_sql("BEGIN IMMEDIATE")
        yield
    else:  # pragma: no cover - normalize_uri admits no other dialect
        yield


class DatabaseUnavailable(Exception):
    """The database did not answer within the start-up wait; the message is one line for the operator."""


def wait_for(
    engine: Engine, limit: float, *, label: str = "", sleep: Any = time.sleep, clock: Any = time.monotonic
) -> None:
    """Return once the database answers; try with growing pauses (one log line each) for ``limit`` seconds.

    A database that starts after the service (compose, a rebooting host) is normal; a traceback and an
    exit at the first refusal are not."""
    deadline = clock() + limit
    pause = 0.5
    tries = 0
    url = engine.url
    # Where, not how: the URI itself (masked) is logged once at start already.
    where = (
        f"{url.database}"
        if url.get_backend_name() == "sqlite"
        else f"at {url.host}:{url.port or 'default port'}"
        if url.host
        else f"at {','.join(url.query.get('host', ()))}"  # several hosts (multihost)
    )
    while True:
        tries += 1
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception as exc:
            from authserver.outage import describe  # outage imports redis: only needed when waiting

            left = deadline - clock()
            if left <= 0:
                raise DatabaseUnavailable(
                    f"{label}the database {where} did not answer within {limit:.0f} s "
                    f"({tries} tries; last: {describe(exc)})"
                ) from None
            wait = min(pause, left)
            log.warning(
                "%swaiting for the database %s: %s; next try in %.1f s", label, where, describe(exc), wait
            )
            sleep(wait)
            pause = min(pause * 2, 10.0)
            continue
        if tries > 1:
            log.info("%sthe database answers", label)
        return


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest revision; a no-op when it is there already, so run at every start."""
    with engine.connect() as connection:
        with _migration_lock(connection):
            # Alembic sees the transaction the lock opened and runs inside it rather than committing its own.
            from alembic import command

            command.upgrade(alembic_config(connection), "head")
            connection.commit()
    log.debug("database schema at head")


def ping(engine: Engine) -> bool:
    """Whether the database answers; for readiness probes, so it never raises."""
    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT 1")).scalar() == 1
    except Exception:  # any failure means "not ready", whatever the driver raises
        log.debug("database ping failed", exc_info=True)
        return False
