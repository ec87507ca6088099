"""The SFS's PIN change on its database, without the network: what the app cannot easily provoke end to
end (the same PIN again, a lock that comes between start and finish, a weak new verifier) and the
setting that bounds the window. The end-to-end flows are in tests/test_pin_change.py."""

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from authserver.config import ConfigError
from authserver.operations import ChannelContext, OperationError
from authserver.services.sfs import _pin_change_seconds
from authserver.sfs.flows import SecondFactorService
from authserver.storage import db
from authserver.storage.flow_models import AppInstance
from nextauth_core import pin as pin_proofs
from nextauth_core.encoding import b64url, unb64url
from nextauth_core.statements import PIN_CHANGE_EXPORTER, pin_change_statement
from sigmai import DeviceIdentity

PIN, NEW_PIN = "1234", "4711"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    made = db.create_engine_for(f"sqlite:///{tmp_path / 'nextauth.db'}")
    db.upgrade(made)
    yield made
    made.dispose()


@pytest.fixture
def service(engine: Engine) -> SecondFactorService:
    return SecondFactorService(engine, ed25519.Ed25519PrivateKey.generate(), "sfs", max_attempts=5)


def _channel(device: DeviceIdentity) -> ChannelContext:
    """A channel's context with its own exporter value, as each real channel has."""
    binding = os.urandom(32)
    return ChannelContext(
        component="sfs",
        peer=device.peer_key,
        server_key_hash=bytes(32),
        transcript_hash=bytes(32),
        export=lambda label, context, length: (label + binding)[-length:],
    )


def _register(service: SecondFactorService, device: DeviceIdentity, device_secret: bytes) -> None:
    context = _channel(device)
    request = pin_proofs.start(PIN)
    evaluated = service.register_start(context, {"blinded_element": b64url(request.blinded_element)})
    verifier = pin_proofs.verifier(PIN, request, unb64url(evaluated["evaluated_element"]), device_secret)
    service.register_finish(context, {"pin_verifier": b64url(verifier)})


def _start(
    service: SecondFactorService, context: ChannelContext, old: str, new: str, device_secret: bytes
) -> dict[str, str]:
    old_request, new_request = pin_proofs.start(old), pin_proofs.start(new)
    started = service.pin_change_start(
        context,
        {
            "blinded_element": b64url(old_request.blinded_element),
            "new_blinded_element": b64url(new_request.blinded_element),
        },
    )
    verifier = pin_proofs.verifier(
        new, new_request, unb64url(started["new_evaluated_element"]), device_secret
    )
    statement = pin_change_statement(
        sfs_challenge=unb64url(started["challenge"]),
        channel_binding=context.export(PIN_CHANGE_EXPORTER, b"", 32),
        new_pin_verifier=verifier,
    )
    proof = pin_proofs.prove(
        old, old_request, unb64url(started["evaluated_element"]), device_secret, statement
    )
    return {"proof": b64url(proof), "pin_verifier": b64url(verifier)}


def _instance(engine: Engine, device: DeviceIdentity) -> AppInstance:
    with Session(engine) as session:
        return session.scalars(
            select(AppInstance).where(AppInstance.device_thumbprint == device.peer_key.thumbprint())
        ).one()


def _code(call: Any, *args: Any) -> str:
    with pytest.raises(OperationError) as refused:
        call(*args)
    return refused.value.code


def test_change_replaces_the_verifier_and_resets_the_count(
    engine: Engine, service: SecondFactorService
) -> None:
    device, secret = DeviceIdentity.generate(), pin_proofs.new_device_secret()
    _register(service, device, secret)
    before = _instance(engine, device).pin_verifier
    context = _channel(device)
    finish = _start(service, context, PIN, NEW_PIN, secret)
    assert _instance(engine, device).failures == 1  # counted before the answer, until proven
    assert service.pin_change_finish(context, finish) == {"changed": True, "max_attempts": 5}
    after = _instance(engine, device)
    assert after.pin_verifier == unb64url(finish["pin_verifier"]) != before
    assert after.failures == 0 and after.locked is False


