"""Engines on the database under test, migrated or not, always disposed (so the database can be dropped)."""

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from authserver.storage import db


@pytest.fixture
def bare_engine(db_uri: str) -> Iterator[Engine]:
    engine = db.create_engine_for(db_uri)
    yield engine
    engine.dispose()


@pytest.fixture
def engine(bare_engine: Engine) -> Engine:
    db.upgrade(bare_engine)
    return bare_engine
