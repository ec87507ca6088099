"""Deleting many rows without holding up everything else: a batch per transaction, other greenlets between.

Purges find whatever piled up since they last ran, and the first one after an upgrade or a shorter
retention may find months of rows. On SQLite a statement runs in the serving thread, so one DELETE of
a hundred thousand rows stops every login for as long; on PostgreSQL and MariaDB it is one long
transaction holding its locks. Here each batch picks at most ``batch`` keys, deletes those rows in a
transaction of their own (the conditions checked again, so a row that changed meanwhile stays), and
the other greenlets run before the next."""

from collections.abc import Callable, Sequence
from typing import Any

import gevent
from sqlalchemy import ColumnElement, Engine, delete, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from authserver.storage.db import rowcount

BATCH = 500


def let_others_run() -> None:
    gevent.sleep(0)


def delete_in_batches(
    engine: Engine,
    key: InstrumentedAttribute[Any],
    conditions: Sequence[ColumnElement[bool]],
    *,
    dependents: Callable[[Session, list[Any]], None] | None = None,
    batch: int = BATCH,
    pause: Callable[[], None] = let_others_run,
) -> int:
    """Delete the rows of ``key``'s model that meet ``conditions``; how many. ``dependents(db, keys)``
    runs after each batch's delete, in its transaction, for rows that refer to these without a foreign
    key to cascade: it deletes those whose row is gone (a key of the batch may belong to a row kept)."""
    if batch < 1:
        raise ValueError("batch must be at least 1")
    model = key.class_
    deleted = 0
    while True:
        with Session(engine) as db:
            keys = list(db.scalars(select(key).where(*conditions).limit(batch)))
            if not keys:
                return deleted
            deleted += rowcount(db.execute(delete(model).where(key.in_(keys), *conditions)))
            if dependents is not None:
                dependents(db, keys)
            db.commit()
        if len(keys) < batch:
            return deleted
        pause()
