"""No dropped login under faults: a Redis restart, bad browser clients, SIGTERM while a login is in flight,
a database that is down at start or goes away later."""

import json
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from authserver.storage.kv import RedisStore
from mobilesdk.flows import App
from tests.fixtures.flows import PIN, BrowserPage, enrol, new_nonce, start_login
from tests.fixtures.system import RunningSystem, free_port, run_app, start_system, stop_system

REDIS_SERVER = shutil.which("redis-server")


class OwnRedis:
    """A redis-server of this test alone, on its own port: it may be stopped and started again."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        assert REDIS_SERVER is not None
        self.process = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            cwd=self.directory,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnRedis]:
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed")
    server = OwnRedis(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def redis_system(redis_server: OwnRedis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSystem]:
    running = start_system(
        tmp_path_factory.mktemp("redis-system"), extra_env={"NEXTAUTH_KV_URI": redis_server.uri}
    )
    yield running
    stop_system(running)


def _phone(system: RunningSystem, home: Path) -> Path:
    assert run_app(home, "init", "--config", str(system.data_dir / "app-config.json"))[0] == 0
    code, answer = run_app(home, "register", "--pin", PIN)
    assert code == 0, answer
    return home


def test_open_page_hears_its_login_after_redis_restarts(
    redis_system: RunningSystem, redis_server: OwnRedis, tmp_path: Path
) -> None:
    phone = _phone(redis_system, tmp_path / "phone")
    enrol(redis_system, phone, "restart-user")
    nonce = new_nonce()
    view = start_login(redis_system, nonce)
    page = BrowserPage(redis_system, view["hsid"], "default")
    try:
        time.sleep(0.5)  # the page is registered
        redis_server.stop()
        time.sleep(2)  # ns notices: its subscription is gone, and subscribing again fails for a while
        # Meanwhile REST says "unavailable, try again", not 500.
        key = (redis_system.data_dir / "ns-root-api-key").read_text().strip()
        request = urllib.request.Request(
            f"http://127.0.0.1:{redis_system.port('ns', 'http')}/v1/servers/default/sessions/",
            headers={"X-apikey": key, "X-nonce": new_nonce()},
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=20)  # noqa: S310 - loopback
        assert refused.value.code == 503
        assert refused.value.headers["Retry-After"] == "5"
        assert json.loads(refused.value.read())["error"] == "unavailable"
        redis_server.start()
        # The store is empty after the restart: the QR made before it is gone, so the application asks
        # again (as its page does when a code expires); the page stays open throughout.
        deadline = time.monotonic() + 20
        while True:
            try:
                view = start_login(redis_system, nonce)
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        code, answer = run_app(phone, "scan", view["loginqrdata"], "--pin", PIN)
        assert code == 0, answer
        page.wait_for("LOGIN", timeout=15)
    finally:
        page.close()
    assert "subscribed again" in redis_system.log() or "reconnected" in redis_system.log()


def _open_upgraded(system: RunningSystem) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", system.port("ns", "websocket")), timeout=10)
    sock.sendall(
        b"GET /ns/websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        assert chunk, "closed during the upgrade"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def _masked_text(payload: bytes) -> bytes:
    mask = b"\x01\x02\x03\x04"
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    if len(payload) < 126:
        return bytes([0x81, 0x80 | len(payload)]) + mask + body
    return bytes([0x81, 0x80 | 126]) + len(payload).to_bytes(2, "big") + mask + body


def _closed_by_server(sock: socket.socket, within: float) -> bool:
    """Whether the server closes the TCP connection in time; we read what it sends and never answer."""
    sock.settimeout(0.2)
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if sock.recv(4096) == b"":
                return True
        except TimeoutError:
            continue
        except ConnectionResetError:
            return True
    return False


def test_bad_browser_clients_lose_their_connection_and_good_pages_stay(system: RunningSystem) -> None:
    """Bad clients are closed, each after its own wait; meanwhile a registered page stays connected past
    all those waits, and a page that leaves (close frame) is closed at once without disturbing it."""
    view = start_login(system, new_nonce())
    staying = BrowserPage(system, view["hsid"], "default")
    leaving = _open_upgraded(system)
    leaving.sendall(_masked_text(f"REGISTER {view['hsid']} default".encode()))
    # Each never answers the server's close frame: before, all of them stayed open for good.
    wrong_first = [_open_upgraded(system) for _ in range(5)]
    for sock in wrong_first:
        sock.sendall(_masked_text(b"HELLO"))
    oversized = [_open_upgraded(system) for _ in range(5)]
    for sock in oversized:
        sock.sendall(_masked_text(b"R" * 2000))
    unknown_server = _open_upgraded(system)
    unknown_server.sendall(_masked_text(b"REGISTER abc no-such-server"))
    silent = _open_upgraded(system)  # says nothing at all: closed after the REGISTER wait (10 s)
    # Connects and never sends its upgrade request: closed after the request wait (10 s).
    mute = socket.create_connection(("127.0.0.1", system.port("ns", "websocket")), timeout=10)
    time.sleep(0.3)
    leaving.sendall(bytes([0x88, 0x82]) + b"\x00\x00\x00\x00" + (1000).to_bytes(2, "big"))
    try:
        assert _closed_by_server(leaving, within=5)
        for sock in [*wrong_first, *oversized, unknown_server]:
            assert _closed_by_server(sock, within=5), "the server kept a bad client's connection open"
        assert _closed_by_server(silent, within=15)
        assert _closed_by_server(mute, within=5)
        # Past the request and REGISTER waits: a registered page is left alone.
        assert staying._ws.connected
    finally:
        staying.close()
        for sock in [*wrong_first, *oversized, unknown_server, silent, mute, leaving]:
            sock.close()


def test_sigterm_lets_a_login_in_flight_finish(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    running = start_system(tmp_path / "drain", extra_env={"NEXTAUTH_NS_DRAIN_SECONDS": "15"})
    try:
        phone = _phone(running, tmp_path / "phone")
        enrol(running, phone, "drain-user")
        view = start_login(running, new_nonce())
        page = BrowserPage(running, view["hsid"], "default")
        app = App(phone)
        attest = app.attest
        refused: list[bool] = []

        def attest_then_terminate(**kwargs: Any) -> Any:
            # The phone's channel to ns is open and the PIN is checked: now the process is told to stop.
            attestation = attest(**kwargs)
            running.process.send_signal(signal.SIGTERM)
            time.sleep(1)
            try:
                socket.create_connection(("127.0.0.1", running.port("ns", "http")), timeout=2).close()
            except ConnectionRefusedError:
                refused.append(True)
            assert running.alive(), running.log()
            status, ready = running.get("ns", "admin", "/readyz")  # the balancer sends nothing new here
            assert status == 503 and ready["checks"]["accepting"] is False, ready
            return attestation

        monkeypatch.setattr(app, "attest", attest_then_terminate)
        answer = app.scan(view["loginqrdata"], pin=PIN)
        assert answer["result"] == "logged_in"
        page.wait_for("LOGIN")
        assert refused == [True], "a new connection was accepted while draining"
        assert running.process.wait(timeout=30) == 0, running.log()
        assert "draining 1 channels" in running.log()
    finally:
        stop_system(running)


def test_sigterm_serves_connections_set_up_before_it(tmp_path: Path) -> None:
    """Connections the kernel set up before the SIGTERM are in flight, though ns had not accepted them
    yet (it was busy) or their request had not arrived: each is answered, none is reset or dropped."""
    running = start_system(
        tmp_path / "queued", command=("ns",), extra_env={"NEXTAUTH_NS_DRAIN_SECONDS": "15"}
    )
    try:
        running.process.send_signal(signal.SIGSTOP)  # busy: the connections wait in the listen queue
        clients = [
            socket.create_connection(("127.0.0.1", running.port("ns", "http")), timeout=10) for _ in range(3)
        ]
        running.process.send_signal(signal.SIGTERM)
        running.process.send_signal(signal.SIGCONT)
        time.sleep(0.5)  # the requests come late, as through a proxy or after a TLS handshake
        answers = []
        for client in clients:
            client.sendall(b"GET /info HTTP/1.1\r\nHost: ns\r\nConnection: close\r\n\r\n")
            received = b""
            while chunk := client.recv(65536):
                received += chunk
            answers.append(received.split(b"\r\n", 1)[0])
            client.close()
        assert answers == [b"HTTP/1.1 200 OK"] * 3, running.log()
        assert running.process.wait(timeout=30) == 0, running.log()
        assert "draining 3 channels and requests" in running.log()
    finally:
        stop_system(running)


def test_sigterm_without_work_exits_at_once(tmp_path: Path) -> None:
    running = start_system(tmp_path / "quick", extra_env={"NEXTAUTH_NS_DRAIN_SECONDS": "30"})
    try:
        started = time.monotonic()
        running.process.send_signal(signal.SIGTERM)
        assert running.process.wait(timeout=20) == 0, running.log()
        assert time.monotonic() - started < 10
    finally:
        stop_system(running)


def test_a_redis_subscription_killed_by_the_server_says_it_reconnected(redis_server: OwnRedis) -> None:
    """redis-py subscribes again by itself after a dropped connection; the hub learns of it from
    ``reconnects`` and catches its pages up on what was published in the gap."""
    store = RedisStore(redis_server.uri, prefix="test-kill:")
    admin = redis.Redis.from_url(redis_server.uri)
    try:
        subscription = store.subscribe("browser")
        assert subscription.reconnects == 0
        assert admin.client_kill_filter(_type="pubsub") >= 1
        store.publish("browser", b"lost")  # published while nobody listens: gone
        deadline = time.monotonic() + 10
        while subscription.reconnects == 0 and time.monotonic() < deadline:
            subscription.get(timeout=0.2)
        assert subscription.reconnects == 1
        store.publish("browser", b"after")
        assert subscription.get(timeout=5) == b"after"
        subscription.close()
    finally:
        admin.close()
        store.close()
