"""The IdP's admin JSON API for consents: ``GET /api/v1/consents?user=&client=`` lists,
``DELETE /api/v1/consents?user=U&client=C`` revokes (with the client's refresh tokens for that user).

The consents live in the IdP's database, which ns cannot see, and ns has no way to vouch for its API keys
to another service; so the IdP has its own admin key, ``NEXTAUTH_IDP_ADMIN_API_KEY`` (32+ characters),
sent as ``X-apikey`` or ``Authorization: Bearer``. Without it set, the API is off (404). Failed keys are
counted per client address (``NEXTAUTH_IDP_RATE_LIMIT_ADMIN_API_FAILURES``)."""

import hashlib
import hmac
import os
from typing import Any

from flask import Blueprint, current_app, jsonify, request

from authserver.config import read_setting
from authserver.ratelimit import RateLimited, client_key
from idp.context import services
from idp.oidc.consents import list_consents

SETTING = "NEXTAUTH_IDP_ADMIN_API_KEY"
EXTENSION = "nextauth_admin_api_key"
blueprint = Blueprint("admin_api", __name__)


@blueprint.record_once
def _setup(state: Any) -> None:
    configured = read_setting(SETTING, os.environ)
    if configured is not None and len(configured) < 32:
        raise ValueError(f"{SETTING}: at least 32 characters of random text")
    state.app.extensions[EXTENSION] = hashlib.sha256(configured.encode()).digest() if configured else None


def _error(status: int, code: str, message: str) -> Any:
    response = jsonify(error=code, message=message)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


def _presented_key() -> str:
    key = request.headers.get("X-apikey")
    if key is None:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        key = value.strip() if scheme.lower() == "bearer" else ""
    return key[:512]


@blueprint.before_request
def _authenticate() -> Any:
    expected: bytes | None = current_app.extensions.get(EXTENSION)
    if expected is None:
        return _error(404, "not_found", f"The admin API is off; set {SETTING} to use it.")
    limits = services().limits
    client = limits.client()
    rule = limits.rules["admin_api_failures"]
    try:
        limits.limiter.check(rule, client_key(client), client=client, what="admin API keys that failed")
    except RateLimited as exc:
        answer = _error(429, "rate_limited", "Too many wrong API keys. Wait a moment.")
        answer.headers["Retry-After"] = str(exc.retry_after)
        return answer
    if not hmac.compare_digest(hashlib.sha256(_presented_key().encode()).digest(), expected):
        limits.limiter.count(rule, client_key(client))
        return _error(401, "unauthenticated", f"Send the IdP's admin API key ({SETTING}) in X-apikey.")
    return None


@blueprint.get("/api/v1/consents")
def consents() -> Any:
    try:
        found = list_consents(
            services().engine, user_id=request.args.get("user"), client_id=request.args.get("client")
        )
    except ValueError as exc:
        return _error(400, "bad_request", str(exc))
    response = jsonify(consents=found)
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.delete("/api/v1/consents")
def revoke() -> Any:
    user_id, client_id = request.args.get("user"), request.args.get("client")
    if not user_id or not client_id:
        return _error(400, "bad_request", "Name the consent: ?user=USER&client=CLIENT_ID.")
    try:
        result = current_app.extensions["nextauth_oidc"].revoke_consent(user_id, client_id)
    except ValueError as exc:
        return _error(400, "bad_request", str(exc))
    if not result["consent_revoked"] and not result["refresh_tokens_revoked"]:
        return _error(404, "not_found", "This user has no consent or tokens for this client.")
    response = jsonify(result)
    response.headers["Cache-Control"] = "no-store"
    return response
