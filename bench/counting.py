"""Count what a server process asks of its database and of Redis, exactly, from inside the process.

``install()`` hooks SQLAlchemy (engine and pool events, for every engine the process creates) and
redis-py (its connection class), without touching the server's code; ``bench.wrapper --count`` calls it
before the server module runs. Counted:

- ``statements``: SQL statements sent (``before_cursor_execute``), pre-pings not included;
  ``autocommit_statements``: those of them sent outside a transaction (autocommit reads);
- ``transactions``: database transactions that wrote or ran statements: explicit ones (BEGIN ... COMMIT
  or ROLLBACK, with at least one statement) and single write statements in autocommit mode (which the
  database commits as transactions of their own); ``autocommit_writes``: those of the second kind;
  ``commits``: commits asked for (with or without statements);
- ``pings``: pool pre-pings (each a ``SELECT 1`` round trip before a checkout is handed out);
- ``checkouts``: connections taken from a pool;
- ``db_connects``, ``redis_connects``: connections opened (a pool that keeps too few opens and closes
  them under load, each a handshake and on PostgreSQL a server process);
- ``sqlite_vm_steps``: SQLite virtual machine instructions run (the work SQLite did, exact where time
  is not: a statement that scans a table grows with the table);
- ``redis_commands``: commands sent to Redis (a pipeline's commands one by one);
  ``redis_round_trips``: writes to Redis that wait for an answer (a pipeline is one).

Database round trips are derived, for PostgreSQL's driver (psycopg): each statement is one, each
explicit transaction adds two (its ``BEGIN``, sent on its own before the first statement, and its
``COMMIT`` or ``ROLLBACK``), each pre-ping one. SQLite has no network: there the figure says what
the same work would cost on a server.
"""

import json
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

FIELDS = (
    "statements",
    "autocommit_statements",
    "transactions",
    "autocommit_writes",
    "commits",
    "pings",
    "checkouts",
    "sqlite_vm_steps",
    "redis_commands",
    "redis_round_trips",
    "db_connects",
    "redis_connects",
)


class Counters:
    """The counts, kept cheap: they are taken in the servers whose CPU time the benchmark measures.

    The lock is a plain OS lock even under gevent's patching (held for a few operations that never
    yield, so no greenlet can wait on it), and a statement's short form is worked out once per text."""

    def __init__(self) -> None:
        self._lock = _native_lock()
        self.values = dict.fromkeys(FIELDS, 0)
        self.kinds: dict[str, int] = {}  # statements by their start, to see which ones a login makes
        self.dumps = 0
        self._short: dict[str, tuple[str, bool]] = {}

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self.values[name] += amount

    def statement(self, text: str) -> bool:
        """Count a statement; whether it is a read (a ``SELECT``)."""
        known = self._short.get(text)
        if known is None:
            if len(self._short) > 4096:
                self._short.clear()
            known = self._short[text] = (" ".join(text.split())[:90], text.lstrip()[:6].upper() == "SELECT")
        self.kind("statements", known[0])
        return known[1]

    def kind(self, field: str, kind: str) -> None:
        with self._lock:
            self.values[field] += 1
            self.kinds[kind] = self.kinds.get(kind, 0) + 1

    def reset(self) -> None:
        with self._lock:
            self.values = dict.fromkeys(FIELDS, 0)
            self.kinds = {}

    def dump(self, path: str) -> None:
        """Write the counts to ``path`` (atomically: a reader never sees half a file)."""
        with self._lock:
            self.dumps += 1
            data = {**self.values, "dump": self.dumps, "kinds": dict(self.kinds)}
        partial = Path(path + ".partial")
        partial.write_text(json.dumps(data))
        os.replace(partial, path)


def _native_lock() -> Any:
    try:
        from gevent import monkey
    except ImportError:
        return threading.Lock()
    return monkey.get_original("_thread", "allocate_lock")()


COUNTERS = Counters()
# SQLite calls the progress handler every this many VM instructions, counted per statement from its
# start: with more than one, a statement shorter than that would never be counted.
SQLITE_STEP = 1
_DIRTY = "_bench_counting_dirty"  # on a Connection's info: a statement ran in its current transaction


