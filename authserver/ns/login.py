"""QR login: the application's session, its QR code, the app's scan and confirmation, the browser's news.

State lives in two places. What is pending (the current QR of a session, who scanned it) is short-lived
and shared through the key-value store (Redis with several ns instances), each QR consumed once with an
atomic take. What is established (the logged-in session) goes to the database. The browser hears about
every step through pub/sub on ``browser:<hsid>``, whichever ns instance it is connected to.
"""

import hashlib
import hmac
import json
import logging
import os
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol, cast

from sqlalchemy import Engine, Row, Table, bindparam, insert, select, text, update
from sqlalchemy.orm import Session as DbSession

from authserver.audit import AuditTrail
from authserver.audit.trail import INSERT_EVENT
from authserver.metrics import count_login
from authserver.ns import browser_hub
from authserver.ns.common import account_for, aware, b64, new_id, now, unb64
from authserver.ns.flowstate import CurrentQR, LoginAccount, LoginItem, PendingLogin
from authserver.ns.servers import ServerRegistry, VirtualServer
from authserver.operations import ChannelContext, OperationError
from authserver.outage import UNAVAILABLE, OutageLog
from authserver.storage import db as database
from authserver.storage.db import rowcount
from authserver.storage.flow_models import Account, Session, User
from authserver.storage.hot import HotStatement
from authserver.storage.kv import KeyValueStore
from authserver.storage.models import UTCDateTime
from nextauth_core import attestation
from nextauth_core.hsid import hsid_for
from nextauth_core.qr import QRPayload
from nextauth_core.statements import LOGIN_EXPORTER, login_statement
from sigmai import ProtocolError

QR_CHALLENGE_BYTES = 32
# How long a session's login context and the news that its last request was refused are kept: longer than
# a push (120 s) or a QR (60 s) lives, so a page or a poller asking afterwards still learns the outcome.
CONTEXT_TTL = 600.0
# A status call hands out a new QR once the shown one has less than this to live (see renew_before).
RENEW_BEFORE = 15.0

security_log = logging.getLogger("nextauth.security")

