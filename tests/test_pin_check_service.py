"""The SFS's PIN check on its database, without the network: one counting statement at ``pin.evaluate``,
one clearing statement at ``attest``, and what may change between the two (a lock, a new PIN) winning
over a proof made before it. The end-to-end flows are in tests/test_flows.py."""

import os

from sqlalchemy import Engine, update
from sqlalchemy.orm import Session

from authserver.operations import ChannelContext
from authserver.sfs.flows import SecondFactorService
from authserver.storage.flow_models import AppInstance
from nextauth_core import pin as pin_proofs
from nextauth_core.encoding import b64url, unb64url
from nextauth_core.statements import SFS_PROOF_EXPORTER, sfs_proof_statement
from sigmai import DeviceIdentity
from tests.test_pin_change_service import PIN, _channel, _code, _instance, _register, engine, service

__all__ = ["engine", "service"]  # the fixtures, shared with the PIN change tests

NS_CHALLENGE = os.urandom(32)


def _check(service: SecondFactorService, context: ChannelContext, pin: str, secret: bytes) -> dict[str, str]:
    """``pin.evaluate`` (counted) and the parameters of the ``attest`` that proves ``pin``."""
    request = pin_proofs.start(pin)
    evaluated = service.pin_evaluate(context, {"blinded_element": b64url(request.blinded_element)})
    statement = sfs_proof_statement(
        sfs_challenge=unb64url(evaluated["challenge"]),
        channel_binding=context.export(SFS_PROOF_EXPORTER, b"", 32),
        audience="default",
        ns_challenge=NS_CHALLENGE,
        purpose="login",
        account_thumbprint="account",
    )
    proof = pin_proofs.prove(pin, request, unb64url(evaluated["evaluated_element"]), secret, statement)
    return {
        "method": "pin",
        "purpose": "login",
        "audience": "default",
        "account_thumbprint": "account",
        "ns_challenge": b64url(NS_CHALLENGE),
        "proof": b64url(proof),
    }


def _set(engine: Engine, **values: object) -> None:
    with Session(engine) as session:
        session.execute(update(AppInstance).values(**values))
        session.commit()


def test_a_proven_pin_is_attested_and_clears_the_count(engine: Engine, service: SecondFactorService) -> None:
    device, secret = DeviceIdentity.generate(), pin_proofs.new_device_secret()
    _register(service, device, secret)
    context = _channel(device)
    attest = _check(service, context, PIN, secret)
    assert _instance(engine, device).failures == 1  # counted before the evaluation was answered
    assert service.attest(context, attest)["attestation"]
    assert _instance(engine, device).failures == 0
    assert _code(service.attest, context, attest) == "no_challenge"  # one attestation per evaluation


def test_a_wrong_pin_keeps_its_count(engine: Engine, service: SecondFactorService) -> None:
    device, secret = DeviceIdentity.generate(), pin_proofs.new_device_secret()
    _register(service, device, secret)
    context = _channel(device)
    assert _code(service.attest, context, _check(service, context, "9999", secret)) == "wrong_pin"
    assert _code(service.attest, context, _check(service, context, "9998", secret)) == "wrong_pin"
    assert _instance(engine, device).failures == 2


def test_a_lock_between_evaluation_and_proof_wins(engine: Engine, service: SecondFactorService) -> None:
    device, secret = DeviceIdentity.generate(), pin_proofs.new_device_secret()
    _register(service, device, secret)
    context = _channel(device)
    attest = _check(service, context, PIN, secret)
    _set(engine, locked=True)  # wrong guesses on other channels locked the app meanwhile
    assert _code(service.attest, context, attest) == "locked"
    instance = _instance(engine, device)
    assert instance.locked and instance.failures == 1  # not cleared


def test_a_pin_changed_between_evaluation_and_proof_wins(
    engine: Engine, service: SecondFactorService
) -> None:
    device, secret = DeviceIdentity.generate(), pin_proofs.new_device_secret()
    _register(service, device, secret)
    context = _channel(device)
    attest = _check(service, context, PIN, secret)
    other = DeviceIdentity.generate()  # any other valid verifier: the PIN was changed on another channel
    _register(service, other, secret)
    _set(engine, pin_verifier=_instance(engine, other).pin_verifier)
    assert _code(service.attest, context, attest) == "no_challenge"
    assert _instance(engine, device).failures == 1  # not cleared by a proof of the old PIN
