"""Invites: a single-use, expiring link with which a person enrols their own phone (the IdP's /enrol page).

The token travels in request bodies, never in a path or query, so that access logs do not keep it.
"""

from typing import Any

from flask import Blueprint, jsonify

from authserver.ns.rest.context import services
from authserver.ns.rest.requests import body, requires
from authserver.ns.servers import VirtualServer

blueprint = Blueprint("invites", __name__)


@blueprint.post("/servers/<sid>/users/<uid>/invites")
@requires("users")
def create_invite(sid: VirtualServer, uid: str) -> Any:
    return jsonify(services().enrolment.create_invite(sid, uid, body().get("ttl"))), 201


@blueprint.delete("/servers/<sid>/invites/<iid>")
@requires("users")
def revoke_invite(sid: VirtualServer, iid: str) -> Any:
    return jsonify(services().enrolment.revoke_invite(sid, iid))


@blueprint.post("/servers/<sid>/invites/status")
@requires("users")
def invite_status(sid: VirtualServer) -> Any:
    return jsonify(services().enrolment.invite_status(sid, body().get("token")))


@blueprint.post("/servers/<sid>/invites/redeem")
@requires("users")
def redeem_invite(sid: VirtualServer) -> Any:
    return jsonify(services().enrolment.redeem_invite(sid, body().get("token"))), 201
