"""What a database server does to a client's connection, done from a second connection in tests."""

import time

from sqlalchemy import Engine, text

from authserver.storage import db


def connection_id(connection: object, dialect: str) -> int:
    query = "SELECT pg_backend_pid()" if dialect == "postgresql" else "SELECT CONNECTION_ID()"
    return int(connection.execute(text(query)).scalar())  # type: ignore[attr-defined]


def kill(engine: Engine, server_id: int) -> None:
    """End one connection from the server's side, as a restart or an idle limit would."""
    admin = db.create_engine_for(engine.url.render_as_string(hide_password=False))
    try:
        with admin.connect() as connection:
            if engine.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": server_id})
            else:
                connection.execute(text(f"KILL {server_id:d}"))
    finally:
        admin.dispose()
    time.sleep(0.2)  # the goodbye reaches the client's socket
