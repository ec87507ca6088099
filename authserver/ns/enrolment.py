"""Enrolment: an application asks for a QR for one of its users; the app scans it, proves its second
factor to its SFS, and hands ns a fresh account key; the user then types the short code the phone shows
into the application, which confirms it here. Only then is the account active.

The code defeats the attack where someone else scans the user's enrolment QR (over the shoulder, from a
screenshot): the intruder's phone shows the code, the user's does not, so the user cannot confirm it.

Invites let people enrol themselves: an operator or an application makes an invite for a user id and sends
its link; the IdP's page ``/enrol/<token>`` redeems it, which starts an ordinary enrolment for that user.
An invite is a row of the enrolments table in the state ``invited`` (the token's secret stored hashed, as
an enrolment's QR secret is): it must outlive restarts for a day or more, and the ``nextauth invite``
command writes it without the running ns, so the short-lived store does not fit. Redeeming moves the row to
``used`` in one conditional statement, so a token starts one enrolment at most; revoking moves it to
``revoked``.
"""

import hashlib
import hmac
import os
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from authserver.metrics import count_enrolment
from authserver.ns.common import aware, b64, new_id, now, unb64
from authserver.ns.errors import ServiceError
from authserver.ns.flowstate import PendingEnrolment
from authserver.ns.login import LoginService
from authserver.ns.servers import ServerRegistry, VirtualServer
from authserver.operations import ChannelContext, OperationError
from authserver.storage.db import rowcount
from authserver.storage.flow_models import Account, Enrolment, User
from nextauth_core import userids
from nextauth_core.digits import only_digits
from nextauth_core.qr import QRPayload
from nextauth_core.statements import ENROL_CODE_EXPORTER, confirmation_code

SECRET_BYTES = 32
MAX_CODE_ATTEMPTS = 3
INVITE_TTL_BOUNDS = (1.0, 30 * 86400.0)
# Rows that are invites, not enrolments: the enrolment API and the app never see them.
INVITE_STATES = ("invited", "used", "revoked")
MAX_TOKEN_LENGTH = 100


def _code_hash(enrolment_id: str, code: str) -> bytes:
    return hashlib.sha256(f"{enrolment_id}:{code}".encode()).digest()


