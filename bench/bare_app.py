"""The ceiling for any gevent WSGI endpoint on this machine: a bare gevent WSGI server answering "200 OK"
to every request, with nothing in between (no framework, no logging). Also the application that Traefik
forwards to in the Traefik benchmarks.

    python -m bench.bare_app PORT [--nodelay]

gevent's pywsgi writes a response's headers and its body in two ``send`` calls. On a kept-alive
connection Nagle's algorithm holds the second until the client acknowledges the first, and the client
delays that acknowledgement (about 40 ms on Linux): every answer after the first on a connection waits.
``--nodelay`` sets TCP_NODELAY on each accepted socket, which removes the wait; without it the server
behaves as a default ``gevent.pywsgi.WSGIServer``. ``--ours`` serves with the handler the IdP and the
services use (authserver/transport/wsgi.py: TCP_NODELAY, and kept-alive connections taking turns), so
that the only difference left to the IdP is the work of its answer.
"""

from gevent import monkey

monkey.patch_all()

import socket  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable, Iterable  # noqa: E402

from gevent.pywsgi import WSGIServer  # noqa: E402

BODY = b"OK\n"
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]


def application(environ: dict, start_response: Callable) -> Iterable[bytes]:
    start_response("200 OK", HEADERS)
    return [BODY]


class NoDelayWSGIServer(WSGIServer):
    def handle(self, sock: socket.socket, address: tuple) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().handle(sock, address)


def main() -> None:
    port = int(sys.argv[1])
    if "--ours" in sys.argv[2:]:
        from authserver.transport.wsgi import NoDelayHandler

        server = WSGIServer(("127.0.0.1", port), application, log=None, handler_class=NoDelayHandler)
    else:
        server_class = NoDelayWSGIServer if "--nodelay" in sys.argv[2:] else WSGIServer
        server = server_class(("127.0.0.1", port), application, log=None)
    print(f"ready {port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
