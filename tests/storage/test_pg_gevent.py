"""psycopg's waits on gevent's hub (authserver/storage/pg_gevent.py): in a process gevent has patched, as
the services are, and not in one it has not."""

import json
import subprocess
import sys
import textwrap

import psycopg
from sqlalchemy import text

from authserver.storage import db, pg_gevent
from tests.fixtures.system import REPO

PATCHED = textwrap.dedent(
    """
    from gevent import monkey

    monkey.patch_all()

    import json
    import sys
    import time

    import gevent
    import psycopg
    from sqlalchemy import text

    from authserver.storage import db

    engine = db.create_engine_for(sys.argv[1])
    seen = {}
    with engine.connect() as connection:
        seen["class"] = type(connection.connection.dbapi_connection).__name__

    def slow() -> None:
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_sleep(0.5)"))

    started = time.monotonic()
    gevent.joinall([gevent.spawn(slow) for _ in range(4)], raise_error=True)
    seen["four_sleeps"] = time.monotonic() - started

    pooled = engine.raw_connection()
    raw = pooled.dbapi_connection
    raw.autocommit = True
    raw.execute("LISTEN nobody_sends_here")
    started = time.monotonic()
    seen["notified"] = len(list(raw.notifies(timeout=0.3)))  # a wait with a timeout, which expires
    seen["notify_wait"] = time.monotonic() - started

    pid = raw.execute("SELECT pg_backend_pid()").fetchone()[0]
    with engine.connect() as other:
        other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    time.sleep(0.2)
    try:
        raw.execute("SELECT 1")
        seen["after_termination"] = "answered"
    except psycopg.OperationalError:  # PostgreSQL says AdminShutdown
        seen["after_termination"] = "OperationalError"
    pooled.invalidate()
    engine.dispose()
    print(json.dumps(seen))
    """
)


def test_postgres_statements_wait_on_the_hub_in_a_patched_process(postgres_uri: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PATCHED, postgres_uri],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["class"] == "GeventConnection"
    # Four half-second statements at once take about half a second, not two: each wait yields.
    assert seen["four_sleeps"] < 1.5, seen
    # A wait with a timeout ends when it expires (else the child would hang until killed).
    assert seen["notified"] == 0 and 0.25 < seen["notify_wait"] < 5, seen
    # A connection the server ended fails its next statement at once, as with psycopg's own wait.
    assert seen["after_termination"] == "OperationalError", seen


def test_postgres_keeps_psycopgs_wait_where_gevent_has_not_patched(postgres_uri: str) -> None:
    engine = db.create_engine_for(postgres_uri)
    try:
        with engine.connect() as connection:
            dbapi_connection = connection.connection.dbapi_connection
            assert type(dbapi_connection) is psycopg.Connection
            assert not isinstance(dbapi_connection, pg_gevent.GeventConnection)
            assert connection.execute(text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()
