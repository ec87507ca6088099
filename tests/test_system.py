"""The running system end to end: the phone simulator reaches ns, sfs and mc over sigmai, and the
sigmai listeners survive every kind of bad client without crashing or leaking why they closed."""

import json
import socket
import time
from pathlib import Path

import pytest

from mobilesdk.channel import ChannelError, open_channel
from sigmai import ClientConnection, DeviceIdentity
from sigmai.websocket import WebSocket, WebSocketClosed
from tests.fixtures.system import RunningSystem, run_app


def _ws(system: RunningSystem, component: str = "ns", max_message: int = 1 << 20) -> WebSocket:
    sock = socket.create_connection(("127.0.0.1", system.port(component, "sigmai")), timeout=5)
    return WebSocket.connect(sock, "127.0.0.1", f"/{component}/sigmai", max_message=max_message)


def _expect_closed(ws: WebSocket) -> None:
    with pytest.raises(WebSocketClosed):
        ws.receive()


def _hello_works(system: RunningSystem, component: str = "ns") -> None:
    key_hash = bytes.fromhex(system.key_hash(component))
    with open_channel(system.sigmai_uri(component), DeviceIdentity.generate(), key_hash) as channel:
        assert channel.request("hello")["component"] == component


def test_phone_simulator_reaches_all_three_services(system: RunningSystem, tmp_path: Path) -> None:
    home = tmp_path / "phone"
    code, init = run_app(home, "init", "--config", str(system.data_dir / "app-config.json"))
    assert code == 0, init
    assert init["device_created"] is True
    thumbprint = init["device_thumbprint"]

    for component in ("sfs", "mc"):
        code, answer = run_app(home, "hello", component)
        assert code == 0, answer
        assert answer["server"]["component"] == component
        assert answer["server"]["device_thumbprint"] == thumbprint
        assert answer["server_key_hash"] == system.key_hash(component)

    ns_hash = system.key_hash("ns")
    code, answer = run_app(home, "hello", "--uri", system.sigmai_uri("ns"), "--key-hash", ns_hash)
    assert code == 0, answer
    operations = answer["server"].pop("operations")
    assert answer["server"] == {
        "component": "ns",
        "name": "nextAuth Server",
        "protocol_version": 1,
        "server_key_hash": ns_hash,
        "device_thumbprint": thumbprint,
        "device_key_type": "p256",
    }
    assert {"hello", "enrol.start", "login.start", "sign.start"} <= set(operations)


def test_device_key_survives_and_is_reused(system: RunningSystem, tmp_path: Path) -> None:
    home = tmp_path / "phone"
    config = str(system.data_dir / "app-config.json")
    _, first = run_app(home, "init", "--config", config, "--key-type", "ed25519")
    _, second = run_app(home, "init", "--config", config)
    assert second["device_created"] is False
    assert second["device_thumbprint"] == first["device_thumbprint"]
    assert second["device_key_type"] == "ed25519"
    assert (home / "device.pem").stat().st_mode & 0o077 == 0


def test_wrong_pinned_key_is_refused(system: RunningSystem, tmp_path: Path) -> None:
    home = tmp_path / "phone"
    run_app(home, "init", "--config", str(system.data_dir / "app-config.json"))
    # The sfs key hash is genuine, but not ns's: ns must not answer for it.
    code, answer = run_app(
        home, "hello", "--uri", system.sigmai_uri("ns"), "--key-hash", system.key_hash("sfs")
    )
    assert code == 1
    assert "not the one pinned" in answer["error"]
    _hello_works(system)


def test_unconfigured_phone_gets_a_clear_error(tmp_path: Path) -> None:
    code, answer = run_app(tmp_path / "empty", "hello", "sfs")
    assert code == 1
    assert "nextauth-app init" in answer["error"]


def test_stalled_handshake_is_closed_after_the_deadline(system: RunningSystem) -> None:
    started = time.monotonic()
    ws = _ws(system)
    _expect_closed(ws)
    elapsed = time.monotonic() - started
    assert 1.0 < elapsed < 5.0  # deadline is 1.5 s in this fixture
    _hello_works(system)


def test_stall_after_client_hello_is_closed_too(system: RunningSystem) -> None:
    ws = _ws(system)
    connection = ClientConnection(DeviceIdentity.generate(), bytes.fromhex(system.key_hash("ns")))
    ws.send(connection.initiate())
    connection.receive(ws.receive())  # ServerHello; never send ClientFinish
    _expect_closed(ws)


def test_oversized_frame_closes_the_channel(system: RunningSystem) -> None:
    ws = _ws(system)
    ws.send(bytes(1 << 20))
    _expect_closed(ws)
    _hello_works(system)


def test_tampered_client_finish_closes_without_detail(system: RunningSystem) -> None:
    ws = _ws(system)
    connection = ClientConnection(DeviceIdentity.generate(), bytes.fromhex(system.key_hash("ns")))
    ws.send(connection.initiate())
    connection.receive(ws.receive())
    (finish,) = connection.frames_to_send()
    ws.send(finish[:-1] + bytes([finish[-1] ^ 1]))
    _expect_closed(ws)
    _hello_works(system)


