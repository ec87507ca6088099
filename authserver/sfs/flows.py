"""The SFS's operations on its sigmai channel: register an app instance's PIN verifier, check the PIN
without learning it, and attest to a successful check.

PIN failures are counted in the database *before* an OPRF evaluation is answered: a guess costs an
attempt even if the app never comes back with a proof, even if the SFS crashes in between, and the
single conditional UPDATE makes parallel guesses on several SFS instances count one by one. A correct
proof resets the count; reaching the maximum locks the instance for good.

An app instance is its device key: it registers once, and nothing lets the same device key register
again (a new PIN without the old one would undo the lock for whoever copied the app's files). The PIN
can be changed, but only by proving the old one (``pin.change.start`` / ``pin.change.finish``), which
counts exactly like a PIN check and is refused once the instance is locked. A locked
app is set up anew with a new device key, and its accounts enrolled anew: ns binds every account to the
instance that vouched at enrolment, so the new instance cannot vouch for the old accounts.

Attestations are signed with the SFS's attestation key, never with its sigmai identity key.
"""

import hmac
import logging
import os
import time
from dataclasses import dataclass
from typing import Any, NoReturn, cast

from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy import Connection, Engine, Table, bindparam, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from authserver.audit import AuditTrail
from authserver.metrics import LOCKOUTS, WRONG_PINS
from authserver.operations import ChannelContext, OperationError, Operations, binary_param
from authserver.storage import db as database
from authserver.storage.db import rowcount
from authserver.storage.flow_models import AppInstance
from authserver.storage.hot import HotStatement
from authserver.storage.models import utcnow
from nextauth_core import attestation, oprf, pin
from nextauth_core.encoding import b64url
from nextauth_core.statements import (
    PIN_CHANGE_EXPORTER,
    SFS_PROOF_EXPORTER,
    pin_change_statement,
    sfs_proof_statement,
)

CHALLENGE_BYTES = 32
LOCKED_MESSAGE = "Too many wrong PINs: this app is locked. Set the app up anew and enrol your accounts again."

DEFAULT_PIN_CHANGE_SECONDS = 60  # start to finish is one round trip and two key derivations

security_log = logging.getLogger("nextauth.security")


# The PIN check's two steps are one statement each, built once (Core, no ORM unit of work).
_INSTANCES = cast(Table, AppInstance.__table__)
_COUNTED = (_INSTANCES.c.oprf_key, _INSTANCES.c.failures, _INSTANCES.c.pin_verifier)
_COUNT_ATTEMPT = (
    update(_INSTANCES)
    .where(
        _INSTANCES.c.device_thumbprint == bindparam("thumbprint"),
        _INSTANCES.c.pin_verifier.is_not(None),
        _INSTANCES.c.locked.is_(False),
        _INSTANCES.c.failures < bindparam("max_attempts"),
    )
    .values(failures=_INSTANCES.c.failures + 1, updated_at=bindparam("now"))
)
_COUNT_ATTEMPT_RETURNING = HotStatement(_COUNT_ATTEMPT.returning(*_COUNTED))
_READ_COUNTED = select(*_COUNTED).where(_INSTANCES.c.device_thumbprint == bindparam("thumbprint"))
# A proven PIN clears the count only if nothing changed since its evaluation: not locked meanwhile (the
# lock wins), and the verifier the proof was checked against is still the PIN (not changed meanwhile).
_RESET_PROVEN = HotStatement(
    update(_INSTANCES)
    .where(
        _INSTANCES.c.device_thumbprint == bindparam("thumbprint"),
        _INSTANCES.c.locked.is_(False),
        _INSTANCES.c.pin_verifier == bindparam("verifier"),
    )
    .values(failures=0, updated_at=bindparam("now"))
)


@dataclass(frozen=True)
class CountedInstance:
    """An app instance as its counted PIN attempt left it."""

    device_thumbprint: str
    oprf_key: bytes
    failures: int
    pin_verifier: bytes


@dataclass(frozen=True)
class PendingPinCheck:
    """``context.state["pin_check"]``: what ``pin.evaluate`` counted, for the ``attest`` that follows on
    the same channel (the verifier the proof is checked against, read in the counting statement)."""

    instance: CountedInstance


@dataclass(frozen=True)
class PendingPinChange:
    """A ``pin.change.start`` awaiting its finish; kept in the channel's state, so it is bound to that
    channel and gone with it."""

    challenge: bytes
    expires_at: float  # time.monotonic()


