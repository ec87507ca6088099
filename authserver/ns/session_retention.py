"""Logins long over are forgotten: every login adds a row to ns_sessions, and nothing else ever removed one.

A session is deleted ``NEXTAUTH_NS_SESSION_RETENTION_DAYS`` after it expired (30 by default), unless a
transaction was signed in it: the transaction's record (what ``/transactions/<id>`` and evidence checks
read) needs its session, so both stay until the account goes. Deleted a batch at a time, the other
greenlets running between batches: on SQLite the statements run in the serving thread, and the first
purge after an upgrade may find months of rows."""

from collections.abc import Callable, Mapping
from datetime import timedelta

import gevent
from sqlalchemy import Engine, delete, exists, select
from sqlalchemy.orm import Session

from authserver.config import ConfigError, read_setting
from authserver.storage.db import rowcount
from authserver.storage.flow_models import Session as LoginSession
from authserver.storage.flow_models import Transaction
from authserver.storage.models import utcnow

SETTING = "NEXTAUTH_NS_SESSION_RETENTION_DAYS"
DEFAULT_DAYS = 30
MAX_DAYS = 36500
BATCH = 500


def retention(environ: Mapping[str, str]) -> timedelta:
    value = read_setting(SETTING, environ)
    if value is None:
        return timedelta(days=DEFAULT_DAYS)
    value = value.strip()
    if not value.isdigit() or not 1 <= int(value) <= MAX_DAYS:
        raise ConfigError(f"{SETTING}: expected a whole number of days from 1 to {MAX_DAYS}, got {value!r}")
    return timedelta(days=int(value))


def purge_sessions(
    engine: Engine,
    keep: timedelta,
    *,
    batch: int = BATCH,
    pause: Callable[[], None] = lambda: gevent.sleep(0),
) -> int:
    """Delete sessions that expired more than ``keep`` ago and hold no transaction; how many."""
    horizon = utcnow() - keep
    forgettable = (
        LoginSession.expires_at < horizon,
        ~exists().where(Transaction.session_id == LoginSession.id),
    )
    forgotten = 0
    while True:
        with Session(engine) as db:
            ids = db.scalars(select(LoginSession.id).where(*forgettable).limit(batch)).all()
            if not ids:
                return forgotten
            # The conditions again: a row is deleted only if it is still one to forget.
            deleted = db.execute(delete(LoginSession).where(LoginSession.id.in_(ids), *forgettable))
            forgotten += rowcount(deleted)
            db.commit()
        if len(ids) < batch:
            return forgotten
        pause()
