"""ns forgets logins and enrolments long over: every login adds a row to ns_sessions, every enrolment
and invite one to ns_enrolments, and nothing else ever removed them.

Both are deleted ``NEXTAUTH_NS_RETENTION_DAYS`` after they expired (30 by default). A session in which
a transaction was signed stays: the transaction's record (what ``/transactions/<id>`` and evidence
checks read) needs its session, so both stay until the account goes. An enrolment's row holds only what
the enrolment needed (its secret's and code's hashes, its state); the account it made does not refer to
it. Deleted a batch at a time (``authserver.storage.batched_delete``): the first purge after an upgrade
may find months of rows."""

from collections.abc import Callable, Mapping
from datetime import timedelta

from sqlalchemy import Engine, exists

from authserver.config import read_setting, whole_number_in_range
from authserver.storage.batched_delete import BATCH, delete_in_batches, let_others_run
from authserver.storage.flow_models import Enrolment, Transaction
from authserver.storage.flow_models import Session as LoginSession
from authserver.storage.models import utcnow

SETTING = "NEXTAUTH_NS_RETENTION_DAYS"
DEFAULT_DAYS = 30
MAX_DAYS = 36500


def retention(environ: Mapping[str, str]) -> timedelta:
    return timedelta(
        days=whole_number_in_range(
            SETTING, read_setting(SETTING, environ), default=DEFAULT_DAYS, high=MAX_DAYS, unit="days"
        )
    )


def purge_sessions(
    engine: Engine,
    keep: timedelta,
    *,
    batch: int = BATCH,
    pause: Callable[[], None] = let_others_run,
) -> int:
    """Delete sessions that expired more than ``keep`` ago and hold no transaction; how many."""
    forgettable = (
        LoginSession.expires_at < utcnow() - keep,
        ~exists().where(Transaction.session_id == LoginSession.id),
    )
    return delete_in_batches(engine, LoginSession.id, forgettable, batch=batch, pause=pause)


def purge_enrolments(engine: Engine, keep: timedelta) -> int:
    """Delete enrolments and invites, in whatever state, that expired more than ``keep`` ago; how many."""
    return delete_in_batches(engine, Enrolment.id, (Enrolment.expires_at < utcnow() - keep,))