class SecondFactorService:
    def __init__(
        self,
        engine: Engine,
        attestation_key: ed25519.Ed25519PrivateKey,
        key_hash: str,
        max_attempts: int,
        pin_change_seconds: int = DEFAULT_PIN_CHANGE_SECONDS,
        audit: AuditTrail | None = None,
    ):
        self._engine = engine
        self.audit = audit if audit is not None else AuditTrail(engine, "sfs")
        self._key = attestation_key  # not the sigmai identity key: see nextauth_core.attestation
        self._key_hash = key_hash  # the sigmai key hash: the SFS's name in attestations (iss)
        self.max_attempts = max_attempts
        self.pin_change_seconds = pin_change_seconds

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
        instance = self._count_attempt(context.peer.thumbprint())
        challenge = os.urandom(CHALLENGE_BYTES)
        context.state["challenge"], context.state["challenge_method"] = challenge, "pin"
        context.state["pin_check"] = PendingPinCheck(instance)
        return {
            "evaluated_element": b64url(self._evaluate(instance.oprf_key, blinded)),
            "challenge": b64url(challenge),
            "attempts_left": self.max_attempts - instance.failures,
        }

    def _count_attempt(self, thumbprint: str) -> CountedInstance:
        """Count one PIN attempt as failed before anything about the PIN is answered; the instance as
        counted. Raises ``not_registered`` or ``locked`` (locking it at the limit).

        One statement where the database can return what it updated (PostgreSQL, SQLite), else the
        update and a read in one transaction; committed before the evaluation is answered."""
        parameters = {"thumbprint": thumbprint, "max_attempts": self.max_attempts, "now": utcnow()}
        row: Any
        if self._engine.dialect.update_returning:
            row = database.write_one(
                self._engine, _COUNT_ATTEMPT_RETURNING, parameters, take=lambda result: result.first()
            )
        else:

            def count(connection: Connection) -> Any:
                counted = connection.execute(_COUNT_ATTEMPT, parameters)
                if rowcount(counted) != 1:
                    return None
                return connection.execute(_READ_COUNTED, parameters).first()

            row = database.transaction(self._engine, count)
        if row is None:  # not registered, locked, or at the limit: which one?
            with Session(self._engine, expire_on_commit=False) as session:
                instance = session.scalar(
                    select(AppInstance).where(AppInstance.device_thumbprint == thumbprint)
                )
            if instance is None or instance.pin_verifier is None:
                raise OperationError(
                    "not_registered", "Register this app with its second factor server first."
                )
            self._lock(thumbprint)
            raise OperationError("locked", LOCKED_MESSAGE)
        return CountedInstance(thumbprint, row.oprf_key, row.failures, row.pin_verifier)

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
        pending: PendingPinCheck | None = context.state.pop("pin_check", None)
        statement = sfs_proof_statement(
            sfs_challenge=sfs_challenge,
            channel_binding=context.export(SFS_PROOF_EXPORTER, b"", 32),
            audience=audience,
            ns_challenge=ns_challenge,
            purpose=purpose,
            account_thumbprint=account,
        )
        if method == "pin":
            if context.state.pop("challenge_method", None) != "pin" or pending is None:
                raise OperationError("no_challenge", "Enter the PIN again.")
            if pending.instance.device_thumbprint != thumbprint:  # pragma: no cover - one channel, one key
                raise OperationError("no_challenge", "Enter the PIN again.")
            if not pin.check_proof(pending.instance.pin_verifier, statement, proof):
                current = self._current(thumbprint)  # the count as it is now, for the answer and the lock
                if current is not None and current.locked:
                    raise OperationError("locked", LOCKED_MESSAGE)
                self._wrong_pin(current or pending.instance)
            self._reset_proven(thumbprint, pending.instance.pin_verifier)
        else:
            instance = self._current(thumbprint)
            if instance is None or instance.pin_verifier is None:
                raise OperationError(
                    "not_registered", "Register this app with its second factor server first."
                )
            if instance.locked:
                raise OperationError("locked", LOCKED_MESSAGE)
            if instance.biometric_key is None or not pin.check_proof(
                instance.biometric_key, statement, proof
            ):
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

    # -- PIN change ------------------------------------------------------------------------------------

    def pin_change_start(self, context: ChannelContext, params: dict[str, Any]) -> dict[str, Any]:
        """Evaluate the old PIN (counted as a failure until proven, exactly like ``pin.evaluate``) and
        the new one, and open a short window for one ``pin.change.finish`` on this channel.

        Evaluating the new PIN here gives nothing away: an evaluation alone tests no guess, only a
        proof checked by the SFS does, and every proof needs a challenge from a counted evaluation.
        """
        blinded = binary_param(params.get("blinded_element"), "blinded_element", min_length=32, max_length=32)
        new_blinded = binary_param(
            params.get("new_blinded_element"), "new_blinded_element", min_length=32, max_length=32
        )
        context.state.pop("pin_change", None)  # a new start replaces an unfinished one
        instance = self._count_attempt(context.peer.thumbprint())
        evaluated = self._evaluate(instance.oprf_key, blinded)
        new_evaluated = self._evaluate(instance.oprf_key, new_blinded)
        challenge = os.urandom(CHALLENGE_BYTES)
        context.state["pin_change"] = PendingPinChange(challenge, time.monotonic() + self.pin_change_seconds)
        return {
            "evaluated_element": b64url(evaluated),
            "new_evaluated_element": b64url(new_evaluated),
            "challenge": b64url(challenge),
            "attempts_left": self.max_attempts - instance.failures,
            "expires_in": self.pin_change_seconds,
        }

    def pin_change_finish(self, context: ChannelContext, params: dict[str, Any]) -> dict[str, Any]:
        """Replace the PIN verifier if ``proof`` proves the old PIN over the new verifier."""
        pending = context.state.pop("pin_change", None)  # single use, whatever the outcome
        if not isinstance(pending, PendingPinChange):
            raise OperationError("no_pin_change", "Start the PIN change again.")
        if time.monotonic() > pending.expires_at:
            raise OperationError("expired", "The PIN change took too long; start it again.")
        proof = binary_param(params.get("proof"), "proof", min_length=64, max_length=64)
        verifier = binary_param(params.get("pin_verifier"), "pin_verifier", min_length=32, max_length=32)
        if not pin.is_acceptable_verifier(verifier):
            raise OperationError("bad_request", "pin_verifier must be a valid Ed25519 public key.")
        thumbprint = context.peer.thumbprint()
        with Session(self._engine, expire_on_commit=False) as session:
            instance = session.scalar(select(AppInstance).where(AppInstance.device_thumbprint == thumbprint))
        if instance is None or instance.pin_verifier is None:
            raise OperationError("not_registered", "Register this app with its second factor server first.")
        if instance.locked:
            raise OperationError("locked", LOCKED_MESSAGE)
        old_verifier = instance.pin_verifier
        statement = pin_change_statement(
            sfs_challenge=pending.challenge,
            channel_binding=context.export(PIN_CHANGE_EXPORTER, b"", 32),
            new_pin_verifier=verifier,
        )
        if not pin.check_proof(old_verifier, statement, proof):
            self._wrong_pin(instance)
        if hmac.compare_digest(verifier, old_verifier):
            self._reset(thumbprint)
            raise OperationError("same_pin", "The new PIN is the old one; choose another.")
        with Session(self._engine, expire_on_commit=False) as session:
            # Compare-and-set on the old verifier: of two changes proven with the same old PIN on two
            # channels, only the first takes effect; a lock that came in between wins over both.
            done = session.execute(
                update(AppInstance)
                .where(
                    AppInstance.device_thumbprint == thumbprint,
                    AppInstance.locked.is_(False),
                    AppInstance.pin_verifier == old_verifier,
                )
                .values(pin_verifier=verifier, failures=0, updated_at=utcnow())
            )
            session.commit()
        if rowcount(done) != 1:
            with Session(self._engine) as session:
                locked = session.scalar(
                    select(AppInstance.locked).where(AppInstance.device_thumbprint == thumbprint)
                )
            if locked:
                raise OperationError("locked", LOCKED_MESSAGE)
            raise OperationError("no_pin_change", "The PIN was changed meanwhile; start again.")
        security_log.info("sfs: app instance %s changed its PIN", thumbprint)
        return {"changed": True, "max_attempts": self.max_attempts}

    # -- helpers ---------------------------------------------------------------------------------------

    @staticmethod
    def _evaluate(key: bytes, blinded: bytes) -> bytes:
        try:
            return oprf.blind_evaluate(key, blinded)
        except oprf.OPRFError as exc:
            raise OperationError("bad_request", "blinded_element is not a valid group element.") from exc

    def _current(self, thumbprint: str) -> AppInstance | None:
        with Session(self._engine, expire_on_commit=False) as session:
            return session.scalar(select(AppInstance).where(AppInstance.device_thumbprint == thumbprint))

    def _reset_proven(self, thumbprint: str, verifier: bytes) -> None:
        """A proof checked against ``verifier`` succeeded: clear the count, in one statement, unless the
        instance was locked or its PIN changed since the evaluation (then no attestation)."""
        parameters = {"thumbprint": thumbprint, "verifier": verifier, "now": utcnow()}
        if database.write_one(self._engine, _RESET_PROVEN, parameters) == 1:
            return
        current = self._current(thumbprint)
        if current is None or current.locked:
            raise OperationError("locked", LOCKED_MESSAGE)
        raise OperationError("no_challenge", "The PIN was changed meanwhile; enter the new one.")

    def _wrong_pin(self, instance: AppInstance | CountedInstance) -> NoReturn:
        """Answer a proof that failed: the attempt was counted when the PIN was evaluated; at the limit
        this is the one that locks."""
        WRONG_PINS.inc()
        left = max(self.max_attempts - instance.failures, 0)
        # The SFS knows devices, not users: ns's login.failed names the user.
        self.audit.record(
            "pin.wrong", actor="phone", data={"device": instance.device_thumbprint, "attempts_left": left}
        )
        if left == 0:
            self._lock(instance.device_thumbprint)
            raise OperationError("locked", LOCKED_MESSAGE)
        raise OperationError("wrong_pin", f"Wrong PIN. {left} attempt{'s' if left != 1 else ''} left.")

    def _lock(self, thumbprint: str) -> None:
        with Session(self._engine, expire_on_commit=False) as session:
            done = session.execute(
                update(AppInstance)
                .where(AppInstance.device_thumbprint == thumbprint, AppInstance.locked.is_(False))
                .values(locked=True, updated_at=utcnow())
            )
            session.commit()
        if rowcount(done) == 1:  # the transition, once: later attempts on a locked app are no news
            LOCKOUTS.inc()
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
    operations.register("pin.change.start")(service.pin_change_start)
    operations.register("pin.change.finish")(service.pin_change_finish)
