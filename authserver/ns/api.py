"""The ns REST API for business applications (version 1): a thin translation from HTTP to the services.

Every answer is JSON (QR images aside); every error is ``{"error": <code>, "message": <sentence>}`` with a
4xx status for what the caller can fix. Nothing here decides security on its own: it authenticates the
caller, checks its role for the server, validates the input shape, and calls a service.

The views are module-level blueprints in ``authserver.ns.rest`` (one module per concern); this module
builds the app: the services on it, the blueprints, and one error handler per kind of failure.
"""

import logging
from typing import Any

from flask import Flask, jsonify, request
from sqlalchemy import Engine
from werkzeug.exceptions import HTTPException

from authserver.audit import AuditTrail
from authserver.config import Network
from authserver.ns.access import AccessControl
from authserver.ns.accounts import AccountService
from authserver.ns.attributes import Attributes
from authserver.ns.enrolment import EnrolmentService
from authserver.ns.errors import ServiceError
from authserver.ns.login import LoginService
from authserver.ns.permissions import Permissions
from authserver.ns.push import PushLoginService
from authserver.ns.rest import v1
from authserver.ns.rest.context import EXTENSION, NsServices
from authserver.ns.servers import ServerRegistry
from authserver.ns.transactions import TransactionService
from authserver.outage import RETRY_AFTER_SECONDS, UNAVAILABLE, OutageLog
from authserver.ratelimit import RateLimited
from authserver.transport.json_bodies import bound_json

log = logging.getLogger("nextauth.ns.api")
_outages = OutageLog(log, "REST")


def make_api(
    engine: Engine,
    servers: ServerRegistry,
    access: AccessControl,
    login: LoginService,
    enrolment: EnrolmentService,
    push: PushLoginService,
    transactions: TransactionService,
    trusted_proxies: tuple[Network, ...] = (),
    *,
    audit: AuditTrail,
) -> Flask:
    app = bound_json(Flask("nextauth-ns"))
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    app.extensions[EXTENSION] = NsServices(
        servers=servers,
        access=access,
        login=login,
        enrolment=enrolment,
        push=push,
        transactions=transactions,
        accounts=AccountService(engine, audit),
        audit=audit,
        permissions=Permissions(engine, access, audit),
        attributes=Attributes(engine, audit),
        trusted_proxies=trusted_proxies,
    )
    app.register_blueprint(v1)
    app.register_error_handler(ServiceError, service_error)
    app.register_error_handler(RateLimited, rate_limited)
    app.register_error_handler(HTTPException, http_error)
    for kind in UNAVAILABLE:
        app.register_error_handler(kind, unavailable)
    app.register_error_handler(Exception, unexpected)
    return app


def service_error(error: ServiceError) -> Any:
    return jsonify(error=error.code, message=error.message), error.status


def rate_limited(error: RateLimited) -> Any:
    response = jsonify(
        error="rate_limited",
        message=f"Too many requests with wrong API keys; try again in {error.retry_after} seconds.",
        retry_after=error.retry_after,
    )
    response.headers["Retry-After"] = str(error.retry_after)
    return response, 429


def http_error(error: HTTPException) -> Any:
    code = (error.name or "error").lower().replace(" ", "_")
    return jsonify(error=code, message=error.description or error.name), error.code or 500


def unavailable(error: Exception) -> Any:
    _outages.failed(error)
    response = jsonify(
        error="unavailable",
        message=f"The database or store is unreachable; try again in {RETRY_AFTER_SECONDS} seconds.",
        retry_after=RETRY_AFTER_SECONDS,
    )
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response, 503


def unexpected(error: Exception) -> Any:
    log.exception("REST request %s %s failed", request.method, request.path)
    return jsonify(error="internal_error", message="The server failed; try again later."), 500
