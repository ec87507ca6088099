"""What a component is doing right now: sigmai channels and REST requests, so that a SIGTERM can let them
finish (drain) before the process exits, rather than cutting a login in half.

A connection counts from the moment it is accepted, not only once its handler has started its work: the
handler first runs a turn of the event loop later, then does a TLS handshake or waits for the request's
bytes, and a SIGTERM handled meanwhile found nothing in flight and let the process exit under it."""

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import gevent
import gevent.event


class InFlight:
    def __init__(self) -> None:
        self._count = 0
        self._idle = gevent.event.Event()
        self._idle.set()
        # Handlers of accepted connections still counted for their connection: not yet handed over.
        self._accepted: set[gevent.Greenlet] = set()

    @property
    def count(self) -> int:
        return self._count

    def enter(self) -> None:
        self._count += 1
        self._idle.clear()

    def leave(self) -> None:
        self._count -= 1
        if self._count <= 0:
            self._count = 0
            self._idle.set()

    @contextmanager
    def track(self) -> Iterator[None]:
        self.enter()
        try:
            yield
        finally:
            self.leave()

    def spawn(self, function: Callable[..., Any], *args: Any) -> gevent.Greenlet:
        """A gevent server's ``spawn``: runs a connection's handler, and counts the connection as in flight
        from now (its accept) until the handler hands over (:meth:`hand_over`) or ends."""
        self.enter()
        handler = gevent.Greenlet(self._run_accepted, function, args)
        self._accepted.add(handler)
        handler.start()
        return handler

    def _run_accepted(self, function: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            function(*args)
        finally:
            self.hand_over()

    def hand_over(self) -> None:
        """The running handler counts its own work from here (a channel, a request): its connection no
        longer does. A connection kept alive between requests then holds up no drain."""
        handler = gevent.getcurrent()
        if handler in self._accepted:
            self._accepted.discard(handler)
            self.leave()

    def wait_idle(self, timeout: float) -> bool:
        """True once nothing is in flight; False if something still is after ``timeout`` seconds."""
        return bool(self._idle.wait(timeout))


def accept_waiting(server: Any) -> None:
    """Take the connections the kernel has already set up for gevent ``server`` but the server has not
    accepted yet (it was busy): closing the listening socket would reset them, though their clients were
    told "connected". Each goes to its handler like any other (counted from now, with :meth:`InFlight.spawn`)
    and is served within the drain. Call it just before closing the server."""
    while True:
        try:
            accepted = server.do_read()
        except (OSError, AttributeError):  # closed already, or never started
            return
        if not accepted:
            return
        server.do_handle(*accepted)


class _Closing:
    """A WSGI response that counts as in flight until the server has sent it and closed it."""

    def __init__(self, result: Iterable[bytes], done: Callable[[], None]) -> None:
        self._result = result
        self._done = done

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._result)

    def close(self) -> None:
        try:
            close = getattr(self._result, "close", None)
            if close is not None:
                close()
        finally:
            self._done()


class TrackRequests:
    """WSGI middleware counting each request from its start to the end of its response."""

    def __init__(self, app: Any, inflight: InFlight) -> None:
        self._app = app
        self._inflight = inflight

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        self._inflight.enter()
        self._inflight.hand_over()
        try:
            result = self._app(environ, start_response)
        except BaseException:
            self._inflight.leave()
            raise
        return _Closing(result, self._inflight.leave)
