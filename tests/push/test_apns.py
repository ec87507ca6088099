"""APNs provider against a local HTTP/2-only server (h2 over TLS) that checks what Apple checks."""

import json
import logging
import secrets
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from authserver.config import ConfigError
from authserver.mc.providers import providers_from_environment
from authserver.push import ApnsProvider, LoggingProvider, PushMessage
from authserver.push.apns import load_signing_key
from authserver.push.base import client_tls_context
from tests.pushservers import TestCA
from tests.pushservers.apns_server import ApnsServer

KEY_ID, TEAM_ID, TOPIC = "ABC123DEFG", "DEF123GHIJ", "org.nextauth.app"
DEVICE = secrets.token_hex(32)


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return TestCA(tmp_path_factory.mktemp("apns-ca"))


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def running(ca: TestCA, key: ec.EllipticCurvePrivateKey) -> Iterator[ApnsServer]:
    server = ApnsServer(ca.issue(), key.public_key(), key_id=KEY_ID, team_id=TEAM_ID, topic=TOPIC)
    yield server
    server.stop()


@pytest.fixture
def server(running: ApnsServer) -> ApnsServer:
    running.reset()
    return running


def make_provider(server: ApnsServer, ca_file: Path, key: Any, **options: Any) -> ApnsProvider:
    return ApnsProvider(key, KEY_ID, TEAM_ID, TOPIC, base_url=server.url, ca_file=str(ca_file), **options)


@pytest.fixture
def provider(server: ApnsServer, ca: TestCA, key: ec.EllipticCurvePrivateKey) -> Iterator[ApnsProvider]:
    provider = make_provider(server, ca.ca_file, key)
    yield provider
    provider.close()


