"""API keys of the REST API: list, create (the key is shown once), revoke.

Managing keys is managing who may do everything else, so it takes ``root`` held for every server: a key
limited to one server cannot mint keys, not even for its own server.
"""

from typing import Any

from flask import Blueprint, g, jsonify

from authserver.ns.access import ROLES
from authserver.ns.errors import ServiceError
from authserver.ns.rest.context import services
from authserver.ns.rest.requests import body, requires
from nextauth_core.digits import only_digits

blueprint = Blueprint("apikeys", __name__)


def _global_root() -> None:
    if g.grant.server_id is not None:
        raise ServiceError(
            403,
            "forbidden",
            "This API key is limited to one server; managing API keys needs 'root' for every server.",
        )


@blueprint.get("/apikeys")
@requires("root", global_operation=True)
def list_keys() -> Any:
    _global_root()
    return jsonify(apikeys=services().access.list_keys())


@blueprint.post("/apikeys")
@requires("root", global_operation=True)
def create_key() -> Any:
    _global_root()
    data = body()
    name, roles, server = data.get("name"), data.get("roles"), data.get("server")
    if not isinstance(name, str) or not 1 <= len(name) <= 200 or not name.isprintable():
        raise ServiceError(400, "bad_request", "name must be 1 to 200 printable characters.")
    if (
        not isinstance(roles, list)
        or not roles
        or not all(isinstance(role, str) and role in ROLES for role in roles)
    ):
        raise ServiceError(400, "bad_request", f"roles must be a non-empty list among {', '.join(ROLES)}.")
    if server is not None:
        if not isinstance(server, str) or len(server) > 64 or services().servers.get(server) is None:
            raise ServiceError(400, "bad_request", "server must be the id of an existing server, or null.")
    key_id, api_key = services().access.create_key_with_id(
        name, sorted(set(roles)), server, actor=g.grant.name
    )
    (created,) = [entry for entry in services().access.list_keys() if entry["id"] == key_id]
    return jsonify({**created, "api_key": api_key}), 201


@blueprint.delete("/apikeys/<kid>")
@requires("root", global_operation=True)
def revoke_key(kid: str) -> Any:
    _global_root()
    if not only_digits(kid) or not services().access.revoke_key(kid, actor=g.grant.name):
        raise ServiceError(404, "not_found", "No such API key, or it is already revoked.")
    return jsonify(id=int(kid), revoked=True)
