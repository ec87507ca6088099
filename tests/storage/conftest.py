"""Engines on the database under test, migrated or not, always disposed (so the database can be dropped);
the short-lived store, in-process and on Redis."""

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from authserver.storage import db
from authserver.storage.kv import KeyValueStore, MemoryStore, open_kv


@pytest.fixture
def bare_engine(db_uri: str) -> Iterator[Engine]:
    engine = db.create_engine_for(db_uri)
    yield engine
    engine.dispose()


@pytest.fixture
def engine(bare_engine: Engine) -> Engine:
    db.upgrade(bare_engine)
    return bare_engine


@pytest.fixture(
    params=[pytest.param("memory", id="memory"), pytest.param("redis", id="redis", marks=pytest.mark.redis)]
)
def store(request: pytest.FixtureRequest, redis_prefix: str) -> Iterator[KeyValueStore]:
    """Each store in turn: the in-process one, and Redis under a key prefix of the test's own."""
    if request.param == "memory":
        kv: KeyValueStore = MemoryStore()
    else:
        kv = open_kv(request.getfixturevalue("redis_uri"), prefix=redis_prefix)
    yield kv
    kv.close()
