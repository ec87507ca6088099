"""The server's side of the WebSocket opening handshake (sigmai.upgrade): what a real client library sends
is accepted and its answer taken by that library; what is not an upgrade is refused the way RFC 6455 and
the websockets library refuse it (no answer to what is not HTTP, 4xx to HTTP that is no upgrade)."""

import socket

import pytest
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

from sigmai import upgrade
from sigmai.websocket import WebSocket

KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 section 1.3's example


def _head(*lines: str, request_line: str = "GET /ns/sigmai HTTP/1.1") -> bytes:
    return ("\r\n".join([request_line, *lines]) + "\r\n\r\n").encode("latin-1")


GOOD = (
    "Host: ns.example.com",
    "Upgrade: websocket",
    "Connection: Upgrade",
    f"Sec-WebSocket-Key: {KEY}",
    "Sec-WebSocket-Version: 13",
)


def test_the_answer_carries_the_accept_value_of_rfc_6455() -> None:
    answer = upgrade.parse(_head(*GOOD)).answer
    assert answer.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in answer
    assert answer.endswith(b"\r\n\r\n")


def test_a_websockets_client_request_is_accepted_and_takes_the_answer() -> None:
    client = ClientProtocol(parse_uri("ws://ns.example.com:8443/ns/sigmai?x=1"))
    request = client.connect()
    request.headers["X-Forwarded-For"] = "203.0.113.9"
    request.headers["X-Forwarded-For"] = "10.0.0.1"  # a second header line: both count
    request.headers["Sec-WebSocket-Extensions"] = "permessage-deflate"  # offered, declined by silence
    client.send_request(request)
    head = b"".join(client.data_to_send())
    accepted = upgrade.parse(head)
    assert (accepted.target, accepted.host) == ("/ns/sigmai?x=1", "ns.example.com:8443")
    assert accepted.forwarded_for == "203.0.113.9,10.0.0.1"
    client.receive_data(accepted.answer)
    (response,) = client.events_received()
    assert isinstance(response, Response) and response.status_code == 101
    assert client.state is State.OPEN
    assert client.handshake_exc is None


def test_names_and_tokens_are_read_without_regard_to_case() -> None:
    accepted = upgrade.parse(
        _head(
            "HOST: h",
            "upgrade: WebSocket",
            "CONNECTION: keep-alive, UPGRADE",
            f"sec-websocket-key: {KEY}",
            "Sec-Websocket-Version:13",
        )
    )
    assert accepted.host == "h"
    assert accepted.forwarded_for is None


@pytest.mark.parametrize(
    ("drop", "add", "status", "also"),
    [
        ("Connection: Upgrade", "Connection: keep-alive", 426, b"Upgrade: websocket"),
        ("Upgrade: websocket", "Upgrade: h2c", 426, b"Upgrade: websocket"),
        ("Upgrade: websocket", "Upgrade: websocket, h2c", 426, b"Upgrade: websocket"),
        ("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8", 426, b"Sec-WebSocket-Version: 13"),
        ("Sec-WebSocket-Version: 13", "", 426, b"Sec-WebSocket-Version: 13"),
        (f"Sec-WebSocket-Key: {KEY}", "Sec-WebSocket-Key: c2hvcnQ=", 400, b""),  # 5 bytes, not 16
        (f"Sec-WebSocket-Key: {KEY}", "Sec-WebSocket-Key: not base64 at all!!", 400, b""),
        (f"Sec-WebSocket-Key: {KEY}", f"Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Key: {KEY}", 400, b""),
        (f"Sec-WebSocket-Key: {KEY}", "Sec-WebSocket-Key: d\u00e9GhlIHNhbXBsZSBub25jZQ==", 400, b""),
        (f"Sec-WebSocket-Key: {KEY}", "", 400, b""),
    ],
)
def test_http_that_is_no_upgrade_gets_a_4xx_answer(drop: str, add: str, status: int, also: bytes) -> None:
    lines = [line for line in GOOD if line != drop] + ([add] if add else [])
    with pytest.raises(upgrade.Refused) as refused:
        upgrade.parse(_head(*lines))
    answer = refused.value.answer
    assert answer.startswith(f"HTTP/1.1 {status} ".encode())
    assert b"\r\nConnection: close\r\n" in answer
    assert also in answer
    head, _, body = answer.partition(b"\r\n\r\n")
    assert f"Content-Length: {len(body)}".encode() in head


@pytest.mark.parametrize(
    "head",
    [
        _head(*GOOD, request_line="POST /ns/sigmai HTTP/1.1"),
        _head(*GOOD, request_line="GET /ns/sigmai HTTP/1.0"),
        _head(*GOOD, request_line="GET /ns/sigmai"),
        _head(*GOOD, request_line="GET  /ns/sigmai HTTP/1.1"),
        _head(*GOOD, request_line="GET /a\x7fb HTTP/1.1"),
        _head(*GOOD, "no colon here"),
        _head(*GOOD, "X-Folded: one", " two"),  # obsolete line folding
        _head(*GOOD, "Bad Name: x"),
        _head(*GOOD, "X-Control: a\x00b"),
        _head(*GOOD, *[f"X-{i}: y" for i in range(upgrade.MAX_HEADERS)]),
        _head(*GOOD, "X-Long: " + "y" * upgrade.MAX_LINE),
        _head(*GOOD, *[f"X-{i}: " + "y" * 8000 for i in range(5)]),  # longer than MAX_HEAD in all
        b"\x16\x03\x01\x00\xa5 TLS where HTTP was expected\r\n\r\n",
        _head(*GOOD)[:-2],  # the head never ends
    ],
)
def test_what_is_not_an_http_get_is_not_answered(head: bytes) -> None:
    with pytest.raises(upgrade.NotHttp):
        upgrade.parse(head)


def test_the_end_of_the_head_is_found_across_reads() -> None:
    head = _head(*GOOD)
    for cut in range(1, len(head)):
        first = head[:cut]
        searched = len(first)
        assert upgrade.head_end(first) == -1
        assert upgrade.head_end(head + b"frames", searched) == len(head)


def test_frames_sent_right_behind_the_request_are_not_lost() -> None:
    server_sock, client_sock = socket.socketpair()
    for sock in (server_sock, client_sock):
        sock.settimeout(10)
    client = ClientProtocol(parse_uri("ws://ns.example.com/ns/sigmai"))
    client.send_request(client.connect())
    head = b"".join(client.data_to_send())
    frame = Frame(Opcode.BINARY, b"early").serialize(mask=True)
    client_sock.sendall(head + frame)  # one write: the server reads both at once
    server, request = WebSocket.accept(server_sock, max_message=4096)
    assert request.target == "/ns/sigmai"
    assert server.receive() == b"early"
    server.abort()
    client_sock.close()


def test_an_endless_head_is_cut_off() -> None:
    server_sock, client_sock = socket.socketpair()
    for sock in (server_sock, client_sock):
        sock.settimeout(10)
    client_sock.sendall(b"GET / HTTP/1.1\r\n" + b"X: " + b"y" * (upgrade.MAX_HEAD + 10))
    with pytest.raises(Exception, match="too large"):
        WebSocket.accept(server_sock, max_message=4096)
    client_sock.settimeout(2)
    assert client_sock.recv(100) == b""  # closed without an answer
    client_sock.close()
