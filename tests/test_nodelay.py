"""Every HTTP listener sends small answers at once: gevent writes headers and body separately, and with
Nagle's algorithm on, a kept-alive client waits ~40 ms for each body (docs/benchmarks/forward-auth.md)."""

import re
import socket
from pathlib import Path
from typing import Any

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


class CountingSends(NoDelayHandler):
    sends: list[int] = []

    def _sendall(self, data):  # type: ignore[no-untyped-def]
        CountingSends.sends.append(len(data))
        return super()._sendall(data)


class GeventSends(WSGIServer.handler_class):  # type: ignore[misc,name-defined]
    sends: list[int] = []

    def _sendall(self, data):  # type: ignore[no-untyped-def]
        GeventSends.sends.append(len(data))
        return super()._sendall(data)


def _answers(body: bytes, *, chunked: bool = False):  # type: ignore[no-untyped-def]
    def app(environ: dict, start_response) -> Any:  # type: ignore[no-untyped-def]
        headers = [("Content-Type", "application/json")]
        if not chunked:
            headers.append(("Content-Length", str(len(body))))
        start_response("200 OK", headers)
        return (part for part in [body]) if chunked else [body]  # a list of one: gevent sets the length

    return app


def test_a_small_answer_goes_in_one_send_with_its_headers_as_gevent_would_write_it() -> None:
    # Two requests on one connection, the second closing it.
    request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    for body, chunked, ours_sends in (
        (b'{"access_token": "x"}', False, 1 + 1),  # headers and body together
        (b"b" * 40_000, False, 2 + 2),  # too large to copy: on its own, as gevent sends it
        (b'{"a": 1}', True, 3 + 3),  # chunked: gevent's own way (headers, chunk, last chunk)
    ):
        CountingSends.sends, GeventSends.sends = [], []
        ours = _exchange(
            WSGIServer(
                ("127.0.0.1", 0), _answers(body, chunked=chunked), log=None, handler_class=CountingSends
            ),
            request,
        )
        gevents = _exchange(
            WSGIServer(
                ("127.0.0.1", 0), _answers(body, chunked=chunked), log=None, handler_class=GeventSends
            ),
            request,
        )
        dated = re.compile(rb"\r\nDate: [^\r]*")
        assert dated.sub(b"", ours) == dated.sub(b"", gevents)
        assert ours.count(b"HTTP/1.1 200") == 2 and (b"Transfer-Encoding: chunked" in ours) == chunked
        assert len(CountingSends.sends) == ours_sends, (body[:20], CountingSends.sends)
        assert sum(CountingSends.sends) == sum(GeventSends.sends)


def test_an_answer_larger_than_the_socket_buffer_arrives_whole() -> None:
    """One send takes what the kernel's buffer holds; the rest follows as the client reads."""
    body = bytes(range(256)) * (32 * 1024)  # 8 MiB
    server = WSGIServer(("127.0.0.1", 0), _answers(body), log=None, handler_class=NoDelayHandler)
    server.start()
    try:
        client = green_socket.create_connection(("127.0.0.1", server.server_port))
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        received = bytearray()
        with gevent.Timeout(30):
            gevent.sleep(0.2)  # the server's first send fills the buffers and stops short
            while chunk := client.recv(65536):
                received += chunk
        client.close()
    finally:
        server.stop()
    assert bytes(received).split(b"\r\n\r\n", 1)[1] == body
