"""Roles per virtual server: list who holds which roles on a server; grant (replace or add) and revoke
the roles of one API key or client certificate there. Managing them takes ``root`` on that server."""

from typing import Any

from flask import Blueprint, g, jsonify

from authserver.ns.errors import ServiceError
from authserver.ns.permissions import GRANTABLE
from authserver.ns.rest.context import services
from authserver.ns.rest.requests import body, requires
from authserver.ns.servers import VirtualServer

blueprint = Blueprint("permissions", __name__)


def _roles() -> set[str]:
    roles = body().get("roles")
    if not isinstance(roles, list) or len(roles) > 10 or not all(isinstance(r, str) for r in roles):
        raise ServiceError(400, "bad_request", f"roles must be a list among {', '.join(GRANTABLE)}.")
    return set(roles)


@blueprint.get("/servers/<sid>/permissions")
@requires("root")
def list_permissions(sid: VirtualServer) -> Any:
    return jsonify(server=sid.id, permissions=services().permissions.list(sid.id))


@blueprint.get("/servers/<sid>/permissions/<roleid>")
@requires("root")
def get_permissions(sid: VirtualServer, roleid: str) -> Any:
    return jsonify(services().permissions.get(sid.id, roleid))


@blueprint.post("/servers/<sid>/permissions/<roleid>")
@requires("root")
def replace_permissions(sid: VirtualServer, roleid: str) -> Any:
    """As the original API's POST: the roles sent become the roles granted here (the key's own stay)."""
    change = services().permissions.change
    return jsonify(change(sid.id, roleid, grant=_roles(), revoke=None, actor=g.grant.name))


@blueprint.put("/servers/<sid>/permissions/<roleid>")
@requires("root")
def add_permissions(sid: VirtualServer, roleid: str) -> Any:
    change = services().permissions.change
    return jsonify(change(sid.id, roleid, grant=_roles(), revoke=set(), actor=g.grant.name))


@blueprint.delete("/servers/<sid>/permissions/<roleid>")
@requires("root")
def revoke_permissions(sid: VirtualServer, roleid: str) -> Any:
    ns = services()
    return jsonify(ns.permissions.change(sid.id, roleid, grant=set(), revoke=None, actor=g.grant.name))


@blueprint.delete("/servers/<sid>/permissions/<roleid>/<role>")
@requires("root")
def revoke_permission(sid: VirtualServer, roleid: str, role: str) -> Any:
    ns = services()
    if role not in GRANTABLE:
        raise ServiceError(404, "not_found", "No such role granted here.")
    if role not in ns.permissions.get(sid.id, roleid)["granted"]:  # type: ignore[operator]
        raise ServiceError(404, "not_found", "No such role granted here.")
    return jsonify(ns.permissions.change(sid.id, roleid, grant=set(), revoke={role}, actor=g.grant.name))
