"""The SFS's operations on its sigmai channel: register an app instance's PIN verifier, check the PIN
without learning it, and attest to a successful check.

PIN failures are counted in the database *before* an OPRF evaluation is answered: a guess costs an
attempt even if the app never comes back with a proof, even if the SFS crashes in between, and the
single conditional UPDATE makes parallel guesses on several SFS instances count one by one. A correct
proof resets the count; reaching the maximum locks the instance for good.

An app instance is its device key: it registers once, and nothing lets the same device key register
again (a new PIN without the old one would undo the lock for whoever copied the app's files). A locked
app is set up anew with a new device key, and its accounts enrolled anew: ns binds every account to the
instance that vouched at enrolment, so the new instance cannot vouch for the old accounts.

Attestations are signed with the SFS's attestation key, never with its sigmai identity key.
"""

import logging
import os
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from authserver.audit import AuditTrail
from authserver.operations import ChannelContext, OperationError, Operations, binary_param
from authserver.storage.db import rowcount
from authserver.storage.flow_models import AppInstance
from authserver.storage.models import utcnow
from nextauth_core import attestation, oprf, pin
from nextauth_core.encoding import b64url
from nextauth_core.statements import SFS_PROOF_EXPORTER, sfs_proof_statement

CHALLENGE_BYTES = 32
LOCKED_MESSAGE = "Too many wrong PINs: this app is locked. Set the app up anew and enrol your accounts again."

security_log = logging.getLogger("nextauth.security")


