"""Writes that insert rows under a unique key (an attribute's name, a role granted): two requests adding the
same one at once both see it missing, and the second commit fails. Running that request's transaction
again finds the row the first one made, so it updates it or has nothing left to do."""

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import IntegrityError

from authserver.ns.errors import ServiceError

T = TypeVar("T")
ATTEMPTS = 3


def retried_on_conflict(work: Callable[[], T], what: str) -> T:
    for attempt in range(ATTEMPTS):
        try:
            return work()
        except IntegrityError:
            if attempt == ATTEMPTS - 1:
                raise ServiceError(
                    409, "conflict", f"{what} kept changing under other requests; try again."
                ) from None
    raise AssertionError("unreachable")
