"""Transaction and document signing: what you see is what you sign.

An application submits typed fields for a logged-in session. ns fixes their canonical form, and the app of
the account logged in on that session shows exactly those fields; the person approves or declines, with the
second factor, and the app signs the canonical bytes together with ns's challenge and the decision. ns
keeps the result as an evidence record that anyone can check later with the account's public key.
"""

import hashlib
import hmac
import json
import os
import time
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.asymmetric import x25519
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session as DbSession

from authserver.ns.common import account_for, aware, b64, new_id, now, unb64
from authserver.ns.errors import ServiceError
from authserver.ns.flowstate import PendingSignature, SignItem
from authserver.ns.login import LoginService
from authserver.ns.mc_client import DeliveryError, MessageCenterClient
from authserver.ns.servers import ServerRegistry, VirtualServer
from authserver.operations import ChannelContext, OperationError
from authserver.storage.db import rowcount
from authserver.storage.flow_models import Account, Transaction
from authserver.storage.kv import KeyValueStore
from nextauth_core import attestation, envelope, evidence
from nextauth_core.encoding import unb64url
from nextauth_core.hsid import hsid_for
from nextauth_core.qr import QRPayload
from sigmai import ProtocolError

SIGN_TTL = 300.0


def validate_fields(body: dict[str, Any]) -> dict[str, str]:
    fields = {}
    for name in evidence.TYPED_FIELDS:
        value = body.get(name)
        if not isinstance(value, str) or not 1 <= len(value) <= evidence.MAX_FIELD:
            raise ServiceError(
                400, "bad_request", f"{name} must be text of 1 to {evidence.MAX_FIELD} characters."
            )
        problem = evidence.display_text_problem(value)
        if problem is not None:
            raise ServiceError(400, "bad_request", f"{name} {problem}; send plain text on one line.")
        fields[name] = value
    extra = set(body) - set(evidence.TYPED_FIELDS)
    if extra:
        raise ServiceError(400, "bad_request", f"unknown fields: {', '.join(sorted(extra))}.")
    return fields