def install(counters: Counters = COUNTERS) -> Counters:
    from sqlalchemy import event
    from sqlalchemy.engine import Connection, Engine
    from sqlalchemy.engine.default import DefaultDialect
    from sqlalchemy.pool import Pool

    def statement(conn: Connection, _cursor: Any, text: str, *_args: Any) -> None:
        read = counters.statement(text)
        if conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
            counters.add("autocommit_statements")
            if not read:
                counters.add("autocommit_writes")
                counters.add("transactions")
        else:
            conn.info[_DIRTY] = True

    def ended(conn: Connection) -> None:
        if conn.info.pop(_DIRTY, False):
            counters.add("transactions")

    def committed(conn: Connection) -> None:
        counters.add("commits")
        ended(conn)

    event.listen(Engine, "before_cursor_execute", statement)
    event.listen(Engine, "commit", committed)
    event.listen(Engine, "rollback", ended)
    event.listen(Pool, "checkout", lambda *_args: counters.add("checkouts"))

    def connected(dbapi_connection: Any, _record: Any) -> None:
        counters.add("db_connects")
        if isinstance(dbapi_connection, sqlite3.Connection):
            dbapi_connection.set_progress_handler(sqlite_steps, SQLITE_STEP)

    def sqlite_steps() -> int:
        counters.add("sqlite_vm_steps", SQLITE_STEP)
        return 0  # anything else interrupts the statement

    event.listen(Pool, "connect", connected)

    ping = DefaultDialect._do_ping_w_event

    def counted_ping(self: DefaultDialect, dbapi_connection: Any) -> bool:
        counters.add("pings")
        return ping(self, dbapi_connection)

    DefaultDialect._do_ping_w_event = counted_ping  # type: ignore[method-assign]
    _install_hot(counters)
    _install_redis(counters)
    return counters


def _install_hot(counters: Counters) -> None:
    """Hot statements go to the driver without SQLAlchemy's events: each alone is one statement in
    autocommit mode (a write among them a transaction of its own); in a hot transaction, statements of an
    explicit transaction."""
    from authserver.storage import hot

    send = hot.send

    def counted_send(engine: Any, compiled: Any, arguments: Any) -> Any:
        read = counters.statement(compiled.sql)
        counters.add("autocommit_statements")
        if not read:
            counters.add("autocommit_writes")
            counters.add("transactions")
        return send(engine, compiled, arguments)

    hot.send = counted_send  # type: ignore[assignment]

    run_in_transaction = hot.HotTransaction.run
    transaction = hot.transaction

    def counted_run(self: Any, statement: Any, parameters: Any) -> Any:
        counters.statement(statement.compiled_for(self._dialect, parameters).sql)
        return run_in_transaction(self, statement, parameters)

    def counted_transaction(engine: Any, work: Any) -> Any:
        result = transaction(engine, work)
        counters.add("commits")
        counters.add("transactions")
        return result

    hot.HotTransaction.run = counted_run  # type: ignore[method-assign]
    hot.transaction = counted_transaction  # type: ignore[assignment]


def _install_redis(counters: Counters) -> None:
    try:
        from redis.connection import AbstractConnection
    except ImportError:
        return
    send_command = AbstractConnection.send_command
    pack_commands = AbstractConnection.pack_commands
    send_packed = AbstractConnection.send_packed_command
    connect = AbstractConnection.connect_check_health

    def name(args: Any) -> str:
        return "redis " + str(args[0] if args else "?")

    def counted_send_command(self: Any, *args: Any, **kwargs: Any) -> None:
        counters.kind("redis_commands", name(args))
        send_command(self, *args, **kwargs)

    def counted_pack_commands(self: Any, commands: Any) -> Any:
        commands = list(commands)
        for args in commands:
            counters.kind("redis_commands", name(args))
        return pack_commands(self, commands)

    def counted_send_packed(self: Any, command: Any, check_health: bool = True) -> None:
        counters.add("redis_round_trips")
        send_packed(self, command, check_health)

    def counted_connect(self: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(self, "_sock", None) is None:
            counters.add("redis_connects")
        return connect(self, *args, **kwargs)

    AbstractConnection.connect_check_health = counted_connect  # type: ignore[method-assign]
    _install_redis_direct(counters, name)
    AbstractConnection.send_command = counted_send_command  # type: ignore[method-assign]
    AbstractConnection.pack_commands = counted_pack_commands  # type: ignore[method-assign]
    AbstractConnection.send_packed_command = counted_send_packed  # type: ignore[method-assign]


def _install_redis_direct(counters: Counters, name: Any) -> None:
    """The store's own connections (authserver.storage.redis_direct) write hiredis-packed commands to the
    socket, past redis-py's send methods: counted where a command or a batch of them is sent."""
    from authserver.storage import redis_direct

    one, several = redis_direct._one, redis_direct._several

    def counted_one(link: Any, args: Any) -> Any:
        counters.kind("redis_commands", name(args))
        counters.add("redis_round_trips")
        return one(link, args)

    def counted_several(link: Any, commands: Any) -> Any:
        for args in commands:
            counters.kind("redis_commands", name(args))
        counters.add("redis_round_trips")
        return several(link, commands)

    redis_direct._one = counted_one
    redis_direct._several = counted_several


def db_round_trips(counts: dict[str, float]) -> float:
    """PostgreSQL round trips for these counts (see the module's docstring)."""
    explicit = counts["transactions"] - counts["autocommit_writes"]
    return counts["statements"] + 2 * explicit + counts["pings"]
