"""The ns REST API for business applications (version 1): a thin translation from HTTP to the services.

Every answer is JSON (QR images aside); every error is ``{"error": <code>, "message": <sentence>}`` with a
4xx status for what the caller can fix. Nothing here decides security on its own: it authenticates the
caller, checks its role for the server, validates the input shape, and calls a service.
"""

import io
import logging
from collections.abc import Callable
from functools import wraps
from typing import Any

import segno
from flask import Blueprint, Flask, Response, g, jsonify, request
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session as DbSession
from werkzeug.exceptions import HTTPException

from authserver.config import Network
from authserver.ns.access import ROLES, AccessControl
from authserver.ns.common import hsid_for, now, valid_nonce
from authserver.ns.enrolment import EnrolmentError, EnrolmentService
from authserver.ns.login import LoginService
from authserver.ns.push import PushError, PushLoginService
from authserver.ns.servers import ServerRegistry, VirtualServer
from authserver.ns.transactions import TransactionError, TransactionService
from authserver.ratelimit import RateLimited, client_ip
from authserver.storage.flow_models import Account, Session, User
from authserver.transport.json_bodies import bound_json
from authserver.transport.wsgi import CLIENT_CERT_KEY
from nextauth_core import userids
from nextauth_core.qr import QRError, QRPayload

log = logging.getLogger("nextauth.ns.api")


MAX_ACTIVE_QUERY = 500


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _qr_response(data: str, fmt: str) -> Response:
    qr = segno.make(data, error="m")
    out = io.BytesIO()
    if fmt == "svg":
        qr.save(out, kind="svg", scale=6, border=2)
        return Response(out.getvalue(), mimetype="image/svg+xml")
    qr.save(out, kind="png", scale=6, border=2)
    return Response(out.getvalue(), mimetype="image/png")