class TransactionService:
    def __init__(
        self,
        engine: Engine,
        kv: KeyValueStore,
        servers: ServerRegistry,
        login: LoginService,
        message_centers: dict[str, MessageCenterClient],
        sigmai_uri: str,
    ) -> None:
        self._engine = engine
        self._kv = kv
        self._servers = servers
        self._login = login
        self._centers = message_centers
        self._sigmai_uri = sigmai_uri

    # -- the application's side (REST) -----------------------------------------------------------------

    def submit(self, server: VirtualServer, nonce: str, body: dict[str, Any]) -> dict[str, Any]:
        fields = validate_fields(body)
        hsid = hsid_for(nonce)
        session = self._login.active_session(server.id, hsid)
        if session is None:
            raise ServiceError(409, "not_logged_in", "Only a logged-in session can ask for a signature.")
        tid = new_id()
        content = evidence.canonical(
            {
                "type": "transaction",
                "server": server.id,
                "transaction": tid,
                "fields": fields,
                "submitted_at": now().isoformat(timespec="seconds"),
            }
        )
        with DbSession(self._engine, expire_on_commit=False) as db:
            db.add(
                Transaction(
                    id=tid,
                    server_id=server.id,
                    session_id=session["session_id"],
                    account_id=session["account_id"],
                    content=content,
                )
            )
            db.commit()
            account = db.get(Account, session["account_id"])
        challenge = os.urandom(32)
        item = SignItem(challenge_hash=hashlib.sha256(challenge).hexdigest(), server_id=server.id)
        self._kv.set(f"sign:{tid}", item.to_json(), ttl=SIGN_TTL)
        payload = QRPayload(
            kind="sign",
            server_id=server.id,
            sigmai_uri=self._sigmai_uri,
            server_key_hash=server.identity.key_hash,
            item_id=tid,
            secret=challenge,
            server_name=server.name,
        )
        pushed = account is not None and self._push(server, account, tid, challenge, fields)
        return {"tid": tid, "status": "new", "pushed": pushed, "qrdata": payload.encode()}

    def _push(
        self, server: VirtualServer, account: Account, tid: str, challenge: bytes, fields: dict[str, str]
    ) -> bool:
        client = self._centers.get(account.mc_key_hash or "")
        if client is None or account.encryption_key is None or not account.mc_token or not account.mc_mailbox:
            return False
        sealed = envelope.seal(
            x25519.X25519PublicKey.from_public_bytes(account.encryption_key),
            server.identity_key,
            server.identity.key_hash,
            account.mc_mailbox,
            {
                "type": "sign",
                "push": tid,
                "challenge": b64(challenge),
                "server_id": server.id,
                "server_name": server.name,
                "fields": fields,
            },
            ttl=int(SIGN_TTL),
        )
        try:
            client.send(
                account.mc_mailbox,
                account.mc_token,
                sealed,
                sender=server.key_hash,
                collapse_id=f"sign-{tid[:16]}",
                ttl=int(SIGN_TTL),
            )
        except DeliveryError:
            return False
        return True

    def get(self, server: VirtualServer, tid: str) -> dict[str, Any]:
        with DbSession(self._engine, expire_on_commit=False) as db:
            row = db.get(Transaction, tid)
        if row is None or row.server_id != server.id:
            raise ServiceError(404, "not_found", "No such transaction.")
        answer: dict[str, Any] = {
            "tid": row.id,
            "status": row.status,
            "accountid": row.account_id,
            "content": json.loads(row.content),
        }
        if row.evidence:
            answer["evidence"] = json.loads(row.evidence)
        return answer

    def verify_evidence(
        self, record: dict[str, Any], expected_thumbprint: Any, may_see: Callable[[str], bool]
    ) -> dict[str, Any]:
        """Check each part of a record and name each result; ``valid`` only when every part holds.

        ``checks``: ``account_signature``, ``ns_signature``, ``content`` (ns issued exactly this content for
        this account, and recorded this decision) and ``attestation`` (``not_required`` for a refusal, which
        needs no second factor). A part that cannot be checked because an earlier one failed is
        ``not_checked``. ``may_see(server_id)``: whether the caller may learn about that server's accounts.
        """
        checks = dict.fromkeys(("account_signature", "ns_signature", "content", "attestation"), "not_checked")
        reasons: list[str] = []

        def refused(part: str, outcome: str, reason: str) -> dict[str, Any]:
            checks[part] = outcome
            reasons.append(reason)
            return {"valid": False, "checks": checks, "reason": reasons[0]}

        if expected_thumbprint is not None and not isinstance(expected_thumbprint, str):
            return refused("account_signature", "invalid", "thumbprint must be text")
        try:
            content = evidence.verify(record, expected_thumbprint)
        except evidence.EvidenceError as exc:
            return refused("account_signature", "invalid", str(exc))
        account = self._account_for_record(record, content, may_see)
        if account is None:  # a valid signature, but by no account this caller may see: no evidence
            return refused(
                "account_signature", "invalid", "not signed by an account of a server this key may see"
            )
        checks["account_signature"] = "valid"
        server = self._servers.get(account.server_id)
        if server is None:
            return refused("ns_signature", "invalid", "the account's server no longer exists")
        try:
            evidence.verify_ns_signature(record, server.id, server.identity_key.public_key())
            checks["ns_signature"] = "valid"
        except evidence.EvidenceError as exc:
            checks["ns_signature"] = "missing" if "ns_signature" not in record else "invalid"
            reasons.append(str(exc))
        row = self._issued(unb64url(record["content"]), content, account)
        if row is None or row.status != record["decision"]:
            checks["content"] = "invalid"
            reasons.append("ns issued no such content to this account, or recorded another decision")
        else:
            checks["content"] = "valid"
        if record["decision"] == "declined":
            checks["attestation"] = "not_required"
        else:
            decided = aware(row.decided_at).timestamp() if row is not None and row.decided_at else time.time()
            try:
                evidence.check_attestation(
                    record,
                    self._attestation_keys(account),
                    audience=server.id,
                    at=decided,
                    device=account.sfs_device,
                )
                checks["attestation"] = "valid"
            except evidence.EvidenceError as exc:
                checks["attestation"] = "missing" if not record.get("attestation") else "invalid"
                reasons.append(str(exc))
        if reasons:
            return {"valid": False, "checks": checks, "reason": reasons[0]}
        return {
            "valid": True,
            "checks": checks,
            "decision": record["decision"],
            "content": content,
            "accountid": account.id,
            "server": account.server_id,
        }

    def _account_for_record(
        self, record: dict[str, Any], content: dict[str, Any], may_see: Callable[[str], bool]
    ) -> Account | None:
        """The account whose key signed, at the server the content names, if the caller may see it."""
        thumbprint = record["account_key"]["thumbprint"]
        with DbSession(self._engine, expire_on_commit=False) as db:
            accounts = db.scalars(select(Account).where(Account.thumbprint == thumbprint)).all()
        visible = [a for a in accounts if may_see(a.server_id)]
        return next((a for a in visible if a.server_id == content.get("server")), None) or next(
            iter(visible), None
        )

    def _issued(self, signed: bytes, content: dict[str, Any], account: Account) -> Transaction | None:
        """The transaction ns issued with exactly these bytes, to this account; None if there is none."""
        tid = content.get("transaction")
        if not isinstance(tid, str) or len(tid) > 32:
            return None
        with DbSession(self._engine, expire_on_commit=False) as db:
            row = db.get(Transaction, tid)
        if row is None or row.server_id != account.server_id or row.account_id != account.id:
            return None
        if not hmac.compare_digest(bytes(row.content), signed):
            return None
        return row

    def _attestation_keys(self, account: Account) -> attestation.TrustedKeys:
        """The attestation keys of the account's own SFS, if that SFS is still trusted."""
        keys = self._login._trusted_sfs.get(account.sfs_key_hash or "")
        return {account.sfs_key_hash: keys} if keys else {}

    # -- the app's side (sigmai operations) ------------------------------------------------------------

    def sign_start(self, context: ChannelContext, params: dict[str, Any]) -> dict[str, Any]:
        server = self._servers.for_channel(context.server_key_hash)
        tid = params.get("transaction")
        if not isinstance(tid, str) or len(tid) > 32:
            raise OperationError("bad_request", "transaction is required.")
        challenge = unb64(params.get("challenge"), "challenge", min_length=16, max_length=64)
        account = account_for(self._engine, server.id, context.peer.thumbprint())
        with DbSession(self._engine, expire_on_commit=False) as db:
            row = db.get(Transaction, tid)
        # Ownership first: another account of the same app asking must not use up the request.
        if row is None or row.server_id != server.id or row.account_id != account.id:
            raise OperationError("not_yours", "This signing request is for another account.")
        raw = self._kv.take(f"sign:{tid}")
        if raw is None or row.status != "new":
            raise OperationError("expired", "This signing request has expired or was already answered.")
        entry = SignItem.from_json(raw)
        if not hmac.compare_digest(entry.challenge_hash, hashlib.sha256(challenge).hexdigest()):
            raise OperationError("expired", "This signing request has expired or was already answered.")
        ns_challenge = os.urandom(32)
        context.state["sign"] = PendingSignature(
            tid=tid,
            content=row.content,
            ns_challenge=ns_challenge,
            server_id=server.id,
            started=time.monotonic(),
        )
        needs = server.transaction_pin_timeout >= 0
        return {
            "server": server.public(),
            "content": json.loads(row.content),
            "canonical": b64(row.content),
            "audience": server.id,
            "ns_challenge": b64(ns_challenge),
            "second_factor": "required" if needs else "not_required",
        }

    def sign_finish(self, context: ChannelContext, params: dict[str, Any]) -> dict[str, Any]:
        pending: PendingSignature | None = context.state.pop("sign", None)
        if pending is None:
            raise OperationError("no_transaction", "Open the signing request first.")
        if time.monotonic() - pending.started > SIGN_TTL:
            raise OperationError("expired", "The signing request took too long.")
        decision = params.get("decision")
        if decision not in ("approved", "declined"):
            raise OperationError("bad_request", "decision must be approved or declined.")
        signature = unb64(params.get("signature"), "signature", min_length=64, max_length=64)
        statement = evidence.signing_statement(pending.content, pending.ns_challenge, decision)
        try:
            context.peer.verify(signature, statement)
        except ProtocolError as exc:
            raise OperationError("bad_signature", "The signature does not match what was shown.") from exc
        account = account_for(self._engine, pending.server_id, context.peer.thumbprint())
        server = self._servers.get(pending.server_id)
        token = params.get("attestation")
        if decision == "approved" and server is not None and server.transaction_pin_timeout >= 0:
            self._login.check_attestation(token, account, pending.server_id, pending.ns_challenge, "sign")
        else:
            token = None
        record = evidence.record(
            content=pending.content,
            ns_challenge=pending.ns_challenge,
            signature=signature,
            key=context.peer,
            attestation=token,
            decision=decision,
            ns_key=server.identity_key if server is not None else None,
            server_id=pending.server_id,
        )
        with DbSession(self._engine, expire_on_commit=False) as db:
            done = db.execute(
                update(Transaction)
                .where(Transaction.id == pending.tid, Transaction.status == "new")
                .values(status=decision, evidence=json.dumps(record), decided_at=now())
            )
            db.commit()
        if rowcount(done) != 1:
            raise OperationError("expired", "This signing request was already answered.")
        return {"transaction": pending.tid, "status": decision}
