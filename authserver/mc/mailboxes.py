"""Mailboxes: where ns leaves end-to-end encrypted messages for an app, and from where the app pulls them.

The app opens its mailbox over sigmai with its device key and gets a random app token, shown once and
stored here only as a hash. It gives ns the mailbox id and token at enrolment; ns presents them to send.
Possession of the token is the right to write to that mailbox, nothing more: reading needs the device key.
"""

import hashlib
import hmac
import logging
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from authserver.metrics import count_push
from authserver.ns.common import aware, b64, new_id, now
from authserver.operations import ChannelContext, OperationError
from authserver.push.base import PushMessage, PushProvider
from authserver.push.webpush import Subscription
from authserver.storage.batched_delete import delete_in_batches
from authserver.storage.db import rowcount
from authserver.storage.flow_models import Mailbox, MailboxMessage

log = logging.getLogger("nextauth.mc")

MAX_TTL = 24 * 3600
MAX_PENDING = 100  # per mailbox: an app that never pulls cannot make the MC grow without bound
PROVIDERS = ("fcm", "apns", "webpush", "none")


class SendError(Exception):
    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


@dataclass(frozen=True)
class SendResult:
    message_id: str
    pushed: bool


def _push_settings(params: dict[str, Any]) -> tuple[str, str | None, str | None]:
    """The provider, push token and Web Push subscription (canonical JSON) an app asks for, checked."""
    provider = params.get("push_provider", "none")
    push_token = params.get("push_token")
    if provider not in PROVIDERS:
        raise OperationError("bad_request", f"push_provider must be one of {', '.join(PROVIDERS)}.")
    if provider == "webpush":
        # The push token of a web app is its whole subscription (endpoint and keys), as the JSON of
        # PushSubscription.toJSON() or that object itself.
        if not isinstance(push_token, str | dict):
            raise OperationError("bad_request", "push_token must be the Web Push subscription.")
        try:
            return provider, None, Subscription.parse(push_token).to_token()
        except ValueError as exc:
            raise OperationError("bad_request", f"Not a usable Web Push subscription: {exc}.") from None
    if provider == "none":
        return provider, None, None
    if not isinstance(push_token, str) or not 8 <= len(push_token) <= 256:
        raise OperationError("bad_request", "push_token is required for fcm and apns.")
    return provider, push_token, None


def _token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


