"""HTTP connections that say nothing are closed: a client that connects to ns's REST port, the MC's push
API or the IdP and sends nothing, or stops half-way through its request, or keeps a connection open after
its answer, loses it after ``NEXTAUTH_<C>_HTTP_IDLE_SECONDS`` / ``NEXTAUTH_IDP_HTTP_IDLE_SECONDS``
(120 s by default; 1 s here) instead of holding a descriptor for ever. A request in progress is answered."""

import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from authserver.config import ConfigError, load_config
from tests.fixtures.system import RunningSystem, start_system, stop_system
from tests.fixtures.tls import issue, make_ca

pytestmark = pytest.mark.e2e

IDLE = 1.0
PORTS = [("ns", "http"), ("mc", "http"), ("idp", "http")]


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSystem]:
    env = {f"NEXTAUTH_{name}_HTTP_IDLE_SECONDS": str(IDLE) for name in ("NS", "MC", "IDP")}
    running = start_system(tmp_path_factory.mktemp("idle"), extra_env=env)
    yield running
    stop_system(running)


def _closed_by(sock: socket.socket, deadline: float) -> float | None:
    """When (time.monotonic()) the server closed the connection, reading whatever it sends; None if it
    had not by ``deadline``."""
    sock.settimeout(0.1)
    while time.monotonic() < deadline:
        try:
            if sock.recv(65536) == b"":
                return time.monotonic()
        except TimeoutError:
            continue
        except ConnectionResetError:
            return time.monotonic()
    return None


def _answer(sock: socket.socket) -> bytes:
    """One whole HTTP answer (head and Content-Length body) from a kept-alive connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    length = next(int(line[15:]) for line in lines if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        body += sock.recv(65536)
    return head


def _connect(system: RunningSystem, component: str, endpoint: str) -> socket.socket:
    return socket.create_connection(("127.0.0.1", system.port(component, endpoint)), timeout=5)


@pytest.mark.parametrize(("component", "endpoint"), PORTS)
def test_a_silent_connection_is_closed(system: RunningSystem, component: str, endpoint: str) -> None:
    opened = time.monotonic()
    silent = _connect(system, component, endpoint)
    half = _connect(system, component, endpoint)
    half.sendall(b"GET /info HTTP/1.1\r\nHost: x\r\n")  # the headers never end
    try:
        for sock in (silent, half):
            closed = _closed_by(sock, deadline=opened + IDLE + 4)
            assert closed is not None, f"{component} kept a silent connection open"
            assert closed - opened >= IDLE * 0.8, closed - opened  # after the limit, not at once
    finally:
        silent.close()
        half.close()


@pytest.mark.parametrize(("component", "endpoint"), PORTS)
def test_a_kept_alive_connection_is_answered_then_closed_when_idle(
    system: RunningSystem, component: str, endpoint: str
) -> None:
    path = b"/whoami" if component == "idp" else b"/info"
    sock = _connect(system, component, endpoint)
    try:
        for _ in range(2):  # kept alive: two requests on one connection, each answered
            sock.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\n\r\n")
            head = _answer(sock)
            assert head.startswith((b"HTTP/1.1 200", b"HTTP/1.1 401")), head[:80]
            time.sleep(IDLE / 3)  # shorter pauses than the limit keep it
        assert _closed_by(sock, deadline=time.monotonic() + IDLE + 4) is not None
    finally:
        sock.close()


def test_a_tls_connection_without_its_hello_is_closed(tmp_path: Path) -> None:
    """On a TLS port the limit starts at the accept: gevent shakes hands before any handler runs, and a
    client that never sends its TLS hello was waited for without end."""
    ca_key, ca = make_ca()
    key, certificate = issue(ca_key, ca, "ns")
    env = {
        "NEXTAUTH_NS_HTTP_IDLE_SECONDS": str(IDLE),
        "NEXTAUTH_NS_HTTP_TLS_KEY": key,
        "NEXTAUTH_NS_HTTP_TLS_CERTIFICATE": certificate,
        # The phones' port too: there the bound of the TLS handshake is the sigmai handshake's.
        "NEXTAUTH_NS_SIGMAI_HANDSHAKE_TIMEOUT": str(IDLE),
        "NEXTAUTH_NS_SIGMAI_TLS_KEY": key,
        "NEXTAUTH_NS_SIGMAI_TLS_CERTIFICATE": certificate,
    }
    running = start_system(tmp_path / "tls", command=("ns",), extra_env=env)
    try:
        opened = time.monotonic()
        silent_phone = _connect(running, "ns", "sigmai")
        silent = _connect(running, "ns", "http")
        context = ssl.create_default_context(cadata=ca)
        with context.wrap_socket(_connect(running, "ns", "http"), server_hostname="127.0.0.1") as idle:
            closed = _closed_by(silent, deadline=opened + IDLE + 4)
            assert closed is not None, "a connection without a TLS hello was kept open"
            assert closed - opened >= IDLE * 0.8, closed - opened
            # After the handshake, the same limit holds between requests.
            assert _closed_by(idle, deadline=time.monotonic() + IDLE + 4) is not None  # type: ignore[arg-type]
        silent.close()
        assert _closed_by(silent_phone, deadline=opened + IDLE + 4) is not None
        silent_phone.close()
        assert "Traceback" not in running.log(), running.log()
    finally:
        stop_system(running)


def test_the_setting_is_checked() -> None:
    assert load_config("ns", {}).http_idle_seconds == 120.0
    assert load_config("mc", {"NEXTAUTH_MC_HTTP_IDLE_SECONDS": "15"}).http_idle_seconds == 15.0
    with pytest.raises(ConfigError, match="NEXTAUTH_NS_HTTP_IDLE_SECONDS"):
        load_config("ns", {"NEXTAUTH_NS_HTTP_IDLE_SECONDS": "0"})


def test_the_idp_setting_is_checked(tmp_path: Path) -> None:
    from idp.server import load_settings

    base = {
        "NEXTAUTH_IDP_SECRET_KEY": "k" * 40,
        "NEXTAUTH_IDP_NS_API_URL": "http://127.0.0.1:1",
        "NEXTAUTH_IDP_NS_API_KEY": "key",
        "NEXTAUTH_IDP_NS_WEBSOCKET_URL": "ws://127.0.0.1:1/ns/websocket",
        "NEXTAUTH_IDP_PUBLIC_URL": "https://id.example.com",
    }
    assert load_settings(base, data_dir=tmp_path).http_idle_seconds == 120.0
    with pytest.raises(ConfigError, match="NEXTAUTH_IDP_HTTP_IDLE_SECONDS"):
        load_settings({**base, "NEXTAUTH_IDP_HTTP_IDLE_SECONDS": "never"}, data_dir=tmp_path)