def make_api(
    engine: Engine,
    servers: ServerRegistry,
    access: AccessControl,
    login: LoginService,
    enrolment: EnrolmentService,
    push: PushLoginService,
    transactions: TransactionService,
    trusted_proxies: tuple[Network, ...] = (),
) -> Flask:
    app = bound_json(Flask("nextauth-ns"))
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    api = Blueprint("v1", __name__, url_prefix="/v1")

    def requires(
        *roles: str, global_operation: bool = False
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """The caller must hold one of ``roles`` for the server in the path (or globally); for a
        ``global_operation``, globally."""

        def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
            @wraps(view)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                api_key = request.headers.get("X-apikey")
                if api_key is not None:
                    grant = access.authenticate_from(api_key, client_address())
                else:
                    grant = access.authenticate_certificate(request.environ.get(CLIENT_CERT_KEY))
                if grant is None:
                    raise ApiError(
                        401,
                        "unauthenticated",
                        "Send a valid API key in X-apikey, or use a client certificate listed here.",
                    )
                for name, value in kwargs.items():
                    # Ids in the path: bounded, printable (PostgreSQL refuses NUL bytes with a 500 otherwise).
                    if len(value) > 1024 or not value.isprintable():
                        if name == "sid":
                            raise ApiError(404, "unknown_server", "No such server.")
                        raise ApiError(404, "not_found", "No such resource.")
                server_id = kwargs.get("sid")
                if not any(
                    grant.allows(role, server_id, global_operation=global_operation) for role in roles
                ):
                    wanted = "' or '".join(roles)
                    if global_operation and grant.server_id is not None:
                        raise ApiError(
                            403,
                            "forbidden",
                            f"This API key is limited to one server; this needs the '{wanted}' role for"
                            " every server.",
                        )
                    raise ApiError(403, "forbidden", f"This API key lacks the '{wanted}' role here.")
                g.grant = grant
                if server_id is not None:
                    server = servers.get(server_id)
                    if server is None:
                        raise ApiError(404, "unknown_server", "No such server.")
                    kwargs["sid"] = server
                return view(*args, **kwargs)

            return wrapper

        return decorator

    def client_address() -> str:
        return client_ip(request.remote_addr, request.headers.get("X-Forwarded-For"), trusted_proxies)

    def body() -> dict[str, Any]:
        data = request.get_json(silent=True)
        if data is None and request.content_length:
            raise ApiError(400, "bad_json", "The request body must be a JSON object.")
        if data is not None and not isinstance(data, dict):
            raise ApiError(400, "bad_json", "The request body must be a JSON object.")
        return data or {}

    def nonce() -> str:
        value = request.headers.get("X-nonce")
        if not valid_nonce(value):
            raise ApiError(
                400,
                "bad_nonce",
                "Send the session's nonce in X-nonce: at least 16 random bytes from a secure random"
                " generator, base64url (22+ characters) or hex (32+ characters) encoded.",
            )
        assert value is not None
        return value

    def browser() -> dict[str, str]:
        """What the application tells us about its visitor, shown on the phone at login."""
        info = {
            "ip": request.headers.get("X-client-ip", "")[:64],
            "user_agent": request.headers.get("X-user-agent", "")[:256],
            "location": request.headers.get("X-client-location", "")[:128],
        }
        return {key: value for key, value in info.items() if value}

    # -- servers ---------------------------------------------------------------------------------------

    @api.post("/servers")
    @requires("createserver", global_operation=True)
    def create_server() -> Any:
        data = body()
        name = data.get("name")
        if not isinstance(name, str) or not 1 <= len(name) <= 200 or not name.isprintable():
            raise ApiError(400, "bad_request", "name must be 1 to 200 printable characters.")
        announce = data.get("announce", {})
        if (
            not isinstance(announce, dict)
            or len(announce) > 20
            or not all(isinstance(v, str) and len(k) <= 64 and len(v) <= 200 for k, v in announce.items())
        ):
            raise ApiError(400, "bad_request", "announce must be at most 20 short lines of text.")
        logo = data.get("logo_url")
        if logo is not None and (
            not isinstance(logo, str)
            or not logo.startswith("https://")
            or len(logo) > 500
            or not logo.isprintable()
        ):
            raise ApiError(400, "bad_request", "logo_url must be an https:// URL of at most 500 characters.")
        return jsonify(servers.create(name, logo_url=logo, announce=announce).public()), 201

    @api.get("/servers")
    @requires("servers", global_operation=True)
    def list_servers() -> Any:
        return jsonify(servers=[server.public() for server in servers.all()])

    @api.get("/servers/<sid>")
    @requires("servers")
    def get_server(sid: VirtualServer) -> Any:
        return jsonify(sid.public())

    # -- sessions --------------------------------------------------------------------------------------

    @api.get("/servers/<sid>/sessions/")
    @requires("sessions")
    def session_status(sid: VirtualServer) -> Any:
        view = login.status(sid, nonce(), browser()).as_json()
        view["canprovoke"] = (not view["loggedin"]) and push.can_provoke(sid.id, view["hsid"])
        return jsonify(view)

    @api.post("/servers/<sid>/sessions/provokelogin")
    @requires("sessions")
    def provoke_session(sid: VirtualServer) -> Any:
        return jsonify(push.provoke_session(sid, hsid_for(nonce()), browser()))

    @api.post("/servers/<sid>/users/<uid>/provokelogin")
    @requires("users")
    def provoke_user(sid: VirtualServer, uid: str) -> Any:
        return jsonify(push.provoke_user(sid, uid, nonce(), browser()))

    @api.get("/servers/<sid>/sessions/qr/login")
    @requires("sessions")
    def login_qr(sid: VirtualServer) -> Any:
        view = login.status(sid, nonce(), browser())
        if view.loggedin:
            raise ApiError(409, "logged_in", "This session is logged in already.")
        assert view.loginqrdata is not None
        fmt = request.args.get("format", "json")
        if fmt in ("png", "svg"):
            return _qr_response(view.loginqrdata, fmt)
        if fmt != "json":
            raise ApiError(400, "bad_request", "format must be json, png or svg.")
        return jsonify(qrdata=view.loginqrdata, hsid=view.hsid)

    @api.post("/servers/<sid>/sessions/active")
    @requires("sessions")
    def sessions_active(sid: VirtualServer) -> Any:
        """Which of these sessions are logged in: one query for an application that watches many (the
        IdP ends its own sessions, and what logged in with them, when ns has ended theirs)."""
        hsids = body().get("hsids")
        if (
            not isinstance(hsids, list)
            or len(hsids) > MAX_ACTIVE_QUERY
            or not all(isinstance(h, str) and 0 < len(h) <= 64 for h in hsids)
        ):
            raise ApiError(400, "bad_request", f"hsids: a list of up to {MAX_ACTIVE_QUERY} session ids.")
        with DbSession(engine) as db:
            active = set(
                db.scalars(
                    select(Session.hsid).where(
                        Session.server_id == sid.id,
                        Session.hsid.in_(hsids),
                        Session.ended_at.is_(None),
                        Session.expires_at > now(),
                    )
                )
            )
        return jsonify(active=[h for h in hsids if h in active])

    @api.post("/servers/<sid>/sessions/logout")
    @requires("sessions")
    def session_logout(sid: VirtualServer) -> Any:
        return jsonify(loggedout=login.logout(sid.id, hsid_for(nonce()), "application"))

    @api.delete("/servers/<sid>/sessions/<hsid>")
    @requires("sessions")
    def end_session(sid: VirtualServer, hsid: str) -> Any:
        if not login.logout(sid.id, hsid, "application"):
            raise ApiError(404, "not_found", "No active session with that id.")
        return jsonify(loggedout=True)

    @api.get("/servers/<sid>/qr")
    @requires("sessions", "users")
    def render_qr(sid: VirtualServer) -> Any:
        """A QR image for any payload this server issued (login, enrolment, signing), for applications
        that would rather not render QR codes themselves."""
        data = request.args.get("data", "")
        try:
            payload = QRPayload.decode(data)
        except QRError as exc:
            raise ApiError(400, "bad_request", f"data: {exc}.") from exc
        if payload.server_id != sid.id:
            raise ApiError(400, "bad_request", "data was issued by another server.")
        fmt = request.args.get("format", "svg")
        if fmt not in ("png", "svg"):
            raise ApiError(400, "bad_request", "format must be png or svg.")
        return _qr_response(data, fmt)

    # -- transactions ----------------------------------------------------------------------------------

    @api.post("/servers/<sid>/sessions/transactions")
    @requires("sessions")
    def submit_transaction(sid: VirtualServer) -> Any:
        return jsonify(transactions.submit(sid, nonce(), body())), 201

    @api.get("/servers/<sid>/transactions/<tid>")
    @requires("sessions")
    def get_transaction(sid: VirtualServer, tid: str) -> Any:
        return jsonify(transactions.get(sid, tid))

    @api.post("/evidence/verify")
    @requires("sessions")
    def verify_evidence() -> Any:
        """Valid means: ns's signature, the account's signature and the SFS attestation all verify, and ns
        issued exactly this content to that account (the answer names it). ``checks`` gives each part."""
        data = body()
        record = data.get("evidence")
        if not isinstance(record, dict):
            raise ApiError(400, "bad_request", "evidence must be the record ns returned.")
        grant = g.grant
        return jsonify(
            transactions.verify_evidence(
                record, data.get("thumbprint"), lambda server_id: grant.allows("sessions", server_id)
            )
        )

    # -- users, enrolments, accounts -------------------------------------------------------------------

    def _user_accounts(server: VirtualServer, user_id: str) -> list[dict[str, Any]]:
        with DbSession(engine, expire_on_commit=False) as db:
            rows = db.execute(
                select(Account)
                .join(User, Account.user_pk == User.id)
                .where(User.server_id == server.id, User.user_id == user_id, Account.active.is_(True))
            ).scalars()
            return [
                {
                    "accountid": row.id,
                    "key_type": row.key_type,
                    "thumbprint": row.thumbprint,
                    "blocked": row.blocked,
                    # False: enrolled before accounts were bound to an app instance; must be re-enrolled.
                    "second_factor_bound": row.sfs_device is not None,
                    "created_at": row.created_at.isoformat(),
                    "last_login_at": row.last_login_at.isoformat() if row.last_login_at else None,
                }
                for row in rows
            ]

    def _known_form(uid: str) -> str | None:
        """The user id in its canonical form; None for one outside the rule, which no user can have."""
        try:
            return userids.normalise(uid)
        except userids.UserIdError:
            return None

    @api.get("/servers/<sid>/users/<uid>")
    @requires("users")
    def get_user(sid: VirtualServer, uid: str) -> Any:
        canonical = _known_form(uid)
        if canonical is None:
            raise ApiError(404, "not_found", "This user has no accounts.")
        uid = canonical
        accounts = _user_accounts(sid, uid)
        if not accounts:
            raise ApiError(404, "not_found", "This user has no accounts.")
        return jsonify(userid=uid, accounts=accounts)

    @api.get("/servers/<sid>/users/<uid>/sessions")
    @requires("sessions")
    def user_sessions(sid: VirtualServer, uid: str) -> Any:
        uid = _known_form(uid) or ""  # sessions of an id outside the rule: none
        with DbSession(engine, expire_on_commit=False) as db:
            rows = db.scalars(
                select(Session).where(
                    Session.server_id == sid.id,
                    Session.user_id == uid,
                    Session.ended_at.is_(None),
                    Session.expires_at > now(),
                )
            )
            sessions = [
                {
                    "hsid": row.hsid,
                    "accountid": row.account_id,
                    "method": row.method,
                    "second_factor": row.second_factor,
                    "created_at": row.created_at.isoformat(),
                }
                for row in rows
            ]
        return jsonify(userid=uid, sessions=sessions)

    @api.post("/servers/<sid>/users/<uid>/enrolments")
    @requires("users")
    def create_enrolment(sid: VirtualServer, uid: str) -> Any:
        return jsonify(enrolment.create(sid, uid)), 201

    @api.get("/servers/<sid>/enrolments/<eid>")
    @requires("users")
    def get_enrolment(sid: VirtualServer, eid: str) -> Any:
        return jsonify(enrolment.get(sid, eid))

    @api.post("/servers/<sid>/enrolments/<eid>/confirm")
    @requires("users")
    def confirm_enrolment(sid: VirtualServer, eid: str) -> Any:
        return jsonify(enrolment.confirm(sid, eid, body().get("code")))

    def _set_blocked(server: VirtualServer, account_id: str, blocked: bool) -> Any:
        with DbSession(engine, expire_on_commit=False) as db:
            result = db.execute(
                update(Account)
                .where(Account.id == account_id, Account.server_id == server.id)
                .values(blocked=blocked)
            )
            db.commit()
        if not result.rowcount:
            raise ApiError(404, "not_found", "No such account.")
        return jsonify(accountid=account_id, blocked=blocked)

    @api.post("/servers/<sid>/accounts/<aid>/block")
    @requires("accounts")
    def block_account(sid: VirtualServer, aid: str) -> Any:
        return _set_blocked(sid, aid, True)

    @api.post("/servers/<sid>/accounts/<aid>/unblock")
    @requires("accounts")
    def unblock_account(sid: VirtualServer, aid: str) -> Any:
        return _set_blocked(sid, aid, False)

    @api.delete("/servers/<sid>/accounts/<aid>")
    @requires("accounts")
    def delete_account(sid: VirtualServer, aid: str) -> Any:
        with DbSession(engine, expire_on_commit=False) as db:
            account = db.get(Account, aid)
            if account is None or account.server_id != sid.id:
                raise ApiError(404, "not_found", "No such account.")
            db.delete(account)
            db.commit()
        return jsonify(accountid=aid, deleted=True)

    app.register_blueprint(api)

    @app.get("/v1/roles")
    def roles() -> Any:
        return jsonify(roles=list(ROLES))

    @app.errorhandler(ApiError)
    def api_error(error: ApiError) -> Any:
        return jsonify(error=error.code, message=error.message), error.status

    @app.errorhandler(TransactionError)
    def transaction_error(error: TransactionError) -> Any:
        return jsonify(error=error.code, message=error.message), error.status

    @app.errorhandler(PushError)
    def push_error(error: PushError) -> Any:
        return jsonify(error=error.code, message=error.message), error.status

    @app.errorhandler(EnrolmentError)
    def enrolment_error(error: EnrolmentError) -> Any:
        return jsonify(error=error.code, message=error.message), error.status

    @app.errorhandler(RateLimited)
    def rate_limited(error: RateLimited) -> Any:
        response = jsonify(
            error="rate_limited",
            message=f"Too many requests with wrong API keys; try again in {error.retry_after} seconds.",
            retry_after=error.retry_after,
        )
        response.headers["Retry-After"] = str(error.retry_after)
        return response, 429

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Any:
        code = (error.name or "error").lower().replace(" ", "_")
        return jsonify(error=code, message=error.description or error.name), error.code or 500

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Any:
        log.exception("REST request %s %s failed", request.method, request.path)
        return jsonify(error="internal_error", message="The server failed; try again later."), 500

    return app