class MailboxService:
    def __init__(self, engine: Engine, providers: dict[str, PushProvider]) -> None:
        self._engine = engine
        self._providers = providers

    # -- the app's side (sigmai) -----------------------------------------------------------------------

    def register(self, context: ChannelContext, params: dict[str, Any]) -> dict[str, Any]:
        provider, push_token, subscription = _push_settings(params)
        token = "mct_" + b64(os.urandom(32))
        thumbprint = context.peer.thumbprint()
        with Session(self._engine, expire_on_commit=False) as db:
            existing = db.scalar(select(Mailbox).where(Mailbox.device_thumbprint == thumbprint))
            if existing is not None:
                # Re-registration (new push token, reinstall): rotate the app token, keep the mailbox.
                existing.token_hash = _token_hash(token)
                existing.push_provider = provider
                existing.push_token = push_token
                existing.push_subscription = subscription
                mailbox_id = existing.id
            else:
                mailbox_id = new_id(12)
                db.add(
                    Mailbox(
                        id=mailbox_id,
                        device_thumbprint=thumbprint,
                        token_hash=_token_hash(token),
                        push_provider=provider,
                        push_token=push_token,
                        push_subscription=subscription,
                    )
                )
            try:
                db.commit()
            except IntegrityError as exc:
                raise OperationError("retry", "Registration raced with another; try again.") from exc
        return {"mailbox": mailbox_id, "token": token}

    def set_push(self, context: ChannelContext, params: dict[str, Any]) -> dict[str, Any]:
        """``mailbox.push``: how the MC wakes this device's app from now on (a new push token, a Web Push
        subscription made after set-up, or ``none``). Unlike registering again, the mailbox's token, which
        ns holds for every account enrolled, stays."""
        provider, push_token, subscription = _push_settings(params)
        with Session(self._engine) as db:
            mailbox = db.scalar(select(Mailbox).where(Mailbox.device_thumbprint == context.peer.thumbprint()))
            if mailbox is None:
                raise OperationError("no_mailbox", "Register with the message center first.")
            mailbox.push_provider = provider
            mailbox.push_token = push_token
            mailbox.push_subscription = subscription
            mailbox_id = mailbox.id
            db.commit()
        return {"mailbox": mailbox_id, "push_provider": provider}

    def vapid_public_key(self) -> str | None:
        """The MC's VAPID public key (base64url, uncompressed P-256 point), which a web app hands the
        browser as ``applicationServerKey`` when it subscribes; None without Web Push."""
        provider = self._providers.get("webpush")
        vapid = getattr(provider, "vapid", None)
        return getattr(vapid, "public_key", None)

    def webpush_key(self, context: ChannelContext, params: dict[str, Any]) -> dict[str, Any]:
        key = self.vapid_public_key()
        if key is None:
            raise OperationError("unavailable", "This message center does not push by Web Push.")
        return {"vapid_public_key": key}

    def fetch(self, context: ChannelContext, params: dict[str, Any]) -> dict[str, Any]:
        with Session(self._engine, expire_on_commit=False) as db:
            mailbox = db.scalar(select(Mailbox).where(Mailbox.device_thumbprint == context.peer.thumbprint()))
            if mailbox is None:
                raise OperationError("no_mailbox", "Register with the message center first.")
            if mailbox.used_at is None:
                mailbox.used_at = now()
            db.execute(delete(MailboxMessage).where(MailboxMessage.expires_at <= now()))
            rows = db.scalars(
                select(MailboxMessage)
                .where(MailboxMessage.mailbox_id == mailbox.id)
                .order_by(MailboxMessage.created_at)
                .limit(50)
            ).all()
            messages = [
                {
                    "id": row.id,
                    "sender": row.sender,
                    "envelope": b64(row.envelope),
                    "created_at": aware(row.created_at).isoformat(),
                }
                for row in rows
            ]
            db.execute(
                update(MailboxMessage)
                .where(MailboxMessage.id.in_([row.id for row in rows]), MailboxMessage.fetched_at.is_(None))
                .values(fetched_at=now())
            )
            db.commit()
        return {"mailbox": mailbox.id, "messages": messages}

    def ack(self, context: ChannelContext, params: dict[str, Any]) -> dict[str, Any]:
        ids = params.get("ids")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids) or len(ids) > 100:
            raise OperationError("bad_request", "ids must be a list of message ids.")
        with Session(self._engine, expire_on_commit=False) as db:
            mailbox = db.scalar(select(Mailbox).where(Mailbox.device_thumbprint == context.peer.thumbprint()))
            if mailbox is None:
                raise OperationError("no_mailbox", "Register with the message center first.")
            result = db.execute(
                delete(MailboxMessage).where(
                    MailboxMessage.mailbox_id == mailbox.id, MailboxMessage.id.in_(ids)
                )
            )
            db.commit()
        return {"deleted": rowcount(result)}

    def purge_unused(self, older_than: timedelta) -> int:
        """Forget mailboxes created more than ``older_than`` ago that no app ever fetched and no ns ever
        wrote to: anyone can open one with a self-made device key, and an unused one serves nobody."""
        unused = (Mailbox.used_at.is_(None), Mailbox.created_at < now() - older_than)
        return delete_in_batches(self._engine, Mailbox.id, unused)

    # -- ns's side (gRPC / REST) -----------------------------------------------------------------------

    def send(
        self, mailbox_id: str, token: str, envelope: bytes, *, sender: str, collapse_id: str, ttl: int
    ) -> SendResult:
        if not envelope or len(envelope) > 16 * 1024:
            raise SendError("bad_request", "envelope must be 1 byte to 16 KiB.", 400)
        if not 0 < ttl <= MAX_TTL:
            ttl = MAX_TTL if ttl > MAX_TTL else 120
        with Session(self._engine, expire_on_commit=False) as db:
            mailbox = db.get(Mailbox, mailbox_id) if len(mailbox_id) <= 32 else None
            # Same answer and same work whether the mailbox is unknown or the token wrong.
            expected = mailbox.token_hash if mailbox is not None else hashlib.sha256(b"").digest()
            if not hmac.compare_digest(expected, _token_hash(token)) or mailbox is None:
                raise SendError("forbidden", "Unknown mailbox or wrong app token.", 403)
            pending = db.scalars(
                select(MailboxMessage.id).where(MailboxMessage.mailbox_id == mailbox.id)
            ).all()
            if len(pending) >= MAX_PENDING:
                raise SendError("mailbox_full", "The app has not collected its messages; try later.", 429)
            message_id = new_id(12)
            db.add(
                MailboxMessage(
                    id=message_id,
                    mailbox_id=mailbox.id,
                    sender=sender[:64],
                    envelope=envelope,
                    expires_at=now() + timedelta(seconds=ttl),
                )
            )
            if mailbox.used_at is None:
                mailbox.used_at = now()
            db.commit()
            provider_name = mailbox.push_provider
            push_token = mailbox.push_subscription if provider_name == "webpush" else mailbox.push_token
        pushed = False
        provider = self._providers.get(provider_name)
        if provider is not None and push_token:
            result = provider.send(
                PushMessage(
                    device_token=push_token,
                    collapse_id=collapse_id[:64] or None,
                    data={"mailbox": mailbox_id, "message": message_id},
                    ttl_seconds=ttl,
                )
            )
            pushed = result.delivered
            count_push(provider_name, pushed)
            if result.token_invalid:
                log.info("push token of mailbox %s is no longer valid; the app will pull", mailbox_id)
                self._forget_push_token(mailbox_id, provider_name, push_token)
        return SendResult(message_id, pushed)

    def _forget_push_token(self, mailbox_id: str, provider: str, token: str) -> None:
        """Stop pushing to a token the push service disowned (RFC 8030's 404/410, FCM's UNREGISTERED, APNs's
        Unregistered). Only if it is still the mailbox's token: the app may have registered a new one since,
        and that one must not be forgotten. The messages stay for the app's next pull."""
        stored = Mailbox.push_subscription if provider == "webpush" else Mailbox.push_token
        with Session(self._engine) as db:
            db.execute(
                update(Mailbox)
                .where(Mailbox.id == mailbox_id, Mailbox.push_provider == provider, stored == token)
                .values(push_provider="none", push_token=None, push_subscription=None)
            )
            db.commit()