class SecondFactorService:
    def __init__(
        self,
        engine: Engine,
        attestation_key: ed25519.Ed25519PrivateKey,
        key_hash: str,
        max_attempts: int,
        audit: AuditTrail | None = None,
    ):
        self._engine = engine
        self.audit = audit if audit is not None else AuditTrail(engine, "sfs")
        self._key = attestation_key  # not the sigmai identity key: see nextauth_core.attestation
        self._key_hash = key_hash  # the sigmai key hash: the SFS's name in attestations (iss)
        self.max_attempts = max_attempts

    # -- registration ----------------------------------------------------------------------------------

    def register_start(self, context: ChannelContext, params: dict[str, Any]) -> dict[str, Any]:
        blinded = binary_param(params.get("blinded_element"), "blinded_element", min_length=32, max_length=32)
        thumbprint = context.peer.thumbprint()
        with Session(self._engine, expire_on_commit=False) as session:
            instance = session.scalar(select(AppInstance).where(AppInstance.device_thumbprint == thumbprint))
            if instance is not None and instance.locked:
                raise OperationError("locked", LOCKED_MESSAGE)
            if instance is not None and instance.pin_verifier is not None:
                raise OperationError(
                    "already_registered",
                    "This app is already registered; its PIN cannot be set again without the old one.",
                )
            if instance is None:
                instance = AppInstance(device_thumbprint=thumbprint, oprf_key=oprf.generate_key())
                session.add(instance)
                try:
                    session.commit()
                except IntegrityError:  # a parallel registration of the same device won the insert
                    session.rollback()
                    instance = session.scalars(
                        select(AppInstance).where(AppInstance.device_thumbprint == thumbprint)
                    ).one()
            evaluated = self._evaluate(instance.oprf_key, blinded)
        return {"evaluated_element": b64url(evaluated)}

    def register_finish(self, context: ChannelContext, params: dict[str, Any]) -> dict[str, Any]:
        verifier = binary_param(params.get("pin_verifier"), "pin_verifier", min_length=32, max_length=32)
        biometric = params.get("biometric_key")
        biometric_key = (
            binary_param(biometric, "biometric_key", min_length=32, max_length=32)
            if biometric is not None
            else None
        )
        # Small-order keys would let trivial signatures pass as proofs: refuse them up front.
        if not pin.is_acceptable_verifier(verifier) or (
            biometric_key is not None and not pin.is_acceptable_verifier(biometric_key)
        ):
            raise OperationError("bad_request", "Keys must be valid Ed25519 public keys.")
        with Session(self._engine, expire_on_commit=False) as session:
            done = session.execute(
                update(AppInstance)
                .where(
                    AppInstance.device_thumbprint == context.peer.thumbprint(),
                    AppInstance.pin_verifier.is_(None),
                )
                .values(pin_verifier=verifier, biometric_key=biometric_key, failures=0, updated_at=utcnow())
            )
            session.commit()
        if rowcount(done) != 1:
            raise OperationError("not_registering", "Start the registration again.")
        return {"registered": True, "max_attempts": self.max_attempts}

    # -- PIN check and attestation ---------------------------------------------------------------------

    def pin_evaluate(self, context: ChannelContext, params: dict[str, Any]) -> dict[str, Any]:
        blinded = binary_param(params.get("blinded_element"), "blinded_element", min_length=32, max_length=32)
        thumbprint = context.peer.thumbprint()
        with Session(self._engine, expire_on_commit=False) as session:
            counted = session.execute(
                update(AppInstance)
                .where(
                    AppInstance.device_thumbprint == thumbprint,
                    AppInstance.pin_verifier.is_not(None),
                    AppInstance.locked.is_(False),
                    AppInstance.failures < self.max_attempts,
                )
                .values(failures=AppInstance.failures + 1, updated_at=utcnow())
            )
            session.commit()
            instance = session.scalar(select(AppInstance).where(AppInstance.device_thumbprint == thumbprint))
        if instance is None or instance.pin_verifier is None:
            raise OperationError("not_registered", "Register this app with its second factor server first.")
        if rowcount(counted) != 1:
            self._lock(thumbprint)
            raise OperationError("locked", LOCKED_MESSAGE)
        challenge = os.urandom(CHALLENGE_BYTES)
        context.state["challenge"], context.state["challenge_method"] = challenge, "pin"
        return {
            "evaluated_element": b64url(self._evaluate(instance.oprf_key, blinded)),
            "challenge": b64url(challenge),
            "attempts_left": self.max_attempts - instance.failures,
        }

    def attest(self, context: ChannelContext, params: dict[str, Any]) -> dict[str, Any]:
        method = params.get("method", "pin")
        purpose = params.get("purpose")
        audience = params.get("audience")
        account = params.get("account_thumbprint")
        ns_challenge = binary_param(params.get("ns_challenge"), "ns_challenge", max_length=64)
        proof = binary_param(params.get("proof"), "proof", min_length=64, max_length=64)
        if purpose not in attestation.PURPOSES or method not in attestation.METHODS:
            raise OperationError("bad_request", "Unknown purpose or method.")
        if not isinstance(audience, str) or not isinstance(account, str) or not 1 <= len(ns_challenge) <= 64:
            raise OperationError("bad_request", "audience, account_thumbprint and ns_challenge are required.")
        sfs_challenge = context.state.pop("challenge", None)  # single use, whatever the outcome
        if sfs_challenge is None:
            raise OperationError("no_challenge", "Check the second factor again.")
        thumbprint = context.peer.thumbprint()
        with Session(self._engine, expire_on_commit=False) as session:
            instance = session.scalar(select(AppInstance).where(AppInstance.device_thumbprint == thumbprint))
        if instance is None or instance.pin_verifier is None:
            raise OperationError("not_registered", "Register this app with its second factor server first.")
        if instance.locked:
            raise OperationError("locked", LOCKED_MESSAGE)
        statement = sfs_proof_statement(
            sfs_challenge=sfs_challenge,
            channel_binding=context.export(SFS_PROOF_EXPORTER, b"", 32),
            audience=audience,
            ns_challenge=ns_challenge,
            purpose=purpose,
            account_thumbprint=account,
        )
        if method == "pin":
            if context.state.pop("challenge_method", None) != "pin":
                raise OperationError("no_challenge", "Enter the PIN again.")
            if not pin.check_proof(instance.pin_verifier, statement, proof):
                left = max(self.max_attempts - instance.failures, 0)
                # The SFS knows devices, not users: ns's login.failed names the user.
                self.audit.record(
                    "pin.wrong", actor="phone", data={"device": thumbprint, "attempts_left": left}
                )
                if left == 0:
                    self._lock(thumbprint)
                    raise OperationError("locked", LOCKED_MESSAGE)
                raise OperationError(
                    "wrong_pin", f"Wrong PIN. {left} attempt{'s' if left != 1 else ''} left."
                )
            self._reset(thumbprint)
        elif instance.biometric_key is None or not pin.check_proof(instance.biometric_key, statement, proof):
            raise OperationError("biometric_failed", "The biometric check did not verify; use the PIN.")
        token = attestation.issue(
            self._key,
            issuer=self._key_hash,
            audience=audience,
            nonce=attestation.nonce_for(ns_challenge),
            purpose=purpose,
            method=method,
            account_thumbprint=account,
            device=thumbprint,
        )
        return {"attestation": token}

    def biometric_challenge(self, context: ChannelContext, _params: dict[str, Any]) -> dict[str, Any]:
        challenge = os.urandom(CHALLENGE_BYTES)
        context.state["challenge"], context.state["challenge_method"] = challenge, "biometric"
        return {"challenge": b64url(challenge)}

    # -- helpers ---------------------------------------------------------------------------------------

    @staticmethod
    def _evaluate(key: bytes, blinded: bytes) -> bytes:
        try:
            return oprf.blind_evaluate(key, blinded)
        except oprf.OPRFError as exc:
            raise OperationError("bad_request", "blinded_element is not a valid group element.") from exc

    def _lock(self, thumbprint: str) -> None:
        with Session(self._engine, expire_on_commit=False) as session:
            done = session.execute(
                update(AppInstance)
                .where(AppInstance.device_thumbprint == thumbprint, AppInstance.locked.is_(False))
                .values(locked=True, updated_at=utcnow())
            )
            session.commit()
        if rowcount(done) == 1:  # the transition, once: later attempts on a locked app are no news
            security_log.warning(
                "sfs: app instance %s locked: %d wrong PINs in a row", thumbprint, self.max_attempts
            )
            self.audit.record(
                "app.locked", actor="phone", data={"device": thumbprint, "max_attempts": self.max_attempts}
            )

    def _reset(self, thumbprint: str) -> None:
        with Session(self._engine, expire_on_commit=False) as session:
            session.execute(
                update(AppInstance)
                .where(AppInstance.device_thumbprint == thumbprint, AppInstance.locked.is_(False))
                .values(failures=0, updated_at=utcnow())
            )
            session.commit()


def register(operations: Operations, service: SecondFactorService) -> None:
    operations.register("register.start")(service.register_start)
    operations.register("register.finish")(service.register_finish)
    operations.register("pin.evaluate")(service.pin_evaluate)
    operations.register("biometric.challenge")(service.biometric_challenge)
    operations.register("attest")(service.attest)
