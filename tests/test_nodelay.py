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


def test_accepted_connections_have_nodelay() -> None:
    server = WSGIServer(("127.0.0.1", 0), _ok, log=None, handler_class=Probe)
    server.start()
    try:
        client = green_socket.create_connection(("127.0.0.1", server.server_port))
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        with gevent.Timeout(5):
            answer = b""
            while chunk := client.recv(4096):
                answer += chunk
        client.close()
    finally:
        server.stop()
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
