"""FCM HTTP v1 provider against a local server speaking Google's OAuth 2.0 and FCM protocols over TLS."""

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from authserver.config import ConfigError
from authserver.mc.providers import providers_from_environment
from authserver.push import LoggingProvider, PushMessage
from authserver.push.base import client_tls_context, parse_retry_after
from authserver.push.fcm import MESSAGING_SCOPE, FcmProvider, ServiceAccount
from tests.pushservers import TestCA
from tests.pushservers.fcm_server import FcmServer, make_service_account

DEVICE = "cAbC123_dEf:APA91bHun4MxP5egoKMwt2KZFBaFUH-1RYqx"


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return TestCA(tmp_path_factory.mktemp("fcm-ca"))


@pytest.fixture(scope="module")
def running(ca: TestCA) -> Iterator[tuple[FcmServer, dict[str, str]]]:
    document, public_key = make_service_account("https://placeholder.invalid/token")
    server = FcmServer(
        ca.issue(),
        public_key,
        client_email=document["client_email"],
        private_key_id=document["private_key_id"],
        project_id=document["project_id"],
    )
    # The token URI in the file is where the provider will go: this server.
    document["token_uri"] = server.token_uri
    yield server, document
    server.stop()


@pytest.fixture
def server(running: tuple[FcmServer, dict[str, str]]) -> FcmServer:
    running[0].reset()
    return running[0]


@pytest.fixture(scope="module")
def account(running: tuple[FcmServer, dict[str, str]]) -> ServiceAccount:
    return ServiceAccount.from_json(running[1])


@pytest.fixture
def provider(server: FcmServer, account: ServiceAccount, ca: TestCA) -> Iterator[FcmProvider]:
    provider = FcmProvider(account, base_url=server.url, ca_file=str(ca.ca_file))
    yield provider
    provider.close()


def wake_up(token: str = DEVICE, **changes: Any) -> PushMessage:
    fields: dict[str, Any] = {
        "device_token": token,
        "collapse_id": "login",
        "data": {"mailbox": "mb-1", "message": "msg-1"},
    }
    fields.update(changes)
    return PushMessage(**fields)


def test_delivers_a_data_message_as_fcm_expects_it(server: FcmServer, provider: FcmProvider) -> None:
    result = provider.send(wake_up())

    assert result.delivered and result.provider == "fcm" and result.error is None
    assert result.provider_message_id is not None
    assert result.provider_message_id.startswith("projects/nextauth-test/messages/")
    [received] = server.messages
    assert received.path == "/v1/projects/nextauth-test/messages:send"
    assert received.headers["authorization"] == f"Bearer {received.access_token}"
    assert received.headers["content-type"].startswith("application/json")
    assert received.body == {
        "message": {
            "token": DEVICE,
            "data": {"mailbox": "mb-1", "message": "msg-1"},
            "android": {"priority": "high", "ttl": "60s", "collapse_key": "login"},
        }
    }
    # The token endpoint got a properly signed RS256 assertion for the FCM scope.
    [grant] = server.token_requests
    assert grant["header"]["alg"] == "RS256"
    claims = grant["claims"]
    assert claims["iss"].endswith(".iam.gserviceaccount.com")
    assert claims["aud"] == server.token_uri and claims["scope"] == MESSAGING_SCOPE
    assert 0 < claims["exp"] - claims["iat"] <= 3600 and abs(claims["iat"] - time.time()) < 60


def test_an_alert_adds_a_notification(server: FcmServer, provider: FcmProvider) -> None:
    assert provider.send(wake_up(alert_title="Log in?", alert_body="example.org", ttl_seconds=5)).delivered
    message = server.messages[0].body["message"]
    assert message["notification"] == {"title": "Log in?", "body": "example.org"}
    assert message["android"]["ttl"] == "5s"


def test_the_access_token_is_reused(server: FcmServer, provider: FcmProvider) -> None:
    assert provider.send(wake_up()).delivered
    assert provider.send(wake_up(collapse_id=None)).delivered

    assert len(server.token_requests) == 1
    first, second = server.messages
    assert first.access_token == second.access_token
    assert "collapse_key" not in second.body["message"]["android"]


def test_the_access_token_is_renewed_shortly_before_it_expires(
    server: FcmServer, account: ServiceAccount, ca: TestCA
) -> None:
    # The server issues one-hour tokens; the provider's clock starts 3500 s in the past, then jumps to
    # now: the cached token has 100 s left, inside the renewal margin.
    clock = FakeClock(time.time() - 3500)
    provider = FcmProvider(account, base_url=server.url, ca_file=str(ca.ca_file), clock=clock)
    try:
        assert provider.send(wake_up()).delivered
        clock.now += 3500
        assert provider.send(wake_up()).delivered
    finally:
        provider.close()
    assert len(server.token_requests) == 2
    assert server.messages[0].access_token != server.messages[1].access_token