# The login's hot path runs these Core statements, built once: no ORM unit of work, no per-call
# statement building; SQLAlchemy's compiled cache hands back their SQL.
_SESSIONS = cast(Table, Session.__table__)
_ACCOUNTS = cast(Table, Account.__table__)
_USERS = cast(Table, User.__table__)
_CURRENT_ROW = HotStatement(
    select(
        _SESSIONS.c.id,
        _SESSIONS.c.user_id,
        _SESSIONS.c.account_id,
        _SESSIONS.c.method,
        _SESSIONS.c.second_factor,
        _SESSIONS.c.created_at,
        _SESSIONS.c.expires_at,
        _SESSIONS.c.ended_at,
    )
    .where(_SESSIONS.c.hsid == bindparam("hsid"), _SESSIONS.c.server_id == bindparam("server_id"))
    .order_by(_SESSIONS.c.created_at.desc())
    .limit(1)
)
_LOGIN_ACCOUNT = HotStatement(
    select(
        _ACCOUNTS.c.id,
        _ACCOUNTS.c.thumbprint,
        _ACCOUNTS.c.sfs_key_hash,
        _ACCOUNTS.c.sfs_device,
        _ACCOUNTS.c.last_login_at,
        _ACCOUNTS.c.active,
        _ACCOUNTS.c.blocked,
        _USERS.c.user_id,
    )
    .select_from(_ACCOUNTS.outerjoin(_USERS, _USERS.c.id == _ACCOUNTS.c.user_pk))
    .where(_ACCOUNTS.c.server_id == bindparam("server_id"), _ACCOUNTS.c.thumbprint == bindparam("thumbprint"))
)
# The session is recorded only if the account may still log in: blocked or removed since the scan, it
# matches no row and the login is refused, in the same transaction (no read-then-write window).
_STAMP_ACCOUNT = HotStatement(
    update(_ACCOUNTS)
    .where(
        _ACCOUNTS.c.id == bindparam("account_id"),
        _ACCOUNTS.c.active.is_(True),
        _ACCOUNTS.c.blocked.is_(False),
    )
    .values(last_login_at=bindparam("now"))
)
_REPLACE_SESSIONS = HotStatement(
    update(_SESSIONS)
    .where(
        _SESSIONS.c.hsid == bindparam("this_hsid"),
        _SESSIONS.c.server_id == bindparam("this_server"),
        _SESSIONS.c.ended_at.is_(None),
    )
    .values(ended_at=bindparam("now"), ended_by="replaced")
)
_NEW_SESSION = HotStatement(insert(_SESSIONS))
# The same three as one statement, on PostgreSQL (data-modifying CTEs): one round trip instead of five
# (BEGIN, three statements, COMMIT), atomic as a statement is. Nothing happens unless the account was
# stamped; the earlier login is ended and the new one inserted from the same snapshot, so the UPDATE
# never sees the row the INSERT adds.
_RECORD_LOGIN_POSTGRES = HotStatement(
    text(
        """
    WITH stamped AS (
        UPDATE ns_accounts SET last_login_at = :now
        WHERE id = :account_id AND active IS TRUE AND blocked IS FALSE
        RETURNING id
    ), replaced AS (
        UPDATE ns_sessions SET ended_at = :now, ended_by = 'replaced'
        WHERE hsid = :hsid AND server_id = :server_id AND ended_at IS NULL
          AND EXISTS (SELECT 1 FROM stamped)
    ), audited AS (
        INSERT INTO audit_events
            (event_id, time, type, component, source, server_id, subject, actor, outcome, data)
        SELECT :event_event_id, :event_time, :event_type, :event_component, :event_source,
            :event_server_id, :event_subject, :event_actor, :event_outcome, :event_data
        FROM stamped
    )
    INSERT INTO ns_sessions
        (id, hsid, server_id, account_id, user_id, method, second_factor, created_at, expires_at)
    SELECT :id, :hsid, :server_id, stamped.id, :user_id, :method, :second_factor, :now, :expires_at
    FROM stamped
    """
    ).bindparams(
        bindparam("now", type_=UTCDateTime()),
        bindparam("expires_at", type_=UTCDateTime()),
        bindparam("event_time", type_=UTCDateTime()),
    )
)


class BoundAccount(Protocol):
    """What an attestation check needs of an account (an ``Account`` row or a ``LoginAccount``)."""

    @property
    def id(self) -> str: ...
    @property
    def thumbprint(self) -> str: ...
    @property
    def sfs_key_hash(self) -> str: ...
    @property
    def sfs_device(self) -> str | None: ...


CANCEL_REASONS = ("declined", "locked", "wrong_pin")
# Refusals the login page explains on their own: the phone must be enrolled (again), retrying is useless.
BINDING_REFUSALS = ("second_factor_device_mismatch", "reenrol_required")


@dataclass(frozen=True)
class SessionView:
    """What an application sees of its session (the original product's field names)."""

    loggedin: bool
    hsid: str
    userid: str | None = None
    accountid: str | None = None
    canprovoke: bool = False
    loginqrdata: str | None = None
    # Seconds the QR above lives on, and seconds until a status call hands out a new one (a page renews then,
    # so it never shows a dead code).
    loginqrexpires_in: float | None = None
    loginqrrenew_in: float | None = None
    method: str | None = None
    second_factor: str | None = None
    cancelled: str | None = None  # the last login request on this session was refused on the phone: why

    def as_json(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items() if value is not None}


_publish_failures = OutageLog(logging.getLogger("nextauth.ns.browser"), "browser events (publish)")


class BrowserEvents:
    """Messages for login pages: published here, delivered by whichever ns holds the page's WebSocket."""

    def __init__(self, kv: KeyValueStore) -> None:
        self._kv = kv

    def publish(self, hsid: str, event: str) -> None:
        # One channel for every session: each ns holds a single subscription however many pages wait.
        try:
            self._kv.publish(browser_hub.CHANNEL, browser_hub.encode(hsid, event))
        except UNAVAILABLE as exc:
            # What happened is already stored; a store that cannot publish has also cut the pages' hub
            # off, which catches its pages up (LOGIN) once it is back. Failing the login here would
            # tell the phone "failed" about a login that took place.
            _publish_failures.failed(exc)


