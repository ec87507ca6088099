"""Migrations: repeatable, safe when instances start together, and producing exactly the models' schema."""

import threading

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

from authserver.storage import db
from authserver.storage.models import Base, SeenDevice, ServiceKey

# Every module declaring tables: theirs too must come out of the migrations exactly.
from nextauth import tables  # noqa: F401

OWN_TABLES = {ServiceKey.__tablename__, SeenDevice.__tablename__}


def _version(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def test_upgrade_twice_is_a_no_op(bare_engine: Engine) -> None:
    db.upgrade(bare_engine)
    first = _version(bare_engine)
    db.upgrade(bare_engine)
    assert first is not None and _version(bare_engine) == first
    assert set(Base.metadata.tables) <= set(inspect(bare_engine).get_table_names())


def test_migrated_schema_matches_models(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_first_revision_downgrades_to_nothing(bare_engine: Engine) -> None:
    # Only 0001 here: each later revision's downgrade belongs with that revision.
    with bare_engine.connect() as connection:
        command.upgrade(db.alembic_config(connection), "0001")
        command.downgrade(db.alembic_config(connection), "base")
        connection.commit()
    assert not OWN_TABLES & set(inspect(bare_engine).get_table_names())
    db.upgrade(bare_engine)
    assert OWN_TABLES <= set(inspect(bare_engine).get_table_names())


def test_concurrent_upgrades_from_separate_connections(bare_engine: Engine) -> None:
    # Separate engines are separate database sessions, which is what separate processes are to the server.
    engines = [
        db.create_engine_for(str(bare_engine.url.render_as_string(hide_password=False))) for _ in range(4)
    ]
    barrier = threading.Barrier(len(engines))
    errors: list[BaseException] = []

    def migrate(engine: Engine) -> None:
        try:
            barrier.wait()
            db.upgrade(engine)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=migrate, args=(engine,)) for engine in engines]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        for engine in engines:
            engine.dispose()
    assert errors == []
    with bare_engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
