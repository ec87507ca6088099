"""Web Push delivery to a local push service (tests/pushservers/webpush_server.py) that checks the VAPID
token and decrypts what it gets, as a browser vendor's push service and the browser would."""

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from authserver.push import PushMessage
from authserver.push.webpush import EndpointPolicy, Vapid, WebPushProvider, topic_for
from tests.pushservers import TestCA
from tests.pushservers.webpush_server import WebPushServer, WebPushSubscription

SUBJECT = "mailto:push@example.org"


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return TestCA(tmp_path_factory.mktemp("webpush-ca"))


@pytest.fixture(scope="module")
def service(ca: TestCA) -> Iterator[WebPushServer]:
    server = WebPushServer(ca.issue())
    yield server
    server.stop()


@pytest.fixture(scope="module")
def vapid() -> Vapid:
    return Vapid(ec.generate_private_key(ec.SECP256R1()), SUBJECT)


@pytest.fixture
def provider(vapid: Vapid, ca: TestCA) -> Iterator[WebPushProvider]:
    made = WebPushProvider(vapid, policy=EndpointPolicy(allow_private=True), ca_file=str(ca.ca_file))
    yield made
    made.close()


def _wake_up(subscription: WebPushSubscription, **options: Any) -> PushMessage:
    return PushMessage(
        device_token=json.dumps(subscription.to_json()),
        collapse_id=options.get("collapse_id", "login:abc"),
        data={"mailbox": "mb1", "message": "m1"},
        ttl_seconds=options.get("ttl", 120),
    )


def test_a_push_arrives_encrypted_signed_and_decryptable(
    service: WebPushServer, provider: WebPushProvider, vapid: Vapid, caplog: pytest.LogCaptureFixture
) -> None:
    subscription = service.subscribe(vapid.public_key)
    before = len(service.received)
    with caplog.at_level(logging.INFO):
        result = provider.send(_wake_up(subscription))
    # httpx logs the request at INFO; the endpoint's path, the right to push, is cut off there.
    assert "HTTP Request: POST https://127.0.0.1:" in caplog.text and "/…" in caplog.text
    assert subscription.id not in caplog.text
    assert result.delivered and result.provider == "webpush", result
    assert result.provider_message_id and result.provider_message_id.startswith("/message/")
    push = service.received[before]
    assert json.loads(push.plaintext) == {"mailbox": "mb1", "message": "m1"}
    assert push.headers["ttl"] == "120" and push.headers["urgency"] == "high"
    assert push.headers["topic"] == topic_for("login:abc")
    assert push.claims["aud"] == service.origin and push.claims["sub"] == SUBJECT


def test_a_push_service_named_by_host_name_is_reached_at_the_checked_address(
    ca: TestCA, provider: WebPushProvider, vapid: Vapid
) -> None:
    """The connection goes to the address the guard checked, while TLS still verifies the certificate for
    the endpoint's host name (sent as SNI) and the Host header keeps the name. The certificate here names
    only localhost, not 127.0.0.1, so verifying against the address would fail."""
    named = WebPushServer(ca.issue(with_ip=False))
    try:
        subscription = named.subscribe(vapid.public_key, host="localhost")
        result = provider.send(_wake_up(subscription))
        assert result.delivered, (result, named.refused)
        (push,) = named.received
        assert push.headers["host"] == f"localhost:{named.port}"
        assert push.claims["aud"] == f"https://localhost:{named.port}"
        by_address = named.subscribe(vapid.public_key)
        assert provider.send(_wake_up(by_address)).error == "network: ConnectError"
        assert len(named.received) == 1
    finally:
        named.stop()


def test_a_host_name_of_a_loopback_address_is_refused_by_default() -> None:
    with pytest.raises(ValueError, match="not a public address"):
        EndpointPolicy().addresses("localhost", 443)


def test_a_gone_subscription_is_reported_invalid(
    service: WebPushServer, provider: WebPushProvider, vapid: Vapid
) -> None:
    subscription = service.subscribe(vapid.public_key)
    service.drop(subscription)
    result = provider.send(_wake_up(subscription))
    assert not result.delivered and result.token_invalid and result.error == "410 from the push service"
    unknown = WebPushSubscription(
        "x" * 20, f"{service.origin}/push/{'x' * 20}", subscription.private_key, subscription.auth, ""
    )
    result = provider.send(_wake_up(unknown))
    assert not result.delivered and result.token_invalid and result.error == "404 from the push service"


def test_a_subscription_bound_to_another_vapid_key_is_refused_but_kept(
    service: WebPushServer, provider: WebPushProvider
) -> None:
    other = Vapid(ec.generate_private_key(ec.SECP256R1()), SUBJECT)
    subscription = service.subscribe(other.public_key)
    result = provider.send(_wake_up(subscription))
    assert not result.delivered and not result.token_invalid and result.error == "403 from the push service"
    assert service.refused[-1] == (403, "the subscription is bound to another application server key")


def test_by_default_the_loopback_push_service_is_never_contacted(
    service: WebPushServer, vapid: Vapid, ca: TestCA, caplog: pytest.LogCaptureFixture
) -> None:
    guarded = WebPushProvider(vapid, ca_file=str(ca.ca_file))
    subscription = service.subscribe(vapid.public_key)
    before = (len(service.received), len(service.refused))
    try:
        result = guarded.send(_wake_up(subscription))
    finally:
        guarded.close()
    assert not result.delivered and not result.token_invalid
    assert result.error == "refused: the endpoint's host is not a public address"
    assert (len(service.received), len(service.refused)) == before
    # Logs name the push service's host, never the endpoint's path (the right to push) or the keys.
    assert subscription.id not in caplog.text and subscription.to_json()["keys"]["auth"] not in caplog.text


def test_a_push_service_with_an_untrusted_certificate_gets_nothing(
    service: WebPushServer, vapid: Vapid
) -> None:
    untrusting = WebPushProvider(vapid, policy=EndpointPolicy(allow_private=True))
    subscription = service.subscribe(vapid.public_key)
    before = len(service.received)
    try:
        result = untrusting.send(_wake_up(subscription))
    finally:
        untrusting.close()
    assert not result.delivered and result.error == "network: ConnectError"
    assert len(service.received) == before


def test_a_malformed_stored_subscription_is_dropped_without_a_request(provider: WebPushProvider) -> None:
    result = provider.send(
        PushMessage(device_token="not json", collapse_id=None, data={"mailbox": "m", "message": "x"})
    )
    assert not result.delivered and result.token_invalid