class EnrolmentService:
    def __init__(
        self,
        engine: Engine,
        servers: ServerRegistry,
        login: LoginService,
        sigmai_uri: str,
        *,
        ttl: float = 600.0,
        invite_ttl: float = 86400.0,
        invite_url: str | None = None,
    ) -> None:
        self._engine = engine
        self._servers = servers
        self._login = login
        self._sigmai_uri = sigmai_uri
        self._ttl = ttl
        self.invite_ttl = invite_ttl
        self.invite_url = invite_url

    # -- the application's side (REST) -----------------------------------------------------------------

    def create(self, server: VirtualServer, user_id: str, *, actor: str | None = None) -> dict[str, Any]:
        try:
            user_id = userids.normalise(user_id)
        except userids.UserIdError as exc:
            raise ServiceError(400, "bad_request", f"{exc} (see docs/security.md, user ids).") from exc
        secret = os.urandom(SECRET_BYTES)
        enrolment = Enrolment(
            id=new_id(),
            server_id=server.id,
            user_id=user_id,
            secret_hash=hashlib.sha256(secret).digest(),
            expires_at=now() + timedelta(seconds=self._ttl),
        )
        with Session(self._engine, expire_on_commit=False) as db:
            db.add(enrolment)
            db.commit()
            db.refresh(enrolment)
        count_enrolment("started")
        self._login.audit.record(
            "enrolment.started",
            subject=user_id,
            server_id=server.id,
            actor=actor,
            data={"enrolment": enrolment.id},
        )
        payload = QRPayload(
            kind="enrol",
            server_id=server.id,
            sigmai_uri=self._sigmai_uri,
            server_key_hash=server.identity.key_hash,
            item_id=enrolment.id,
            secret=secret,
            server_name=server.name,
        )
        return {
            "enrolment": enrolment.id,
            "userid": user_id,
            "state": "pending",
            "qrdata": payload.encode(),
            "expires_at": aware(enrolment.expires_at).isoformat(),
        }

    def get(self, server: VirtualServer, enrolment_id: str) -> dict[str, Any]:
        with Session(self._engine, expire_on_commit=False) as db:
            row = db.get(Enrolment, enrolment_id)
        if row is None or row.server_id != server.id or row.state in INVITE_STATES:
            raise ServiceError(404, "not_found", "No such enrolment.")
        state = row.state
        if state in ("pending", "scanned", "awaiting_confirmation") and aware(row.expires_at) <= now():
            state = "expired"
        return {
            "enrolment": row.id,
            "userid": row.user_id,
            "state": state,
            "accountid": row.account_id if state == "completed" else None,
            "expires_at": aware(row.expires_at).isoformat(),
        }

    def confirm(
        self, server: VirtualServer, enrolment_id: str, code: Any, *, actor: str | None = None
    ) -> dict[str, Any]:
        if not isinstance(code, str) or not only_digits(code) or len(code) != 6:
            raise ServiceError(400, "bad_request", "code must be the six digits the phone shows.")
        with Session(self._engine, expire_on_commit=False) as db:
            row = db.get(Enrolment, enrolment_id)
            if row is None or row.server_id != server.id or row.state in INVITE_STATES:
                raise ServiceError(404, "not_found", "No such enrolment.")
            if row.state != "awaiting_confirmation" or aware(row.expires_at) <= now():
                raise ServiceError(409, "not_confirmable", "This enrolment is not waiting for a code.")
            # Count the attempt first, in one conditional statement, so parallel guesses each count.
            counted = db.execute(
                update(Enrolment)
                .where(
                    Enrolment.id == enrolment_id,
                    Enrolment.code_attempts < MAX_CODE_ATTEMPTS,
                    Enrolment.state == "awaiting_confirmation",
                )
                .values(code_attempts=Enrolment.code_attempts + 1)
            )
            db.commit()
            if rowcount(counted) != 1:
                raise ServiceError(409, "not_confirmable", "This enrolment is not waiting for a code.")
            db.refresh(row)
            assert row.code_hash is not None and row.account_id is not None
            if not hmac.compare_digest(row.code_hash, _code_hash(row.id, code)):
                if row.code_attempts >= MAX_CODE_ATTEMPTS:
                    db.execute(update(Enrolment).where(Enrolment.id == row.id).values(state="failed"))
                    db.commit()
                    count_enrolment("failed")
                    raise ServiceError(409, "failed", "Too many wrong codes: start the enrolment again.")
                raise ServiceError(400, "wrong_code", "That is not the code the phone shows.")
            user = db.scalar(select(User).where(User.server_id == server.id, User.user_id == row.user_id))
            if user is None:
                user = User(server_id=server.id, user_id=row.user_id)
                db.add(user)
                try:
                    db.flush()
                except IntegrityError:
                    db.rollback()
                    user = db.scalars(
                        select(User).where(User.server_id == server.id, User.user_id == row.user_id)
                    ).one()
            db.execute(
                update(Account).where(Account.id == row.account_id).values(active=True, user_pk=user.id)
            )
            db.execute(update(Enrolment).where(Enrolment.id == row.id).values(state="completed"))
            db.commit()
            count_enrolment("done")
            self._login.audit.record(
                "enrolment.completed",
                subject=row.user_id,
                server_id=server.id,
                actor=actor,
                data={"account": row.account_id, "enrolment": row.id},
            )
            return {
                "enrolment": row.id,
                "state": "completed",
                "userid": row.user_id,
                "accountid": row.account_id,
            }

    # -- invites ---------------------------------------------------------------------------------------------

    def create_invite(self, server: VirtualServer, user_id: str, ttl: Any = None) -> dict[str, Any]:
        """A single-use invite for ``user_id``; the token is in the answer only, never stored."""
        try:
            user_id = userids.normalise(user_id)
        except userids.UserIdError as exc:
            raise ServiceError(400, "bad_request", f"{exc} (see docs/security.md, user ids).") from exc
        if ttl is None:
            ttl = self.invite_ttl
        low, high = INVITE_TTL_BOUNDS
        if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not low <= ttl <= high:
            raise ServiceError(400, "bad_request", f"ttl must be {low:.0f} to {high:.0f} seconds.")
        secret = os.urandom(SECRET_BYTES)
        row = Enrolment(
            id=new_id(),
            server_id=server.id,
            user_id=user_id,
            secret_hash=hashlib.sha256(secret).digest(),
            state="invited",
            expires_at=now() + timedelta(seconds=float(ttl)),
        )
        with Session(self._engine, expire_on_commit=False) as db:
            db.add(row)
            db.commit()
        token = f"{row.id}.{b64(secret)}"
        return {
            "invite": row.id,
            "userid": user_id,
            "token": token,
            "link": f"{self.invite_url}{token}" if self.invite_url else None,
            "expires_at": aware(row.expires_at).isoformat(),
        }

    def revoke_invite(self, server: VirtualServer, invite_id: str) -> dict[str, Any]:
        with Session(self._engine) as db:
            revoked = db.execute(
                update(Enrolment)
                .where(
                    Enrolment.id == invite_id,
                    Enrolment.server_id == server.id,
                    Enrolment.state == "invited",
                )
                .values(state="revoked")
            )
            db.commit()
            if rowcount(revoked) == 1:
                return {"invite": invite_id, "state": "revoked"}
            row = db.get(Enrolment, invite_id)
        if row is None or row.server_id != server.id or row.state not in INVITE_STATES:
            raise ServiceError(404, "not_found", "No such invite.")
        raise ServiceError(409, "not_revocable", f"This invite is {row.state} already.")

    def _invite(self, db: Session, server: VirtualServer, token: Any) -> Enrolment | None:
        """The invite row the token opens, or None for a token that opens none, including a revoked one:
        whoever holds a token must not learn that it once was valid."""
        if not isinstance(token, str) or not token:
            raise ServiceError(400, "bad_request", "token is required: the invite's token, from its link.")
        if len(token) > MAX_TOKEN_LENGTH or token.count(".") != 1:
            return None
        invite_id, _, encoded = token.partition(".")
        try:
            secret = unb64(encoded, "token", min_length=SECRET_BYTES, max_length=SECRET_BYTES)
        except (OperationError, ServiceError, ValueError):
            return None
        offered = hashlib.sha256(secret).digest()
        row = db.get(Enrolment, invite_id) if len(invite_id) <= 32 else None
        if row is None or row.server_id != server.id or row.state not in ("invited", "used"):
            return None
        return row if hmac.compare_digest(row.secret_hash, offered) else None

    def invite_status(self, server: VirtualServer, token: Any) -> dict[str, Any]:
        """What the invite page says before anything happens: valid, used, expired or unknown."""
        with Session(self._engine, expire_on_commit=False) as db:
            row = self._invite(db, server, token)
        if row is None:
            return {"state": "unknown"}
        if row.state == "used":
            return {"state": "used"}
        if aware(row.expires_at) <= now():
            return {"state": "expired"}
        return {"state": "valid", "userid": row.user_id, "expires_at": aware(row.expires_at).isoformat()}

    def redeem_invite(self, server: VirtualServer, token: Any) -> dict[str, Any]:
        """Use the invite up and start an enrolment for its user, as ``create`` does for the REST API."""
        with Session(self._engine, expire_on_commit=False) as db:
            row = self._invite(db, server, token)
            if row is None:
                raise ServiceError(404, "not_found", "This invite is not valid.")
            claimed = db.execute(
                update(Enrolment)
                .where(Enrolment.id == row.id, Enrolment.state == "invited", Enrolment.expires_at > now())
                .values(state="used")
            )
            db.commit()
        if rowcount(claimed) != 1:
            if row.state == "invited" and aware(row.expires_at) <= now():
                raise ServiceError(410, "invite_expired", "This invite has expired.")
            raise ServiceError(409, "invite_used", "This invite was used already.")
        enrolment = self.create(server, row.user_id)
        return {
            **enrolment,
            "invite": row.id,
            "server": {"id": server.id, "name": server.name, "public_key": server.identity.public_raw.hex()},
        }

    # -- the app's side (sigmai operations) ------------------------------------------------------------

    def enrol_start(self, context: ChannelContext, params: dict[str, Any]) -> dict[str, Any]:
        server = self._servers.for_channel(context.server_key_hash)
        enrolment_id = params.get("enrolment")
        if not isinstance(enrolment_id, str) or len(enrolment_id) > 32:
            raise OperationError("bad_request", "enrolment is required.")
        secret = unb64(params.get("secret"), "secret", min_length=16, max_length=64)
        sfs_key_hash = params.get("sfs_key_hash")
        if not isinstance(sfs_key_hash, str) or sfs_key_hash not in self._login._trusted_sfs:
            raise OperationError(
                "untrusted_app", "This service does not accept this app's second factor server."
            )
        with Session(self._engine, expire_on_commit=False) as db:
            row = db.get(Enrolment, enrolment_id)
            valid = (
                row is not None
                and row.server_id == server.id
                and row.state not in INVITE_STATES
                and hmac.compare_digest(row.secret_hash, hashlib.sha256(secret).digest())
            )
            if not valid or row is None:
                raise OperationError("expired", "This enrolment code is not valid. Ask for a new one.")
            if aware(row.expires_at) <= now():
                raise OperationError("expired", "This enrolment code has expired. Ask for a new one.")
            claimed = db.execute(
                update(Enrolment)
                .where(Enrolment.id == enrolment_id, Enrolment.state == "pending")
                .values(state="scanned")
            )
            db.commit()
        if rowcount(claimed) != 1:
            raise OperationError("expired", "This enrolment code was already used. Ask for a new one.")
        ns_challenge = os.urandom(32)
        context.state["enrol"] = PendingEnrolment(
            enrolment=enrolment_id,
            server_id=server.id,
            ns_challenge=ns_challenge,
            sfs_key_hash=sfs_key_hash,
            mc=params.get("mc") if isinstance(params.get("mc"), dict) else None,
            encryption_key=params.get("encryption_key"),
        )
        return {
            "server": server.public(),
            "userid": row.user_id,
            "audience": server.id,
            "ns_challenge": b64(ns_challenge),
        }

    def enrol_finish(self, context: ChannelContext, params: dict[str, Any]) -> dict[str, Any]:
        pending: PendingEnrolment | None = context.state.pop("enrol", None)
        if pending is None:
            raise OperationError("no_enrolment", "Scan the enrolment code first.")
        thumbprint = context.peer.thumbprint()
        account = Account(
            id=new_id(),
            server_id=pending.server_id,
            key_type=context.peer.type_name,
            public_key=context.peer.raw,
            thumbprint=thumbprint,
            sfs_key_hash=pending.sfs_key_hash,
            active=False,
        )
        mc = pending.mc or {}
        if mc and pending.encryption_key is not None:
            account.mc_key_hash = str(mc.get("key_hash", ""))[:64] or None
            account.mc_mailbox = str(mc.get("mailbox", ""))[:64] or None
            account.mc_token = str(mc.get("token", ""))[:128] or None
            account.encryption_key = unb64(
                pending.encryption_key, "encryption_key", min_length=32, max_length=32
            )
        checked = self._login.check_attestation(
            params.get("attestation"), account, pending.server_id, pending.ns_challenge, "enrol"
        )
        # The binding: from now on only this app instance, at this SFS, vouches for the account.
        account.sfs_device = checked.device
        code = confirmation_code(context.export(ENROL_CODE_EXPORTER, pending.enrolment.encode(), 8))
        with Session(self._engine, expire_on_commit=False) as db:
            db.add(account)
            try:
                db.flush()
            except IntegrityError as exc:
                db.rollback()
                raise OperationError("already_enrolled", "This key is already enrolled here.") from exc
            db.execute(
                update(Enrolment)
                .where(Enrolment.id == pending.enrolment, Enrolment.state == "scanned")
                .values(
                    state="awaiting_confirmation",
                    account_id=account.id,
                    code_hash=_code_hash(pending.enrolment, code),
                )
            )
            db.commit()
        return {"account": account.id, "confirmation_code": code, "state": "awaiting_confirmation"}