class LoginService:
    def __init__(
        self,
        engine: Engine,
        kv: KeyValueStore,
        servers: ServerRegistry,
        trusted_sfs: attestation.TrustedKeys,
        sigmai_uri: str,
        *,
        qr_ttl: float = 60.0,
        session_ttl: float = 8 * 3600.0,
        audit: AuditTrail | None = None,
    ) -> None:
        self._engine = engine
        self._kv = kv
        self._servers = servers
        self._trusted_sfs = trusted_sfs
        self._sigmai_uri = sigmai_uri
        self._qr_ttl = qr_ttl
        self._session_ttl = session_ttl
        self.events = BrowserEvents(kv)
        self.audit = audit if audit is not None else AuditTrail(engine, "ns")

    # -- the application's side (REST) -----------------------------------------------------------------

    def status(self, server: VirtualServer, nonce: str, browser: dict[str, str]) -> SessionView:
        return self.status_and_row(server, nonce, browser)[0]

    def status_and_row(
        self, server: VirtualServer, nonce: str, browser: dict[str, str]
    ) -> tuple[SessionView, Row[Any] | None]:
        """``status``, and the session's latest login row it was made from (for ``can_provoke``)."""
        hsid = hsid_for(nonce)
        row = self.current_row(server.id, hsid)
        established = _active(row)
        if established is not None:
            view = SessionView(
                loggedin=True,
                hsid=hsid,
                userid=established["user_id"],
                accountid=established["account_id"],
                method=established["method"],
                second_factor=established["second_factor"],
            )
            return view, row
        # Both in one round trip: whether the last request was refused, and the QR shown now.
        cancelled, raw = self._kv.get_many([_cancelled_key(server.id, hsid), f"login:{hsid}"])
        shown = self._current_qr(server, hsid, browser, raw)
        left = max(0.0, shown.expires - time.time())
        view = SessionView(
            loggedin=False,
            hsid=hsid,
            loginqrdata=shown.payload,
            loginqrexpires_in=round(left, 1),
            loginqrrenew_in=round(max(0.0, left - self.renew_before), 1),
            cancelled=cancelled.decode("ascii") if cancelled is not None else None,
        )
        return view, row

    @property
    def renew_before(self) -> float:
        """A status call hands out a new QR once the shown one has less than this to live: enough for a
        scan that starts now to reach ns in time. A quarter of the lifetime when codes are short-lived."""
        return min(RENEW_BEFORE, self._qr_ttl / 4)

    def set_context(self, server_id: str, hsid: str, context: dict[str, str] | None) -> None:
        """What the phone shows of who asks, for every login request on this session from now on."""
        key = _context_key(server_id, hsid)
        if context:
            self._kv.set(key, json.dumps(context).encode(), ttl=CONTEXT_TTL)
        else:
            self._kv.delete(key)

    def context(self, server_id: str, hsid: str) -> dict[str, str] | None:
        raw = self._kv.get(_context_key(server_id, hsid))
        return json.loads(raw) if raw is not None else None

    def mark_cancelled(self, server_id: str, hsid: str, reason: str) -> None:
        """The page hears CANCEL; an application polling the REST status (OIDC CIBA) reads it there."""
        self._kv.set(_cancelled_key(server_id, hsid), reason.encode("ascii"), ttl=CONTEXT_TTL)
        self.events.publish(hsid, f"CANCEL {reason}")

    def active_session(self, server_id: str, hsid: str) -> dict[str, Any] | None:
        return _active(self.current_row(server_id, hsid))

    def active_hsids(self, server_id: str, hsids: list[str]) -> set[str]:
        """Which of these application sessions are logged in, in one query."""
        with DbSession(self._engine) as db:
            return set(
                db.scalars(
                    select(Session.hsid).where(
                        Session.server_id == server_id,
                        Session.hsid.in_(hsids),
                        Session.ended_at.is_(None),
                        Session.expires_at > now(),
                    )
                )
            )

    def user_sessions(self, server_id: str, user_id: str) -> list[dict[str, Any]]:
        """The logged-in sessions of one user of this server."""
        with DbSession(self._engine, expire_on_commit=False) as db:
            rows = db.scalars(
                select(Session).where(
                    Session.server_id == server_id,
                    Session.user_id == user_id,
                    Session.ended_at.is_(None),
                    Session.expires_at > now(),
                )
            )
            return [
                {
                    "hsid": row.hsid,
                    "accountid": row.account_id,
                    "method": row.method,
                    "second_factor": row.second_factor,
                    "created_at": row.created_at.isoformat(),
                }
                for row in rows
            ]

    def current_row(self, server_id: str, hsid: str) -> Any:
        """The latest login on this application session, ended or not (the columns of ``_CURRENT_ROW``,
        by name), or None."""
        parameters = {"hsid": hsid, "server_id": server_id}
        return database.read_first(self._engine, _CURRENT_ROW, parameters)

    def logout(self, server_id: str, hsid: str, ended_by: str) -> bool:
        with DbSession(self._engine, expire_on_commit=False) as db:
            ending = list(
                db.execute(
                    select(Session.id, Session.account_id, Session.user_id).where(
                        Session.hsid == hsid, Session.server_id == server_id, Session.ended_at.is_(None)
                    )
                )
            )
            result = db.execute(
                update(Session)
                .where(Session.hsid == hsid, Session.server_id == server_id, Session.ended_at.is_(None))
                .values(ended_at=now(), ended_by=ended_by)
            )
            db.commit()
        if rowcount(result):
            self.events.publish(hsid, "LOGOUT")
            for _, account_id, user_id in ending:
                self.audit.record(
                    "session.ended",
                    subject=user_id,
                    server_id=server_id,
                    actor=ended_by,
                    data={"account": account_id, "session": hsid, "ended_by": ended_by},
                )
        return bool(rowcount(result))

    def record_login_failed(
        self, server_id: str, hsid: str | None, reason: str, *, account_id: str | None = None
    ) -> None:
        """The audit event of a refused login, naming the user when the account is known."""
        user_id = None
        if account_id is not None:
            with DbSession(self._engine) as db:
                user_id = db.scalar(
                    select(User.user_id)
                    .join(Account, Account.user_pk == User.id)
                    .where(Account.id == account_id)
                )
        self.audit.record(
            "login.failed",
            subject=user_id,
            server_id=server_id,
            actor="phone",
            data={"account": account_id, "session": hsid, "reason": reason},
        )

    def _current_qr(
        self, server: VirtualServer, hsid: str, browser: dict[str, str], raw: bytes | None
    ) -> CurrentQR:
        """One live QR per session; a fresh one once the old is used or has under ``renew_before`` to live.
        ``raw``: what the store holds under ``login:<hsid>``, which goes with the QR's item: both are written
        together with the same lifetime, and whoever takes a QR's item deletes it (``login_start``)."""
        if raw is not None:
            shown = CurrentQR.from_json(raw)
            if shown.expires - time.time() > self.renew_before:
                return shown
        qr_id = b64(os.urandom(16))
        challenge = os.urandom(QR_CHALLENGE_BYTES)
        payload = QRPayload(
            kind="login",
            server_id=server.id,
            sigmai_uri=self._sigmai_uri,
            server_key_hash=server.identity.key_hash,
            item_id=qr_id,
            secret=challenge,
            server_name=server.name,
        ).encode()
        entry = LoginItem(
            server_id=server.id,
            hsid=hsid,
            challenge_hash=hashlib.sha256(challenge).hexdigest(),
            browser=browser,
            created=time.time(),
        )
        current = CurrentQR(qr_id=qr_id, payload=payload, expires=time.time() + self._qr_ttl)
        batch = self._kv.batch()  # one round trip for the three
        batch.set(_item_key(qr_id), entry.to_json(), ttl=self._qr_ttl)
        # Outlives the code: a late scan of it is told to its page (see login_start), not only to the phone.
        batch.set(
            _expired_key(qr_id),
            f"{hsid} {entry.challenge_hash}".encode("ascii"),
            ttl=self._qr_ttl + CONTEXT_TTL,
        )
        batch.set(f"login:{hsid}", current.to_json(), ttl=self._qr_ttl)
        batch.execute()
        return current

    def _tell_page_code_expired(self, qr_id: str, challenge: bytes) -> None:
        """A scan of a QR that lived out its time untaken: its page says so (the phone hears it too).
        Only a scan carrying the code's own secret counts, so nobody else can put the message up."""
        marker = self._kv.take(_expired_key(qr_id))
        if marker is None:
            return
        hsid, _, challenge_hash = marker.decode("ascii").partition(" ")
        if hmac.compare_digest(challenge_hash, hashlib.sha256(challenge).hexdigest()):
            self.events.publish(hsid, "CANCEL expired")

    def store_login_item(self, item_id: str, entry: LoginItem, ttl: float) -> None:
        """A login request an app may take once: a QR shown to anyone, or a push bound to one account."""
        self._kv.set(_item_key(item_id), entry.to_json(), ttl=ttl)

    # -- the app's side (sigmai operations) ------------------------------------------------------------

    def login_start(self, context: ChannelContext, params: dict[str, Any]) -> dict[str, Any]:
        server = self._servers.for_channel(context.server_key_hash)
        qr_id = params.get("qr_id")
        if not isinstance(qr_id, str) or len(qr_id) > 64:
            raise OperationError("bad_request", "qr_id is required.")
        challenge = unb64(params.get("challenge"), "challenge", min_length=16, max_length=64)
        try:
            account = self._login_account(server.id, context.peer.thumbprint())
        except OperationError as exc:
            if exc.code == "blocked":  # tell the page why nothing happens (the code stays usable)
                peeked = self._kv.get(_item_key(qr_id))
                if peeked is not None:  # a live code: a login was under way
                    blocked = LoginItem.from_json(peeked)
                    self.events.publish(blocked.hsid, "CANCEL blocked")
                    count_login(blocked.method, "locked")
                    self.record_login_failed(
                        server.id,
                        blocked.hsid,
                        "blocked",
                        account_id=_account_id(self._engine, server.id, context),
                    )
            raise
        raw = self._kv.take(_item_key(qr_id))  # single use: a second scan finds nothing
        if raw is None:
            count_login(None, "expired")  # the code is gone, and with it whether it was a QR or a push
            self.record_login_failed(server.id, None, "expired", account_id=account.id)
            self._tell_page_code_expired(qr_id, challenge)
            raise OperationError("expired", "This code has expired or was already used. Scan a new one.")
        entry = LoginItem.from_json(raw)
        # A QR taken is a QR used: its page's status hands out a new one from now on (see _current_qr).
        shown_qr = [f"login:{entry.hsid}"] if entry.method == "qr" else []
        try:
            self._check_taken(entry, server, account, challenge)
        except OperationError:
            # Taken: a later scan of it is a replay, not a slow scan.
            batch = self._kv.batch()
            batch.delete(_expired_key(qr_id), *shown_qr)
            batch.execute()
            raise
        ns_challenge = os.urandom(32)
        needs_second_factor = self._needs_second_factor(server, account)
        context.state["login"] = PendingLogin(
            server_id=server.id,
            hsid=entry.hsid,
            qr_id=qr_id,
            challenge=challenge,
            ns_challenge=ns_challenge,
            account_id=account.id,
            needs_second_factor=needs_second_factor,
            started=time.monotonic(),
            method=entry.method,
            number=entry.number,
            account=account,
        )
        batch = self._kv.batch()  # one round trip for all
        # Taken: a later scan of it is a replay, not a slow scan. A new attempt: an old refusal is history.
        batch.delete(_expired_key(qr_id), _cancelled_key(server.id, entry.hsid), *shown_qr)
        batch.publish(browser_hub.CHANNEL, browser_hub.encode(entry.hsid, "CONFIRMSCAN"))
        if entry.context is None:  # who asks and why, as the application set it on the session
            batch.get(_context_key(server.id, entry.hsid))
        read = batch.execute()
        shown = entry.context or (json.loads(read[0]) if read and read[0] is not None else None)
        started = {
            "server": server.public(),
            "requester": entry.browser,
            "requested_at": int(entry.created),
            "audience": server.id,
            "ns_challenge": b64(ns_challenge),
            "second_factor": "required" if needs_second_factor else "not_required",
        }
        if shown:
            started["context"] = shown
        return started

    def _check_taken(
        self, entry: LoginItem, server: VirtualServer, account: LoginAccount, challenge: bytes
    ) -> None:
        """The taken code is this server's, the scan carries its secret, and it is for this account."""
        if entry.server_id != server.id:
            count_login(entry.method, "error")
            raise OperationError("wrong_server", "This code belongs to another service.")
        if not hmac.compare_digest(entry.challenge_hash, hashlib.sha256(challenge).hexdigest()):
            count_login(entry.method, "expired")
            self.record_login_failed(server.id, entry.hsid, "expired", account_id=account.id)
            raise OperationError("expired", "This code has expired or was already used. Scan a new one.")
        if entry.account_id not in (None, account.id):
            count_login(entry.method, "expired")
            raise OperationError("expired", "This request was meant for another account.")

    def login_finish(self, context: ChannelContext, params: dict[str, Any]) -> dict[str, Any]:
        pending: PendingLogin | None = context.state.pop("login", None)  # one confirmation per scan
        if pending is None:
            raise OperationError("no_login", "Scan the code first.")
        try:
            answer = self._finish(context, params, pending)
        except OperationError as exc:
            count_login(pending.method, "expired" if exc.code == "expired" else "error", pending.started)
            raise
        except Exception:
            count_login(pending.method, "error", pending.started)
            raise
        count_login(pending.method, "succeeded", pending.started)
        return answer

    def _finish(
        self, context: ChannelContext, params: dict[str, Any], pending: PendingLogin
    ) -> dict[str, Any]:
        if time.monotonic() - pending.started > self._qr_ttl * 2:
            self.record_login_failed(
                pending.server_id, pending.hsid, "timeout", account_id=pending.account_id
            )
            raise OperationError("expired", "The login took too long. Scan a new code.")
        signature = unb64(params.get("signature"), "signature", min_length=64, max_length=64)
        statement = login_statement(
            pending.qr_id,
            pending.challenge,
            pending.ns_challenge,
            context.export(LOGIN_EXPORTER, b"", 32),
        )
        try:
            context.peer.verify(signature, statement)
        except ProtocolError as exc:
            self.record_login_failed(
                pending.server_id, pending.hsid, "bad_signature", account_id=pending.account_id
            )
            raise OperationError(
                "bad_signature", "The login confirmation is not signed by this account."
            ) from exc
        account_id = pending.account_id
        if pending.number is not None and params.get("number") != pending.number:
            self.mark_cancelled(pending.server_id, pending.hsid, "wrong_number")
            self.record_login_failed(pending.server_id, pending.hsid, "wrong_number", account_id=account_id)
            raise OperationError(
                "wrong_number", "That is not the number the login page shows. Login refused."
            )
        account = pending.account
        if account is None or account.thumbprint != context.peer.thumbprint():
            raise OperationError("no_login", "Scan the code first.")
        factor = "none"
        if pending.needs_second_factor or params.get("attestation"):
            try:
                factor = self.check_attestation(
                    params.get("attestation"), account, pending.server_id, pending.ns_challenge, "login"
                ).method
            except OperationError as exc:
                reason = exc.code if exc.code in BINDING_REFUSALS else "second_factor"
                self.mark_cancelled(pending.server_id, pending.hsid, reason)
                self.record_login_failed(pending.server_id, pending.hsid, reason, account_id=account_id)
                raise
        self._establish(pending.server_id, pending.hsid, account, method=pending.method, factor=factor)
        return {"logged_in": True, "session": pending.hsid}

    def login_cancel(self, context: ChannelContext, params: dict[str, Any]) -> dict[str, Any]:
        pending: PendingLogin | None = context.state.pop("login", None)
        if pending is None:
            raise OperationError("no_login", "Nothing to cancel.")
        # Why, for the page: the person declined, or the app could not check the PIN (locked after too
        # many wrong ones, or wrong). Anything else reads as declined.
        reason = params.get("reason")
        if reason not in CANCEL_REASONS:
            reason = "declined"
        self.mark_cancelled(pending.server_id, pending.hsid, reason)
        count_login(pending.method, reason, pending.started)
        self.record_login_failed(pending.server_id, pending.hsid, reason, account_id=pending.account_id)
        return {"cancelled": True}

    def logout_from_phone(self, context: ChannelContext, params: dict[str, Any]) -> dict[str, Any]:
        server = self._servers.for_channel(context.server_key_hash)
        account = account_for(self._engine, server.id, context.peer.thumbprint())
        wanted = params.get("session")
        with DbSession(self._engine, expire_on_commit=False) as db:
            query = select(Session.hsid).where(Session.account_id == account.id, Session.ended_at.is_(None))
            if isinstance(wanted, str):
                query = query.where(Session.hsid == wanted)
            ids = list(db.scalars(query))
        ended = [hsid for hsid in ids if self.logout(server.id, hsid, "phone")]
        return {"ended": len(ended)}

    # -- shared checks ---------------------------------------------------------------------------------

    def check_attestation(
        self, token: Any, account: BoundAccount, server_id: str, ns_challenge: bytes, purpose: str
    ) -> attestation.Attestation:
        """The SFS's word that the second factor was checked, for this account, by the app instance the
        account is bound to. At enrolment (``purpose == "enrol"``) the binding does not exist yet: the
        caller records ``device`` of the answer."""
        if purpose != "enrol" and account.sfs_device is None:
            # Enrolled before accounts were bound to an app instance: trusting whichever instance
            # attests first would hand the account to anyone holding a copy of its key.
            _log_refused(account, server_id, purpose, "the account is bound to no app instance")
            raise OperationError(
                "reenrol_required",
                "This account was enrolled before second factors were bound to the app: "
                "enrol this phone again.",
            )
        if not isinstance(token, str) or len(token) > 4096:
            raise OperationError("second_factor_required", "Confirm with your PIN or biometric.")
        trusted = (
            {account.sfs_key_hash: self._trusted_sfs[account.sfs_key_hash]}
            if (account.sfs_key_hash in self._trusted_sfs)
            else {}
        )
        try:
            checked = attestation.verify(
                token,
                trusted,
                audience=server_id,
                nonce=attestation.nonce_for(ns_challenge),
                purpose=purpose,
                account_thumbprint=account.thumbprint,
                device=None if purpose == "enrol" else account.sfs_device,
            )
        except attestation.DeviceMismatch as exc:
            _log_refused(account, server_id, purpose, "another app instance vouched")
            raise OperationError(
                "second_factor_device_mismatch",
                "The PIN or biometric was checked by another installation of the app than the one this "
                "account was enrolled with. Use that phone, or enrol this one.",
            ) from exc
        except attestation.AttestationError as exc:
            _log_refused(account, server_id, purpose, str(exc))
            raise OperationError("attestation_refused", f"Second factor not accepted: {exc}.") from exc
        if not self._kv.set_if_absent(f"jti:{checked.issuer}:{checked.token_id}", b"1", ttl=300):
            _log_refused(account, server_id, purpose, "it was used before")
            raise OperationError("attestation_refused", "Second factor not accepted: it was used before.")
        return checked

    def _needs_second_factor(self, server: VirtualServer, account: LoginAccount) -> bool:
        policy = server.login_pin_timeout
        if policy < 0:
            return False
        if policy == 0 or account.last_login_at is None:
            return True
        return now() - aware(account.last_login_at) > timedelta(seconds=policy)

    def _login_account(self, server_id: str, thumbprint: str) -> LoginAccount:
        """The account of this device key at this server with its user, in one read; refused like
        ``account_for`` when unknown, not confirmed or blocked."""
        parameters = {"server_id": server_id, "thumbprint": thumbprint}
        row = database.read_first(self._engine, _LOGIN_ACCOUNT, parameters)
        if row is None or not row.active:
            raise OperationError("unknown_account", "This app has no account at this server; enrol first.")
        if row.blocked:
            raise OperationError("blocked", "This account is blocked. Contact the service's support.")
        return LoginAccount(
            id=row.id,
            thumbprint=row.thumbprint,
            sfs_key_hash=row.sfs_key_hash,
            sfs_device=row.sfs_device,
            last_login_at=row.last_login_at,
            user_id=row.user_id,
        )

    def _establish(
        self, server_id: str, hsid: str, account: LoginAccount, *, method: str, factor: str
    ) -> None:
        """Record the session in one transaction: the account stamped (and so shown to be still allowed),
        an earlier login on this session ended, the new one inserted with its audit event (neither is
        ever there without the other)."""
        event = self.audit.event(
            "login.succeeded",
            subject=account.user_id,
            server_id=server_id,
            actor="phone",
            data={"account": account.id, "session": hsid, "method": method, "second_factor": factor},
        )
        moment = now()
        new = {
            "id": new_id(),
            "hsid": hsid,
            "server_id": server_id,
            "account_id": account.id,
            "user_id": account.user_id,
            "method": method,
            "second_factor": factor,
            "created_at": moment,
            "expires_at": moment + timedelta(seconds=self._session_ttl),
        }

        def record(statements: Any) -> bool:
            stamped = statements.run(_STAMP_ACCOUNT, {"account_id": account.id, "now": moment})
            if stamped.rowcount != 1:
                return False  # nothing written: the commit ends an empty transaction
            statements.run(_REPLACE_SESSIONS, {"this_hsid": hsid, "this_server": server_id, "now": moment})
            statements.run(_NEW_SESSION, new)
            statements.run(INSERT_EVENT, event.row)
            return True

        recorded: bool
        if self._engine.dialect.name == "postgresql":
            parameters = {**new, "now": moment, **{f"event_{key}": value for key, value in event.row.items()}}
            recorded = database.write_one(self._engine, _RECORD_LOGIN_POSTGRES, parameters) == 1
        else:
            recorded = database.hot_transaction(self._engine, record)
        if not recorded:
            # Blocked or removed between the scan and now: say which, as login.start would have.
            self.record_login_failed(server_id, hsid, "blocked", account_id=account.id)
            account_for(self._engine, server_id, account.thumbprint)
            raise OperationError("blocked", "This account is blocked. Contact the service's support.")
        batch = self._kv.batch()  # one round trip for the two
        batch.delete(f"login:{hsid}")
        batch.publish(browser_hub.CHANNEL, browser_hub.encode(hsid, "LOGIN"))
        try:
            batch.execute()
        except UNAVAILABLE as exc:
            # The session is recorded: the login took place, whatever the store says. Its QR entry
            # expires on its own; the pages' hub catches its pages up once the store is back.
            _publish_failures.failed(exc)
        self.audit.announce(event)