def test_the_same_pin_again_is_refused_and_changes_nothing(
    engine: Engine, service: SecondFactorService
) -> None:
    device, secret = DeviceIdentity.generate(), pin_proofs.new_device_secret()
    _register(service, device, secret)
    before = _instance(engine, device).pin_verifier
    context = _channel(device)
    assert _code(service.pin_change_finish, context, _start(service, context, PIN, PIN, secret)) == "same_pin"
    after = _instance(engine, device)
    assert after.pin_verifier == before and after.failures == 0  # the old PIN was proven all the same


def test_a_lock_between_start_and_finish_wins(engine: Engine, service: SecondFactorService) -> None:
    device, secret = DeviceIdentity.generate(), pin_proofs.new_device_secret()
    _register(service, device, secret)
    before = _instance(engine, device).pin_verifier
    context = _channel(device)
    finish = _start(service, context, PIN, NEW_PIN, secret)
    with Session(engine) as session:  # wrong guesses on other channels locked the app meanwhile
        session.execute(update(AppInstance).values(locked=True))
        session.commit()
    assert _code(service.pin_change_finish, context, finish) == "locked"
    assert _instance(engine, device).pin_verifier == before


def test_a_weak_new_verifier_is_refused_and_uses_up_the_start(
    engine: Engine, service: SecondFactorService
) -> None:
    device, secret = DeviceIdentity.generate(), pin_proofs.new_device_secret()
    _register(service, device, secret)
    context = _channel(device)
    finish = _start(service, context, PIN, NEW_PIN, secret)
    small_order = b64url(b"\x01" + bytes(31))  # the identity point: trivial signatures would verify
    assert _code(service.pin_change_finish, context, {**finish, "pin_verifier": small_order}) == "bad_request"
    assert _code(service.pin_change_finish, context, finish) == "no_pin_change"


def test_a_proof_from_another_channel_is_a_wrong_pin(engine: Engine, service: SecondFactorService) -> None:
    device, secret = DeviceIdentity.generate(), pin_proofs.new_device_secret()
    _register(service, device, secret)
    first, second = _channel(device), _channel(device)
    from_first = _start(service, first, PIN, NEW_PIN, secret)
    _start(service, second, PIN, NEW_PIN, secret)
    assert _code(service.pin_change_finish, second, from_first) == "wrong_pin"
    assert _instance(engine, device).failures == 2


def test_a_pin_check_challenge_does_not_serve_a_change(engine: Engine, service: SecondFactorService) -> None:
    device, secret = DeviceIdentity.generate(), pin_proofs.new_device_secret()
    _register(service, device, secret)
    context = _channel(device)
    service.pin_evaluate(context, {"blinded_element": b64url(pin_proofs.start(PIN).blinded_element)})
    fake = {"proof": b64url(bytes(64)), "pin_verifier": b64url(bytes(32))}
    assert _code(service.pin_change_finish, context, fake) == "no_pin_change"


def test_unregistered_and_locked_apps_cannot_start(engine: Engine, service: SecondFactorService) -> None:
    stranger, secret = DeviceIdentity.generate(), pin_proofs.new_device_secret()
    assert _code(_start, service, _channel(stranger), PIN, NEW_PIN, secret) == "not_registered"
    device = DeviceIdentity.generate()
    _register(service, device, secret)
    with Session(engine) as session:
        session.execute(update(AppInstance).values(locked=True))
        session.commit()
    assert _code(_start, service, _channel(device), PIN, NEW_PIN, secret) == "locked"
    assert _instance(engine, device).failures == 0  # a locked app's tries are not counted further


@pytest.mark.parametrize("value", ["0", "601", "ten", "-5"])
def test_the_window_setting_is_checked(value: str) -> None:
    with pytest.raises(ConfigError, match="NEXTAUTH_SFS_PIN_CHANGE_SECONDS"):
        _pin_change_seconds({"NEXTAUTH_SFS_PIN_CHANGE_SECONDS": value})


def test_the_window_setting_defaults_to_a_minute() -> None:
    assert _pin_change_seconds({}) == 60
    assert _pin_change_seconds({"NEXTAUTH_SFS_PIN_CHANGE_SECONDS": "5"}) == 5
