"""Whether the server closed an idle database connection, seen without a round trip.

An idle connection's socket has nothing to read unless the server said goodbye (an error message, then end
of file): one local ``poll`` with no timeout sees that, where a pre-ping spends a round trip."""

import select
from collections.abc import Callable
from typing import Any

# gevent replaces select.poll with a cooperative one; a zero-timeout look needs the plain system call.
try:
    from gevent.monkey import get_original

    _poll: Callable[[], Any] = get_original("select", "poll")
except ImportError:  # pragma: no cover - gevent is a dependency
    _poll = select.poll
_CLOSED_OR_PENDING = select.POLLIN | select.POLLERR | select.POLLHUP


def _socket_of(dbapi_connection: Any) -> int:
    fileno = getattr(dbapi_connection, "fileno", None)  # psycopg
    if callable(fileno):
        return int(fileno())
    sock = getattr(dbapi_connection, "_sock", None)  # PyMySQL
    if sock is None:
        raise OSError("no socket")
    return int(sock.fileno())


def closed_by_server(dbapi_connection: Any) -> bool:
    """True when an idle connection's server has closed it (restart, idle limit, a proxy), or when the
    driver already knows it closed or has no socket to look at."""
    try:
        poller = _poll()
        poller.register(_socket_of(dbapi_connection), _CLOSED_OR_PENDING)
        return bool(poller.poll(0))
    except Exception:
        return True
