"""httpcore looks at idle pooled connections with the system's poll once gevent has patched ``select``
(authserver/transport/httpcore_gevent.py), and still tells a connection the server closed from one that
is only idle: a kept-alive connection to ns is reused, and one ns closed is replaced, not used.

gevent's patching is for the whole process, so the patched side runs in a child interpreter."""

import select
import subprocess
import sys
import textwrap

from authserver.transport import httpcore_gevent
from tests.fixtures.system import REPO

PATCHED = textwrap.dedent(
    """
    from gevent import monkey

    monkey.patch_all()

    import socket

    import gevent
    import httpx
    from gevent.server import StreamServer
    from httpcore import _utils

    from authserver.transport import httpcore_gevent

    assert httpcore_gevent.install() is True
    assert _utils.select.poll is monkey.get_original("select", "poll")

    # The check itself: idle is not readable; data, or the peer gone, is.
    a, b = socket.socketpair()
    assert _utils.is_socket_readable(a) is False
    b.send(b"x")
    assert _utils.is_socket_readable(a) is True
    a.recv(1)
    b.close()
    assert _utils.is_socket_readable(a) is True

    # In use: a server that keeps the first connection open, then closes it while it is idle.
    connections = []

    def serve(sock, _address):
        connections.append(sock)
        answered = 0
        data = b""
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                return
            data += chunk
            while b"\\r\\n\\r\\n" in data:
                _request, data = data.split(b"\\r\\n\\r\\n", 1)
                answered += 1
                sock.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nok")
                if len(connections) == 1 and answered == 2:
                    gevent.spawn_later(0.1, sock.close)  # idle by then: closed under the client's pool

    server = StreamServer(("127.0.0.1", 0), serve)
    server.start()
    url = f"http://127.0.0.1:{server.server_port}/"
    with httpx.Client(timeout=5) as client:
        assert client.get(url).text == "ok"
        assert client.get(url).text == "ok"
        assert len(connections) == 1  # kept alive and reused: the idle socket was not taken as closed
        gevent.sleep(0.3)
        assert client.get(url).text == "ok"  # the closed one was seen as closed, and replaced
        assert len(connections) == 2
    print("ok")
    """
)


def test_httpcore_looks_at_idle_connections_with_the_system_poll_under_gevent() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PATCHED], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_nothing_changes_without_gevent_patching() -> None:
    from httpcore import _utils

    assert httpcore_gevent.install() is False  # this test process has not patched select
    assert _utils.select is select
