"""Web Push provider: RFC 8291 encryption checked against the RFC's own example, VAPID (RFC 8292) checked by
verifying the JWT, the SSRF guard, and delivery to a local push service that decrypts what it gets."""

import json
import os
import socket
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from authserver.config import ConfigError
from authserver.mc.providers import providers_from_environment
from authserver.push.webpush import (
    MAX_PLAINTEXT_BYTES,
    EndpointPolicy,
    Subscription,
    Vapid,
    WebPushProvider,
    encrypt,
    topic_for,
)
from nextauth_core.encoding import b64url, unb64url
from tests.pushservers.webpush_server import decrypt

# RFC 8291 Appendix A.
PLAINTEXT = b"When I grow up, I want to be a watermelon"
AS_PRIVATE = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw"
AS_PUBLIC = "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8"
UA_PRIVATE = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94"
UA_PUBLIC = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
SALT = "DGv6ra1nlYgDCS1FRnbzlw"
AUTH = "BTBZMqHH6r4Tts7J_aSIgg"
BODY = (
    "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3j"
    "l7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN"
)
SUBJECT = "mailto:push@example.org"


def _private(scalar: str) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(int.from_bytes(unb64url(scalar), "big"), ec.SECP256R1())


def _pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


# -- RFC 8291 -----------------------------------------------------------------------------------------


def test_encryption_reproduces_rfc8291_appendix_a() -> None:
    sender = _private(AS_PRIVATE)
    assert (
        b64url(
            sender.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
        )
        == AS_PUBLIC
    )
    body = encrypt(PLAINTEXT, unb64url(UA_PUBLIC), unb64url(AUTH), salt=unb64url(SALT), sender_key=sender)
    assert b64url(body) == BODY


def test_the_test_push_service_decrypts_the_rfc_example() -> None:
    """The local push service's decryption is checked on its own against the RFC, so the end-to-end
    test does not only show that the MC agrees with itself."""
    assert decrypt(unb64url(BODY), _private(UA_PRIVATE), unb64url(AUTH)) == PLAINTEXT


def test_fresh_salt_and_key_each_time_and_any_change_is_refused() -> None:
    receiver = ec.generate_private_key(ec.SECP256R1())
    p256dh = receiver.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    auth = os.urandom(16)
    first, second = encrypt(b"hello", p256dh, auth), encrypt(b"hello", p256dh, auth)
    assert first[:16] != second[:16] and first[21:86] != second[21:86]
    assert decrypt(first, receiver, auth) == b"hello"
    for position in (0, 20, 30, len(first) - 1):  # salt, record size, sender key, tag
        altered = bytearray(first)
        altered[position] ^= 1
        with pytest.raises(ValueError):
            decrypt(bytes(altered), receiver, auth)
    with pytest.raises(ValueError):
        decrypt(first, receiver, os.urandom(16))  # the wrong auth secret
    with pytest.raises(ValueError):
        decrypt(first, ec.generate_private_key(ec.SECP256R1()), auth)  # another subscription's key
    with pytest.raises(ValueError, match="over"):
        encrypt(b"x" * (MAX_PLAINTEXT_BYTES + 1), p256dh, auth)
    assert len(encrypt(b"x" * MAX_PLAINTEXT_BYTES, p256dh, auth)) == 4096


# -- RFC 8292 -----------------------------------------------------------------------------------------


def _verify_jwt(token: str, public_b64: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header, claims, signature = token.split(".")
    raw = unb64url(signature)
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(public_b64))
    public.verify(
        encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")),
        f"{header}.{claims}".encode(),
        ec.ECDSA(hashes.SHA256()),
    )
    return json.loads(unb64url(header)), json.loads(unb64url(claims))


