"""The WebSocket under sigmai (sigmai.websocket) over a real socket pair: the upgrade, binary messages whole
or in fragments, pings answered, and each way a peer can break the rules ending the connection with the
close code RFC 6455 gives (1003 for text, 1009 for too big), before a too-big message is buffered."""

import socket
import struct
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from websockets.frames import CloseCode, Frame, Opcode

from sigmai.websocket import UpgradeRequest, WebSocket, WebSocketClosed

MAX = 4096


def _in_thread(work: Callable[[], Any]) -> Callable[[], Any]:
    """Run ``work`` in a thread; the returned function waits for its result (or its exception)."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = work()
        except BaseException as exc:  # handed to the test's thread
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def result() -> Any:
        thread.join(10)
        if "error" in outcome:
            raise outcome["error"]
        return outcome.get("value")

    return result


@pytest.fixture
def pair() -> Iterator[tuple[WebSocket, WebSocket, UpgradeRequest]]:
    server_sock, client_sock = socket.socketpair()
    for sock in (server_sock, client_sock):
        sock.settimeout(10)
    accepted = _in_thread(lambda: WebSocket.accept(server_sock, max_message=MAX))
    client = WebSocket.connect(client_sock, "ns.example.com:8443", "/ns/sigmai", max_message=MAX)
    server, request = accepted()
    yield server, client, request
    server.abort()
    client.abort()


def _close_code(ws: WebSocket) -> int | None:
    """What the peer's close frame said, read from the wire after the connection ended."""
    frame = ws._protocol.close_rcvd
    return None if frame is None else int(frame.code)


def test_the_upgrade_names_host_and_target_and_messages_go_both_ways(
    pair: tuple[WebSocket, WebSocket, UpgradeRequest],
) -> None:
    server, client, request = pair
    assert (request.host, request.target, request.forwarded_for) == (
        "ns.example.com:8443",
        "/ns/sigmai",
        None,
    )
    client.send(b"\x00hello")
    assert server.receive() == b"\x00hello"
    server.send(b"\xffworld")
    assert client.receive() == b"\xffworld"


def test_a_message_in_fragments_arrives_whole_and_pings_are_answered(
    pair: tuple[WebSocket, WebSocket, UpgradeRequest],
) -> None:
    server, client, _ = pair
    client._protocol.send_ping(b"are you there")
    client._protocol.send_binary(b"part one, ", fin=False)
    client._protocol.send_continuation(b"part two", fin=True)
    client._flush()
    assert server.receive() == b"part one, part two"
    server.send(b"ok")
    assert client.receive() == b"ok"  # the pong came first and was passed over
    assert client._protocol.events_received() == []


def test_text_is_refused_with_1003(pair: tuple[WebSocket, WebSocket, UpgradeRequest]) -> None:
    server, client, _ = pair
    client._protocol.send_text(b"REGISTER")
    client._flush()
    with pytest.raises(WebSocketClosed):
        server.receive()
    with pytest.raises(WebSocketClosed):
        client.receive()
    assert _close_code(client) == CloseCode.UNSUPPORTED_DATA


def test_a_message_over_the_limit_is_refused_with_1009_before_it_is_read_whole(
    pair: tuple[WebSocket, WebSocket, UpgradeRequest],
) -> None:
    server, client, _ = pair
    # Only the header of a frame that announces MAX + 1 bytes: the server must not wait for the rest.
    header = bytes([0x80 | Opcode.BINARY.value, 0x80 | 126]) + struct.pack("!H", MAX + 1) + b"mask"
    client._sock.sendall(header)
    with pytest.raises(WebSocketClosed, match="protocol violation"):
        server.receive()
    with pytest.raises(WebSocketClosed):
        client.receive()
    assert _close_code(client) == CloseCode.MESSAGE_TOO_BIG


def test_fragments_together_over_the_limit_are_refused_too(
    pair: tuple[WebSocket, WebSocket, UpgradeRequest],
) -> None:
    server, client, _ = pair
    client._protocol.send_binary(bytes(MAX - 10), fin=False)
    client._protocol.send_continuation(bytes(20), fin=True)
    client._flush()
    with pytest.raises(WebSocketClosed):
        server.receive()
    with pytest.raises(WebSocketClosed):
        client.receive()
    assert _close_code(client) == CloseCode.MESSAGE_TOO_BIG


def test_a_peers_close_is_answered_and_ends_the_connection(
    pair: tuple[WebSocket, WebSocket, UpgradeRequest],
) -> None:
    server, client, _ = pair
    client.close()
    with pytest.raises(WebSocketClosed, match="peer closed"):
        server.receive()
    assert server.closed
    with pytest.raises(WebSocketClosed):
        server.send(b"too late")


def test_plain_http_gets_a_4xx_answer_and_the_connection_is_closed() -> None:
    server_sock, client_sock = socket.socketpair()
    server_sock.settimeout(10)
    client_sock.settimeout(10)
    accepted = _in_thread(lambda: WebSocket.accept(server_sock, max_message=MAX))
    client_sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    with pytest.raises(WebSocketClosed):
        accepted()
    answer = b""
    while chunk := client_sock.recv(4096):
        answer += chunk
    assert answer.startswith(b"HTTP/1.1 4")
    client_sock.close()


def test_garbage_instead_of_a_request_closes_without_an_answer() -> None:
    server_sock, client_sock = socket.socketpair()
    server_sock.settimeout(10)
    client_sock.settimeout(10)
    accepted = _in_thread(lambda: WebSocket.accept(server_sock, max_message=MAX))
    client_sock.sendall(b"\x16\x03\x01\x00\xa5 not http at all\r\n\r\n")
    with pytest.raises(WebSocketClosed):
        accepted()
    assert client_sock.recv(4096) == b""
    client_sock.close()


def test_a_server_that_refuses_the_upgrade_is_an_error_for_the_client() -> None:
    server_sock, client_sock = socket.socketpair()
    client_sock.settimeout(10)

    def refuse() -> None:
        server_sock.recv(4096)
        server_sock.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
        server_sock.close()

    refused = _in_thread(refuse)
    with pytest.raises(WebSocketClosed, match="refused"):
        WebSocket.connect(client_sock, "ns.example.com", "/ns/sigmai", max_message=MAX)
    refused()


def test_an_unmasked_frame_from_a_client_is_a_protocol_violation(
    pair: tuple[WebSocket, WebSocket, UpgradeRequest],
) -> None:
    server, client, _ = pair
    client._sock.sendall(Frame(Opcode.BINARY, b"unmasked").serialize(mask=False))
    with pytest.raises(WebSocketClosed, match="protocol violation"):
        server.receive()
    with pytest.raises(WebSocketClosed):
        client.receive()
    assert _close_code(client) == CloseCode.PROTOCOL_ERROR
