"""psycopg waiting for its socket on gevent's hub.

Once gevent has patched ``select``, psycopg waits with ``select.poll``, which gevent emulates anew for
every wait out of watchers and an event: a statement costs about a fifth more CPU that way (65 against
52 us of CPU per ``SELECT 1`` over loopback, 5,000 in a row, on the 2-core machine of
docs/benchmarks). Here a wait is one io watcher on the hub, as ``gevent.socket.wait_read`` is.

Only connections opened while ``select`` is patched (the services) get it; a process without gevent's
patching keeps psycopg's own wait."""

from typing import Any

import psycopg
from gevent import monkey
from gevent.socket import wait_read, wait_readwrite, wait_write
from psycopg import errors
from psycopg.abc import PQGen
from psycopg.waiting import Wait
from sqlalchemy import Engine, event

_WAITS = {Wait.R: wait_read, Wait.W: wait_write, Wait.RW: wait_readwrite}


class GeventConnection(psycopg.Connection[Any]):
    """A psycopg connection whose waits yield to gevent's hub without emulating poll."""

    def wait(self, gen: PQGen[Any], interval: float = 0.1, timeout: float | None = None) -> Any:
        # interval only lets psycopg's blocking waits notice Ctrl-C; the hub handles signals itself.
        # What the hub reports for RW is not told apart: the connection is non-blocking, so a side
        # reported ready that is not only makes psycopg try once more and wait again.
        fileno = self.pgconn.socket
        expired = None if timeout is None else errors._WaitTimeout("wait timeout expired")
        try:
            state = next(gen)
            while True:
                _WAITS[state](fileno, timeout=timeout, timeout_exc=expired)
                state = gen.send(state)
        except StopIteration as done:
            return done.value


def _connect(_dialect: Any, _record: Any, cargs: Any, cparams: dict[str, Any]) -> GeventConnection:
    return GeventConnection.connect(*cargs, **cparams)


def install(engine: Engine) -> bool:
    """New connections of a PostgreSQL engine wait on the hub, when gevent has patched ``select``."""
    if engine.dialect.driver != "psycopg" or not monkey.is_module_patched("select"):
        return False
    event.listen(engine, "do_connect", _connect)
    return True
