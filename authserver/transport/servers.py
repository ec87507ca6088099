"""gevent servers whose connections are bounded in time from the accept on.

gevent does a TLS handshake in the connection's greenlet before the handler runs, with no time limit: a
client that connects to a TLS port and never sends its hello would hold a descriptor and a greenlet for
ever, whatever the handler does later. These servers put a limit on the accepted socket first, so every
read and write of the handshake waits that long at most; the handler then keeps or changes it (the HTTP
handler keeps ``http_idle_seconds``, a sigmai channel sets its own idle limit once its handshake is done).
"""

import logging
import socket
from typing import Any

from gevent.pywsgi import WSGIServer
from gevent.server import StreamServer

log = logging.getLogger("nextauth.transport")


def _bounded(server: Any, client_socket: socket.socket, address: Any, limit: float | None) -> Any:
    if limit is not None:
        client_socket.settimeout(limit)
    try:
        return StreamServer.wrap_socket_and_handle(server, client_socket, address)
    except OSError as exc:  # no TLS hello in time, or not TLS at all: nothing to answer
        log.debug("TLS connection from %s dropped: %s", address[0], exc)
        client_socket.close()
        return None


class BoundedWSGIServer(WSGIServer):  # type: ignore[misc]  # gevent ships no types
    """An HTTP server whose connections close after ``http_idle_seconds`` of silence (none: no limit)."""

    def __init__(self, *args: Any, http_idle_seconds: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.http_idle_seconds = http_idle_seconds

    def wrap_socket_and_handle(self, client_socket: socket.socket, address: Any) -> Any:
        return _bounded(self, client_socket, address, self.http_idle_seconds)


class BoundedStreamServer(StreamServer):  # type: ignore[misc]
    """A TCP server whose connections must finish their TLS handshake within ``handshake_seconds``."""

    def __init__(self, *args: Any, handshake_seconds: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.handshake_seconds = handshake_seconds

    def wrap_socket_and_handle(self, client_socket: socket.socket, address: Any) -> Any:
        return _bounded(self, client_socket, address, self.handshake_seconds)
