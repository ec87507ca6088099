"""Alembic environment: runs on the connection ``authserver.storage.db.upgrade`` passes in.

No alembic.ini and no URL: the server already holds an engine (and its credentials) when it migrates, and a
second source of connection settings would be one more thing to keep in step.
"""

from alembic import context
from sqlalchemy import Connection

# authserver's modules declaring tables. The IdP's (idp.models) join the same metadata when imported, which
# authserver may not do: to autogenerate (run programmatically), import nextauth.tables first.
from authserver.storage import flow_models  # noqa: F401
from authserver.storage.models import Base


def run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=Base.metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


_connection = context.config.attributes.get("connection")
if context.is_offline_mode() or not isinstance(_connection, Connection):
    raise RuntimeError(
        "run migrations with authserver.storage.db.upgrade() (or `nextauth migrate <component>`), "
        "which passes the database connection in; offline SQL generation is not supported"
    )
run(_connection)
