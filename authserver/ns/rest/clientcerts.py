"""Client certificates of the REST API: list, add (from PEM), revoke. Like API keys, they decide who may
call everything else, so managing them takes ``root`` held for every server."""

from typing import Any

from flask import Blueprint, g, jsonify

from authserver.ns.access import ROLES, CertificateListed
from authserver.ns.errors import ServiceError
from authserver.ns.rest.context import services
from authserver.ns.rest.requests import body, requires
from nextauth_core.digits import only_digits

blueprint = Blueprint("clientcerts", __name__)

MAX_PEM = 16 * 1024


@blueprint.get("/clientcerts")
@requires("root", global_operation=True)
def list_certificates() -> Any:
    return jsonify(clientcerts=services().access.list_certificates())


@blueprint.post("/clientcerts")
@requires("root", global_operation=True)
def add_certificate() -> Any:
    data = body()
    name, roles, server, pem = (
        data.get("name"),
        data.get("roles"),
        data.get("server"),
        data.get("certificate"),
    )
    if not isinstance(name, str) or not 1 <= len(name) <= 200 or not name.isprintable():
        raise ServiceError(400, "bad_request", "name must be 1 to 200 printable characters.")
    if not isinstance(roles, list) or not roles or not all(isinstance(r, str) and r in ROLES for r in roles):
        raise ServiceError(400, "bad_request", f"roles must be a non-empty list among {', '.join(ROLES)}.")
    if server is not None and (
        not isinstance(server, str) or len(server) > 64 or services().servers.get(server) is None
    ):
        raise ServiceError(400, "bad_request", "server must be the id of an existing server, or null.")
    if not isinstance(pem, str) or len(pem) > MAX_PEM or "-----BEGIN CERTIFICATE-----" not in pem:
        raise ServiceError(400, "bad_request", "certificate must be one PEM certificate (BEGIN CERTIFICATE).")
    try:
        number, _fingerprint = services().access.add_certificate_with_id(
            name, sorted(set(roles)), pem.encode("ascii", "replace"), server, actor=g.grant.name
        )
    except CertificateListed as exc:
        raise ServiceError(409, "conflict", "This certificate is listed already (or was revoked).") from exc
    except ValueError as exc:
        raise ServiceError(400, "bad_request", "certificate is no readable PEM X.509 certificate.") from exc
    (added,) = [entry for entry in services().access.list_certificates() if entry["id"] == number]
    return jsonify(added), 201


@blueprint.delete("/clientcerts/<cid>")
@requires("root", global_operation=True)
def revoke_certificate(cid: str) -> Any:
    if (
        not only_digits(cid)
        or len(cid) > 12
        or not services().access.revoke_certificate(cid, actor=g.grant.name)
    ):
        raise ServiceError(404, "not_found", "No such client certificate, or it is already revoked.")
    return jsonify(id=int(cid), revoked=True)