def test_vapid_jwt_verifies_with_the_public_key_and_only_with_it() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    vapid = Vapid(key, SUBJECT, clock=lambda: 1_800_000_000.0)
    assert unb64url(vapid.public_key) == key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    header_value = vapid.authorization("https://push.example.net")
    assert header_value.startswith("vapid t=") and header_value.endswith(f", k={vapid.public_key}")
    token = header_value[len("vapid t=") :].split(",")[0]
    header, claims = _verify_jwt(token, vapid.public_key)
    assert header == {"typ": "JWT", "alg": "ES256"}
    assert claims == {"aud": "https://push.example.net", "exp": 1_800_000_000 + 12 * 3600, "sub": SUBJECT}
    other = Vapid(ec.generate_private_key(ec.SECP256R1()), SUBJECT)
    with pytest.raises(InvalidSignature):
        _verify_jwt(token, other.public_key)
    head, _body, signature = token.split(".")
    forged = b64url(json.dumps({**claims, "aud": "https://elsewhere.example"}).encode())
    with pytest.raises(InvalidSignature):
        _verify_jwt(f"{head}.{forged}.{signature}", vapid.public_key)
    with pytest.raises(ValueError, match="mailto"):
        Vapid(key, "push@example.org")


def test_topic_is_a_short_digest_of_the_collapse_id() -> None:
    topic = topic_for("login:some session with spaces")
    assert len(topic) == 32 and topic.replace("-", "").replace("_", "").isalnum()
    assert topic == topic_for("login:some session with spaces") != topic_for("login:another")


# -- subscriptions and the SSRF guard ----------------------------------------------------------------


def _subscription(endpoint: str) -> dict[str, Any]:
    public = ec.generate_private_key(ec.SECP256R1()).public_key()
    p256dh = public.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return {"endpoint": endpoint, "keys": {"p256dh": b64url(p256dh), "auth": b64url(os.urandom(16))}}


def test_a_subscription_parses_from_json_and_round_trips() -> None:
    document = _subscription("https://push.example.net/wpush/v2/abc")
    parsed = Subscription.parse(json.dumps(document))
    assert parsed == Subscription.parse(document) == Subscription.parse(parsed.to_token())
    assert "abc" not in parsed.short() and parsed.short().startswith("push.example.net/")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"endpoint": "http://push.example.net/x"}, "https"),
        ({"endpoint": "ftp://push.example.net/x"}, "https"),
        ({"endpoint": "https://user:pw@push.example.net/x"}, "user name"),
        ({"endpoint": "https:///x"}, "host"),
        ({"endpoint": "https://push.example.net/" + "a" * 1024}, "at most"),
        ({"endpoint": "https://push.example.net/a b"}, "ASCII"),
        ({"endpoint": "https://push.example.net:99999/x"}, "valid URL"),
        ({"keys": {"p256dh": b64url(b"\x04" + bytes(64)), "auth": b64url(bytes(16))}}, "not a point"),
        ({"keys": {"p256dh": b64url(bytes(33)), "auth": b64url(bytes(16))}}, "uncompressed"),
        ({"keys": {"auth": b64url(bytes(16))}}, "p256dh and auth"),
        ({"keys": None}, "keys"),
    ],
    ids=[
        "http",
        "ftp",
        "userinfo",
        "no-host",
        "too-long",
        "space",
        "bad-port",
        "off-curve",
        "short-key",
        "no-p256dh",
        "no-keys",
    ],
)
def test_unusable_subscriptions_are_refused(change: dict[str, Any], message: str) -> None:
    document = {**_subscription("https://push.example.net/x"), **change}
    with pytest.raises(ValueError, match=message):
        Subscription.parse(json.dumps(document))


def test_a_short_auth_secret_and_non_json_are_refused() -> None:
    document = _subscription("https://push.example.net/x")
    document["keys"]["auth"] = b64url(bytes(8))
    with pytest.raises(ValueError, match="16 bytes"):
        Subscription.parse(document)
    with pytest.raises(ValueError, match="JSON"):
        Subscription.parse("https://push.example.net/x")


