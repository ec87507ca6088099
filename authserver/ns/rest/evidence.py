"""Checking an evidence record ns returned for a signed transaction."""

from typing import Any

from flask import Blueprint, g, jsonify

from authserver.ns.errors import ServiceError
from authserver.ns.rest.context import services
from authserver.ns.rest.requests import body, requires

blueprint = Blueprint("evidence", __name__)


@blueprint.post("/evidence/verify")
@requires("sessions")
def verify_evidence() -> Any:
    """Valid means: ns's signature, the account's signature and the SFS attestation all verify, and ns
    issued exactly this content to that account (the answer names it). ``checks`` gives each part."""
    data = body()
    record = data.get("evidence")
    if not isinstance(record, dict):
        raise ServiceError(400, "bad_request", "evidence must be the record ns returned.")
    grant = g.grant
    return jsonify(
        services().transactions.verify_evidence(
            record, data.get("thumbprint"), lambda server_id: grant.allows("sessions", server_id)
        )
    )
