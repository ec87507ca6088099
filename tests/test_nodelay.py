"""Every HTTP listener sends small answers at once: gevent writes headers and body separately, and with
Nagle's algorithm on, a kept-alive client waits ~40 ms for each body (docs/benchmarks/forward-auth.md)."""

import socket
from pathlib import Path

import gevent
from gevent import socket as green_socket
from gevent.pywsgi import WSGIServer

from authserver.transport.wsgi import NoDelayHandler, PeerCertificateHandler
from idp.server import IdpServer, load_settings
from tests.fixtures.system import free_port


class Probe(NoDelayHandler):
    seen: list[int] = []

    def handle_one_request(self):  # type: ignore[no-untyped-def]
        Probe.seen.append(self.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        return super().handle_one_request()


def _ok(environ: dict, start_response) -> list[bytes]:  # type: ignore[no-untyped-def]
    start_response("200 OK", [("Content-Length", "2")])
    return [b"ok"]


def _exchange(server: WSGIServer, requests: bytes) -> bytes:
    """Everything ``server`` answers on one connection to ``requests`` (the last says Connection: close)."""
    server.start()
    try:
        client = green_socket.create_connection(("127.0.0.1", server.server_port))
        client.sendall(requests)
        with gevent.Timeout(5):
            answer = b""
            while chunk := client.recv(4096):
                answer += chunk
        client.close()
    finally:
        server.stop()
    return answer


def test_accepted_connections_have_nodelay() -> None:
    server = WSGIServer(("127.0.0.1", 0), _ok, log=None, handler_class=Probe)
    answer = _exchange(server, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200") and Probe.seen and all(Probe.seen)


def test_the_idp_and_the_rest_apis_use_it(tmp_path: Path) -> None:
    assert issubclass(PeerCertificateHandler, NoDelayHandler)  # ns, sfs and mc REST and admin listeners
    settings = load_settings(
        {
            "NEXTAUTH_IDP_SECRET_KEY": "k" * 40,
            "NEXTAUTH_IDP_NS_API_URL": "http://127.0.0.1:1",
            "NEXTAUTH_IDP_NS_WEBSOCKET_URL": "ws://127.0.0.1:1/ns/websocket",
            "NEXTAUTH_IDP_NS_API_KEY": "x",
            "NEXTAUTH_IDP_LISTEN": f"127.0.0.1:{free_port()}",
        },
        data_dir=tmp_path,
    )
    assert issubclass(IdpServer(settings).handler_class, NoDelayHandler)


def test_kept_alive_connections_take_turns() -> None:
    """Two connections with requests waiting are served in turn, not one connection's all first."""
    order: list[str] = []

    def request(path: str) -> bytes:
        return f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()

    def record(environ: dict, start_response) -> list[bytes]:  # type: ignore[no-untyped-def]
        order.append(environ["PATH_INFO"])
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    server = WSGIServer(("127.0.0.1", 0), record, log=None, handler_class=NoDelayHandler)
    server.start()
    clients = {name: green_socket.create_connection(("127.0.0.1", server.server_port)) for name in "ab"}
    try:
        with gevent.Timeout(5):
            for name, client in clients.items():  # both kept alive, their greenlets waiting to read
                client.sendall(request(f"/{name}0"))
                assert client.recv(4096).startswith(b"HTTP/1.1 200")
            for name, client in clients.items():  # then three requests at once on each
                client.sendall(b"".join(request(f"/{name}{n}") for n in (1, 2, 3)))
            while len(order) < 8:
                gevent.sleep(0.01)
    finally:
        for client in clients.values():
            client.close()
        server.stop()
    served = [path[1] for path in order[2:]]
    assert all(served[i] != served[i + 1] for i in range(len(served) - 1)), order


class Formatting(NoDelayHandler):
    formatted = 0

    def format_request(self):  # type: ignore[no-untyped-def]
        Formatting.formatted += 1
        return super().format_request()


def _get_twice(server: WSGIServer) -> bytes:
    return _exchange(
        server, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )


def test_no_access_line_is_formatted_for_a_server_that_logs_nothing() -> None:
    """Our servers run with log=None; gevent would still format each request's access line to drop it."""
    Formatting.formatted = 0
    answer = _get_twice(WSGIServer(("127.0.0.1", 0), _ok, log=None, handler_class=Formatting))
    assert answer.count(b"HTTP/1.1 200") == 2
    assert Formatting.formatted == 0


def test_a_server_with_a_log_still_gets_its_access_lines() -> None:
    lines: list[str] = []

    class Log:
        def write(self, line: str) -> None:
            lines.append(line)

    Formatting.formatted = 0
    _get_twice(WSGIServer(("127.0.0.1", 0), _ok, log=Log(), handler_class=Formatting))
    assert Formatting.formatted == 2
    assert len(lines) == 2 and '"GET /a HTTP/1.1" 200' in lines[0] and '"GET /b HTTP/1.1" 200' in lines[1]
