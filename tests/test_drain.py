"""Draining counts a connection from the moment the kernel has set it up: one waiting to be accepted when
the listener closes is served, not reset; one accepted whose request has not arrived yet holds the drain
until its request is answered; a connection kept alive between requests holds up nothing."""

import socket

import gevent
from gevent import socket as green_socket
from gevent.pywsgi import WSGIServer
from gevent.server import StreamServer

from authserver.transport.inflight import InFlight, TrackRequests, accept_waiting


def _answer(sock: socket.socket, _address: tuple) -> None:
    sock.sendall(b"served")


def _ok(environ: dict, start_response) -> list[bytes]:  # type: ignore[no-untyped-def]
    start_response("200 OK", [("Content-Length", "2")])
    return [b"ok"]


def _read_all(client: socket.socket) -> bytes:
    received = b""
    with gevent.Timeout(5):
        while chunk := client.recv(4096):
            received += chunk
    return received


def test_a_connection_waiting_in_the_kernel_is_served_after_the_listener_closes() -> None:
    inflight = InFlight()
    server = StreamServer(("127.0.0.1", 0), _answer, spawn=inflight.spawn)
    server.start()
    # A blocking connect does not give the gevent loop a turn: the connection waits in the listen queue.
    client = socket.create_connection(("127.0.0.1", server.server_port), timeout=5)
    try:
        accept_waiting(server)
        server.close()
        assert inflight.count == 1  # counted from its accept, before its handler has run
        assert inflight.wait_idle(5)
        client.setblocking(False)
        green = green_socket.socket(fileno=client.detach())
        assert _read_all(green) == b"served"
        green.close()
    finally:
        client.close()
        server.stop()


def test_an_accepted_connection_counts_until_its_request_and_not_while_kept_alive() -> None:
    inflight = InFlight()
    server = WSGIServer(("127.0.0.1", 0), TrackRequests(_ok, inflight), log=None, spawn=inflight.spawn)
    server.start()
    client = green_socket.create_connection(("127.0.0.1", server.server_port))
    try:
        gevent.sleep(0.2)  # accepted, its handler waiting for the request's bytes
        assert inflight.count == 1
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        with gevent.Timeout(5):
            answer = client.recv(4096)
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"ok")
        gevent.sleep(0.1)
        assert inflight.count == 0  # the connection stays open for the next request: it holds up no drain
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert _read_all(client).startswith(b"HTTP/1.1 200")
    finally:
        client.close()
        server.stop()
    assert inflight.wait_idle(1)