def test_a_401_gets_one_new_token_and_one_retry(server: FcmServer, provider: FcmProvider) -> None:
    assert provider.send(wake_up()).delivered
    server.expire_access_tokens()

    assert provider.send(wake_up()).delivered
    assert len(server.token_requests) == 2 and len(server.messages) == 2


def test_a_401_after_the_refresh_is_reported_not_retried_again(
    server: FcmServer, provider: FcmProvider
) -> None:
    server.fail_next(401, count=5)

    result = provider.send(wake_up())

    assert not result.delivered and not result.token_invalid
    assert result.error is not None and result.error.startswith("401")
    assert len(server.token_requests) == 2


def test_an_unregistered_token_is_reported_invalid(server: FcmServer, provider: FcmProvider) -> None:
    server.unregister(DEVICE)
    result = provider.send(wake_up())
    assert not result.delivered and result.token_invalid
    assert result.error is not None and "UNREGISTERED" in result.error


def test_a_malformed_token_is_reported_invalid(server: FcmServer, provider: FcmProvider) -> None:
    result = provider.send(wake_up("not a token!"))
    assert not result.delivered and result.token_invalid
    assert result.error is not None and "INVALID_ARGUMENT" in result.error


def test_an_invalid_argument_about_the_message_keeps_the_token(provider: FcmProvider) -> None:
    # INVALID_ARGUMENT is about the token only when FCM says so.
    answer = {
        "error": {
            "code": 400,
            "message": "Invalid value at 'message.android.ttl'",
            "status": "INVALID_ARGUMENT",
            "details": [
                {
                    "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                    "errorCode": "INVALID_ARGUMENT",
                },
                {
                    "@type": "type.googleapis.com/google.rpc.BadRequest",
                    "fieldViolations": [{"field": "message.android.ttl", "description": "bad"}],
                },
            ],
        }
    }
    result = provider._result(httpx.Response(400, json=answer))
    assert not result.delivered and not result.token_invalid


@pytest.mark.parametrize(("status", "header", "expected"), [(429, "17", 17.0), (503, None, 10.0)])
def test_throttling_gives_retry_after(
    server: FcmServer, provider: FcmProvider, status: int, header: str | None, expected: float
) -> None:
    server.fail_next(status, retry_after=header)
    result = provider.send(wake_up())
    assert not result.delivered and not result.token_invalid
    assert result.retry_after == expected


def test_retry_after_as_an_http_date() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", None, now=1445412480.0) == 30.0
    assert parse_retry_after("soon", 5.0) == 5.0


def test_a_server_certificate_from_an_unknown_ca_is_refused(
    server: FcmServer, account: ServiceAccount, tmp_path: Path
) -> None:
    stranger = TestCA(tmp_path, "another CA")
    provider = FcmProvider(account, base_url=server.url, ca_file=str(stranger.ca_file))
    try:
        result = provider.send(wake_up())
    finally:
        provider.close()
    assert not result.delivered and result.error is not None and "ConnectError" in result.error
    assert server.token_requests == [] and server.messages == []


def test_tls_verification_uses_the_given_ca(ca: TestCA) -> None:
    context = client_tls_context(str(ca.ca_file))
    assert context.verify_mode.name == "CERT_REQUIRED" and context.check_hostname


def test_the_token_endpoint_refuses_an_assertion_signed_by_another_key(
    server: FcmServer, running: tuple[FcmServer, dict[str, str]], ca: TestCA
) -> None:
    forged = dict(running[1])
    forged["private_key"] = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        .decode()
    )
    provider = FcmProvider(ServiceAccount.from_json(forged), base_url=server.url, ca_file=str(ca.ca_file))
    try:
        result = provider.send(wake_up())
    finally:
        provider.close()
    assert not result.delivered and result.error is not None
    assert "invalid_grant" in result.error and "Signature" in result.error
    assert server.messages == []