def eventually(condition: Callable[[], bool], timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def wake_up(token: str = DEVICE, **changes: Any) -> PushMessage:
    fields: dict[str, Any] = {
        "device_token": token,
        "collapse_id": "login",
        "data": {"mailbox": "mb-1", "message": "msg-1"},
    }
    fields.update(changes)
    return PushMessage(**fields)


def test_a_background_push_over_http2(server: ApnsServer, provider: ApnsProvider) -> None:
    result = provider.send(wake_up())

    assert result.delivered and result.provider == "apns" and result.error is None
    assert result.provider_message_id is not None and len(result.provider_message_id) == 36
    assert server.alpn_protocols == ["h2"]
    [request] = server.requests
    assert request.path == f"/3/device/{DEVICE}"
    headers = request.headers
    assert headers[":method"] == "POST" and headers[":scheme"] == "https"
    assert headers["apns-topic"] == TOPIC
    assert headers["apns-push-type"] == "background" and headers["apns-priority"] == "5"
    assert headers["apns-collapse-id"] == "login"
    assert abs(int(headers["apns-expiration"]) - (time.time() + 60)) < 10
    assert headers["authorization"].startswith("bearer ")
    assert request.payload == {"aps": {"content-available": 1}, "mailbox": "mb-1", "message": "msg-1"}


def test_an_alert_push(server: ApnsServer, provider: ApnsProvider) -> None:
    result = provider.send(
        wake_up(alert_title="Log in?", alert_body="example.org", collapse_id=None, ttl_seconds=0)
    )
    assert result.delivered
    headers, payload = server.requests[0].headers, server.requests[0].payload
    assert headers["apns-push-type"] == "alert" and headers["apns-priority"] == "10"
    assert headers["apns-expiration"] == "0" and "apns-collapse-id" not in headers
    assert payload["aps"] == {"alert": {"title": "Log in?", "body": "example.org"}}


# Concurrent sends as the mc makes them: greenlets of a gevent-patched process. (httpcore opens an HTTP/2
# stream in two steps, taking its id and sending its headers, that OS threads can interleave; greenlets,
# which switch only on I/O, cannot.)
_CONCURRENT_SENDS = """
from gevent import monkey

monkey.patch_all()

import json
import sys

import gevent

from authserver.push import ApnsProvider, PushMessage

key, key_id, team_id, topic, url, ca_file, device = sys.argv[1:8]
provider = ApnsProvider(key, key_id, team_id, topic, base_url=url, ca_file=ca_file)
message = PushMessage(device_token=device, collapse_id="login", data={"mailbox": "mb-1"})
first = [provider.send(message).delivered for _ in range(3)]
sends = [gevent.spawn(provider.send, message) for _ in range(6)]
gevent.joinall(sends, timeout=30)
print(json.dumps(first + [bool(g.value and g.value.delivered) for g in sends]))
provider.close()
"""


def test_one_connection_and_one_provider_token_for_many_pushes(
    server: ApnsServer, ca: TestCA, key: ec.EllipticCurvePrivateKey
) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    answer = subprocess.run(
        [
            sys.executable,
            "-c",
            _CONCURRENT_SENDS,
            pem,
            KEY_ID,
            TEAM_ID,
            TOPIC,
            server.url,
            str(ca.ca_file),
            DEVICE,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert answer.returncode == 0, answer.stderr[-2000:]
    assert json.loads(answer.stdout) == [True] * 9
    # The six concurrent sends were multiplexed as streams on the same HTTP/2 connection.
    assert server.connections == 1 and len(server.requests) == 9
    assert {request.connection for request in server.requests} == {1}
    assert len({request.stream_id for request in server.requests}) == 9
    assert len(server.provider_tokens) == 1


def test_the_provider_token_is_signed_as_apple_wants(server: ApnsServer, provider: ApnsProvider) -> None:
    assert provider.send(wake_up()).delivered
    token = server.requests[0].headers["authorization"].removeprefix("bearer ")
    header_part, claims_part, signature_part = token.split(".")

    def decode(part: str) -> Any:
        import base64

        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))

    assert json.loads(decode(header_part)) == {"alg": "ES256", "kid": KEY_ID}
    claims = json.loads(decode(claims_part))
    assert claims["iss"] == TEAM_ID and abs(claims["iat"] - time.time()) < 60
    assert len(decode(signature_part)) == 64  # raw r||s, not DER


def test_the_provider_token_is_renewed_after_50_minutes(
    server: ApnsServer, ca: TestCA, key: ec.EllipticCurvePrivateKey
) -> None:
    clock = FakeClock(time.time() - 50 * 60)
    provider = make_provider(server, ca.ca_file, key, clock=clock)
    try:
        assert provider.send(wake_up()).delivered
        clock.now += 49 * 60
        assert provider.send(wake_up()).delivered
        assert len(server.provider_tokens) == 1
        clock.now += 60
        assert provider.send(wake_up()).delivered
    finally:
        provider.close()
    assert len(server.provider_tokens) == 2


def test_an_expired_provider_token_is_renewed_once(server: ApnsServer, provider: ApnsProvider) -> None:
    assert provider.send(wake_up()).delivered
    server.expire_provider_tokens()

    assert provider.send(wake_up()).delivered
    assert len(server.provider_tokens) == 2 and len(server.requests) == 2


def test_expired_twice_is_reported_not_retried_again(server: ApnsServer, provider: ApnsProvider) -> None:
    server.fail_next(403, "ExpiredProviderToken", count=2)
    result = provider.send(wake_up())
    assert not result.delivered and not result.token_invalid
    assert result.error == "403 ExpiredProviderToken"
    # Exactly two attempts used the two failures: the next push goes through.
    assert provider.send(wake_up()).delivered


@pytest.mark.parametrize(
    ("token", "reason"),
    [(DEVICE[:-1], "BadDeviceToken"), (secrets.token_hex(31), "BadDeviceToken")],
    ids=["one-digit-short", "random-62-digits"],  # stable ids: test runners compare them across workers
)
def test_a_malformed_device_token_is_reported_invalid(
    server: ApnsServer, provider: ApnsProvider, token: str, reason: str
) -> None:
    result = provider.send(wake_up(token))
    assert not result.delivered and result.token_invalid and result.error == f"400 {reason}"


def test_a_token_that_is_no_token_never_reaches_the_path(server: ApnsServer, provider: ApnsProvider) -> None:
    result = provider.send(wake_up("../../../3/device/" + DEVICE))
    assert not result.delivered and result.token_invalid
    assert server.requests == [] and server.connections == 0


def test_an_unregistered_device(server: ApnsServer, provider: ApnsProvider) -> None:
    server.unregister(DEVICE)
    result = provider.send(wake_up())
    assert not result.delivered and result.token_invalid and result.error == "410 Unregistered"
    assert result.provider_message_id is not None


@pytest.mark.parametrize(
    ("status", "reason", "header", "expected"),
    [(429, "TooManyProviderTokenUpdates", "30", 30.0), (503, "ServiceUnavailable", None, 60.0)],
)
def test_throttling_gives_retry_after(
    server: ApnsServer,
    provider: ApnsProvider,
    status: int,
    reason: str,
    header: str | None,
    expected: float,
) -> None:
    server.fail_next(status, reason, retry_after=header)
    result = provider.send(wake_up())
    assert not result.delivered and not result.token_invalid
    assert result.retry_after == expected and result.error == f"{status} {reason}"


def test_a_payload_over_4_kib_is_not_sent(server: ApnsServer, provider: ApnsProvider) -> None:
    result = provider.send(wake_up(data={"blob": "x" * 4100}))
    assert not result.delivered and not result.token_invalid and "4096" in (result.error or "")
    assert provider.send(wake_up(data={"aps": "mine"})).error == "the data key 'aps' is APNs's own"
    assert server.requests == []


def test_the_server_refuses_tokens_of_another_key_or_team(
    server: ApnsServer, ca: TestCA, key: ec.EllipticCurvePrivateKey
) -> None:
    stranger = make_provider(server, ca.ca_file, ec.generate_private_key(ec.SECP256R1()))
    other_team = ApnsProvider(key, KEY_ID, "OTHERTEAM1", TOPIC, base_url=server.url, ca_file=str(ca.ca_file))
    other_topic = ApnsProvider(key, KEY_ID, TEAM_ID, "org.evil", base_url=server.url, ca_file=str(ca.ca_file))
    try:
        assert stranger.send(wake_up()).error == "403 InvalidProviderToken"
        assert other_team.send(wake_up()).error == "403 InvalidProviderToken"
        assert other_topic.send(wake_up()).error == "400 TopicDisallowed"
    finally:
        for provider in (stranger, other_team, other_topic):
            provider.close()
    assert server.requests == []


def test_a_server_certificate_from_an_unknown_ca_is_refused(
    server: ApnsServer, key: ec.EllipticCurvePrivateKey, tmp_path: Path
) -> None:
    provider = make_provider(server, TestCA(tmp_path, "another CA").ca_file, key)
    try:
        result = provider.send(wake_up())
    finally:
        provider.close()
    assert not result.delivered and result.error == "network: ConnectError"
    assert server.requests == []
    # The server notices the aborted handshake on its own thread; wait for it so that the count does not
    # spill into the next test.
    assert eventually(lambda: server.refused_connections == 1)


def test_the_server_speaks_nothing_but_http2(server: ApnsServer, ca: TestCA) -> None:
    # An HTTP/1.1 client (ALPN "http/1.1") is hung up on before any HTTP byte.
    with httpx.Client(http2=False, verify=client_tls_context(str(ca.ca_file))) as client:
        with pytest.raises(httpx.HTTPError):
            client.post(f"{server.url}/3/device/{DEVICE}", content=b"{}")
    # No ALPN at all: the same.
    context = client_tls_context(str(ca.ca_file))
    with socket.create_connection(("127.0.0.1", server.port)) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.selected_alpn_protocol() is None
            tls.sendall(b"POST /3/device/x HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
            try:
                assert tls.recv(1024) == b""
            except (ssl.SSLError, ConnectionResetError):
                pass
    assert eventually(lambda: server.refused_connections == 2)
    assert server.connections == 0 and server.requests == []


def test_device_tokens_stay_out_of_logs(
    server: ApnsServer, provider: ApnsProvider, caplog: pytest.LogCaptureFixture
) -> None:
    server.unregister(DEVICE)
    with caplog.at_level(logging.INFO):
        provider.send(wake_up())
    assert any("HTTP Request" in record.getMessage() for record in caplog.records)  # httpx did log
    assert DEVICE[:8] in caplog.text and DEVICE not in caplog.text


def test_keys_are_checked(tmp_path: Path) -> None:
    rsa_like = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ValueError, match="P-256"):
        load_signing_key(rsa_like)
    with pytest.raises(ValueError, match="PEM"):
        load_signing_key(b"not a key")
    p8 = tmp_path / "AuthKey_ABC123DEFG.p8"
    p8.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    ApnsProvider.from_key_file(p8, KEY_ID, TEAM_ID, TOPIC).close()
    with pytest.raises(ValueError, match="https"):
        ApnsProvider.from_key_file(p8, KEY_ID, TEAM_ID, TOPIC, base_url="http://api.push.apple.com")


@pytest.mark.parametrize(
    ("change", "body", "answer"),
    [
        ({}, b'{"aps":{"content-available":1}}', "200"),
        ({"apns-priority": "10"}, b'{"aps":{"content-available":1}}', "400 BadPriority"),
        ({"apns-push-type": "bogus"}, b'{"aps":{"content-available":1}}', "400 InvalidPushType"),
        ({"apns-id": "nope"}, b'{"aps":{"content-available":1}}', "400 BadMessageId"),
        ({"apns-collapse-id": "x" * 65}, b'{"aps":{"content-available":1}}', "400 BadCollapseId"),
        ({"apns-expiration": "soon"}, b'{"aps":{"content-available":1}}', "400 BadExpirationDate"),
        ({"apns-topic": ""}, b'{"aps":{"content-available":1}}', "400 MissingTopic"),
        ({"authorization": ""}, b'{"aps":{"content-available":1}}', "403 MissingProviderToken"),
        ({}, b"", "400 PayloadEmpty"),
        ({}, b"x" * 4097, "413 PayloadTooLarge"),
        ({}, b'{"aps":{"alert":"hi","content-available":1}}', "400 BadPayload"),
    ],
)
def test_the_server_checks_requests_as_apns_does(
    server: ApnsServer, provider: ApnsProvider, ca: TestCA, change: dict[str, str], body: bytes, answer: str
) -> None:
    """The local server is as strict as APNs, so a wrong header or payload in the provider would show."""
    headers = {
        "authorization": f"bearer {provider._token()}",
        "apns-topic": TOPIC,
        "apns-push-type": "background",
        "apns-priority": "5",
        **change,
    }
    headers = {name: value for name, value in headers.items() if value}
    with httpx.Client(http1=False, http2=True, verify=client_tls_context(str(ca.ca_file))) as client:
        response = client.post(f"{server.url}/3/device/{DEVICE}", headers=headers, content=body)
    assert response.http_version == "HTTP/2"
    got = (
        str(response.status_code)
        if response.status_code == 200
        else f"{response.status_code} {response.json()['reason']}"
    )
    assert got == answer


def test_the_mc_settings_turn_apns_on(
    server: ApnsServer, ca: TestCA, key: ec.EllipticCurvePrivateKey
) -> None:
    """What docs/configuration.md promises: the .p8 key with its ids (and the URL and CA of this local
    server) replaces the logging provider with APNs, and a push reaches the server; a key without its ids
    stops the start naming the missing setting."""
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    assert isinstance(providers_from_environment({})["apns"], LoggingProvider)
    environ = {
        "NEXTAUTH_MC_APNS_KEY": pem,
        "NEXTAUTH_MC_APNS_KEY_ID": KEY_ID,
        "NEXTAUTH_MC_APNS_TEAM_ID": TEAM_ID,
        "NEXTAUTH_MC_APNS_TOPIC": TOPIC,
        "NEXTAUTH_MC_APNS_URL": server.url,
        "NEXTAUTH_MC_PUSH_CA_FILE": str(ca.ca_file),
    }
    provider = providers_from_environment(environ)["apns"]
    try:
        assert isinstance(provider, ApnsProvider)
        assert provider.send(wake_up()).delivered
        assert [r.path for r in server.requests] == [f"/3/device/{DEVICE}"]
    finally:
        provider.close()
    with pytest.raises(ConfigError, match="NEXTAUTH_MC_APNS_TEAM_ID"):
        providers_from_environment({"NEXTAUTH_MC_APNS_KEY": pem, "NEXTAUTH_MC_APNS_KEY_ID": KEY_ID})
