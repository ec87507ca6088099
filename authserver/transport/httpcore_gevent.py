"""httpcore's look at an idle kept-alive connection, without gevent's emulation of ``poll``.

Before httpcore hands out a pooled connection it asks whether the socket is readable (the server closed
it, or sent something unasked): ``select.poll`` with a zero timeout. Once gevent has patched ``select``,
that poll is emulated anew at every call out of watchers, an event and a trip through the hub; in the
IdP, whose authorization endpoint asks ns about the browser's login at every request, the emulation took
about a seventh of the process's CPU time. A poll that never waits needs no hub: httpcore's module gets the
system's own ``poll`` (as ``authserver.storage.liveness`` uses it for database connections), and
everything else keeps gevent's.

httpcore's module is private: ``tests/test_httpcore_gevent.py`` fails when a release moves it.
"""

import select
import types

from gevent import monkey


def install() -> bool:
    """Give httpcore the system's ``poll`` when gevent has patched ``select``; whether it was given."""
    if not monkey.is_module_patched("select"):
        return False
    from httpcore import _utils

    if not hasattr(_utils, "is_socket_readable") or getattr(_utils, "select", None) is not select:
        return False  # another release: left as it is (and the test says so)
    _utils.select = types.SimpleNamespace(  # type: ignore[assignment]
        poll=monkey.get_original("select", "poll"),
        select=monkey.get_original("select", "select"),
        POLLIN=select.POLLIN,
    )
    return True
