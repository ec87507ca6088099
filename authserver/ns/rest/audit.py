"""The audit trail, read: security events oldest first, filtered, a page at a time.

Only a key held for every server with the ``audit`` (or ``root``) role reads it: the trail spans servers
and names users, and the events of one server can say what happened at another (an API key, a lockout).
"""

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, jsonify, request

from authserver.audit.catalogue import EVENT_TYPES, TYPE_PREFIX
from authserver.audit.trail import MAX_QUERY_LIMIT
from authserver.ns.errors import ServiceError
from authserver.ns.rest.context import services
from authserver.ns.rest.requests import requires
from nextauth_core.digits import only_digits

blueprint = Blueprint("audit", __name__)


def _time(name: str) -> datetime | None:
    value = request.args.get(name)
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ServiceError(
            400, "bad_request", f"{name}: an ISO 8601 time such as 2026-12-05T08:00:00Z."
        ) from exc
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def _whole(name: str, default: int | None, low: int, high: int) -> int | None:
    value = request.args.get(name)
    if value is None:
        return default
    if not only_digits(value) or not low <= int(value) <= high:
        raise ServiceError(400, "bad_request", f"{name}: a whole number from {low} to {high}.")
    return int(value)


@blueprint.get("/audit-events")
@requires("audit", global_operation=True)
def list_events() -> Any:
    types = [t.strip() for value in request.args.getlist("type") for t in value.split(",") if t.strip()]
    for kind in types:
        if kind.removeprefix(TYPE_PREFIX) not in EVENT_TYPES:
            raise ServiceError(400, "bad_request", f"type: {kind[:80]!r} is no audit event type.")
    user, server = request.args.get("user"), request.args.get("server")
    for name, value in (("user", user), ("server", server)):
        if value is not None and (len(value) > 255 or not value.isprintable()):
            raise ServiceError(400, "bad_request", f"{name}: at most 255 printable characters.")
    events, cursor = services().audit.query(
        types=types,
        subject=user,
        server_id=server,
        since=_time("since"),
        until=_time("until"),
        limit=_whole("limit", 100, 1, MAX_QUERY_LIMIT) or 100,
        after=_whole("cursor", None, 0, 2**62),
    )
    return jsonify(events=events, next_cursor=cursor)
