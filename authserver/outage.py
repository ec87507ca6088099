"""Failures that mean "a backing service is down for now" (the database, Redis), told apart from bugs.

While the database or Redis is unreachable, callers get "unavailable, try again" (REST 503 with
``Retry-After``) instead of ``internal_error``, and the log gets one line per outage per place instead of
a traceback per request.
"""

import logging
import time

import redis
import sqlalchemy.exc

RETRY_AFTER_SECONDS = 5
_LOG_EVERY_SECONDS = 60.0

# OperationalError covers a refused or dropped connection, and SQLite's unreadable file or busy lock;
# InterfaceError a connection the driver already knows is closed; TimeoutError an exhausted pool.
UNAVAILABLE: tuple[type[Exception], ...] = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
    sqlalchemy.exc.DisconnectionError,
    redis.ConnectionError,
    redis.TimeoutError,
)


def is_outage(exc: BaseException) -> bool:
    return isinstance(exc, UNAVAILABLE)


def describe(exc: BaseException) -> str:
    """A short reason for a log line: the kind of failure and the first line of what the driver said.

    Drivers name the host and port they could not reach, never the password of the URI."""
    inner = getattr(exc, "orig", None) or exc
    first = str(inner).strip().splitlines()[0] if str(inner).strip() else ""
    return f"{type(inner).__name__}: {first}"[:200]


class OutageLog:
    """Logs the first failure of an outage, then at most one line a minute, for one place."""

    def __init__(self, logger: logging.Logger, what: str) -> None:
        self._logger = logger
        self._what = what
        self._last = float("-inf")
        self._suppressed = 0

    def failed(self, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._last < _LOG_EVERY_SECONDS:
            self._suppressed += 1
            return
        more = f" ({self._suppressed} more since the last line)" if self._suppressed else ""
        self._logger.warning("%s: a backing service is unavailable: %s%s", self._what, describe(exc), more)
        self._last, self._suppressed = now, 0