def test_the_server_checks_the_message_shape(server: FcmServer, provider: FcmProvider, ca: TestCA) -> None:
    """The local server is as strict as FCM's parser, so a wrong shape in the provider would show."""
    assert provider.send(wake_up()).delivered
    bearer = {"Authorization": f"Bearer {server.messages[0].access_token}"}
    url = f"{server.url}/v1/projects/nextauth-test/messages:send"
    bad = [
        {"message": {"token": "abcdefgh1", "topic": "news"}},
        {"message": {"token": "abcdefgh1", "data": {"n": 1}}},
        {"message": {"token": "abcdefgh1", "android": {"ttl": "60"}}},
        {"message": {"token": "abcdefgh1", "android": {"priority": "urgent"}}},
        {"message": {"token": "abcdefgh1", "data": {"from": "x"}}},
        {"message": {"token": "abcdefgh1", "colour": "red"}},
    ]
    with httpx.Client(verify=client_tls_context(str(ca.ca_file))) as client:
        for body in bad:
            answer = client.post(url, json=body, headers=bearer)
            assert answer.status_code == 400, body
            assert answer.json()["error"]["status"] == "INVALID_ARGUMENT"
        assert client.post(url, json={"message": {"token": "abcdefgh1"}}).status_code == 401
        other = f"{server.url}/v1/projects/someone-else/messages:send"
        assert client.post(other, json={"message": {"token": "abcdefgh1"}}, headers=bearer).status_code == 403
    assert len(server.messages) == 1


def test_messages_are_checked_before_sending(server: FcmServer, provider: FcmProvider) -> None:
    result = provider.send(wake_up(data={"google.x": "1"}))
    assert not result.delivered and not result.token_invalid
    assert provider.send(wake_up("")).token_invalid
    assert server.token_requests == []


def test_service_account_files_are_checked(running: tuple[FcmServer, dict[str, str]], tmp_path: Path) -> None:
    document = dict(running[1])
    path = tmp_path / "sa.json"
    path.write_text('{"type": "service_account"}')
    with pytest.raises(ValueError, match="lacks"):
        ServiceAccount.from_file(path)
    with pytest.raises(ValueError, match="PEM"):
        ServiceAccount.from_json({**document, "private_key": "-----BEGIN PRIVATE KEY-----\nxx\n"})
    account = ServiceAccount.from_json(document)
    assert "PRIVATE" not in repr(account)
    with pytest.raises(ValueError, match="https"):
        FcmProvider(account, base_url="http://fcm.example")


def test_device_tokens_and_credentials_stay_out_of_logs(
    server: FcmServer, provider: FcmProvider, caplog: pytest.LogCaptureFixture
) -> None:
    server.unregister(DEVICE)
    with caplog.at_level(logging.DEBUG):
        provider.send(wake_up())
    assert DEVICE[:8] in caplog.text
    assert DEVICE not in caplog.text and "ya29." not in caplog.text and "assertion" not in caplog.text


def test_the_logging_provider_only_logs(caplog: pytest.LogCaptureFixture) -> None:
    """The embedded default: no credentials, no network; the app pulls."""
    with caplog.at_level(logging.INFO, logger="nextauth.push"):
        result = LoggingProvider("fcm (log only)").send(wake_up())
    assert result.delivered and result.provider == "log" and not result.token_invalid
    assert "would push to cAbC123_" in caplog.text and DEVICE not in caplog.text


def test_the_token_endpoint_refuses_a_stale_assertion(
    server: FcmServer, account: ServiceAccount, ca: TestCA
) -> None:
    provider = FcmProvider(
        account, base_url=server.url, ca_file=str(ca.ca_file), clock=lambda: time.time() - 7200
    )
    try:
        result = provider.send(wake_up())
    finally:
        provider.close()
    assert not result.delivered and "short-lived" in (result.error or "")
    assert server.token_requests == [] and server.messages == []


def test_the_mc_settings_turn_fcm_on(
    server: FcmServer, running: tuple[FcmServer, dict[str, str]], ca: TestCA
) -> None:
    """What docs/configuration.md promises: the service account setting (with a base URL and CA for this
    local server) replaces the logging provider with FCM, and a push reaches the server."""
    assert isinstance(providers_from_environment({})["fcm"], LoggingProvider)
    environ = {
        "NEXTAUTH_MC_FCM_SERVICE_ACCOUNT": json.dumps(running[1]),
        "NEXTAUTH_MC_FCM_BASE_URL": server.url,
        "NEXTAUTH_MC_PUSH_CA_FILE": str(ca.ca_file),
    }
    provider = providers_from_environment(environ)["fcm"]
    try:
        assert isinstance(provider, FcmProvider)
        assert provider.send(wake_up()).delivered
        assert [m.body["message"]["token"] for m in server.messages] == [DEVICE]
    finally:
        provider.close()
    with pytest.raises(ConfigError, match="NEXTAUTH_MC_FCM_SERVICE_ACCOUNT"):
        providers_from_environment({"NEXTAUTH_MC_FCM_SERVICE_ACCOUNT": "{}"})
