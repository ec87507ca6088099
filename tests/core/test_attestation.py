"""The SFS attestation is accepted only for the right server, challenge, purpose, key and time."""

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from nextauth_core import attestation

SFS_KEY = ed25519.Ed25519PrivateKey.generate()  # the SFS's attestation key
SFS_IDENTITY_KEY = ed25519.Ed25519PrivateKey.generate()  # its sigmai key: never trusted for attestations
TRUSTED = {"sfs-1": {attestation.key_id(SFS_KEY.public_key()): SFS_KEY.public_key()}}
NOW = 1_800_000_000.0


def _issue(**overrides: object) -> str:
    claims: dict = {
        "issuer": "sfs-1",
        "audience": "server-a",
        "nonce": attestation.nonce_for(b"challenge"),
        "purpose": "login",
        "method": "pin",
        "account_thumbprint": "account-1",
        "device": "device-1",
        "now": NOW,
    }
    key = overrides.pop("key", SFS_KEY)
    claims.update(overrides)
    return attestation.issue(key, **claims)  # type: ignore[arg-type]


def _verify(token: str, **overrides: object) -> attestation.Attestation:
    expected: dict = {
        "audience": "server-a",
        "nonce": attestation.nonce_for(b"challenge"),
        "purpose": "login",
        "account_thumbprint": "account-1",
        "now": NOW + 10,
    }
    expected.update(overrides)
    return attestation.verify(token, TRUSTED, **expected)  # type: ignore[arg-type]


def test_valid_attestation_is_accepted() -> None:
    checked = _verify(_issue())
    assert checked.method == "pin"
    assert checked.issuer == "sfs-1"
    assert checked.token_id


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"audience": "server-b"}, "another server"),
        ({"nonce": attestation.nonce_for(b"other challenge")}, "another challenge"),
        ({"purpose": "sign"}, "another purpose"),
        ({"account_thumbprint": "account-2"}, "another account"),
        ({"now": NOW + attestation.LIFETIME + attestation.CLOCK_SKEW + 1}, "expired"),
        ({"now": NOW - attestation.CLOCK_SKEW - 5}, "not yet valid"),
    ],
)
def test_attestation_rules(override: dict, message: str) -> None:
    with pytest.raises(attestation.AttestationError, match=message):
        _verify(_issue(), **override)


def test_untrusted_sfs_is_refused() -> None:
    rogue = ed25519.Ed25519PrivateKey.generate()
    with pytest.raises(attestation.AttestationError, match="does not trust"):
        _verify(_issue(issuer="sfs-2", key=rogue))


def test_trusted_name_with_another_key_is_refused() -> None:
    rogue = ed25519.Ed25519PrivateKey.generate()
    with pytest.raises(attestation.AttestationError, match="trusted attestation key"):
        _verify(_issue(key=rogue))
    # Claiming the trusted key's kid does not help: the signature does not verify with that key.
    with pytest.raises(attestation.AttestationError, match="signature"):
        _verify(_resign(_issue(), rogue, attestation.key_id(SFS_KEY.public_key())))


def test_tampered_claims_are_refused() -> None:
    header, payload, signature = _issue().split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["aud"] = "server-b"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(attestation.AttestationError):
        _verify(f"{header}.{forged}.{signature}", audience="server-b")


@pytest.mark.parametrize("junk", ["", "a.b.c", "not a token", "x" * 5000])
def test_garbage_is_refused(junk: str) -> None:
    with pytest.raises(attestation.AttestationError):
        _verify(junk)


def test_nonce_is_not_the_challenge() -> None:
    assert attestation.nonce_for(b"challenge") != "challenge"
    assert attestation.nonce_for(b"a") != attestation.nonce_for(b"b")


def test_attestation_signed_with_the_sfs_identity_key_is_refused() -> None:
    """ns trusts the SFS by its attestation key only; its sigmai identity key (even listed beside, as the
    SFS's name) cannot sign one, whatever kid the token claims."""
    for kid in (None, attestation.key_id(SFS_KEY.public_key())):
        token = _issue(key=SFS_IDENTITY_KEY)
        if kid is not None:  # re-sign with the identity key but claim the attestation key's kid
            token = _resign(token, SFS_IDENTITY_KEY, kid)
        with pytest.raises(attestation.AttestationError):
            _verify(token)


def test_attestation_names_its_key() -> None:
    header = json.loads(base64.urlsafe_b64decode(_issue().split(".")[0] + "=="))
    assert header["kid"] == attestation.key_id(SFS_KEY.public_key())


def test_attestation_from_another_app_instance_is_refused() -> None:
    assert _verify(_issue(), device="device-1").device == "device-1"
    with pytest.raises(attestation.DeviceMismatch):
        _verify(_issue(device="device-2"), device="device-1")


def test_attestation_without_an_app_instance_is_refused() -> None:
    with pytest.raises(attestation.AttestationError, match="no app instance"):
        _verify(_issue(device=""))


def _resign(token: str, key: ed25519.Ed25519PrivateKey, kid: str) -> str:
    _header, payload, _signature = token.split(".")
    header = {"alg": "Ed25519", "typ": "nextauth-attestation+jwt", "kid": kid}
    encoded = base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=").decode()
    signature = key.sign(f"{encoded}.{payload}".encode())
    return f"{encoded}.{payload}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


def test_keys_made_once_per_key_object_follow_a_rotation() -> None:
    """The JWK form of a key is made once per key object: a new key (a rotation, or a new object where
    an old one's id was) signs and is checked as itself, never as the key it replaced."""
    for _ in range(3):
        new_key = ed25519.Ed25519PrivateKey.generate()
        kid = attestation.key_id(new_key.public_key())
        token = _issue(key=new_key)
        assert json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))["kid"] == kid
        trusted_new = {"sfs-1": {kid: new_key.public_key()}}
        expected = {"audience": "server-a", "nonce": attestation.nonce_for(b"challenge"), "purpose": "login"}
        checked = attestation.verify(token, trusted_new, account_thumbprint="account-1", now=NOW, **expected)
        assert checked.issuer == "sfs-1"
        with pytest.raises(attestation.AttestationError):  # the old key does not check the new one's token
            _verify(token)
        # Another key object under the same kid (a listing that lost its key): refused, not served from
        # what was made for the first object.
        impostor = {"sfs-1": {kid: ed25519.Ed25519PrivateKey.generate().public_key()}}
        with pytest.raises(attestation.AttestationError):
            attestation.verify(token, impostor, account_thumbprint="account-1", now=NOW, **expected)
        del new_key, trusted_new  # their ids may be reused by the next round's objects
    assert _verify(_issue()).issuer == "sfs-1"