def _active(row: Row[Any] | None) -> dict[str, Any] | None:
    """The session of this login row if it is logged in (not ended, not expired)."""
    if row is None or row.ended_at is not None or aware(row.expires_at) <= now():
        return None
    return {
        "session_id": row.id,
        "user_id": row.user_id,
        "account_id": row.account_id,
        "method": row.method,
        "second_factor": row.second_factor,
        "created_at": aware(row.created_at).isoformat(),
        "expires_at": aware(row.expires_at).isoformat(),
    }


def _account_id(engine: Engine, server_id: str, context: ChannelContext) -> str | None:
    with DbSession(engine) as db:
        return db.scalar(
            select(Account.id).where(
                Account.server_id == server_id, Account.thumbprint == context.peer.thumbprint()
            )
        )


def _cancelled_key(server_id: str, hsid: str) -> str:
    return f"login-cancelled:{server_id}:{hsid}"


def _log_refused(account: BoundAccount, server_id: str, purpose: str, reason: str) -> None:
    """A refused attestation, once, at WARNING: a copied account key, a replay or a misconfigured SFS.
    Names the account and the rule, never the token (single use, but still a bearer credential)."""
    security_log.warning(
        "ns: attestation refused for account %s at server %s (%s): %s", account.id, server_id, purpose, reason
    )


def _context_key(server_id: str, hsid: str) -> str:
    return f"login-context:{server_id}:{hsid}"


def _item_key(item_id: str) -> str:
    return f"qr:{item_id}"


def _expired_key(qr_id: str) -> str:
    return f"qr-expired:{qr_id}"
