"""What a component is doing right now: sigmai channels and REST requests, so that a SIGTERM can let them
finish (drain) before the process exits, rather than cutting a login in half."""

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import gevent.event


class InFlight:
    def __init__(self) -> None:
        self._count = 0
        self._idle = gevent.event.Event()
        self._idle.set()

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

    def wait_idle(self, timeout: float) -> bool:
        """True once nothing is in flight; False if something still is after ``timeout`` seconds."""
        return bool(self._idle.wait(timeout))


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
        try:
            result = self._app(environ, start_response)
        except BaseException:
            self._inflight.leave()
            raise
        return _Closing(result, self._inflight.leave)
