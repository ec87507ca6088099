"""Push login: ns asks an account's app to approve a login, through the app's Message Center.

ns never pushes to a user named by unauthenticated input: an application may provoke a login on a
session only for the account that already logged in on it (``canprovoke``), or, with the ``users`` role,
for a user it has authenticated by other means. The pushed request is an end-to-end encrypted, ns-signed
envelope; the MC only stores and forwards it. Against push fatigue the page shows a two-digit number and
the app offers three: approving needs the person to pick the one the page shows, and one wrong pick ends
the request.
"""

import hashlib
import logging
import os
import secrets
import time
from typing import Any

from cryptography.hazmat.primitives.asymmetric import x25519
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session as DbSession

from authserver.ns.common import b64
from authserver.ns.errors import ServiceError
from authserver.ns.flowstate import LoginItem
from authserver.ns.login import LoginService
from authserver.ns.mc_client import DeliveryError, MessageCenterClient
from authserver.ns.servers import VirtualServer
from authserver.storage.flow_models import Account, User
from nextauth_core import envelope, userids
from nextauth_core.hsid import hsid_for

log = logging.getLogger("nextauth.ns.push")
PUSH_TTL = 120.0
_READ = object()  # can_provoke's default: read the session's latest login row itself


class PushLoginService:
    def __init__(
        self, engine: Engine, login: LoginService, message_centers: dict[str, MessageCenterClient]
    ) -> None:
        self._engine = engine
        self._login = login
        self._centers = message_centers

    def can_provoke(self, server_id: str, hsid: str, *, current: Any = _READ) -> bool:
        """Whether a push can reach the account that last logged in on this session; ``current``: that
        session's latest login row if the caller has read it already (``LoginService.current_row``)."""
        return self._previous_account(server_id, hsid, current) is not None

    def _previous_account(self, server_id: str, hsid: str, current: Any = _READ) -> Account | None:
        """The account that last logged in on this session, if a push can reach it."""
        session = self._login.current_row(server_id, hsid) if current is _READ else current
        if session is None:
            return None
        with DbSession(self._engine, expire_on_commit=False) as db:
            account = db.get(Account, session.account_id)
        if account is None or not account.active or account.blocked or account.mc_mailbox is None:
            return None
        if account.encryption_key is None or (account.mc_key_hash or "") not in self._centers:
            return None
        return account

    def provoke_session(
        self,
        server: VirtualServer,
        hsid: str,
        browser: dict[str, str],
        context: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        account = self._previous_account(server.id, hsid)
        if account is None:
            raise ServiceError(
                409, "cannot_provoke", "No account has logged in on this session with push enabled."
            )
        number = self._push(server, account, hsid, browser, context=context)
        return {"pushed": True, "number": number, "hsid": hsid}

    def provoke_user(
        self,
        server: VirtualServer,
        user_id: str,
        nonce: str,
        browser: dict[str, str],
        *,
        context: dict[str, str] | None = None,
        number: int | None = None,
    ) -> dict[str, Any]:
        """``number``: the application may fix the number itself when it must show it before the push is
        sent (OIDC CIBA answers the client at once, whether or not the user exists)."""
        hsid = hsid_for(nonce)
        try:
            user_id = userids.normalise(user_id)
        except userids.UserIdError:
            user_id = ""  # no user has an id outside the rule: the lookup below finds no account
        with DbSession(self._engine, expire_on_commit=False) as db:
            accounts = list(
                db.scalars(
                    select(Account)
                    .join(User, Account.user_pk == User.id)
                    .where(
                        User.server_id == server.id,
                        User.user_id == user_id,
                        Account.active.is_(True),
                        Account.blocked.is_(False),
                        Account.mc_mailbox.is_not(None),
                    )
                )
            )
        if not accounts:
            raise ServiceError(404, "no_accounts", "This user has no account that can receive a push.")
        # One number for the whole request: whichever phone the person picks up shows the same choice.
        number = number if number is not None else secrets.randbelow(90) + 10
        delivered = 0
        for account in accounts:
            try:
                self._push(server, account, hsid, browser, number=number, context=context)
                delivered += 1
            except ServiceError:
                log.warning("push to account %s failed", account.id)
        if not delivered:
            raise ServiceError(502, "undeliverable", "The message center could not be reached; try again.")
        return {"pushed": True, "number": number, "hsid": hsid, "accounts": delivered}

    def _push(
        self,
        server: VirtualServer,
        account: Account,
        hsid: str,
        browser: dict[str, str],
        *,
        number: int | None = None,
        context: dict[str, str] | None = None,
    ) -> int:
        client = self._centers.get(account.mc_key_hash or "")
        if client is None or account.encryption_key is None or not account.mc_token:
            raise ServiceError(
                409, "cannot_provoke", "This account's app uses a message center this server does not trust."
            )
        number = number if number is not None else secrets.randbelow(90) + 10
        decoys: set[int] = set()
        while len(decoys) < 2:
            candidate = secrets.randbelow(90) + 10
            if candidate != number:
                decoys.add(candidate)
        choices = [number, *decoys]
        secrets.SystemRandom().shuffle(choices)
        push_id = b64(os.urandom(16))
        challenge = os.urandom(32)
        entry = LoginItem(
            server_id=server.id,
            hsid=hsid,
            challenge_hash=hashlib.sha256(challenge).hexdigest(),
            browser=browser,
            created=time.time(),
            account_id=account.id,
            number=number,
            method="push",
            context=context,
        )
        self._login.store_login_item(push_id, entry, PUSH_TTL)
        sealed = envelope.seal(
            x25519.X25519PublicKey.from_public_bytes(account.encryption_key),
            server.identity_key,
            server.identity.key_hash,
            account.mc_mailbox or "",
            {
                "type": "login",
                "push": push_id,
                "challenge": b64(challenge),
                "server_id": server.id,
                "server_name": server.name,
                "requester": browser,
                "numbers": choices,
                **({"context": context} if context else {}),
            },
            ttl=int(PUSH_TTL),
        )
        try:
            self._centers[account.mc_key_hash or ""].send(
                account.mc_mailbox or "",
                account.mc_token,
                sealed,
                sender=server.key_hash,
                collapse_id=f"login-{hsid[:16]}",
                ttl=int(PUSH_TTL),
            )
        except DeliveryError as exc:
            raise ServiceError(502, "undeliverable", f"The push could not be delivered ({exc}).") from exc
        self._login.events.publish(hsid, "CONFIRMPROVOKE")
        return number
