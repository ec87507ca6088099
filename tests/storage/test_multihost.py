"""PostgreSQL URIs with several hosts (``postgresql://db1:5432,db2:5432/...?target_session_attrs=...``): the
host list reaches libpq, which tries each in turn, and so does ``target_session_attrs``."""

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from authserver.storage import db, multihost
from tests.fixtures.system import free_port

pytestmark = pytest.mark.postgres


def test_a_host_list_becomes_host_parameters() -> None:
    assert multihost.rewrite(
        "postgresql://u:p%40w@a:5432,b:6432/nextauth?target_session_attrs=read-write"
    ) == ("postgresql://u:p%40w@/nextauth?host=a:5432&host=b:6432&target_session_attrs=read-write")
    assert multihost.rewrite("postgres://a,b/db") == "postgres:///db?host=a&host=b"
    for unchanged in ("postgresql://u@a:5432/db?sslmode=require", "mysql://a,b/db", "sqlite:///x,y.db"):
        assert multihost.rewrite(unchanged) == unchanged


def _hosts(uri: str, first: str) -> str:
    """``uri`` (one host) with ``first`` put before its host."""
    scheme, _, rest = uri.partition("://")
    userinfo, _, tail = rest.rpartition("@")
    return f"{scheme}://{userinfo}@{first},{tail}"


def test_the_writable_host_of_several_is_found(postgres_uri: str) -> None:
    nobody = f"127.0.0.1:{free_port()}"  # nothing listens there: libpq goes on to the next host
    engine = db.create_engine_for(_hosts(postgres_uri, nobody) + "?target_session_attrs=read-write")
    try:
        db.wait_for(engine, 0)
        with engine.connect() as connection:
            assert connection.execute(text("SHOW transaction_read_only")).scalar() == "off"
    finally:
        engine.dispose()
    # The parameter does reach libpq: asked for a standby, the primary is refused.
    engine = db.create_engine_for(_hosts(postgres_uri, nobody) + "?target_session_attrs=standby")
    try:
        with pytest.raises(OperationalError, match="not in hot standby mode"), engine.connect():
            pass
    finally:
        engine.dispose()