def test_replayed_record_over_the_wire_closes_the_channel(system: RunningSystem) -> None:
    ws = _ws(system, "sfs")
    connection = ClientConnection(DeviceIdentity.generate(), bytes.fromhex(system.key_hash("sfs")))
    ws.send(connection.initiate())
    connection.receive(ws.receive())
    for frame in connection.frames_to_send():
        ws.send(frame)
    record = connection.send(json.dumps({"id": 1, "op": "hello", "params": {}}).encode())
    ws.send(record)
    assert connection.receive(ws.receive())  # answered once
    ws.send(record)
    _expect_closed(ws)


def test_downgraded_client_hello_is_refused(system: RunningSystem) -> None:
    ws = _ws(system, "mc")
    hello = ClientConnection(DeviceIdentity.generate(), bytes.fromhex(system.key_hash("mc"))).initiate()
    ws.send(b"\x00" + hello[1:])
    _expect_closed(ws)


def test_text_frames_and_plain_http_are_refused(system: RunningSystem) -> None:
    ws = _ws(system)
    ws._protocol.send_text(b"REGISTER")
    ws._flush()
    _expect_closed(ws)
    with socket.create_connection(("127.0.0.1", system.port("ns", "sigmai")), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 4")


def test_unknown_operation_gets_a_clear_error(system: RunningSystem) -> None:
    key_hash = bytes.fromhex(system.key_hash("sfs"))
    with open_channel(system.sigmai_uri("sfs"), DeviceIdentity.generate(), key_hash) as channel:
        with pytest.raises(Exception, match="unknown_operation"):
            channel.request("format_disk")
        assert channel.request("hello")["component"] == "sfs"  # the channel stays usable


def _raw_channel(system: RunningSystem, component: str = "ns") -> tuple[WebSocket, ClientConnection]:
    """A channel on which the test writes the JSON itself, as a malicious app would."""
    ws = _ws(system, component)
    connection = ClientConnection(DeviceIdentity.generate(), bytes.fromhex(system.key_hash(component)))
    ws.send(connection.initiate())
    connection.receive(ws.receive())
    for frame in connection.frames_to_send():
        ws.send(frame)
    return ws, connection


def _answer(ws: WebSocket, connection: ClientConnection, raw: bytes) -> dict:
    ws.send(connection.send(raw))
    (event,) = connection.receive(ws.receive())
    return json.loads(event.data)


def test_deeply_nested_message_is_a_protocol_error_not_a_traceback(system: RunningSystem) -> None:
    ws, connection = _raw_channel(system)
    ws.send(connection.send(b'{"id":1,"op":"hello","params":{"x":' + b"[" * 1000 + b"]" * 1000 + b"}}"))
    _expect_closed(ws)
    _hello_works(system)
    deadline = time.monotonic() + 5
    while "nests deeper than" not in system.log() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "application message refused: JSON nests deeper than 16 levels" in system.log()
    assert "RecursionError" not in system.log()


def test_message_ids_are_integers_in_range(system: RunningSystem) -> None:
    ws, connection = _raw_channel(system)
    assert _answer(ws, connection, b'{"id":9007199254740991,"op":"hello"}')["id"] == 2**53 - 1
    for bad in (b"1.5", b"true", b"-1", b"9007199254740992", b"1" * 40, b'"7"', b"null"):
        answer = _answer(ws, connection, b'{"id":' + bad + b',"op":"hello"}')
        assert answer["id"] is None and answer["error"]["code"] == "bad_request", bad
        assert "id must be an integer from 0 to 9007199254740991" in answer["error"]["message"]
    # Not JSON at all (an overflowing float, Infinity, NaN): never echoed back as "Infinity".
    for bad in (b"1e400", b"Infinity", b"NaN"):
        ws, connection = _raw_channel(system)
        ws.send(connection.send(b'{"id":' + bad + b',"op":"hello"}'))
        _expect_closed(ws)
    _hello_works(system)


def test_unreachable_service_gives_a_clear_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ChannelError, match="cannot reach"):
        open_channel(f"ws://127.0.0.1:{port}/", DeviceIdentity.generate(), bytes(32), timeout=2)


def test_admin_endpoints_report_health_and_metrics(system: RunningSystem) -> None:
    for component in ("ns", "sfs", "mc"):
        assert system.get(component, "admin", "/livez")[0] == 200
        status, ready = system.get(component, "admin", "/readyz")
        assert status == 200 and ready["checks"] == {"accepting": True, "database": True, "store": True}
    _hello_works(system, "sfs")
    status, metrics = system.get("sfs", "admin", "/metrics")
    assert status == 200
    assert 'nextauth_sigmai_handshakes_total{component="sfs",outcome="ok"}' in metrics


def test_server_survived_everything(system: RunningSystem) -> None:
    assert system.alive()
    assert "Traceback" not in system.log()