def _resolver(*addresses: str) -> Any:
    def resolve(host: str, port: int, **_: Any) -> list[Any]:
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in addresses
        ]

    return resolve


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "::1",
        "fc00::1",
        "fe80::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "224.0.0.1",
        "240.0.0.1",
    ],
)
def test_private_loopback_and_metadata_addresses_are_refused_by_default(address: str) -> None:
    policy = EndpointPolicy(resolve=_resolver(address))
    with pytest.raises(ValueError, match="not a public address"):
        policy.addresses("push.example.net", 443)
    literal = f"[{address}]" if ":" in address else address
    with pytest.raises(ValueError, match="not a public address"):
        EndpointPolicy().addresses(literal.strip("[]"), 443)


def test_one_private_answer_among_public_ones_is_refused() -> None:
    # DNS may answer several addresses; the connection could land on any, so all must be public.
    policy = EndpointPolicy(resolve=_resolver("93.184.216.34", "10.0.0.5"))
    with pytest.raises(ValueError, match="not a public address"):
        policy.addresses("push.example.net", 443)
    assert [str(a) for a in EndpointPolicy(resolve=_resolver("93.184.216.34")).addresses("h", 443)] == [
        "93.184.216.34"
    ]


def test_allowing_private_endpoints_lets_loopback_through_but_never_unspecified_or_multicast() -> None:
    policy = EndpointPolicy(allow_private=True)
    assert [str(a) for a in policy.addresses("127.0.0.1", 443)] == ["127.0.0.1"]
    for address in ("0.0.0.0", "224.0.0.1", "::"):
        with pytest.raises(ValueError):
            policy.addresses(address, 443)


def test_an_unresolvable_host_is_refused() -> None:
    def fail(*_: Any, **__: Any) -> list[Any]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(ValueError, match="does not resolve"):
        EndpointPolicy(resolve=fail).addresses("nowhere.invalid", 443)


# -- settings -----------------------------------------------------------------------------------------


def test_the_vapid_key_is_made_once_and_kept_in_the_data_folder(tmp_path: Path) -> None:
    first = providers_from_environment({}, tmp_path)["webpush"]
    second = providers_from_environment({}, tmp_path)["webpush"]
    try:
        assert isinstance(first, WebPushProvider) and isinstance(second, WebPushProvider)
        assert first.vapid.public_key == second.vapid.public_key
        key_file = tmp_path / "mc-webpush-vapid-key.pem"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    finally:
        first.close()
        second.close()
    assert "webpush" not in providers_from_environment({})  # nowhere to keep a key, none configured


def test_a_configured_vapid_key_and_subject_are_used(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    environ = {"NEXTAUTH_MC_WEBPUSH_VAPID_PRIVATE_KEY": _pem(key), "NEXTAUTH_MC_WEBPUSH_SUBJECT": SUBJECT}
    provider = providers_from_environment(environ, tmp_path)["webpush"]
    try:
        assert isinstance(provider, WebPushProvider)
        assert provider.vapid.public_key == Vapid(key, None).public_key
        token = provider.vapid.token("https://push.example.net")
        assert _verify_jwt(token, provider.vapid.public_key)[1]["sub"] == SUBJECT
    finally:
        provider.close()
    assert not (tmp_path / "mc-webpush-vapid-key.pem").exists()


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"NEXTAUTH_MC_WEBPUSH_VAPID_PRIVATE_KEY": "not a key"}, "WEBPUSH_VAPID_PRIVATE_KEY"),
        (
            {"NEXTAUTH_MC_WEBPUSH_VAPID_PRIVATE_KEY": _pem(ec.generate_private_key(ec.SECP384R1()))},
            "P-256",
        ),
        ({"NEXTAUTH_MC_WEBPUSH_SUBJECT": "push@example.org"}, "WEBPUSH_SUBJECT"),
        ({"NEXTAUTH_MC_WEBPUSH_ALLOW_PRIVATE_ENDPOINTS": "yes"}, "true or false"),
    ],
    ids=["not-pem", "p384", "subject", "allow-private"],
)
def test_wrong_settings_stop_the_start(environ: dict[str, str], message: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=message):
        providers_from_environment(environ, tmp_path)
