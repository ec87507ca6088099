"""Migration 0009 (per-server grants and attributes): a grant follows its server when the server goes, the
same attribute name cannot be stored twice in one scope (even with the empty server and user of a global
one), and a downgrade removes both tables and leaves the rest as it was."""

import pytest
from alembic import command
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import IntegrityError

from authserver.storage import db

GRANT = text(
    "INSERT INTO api_grants (principal_kind, principal_id, server_id, role, created_at)"
    " VALUES ('apikey', 1, :s, :r, CURRENT_TIMESTAMP)"
)
ATTRIBUTE = text(
    "INSERT INTO ns_attributes (scope, server_id, user_id, name, value, updated_at)"
    " VALUES (:scope, :s, '', :n, 'v', CURRENT_TIMESTAMP)"
)
SERVER = text(
    "INSERT INTO ns_servers (id, name, announce, login_pin_timeout, transaction_pin_timeout, created_at)"
    " VALUES ('shop', 'Shop', '{}', 0, 0, CURRENT_TIMESTAMP)"
)


def test_upgrade_constraints_and_downgrade(bare_engine: Engine) -> None:
    with bare_engine.connect() as connection:
        command.upgrade(db.alembic_config(connection), "0008")
        connection.execute(SERVER)
        connection.commit()
        command.upgrade(db.alembic_config(connection), "0009")
        connection.commit()
        connection.execute(GRANT, {"s": "shop", "r": "users"})
        connection.execute(ATTRIBUTE, {"scope": "global", "s": "", "n": "colour"})
        connection.commit()
        with pytest.raises(IntegrityError):
            connection.execute(GRANT, {"s": "shop", "r": "users"})
        connection.rollback()
        with pytest.raises(IntegrityError):
            connection.execute(ATTRIBUTE, {"scope": "global", "s": "", "n": "colour"})
        connection.rollback()
        connection.execute(text("DELETE FROM ns_servers WHERE id = 'shop'"))
        connection.commit()
        assert connection.execute(text("SELECT count(*) FROM api_grants")).scalar() == 0
        command.downgrade(db.alembic_config(connection), "0008")
        connection.commit()
    tables = set(inspect(bare_engine).get_table_names())
    assert not {"api_grants", "ns_attributes"} & tables and "ns_servers" in tables
    db.upgrade(bare_engine)
