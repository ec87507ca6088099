"""Forget SFS registrations that were started and never finished (no PIN verifier): anyone with a
self-made device key can start one, and only a finished registration is worth keeping."""

from datetime import timedelta

from sqlalchemy import Engine

from authserver.storage.batched_delete import delete_in_batches
from authserver.storage.flow_models import AppInstance
from authserver.storage.models import utcnow

DEFAULT_UNFINISHED_SECONDS = 3600  # a registration takes seconds; an hour is ample for a slow phone


def purge_unfinished(engine: Engine, older_than: timedelta) -> int:
    """Delete app instances without a PIN verifier created more than ``older_than`` ago; how many."""
    unfinished = (AppInstance.pin_verifier.is_(None), AppInstance.created_at < utcnow() - older_than)
    return delete_in_batches(engine, AppInstance.id, unfinished)
