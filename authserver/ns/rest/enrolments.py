"""Enrolling a user's app: the enrolment QR, its state, the code the user types in."""

from typing import Any

from flask import Blueprint, g, jsonify

from authserver.ns.rest.context import services
from authserver.ns.rest.requests import body, requires
from authserver.ns.servers import VirtualServer

blueprint = Blueprint("enrolments", __name__)


@blueprint.post("/servers/<sid>/users/<uid>/enrolments")
@requires("users")
def create_enrolment(sid: VirtualServer, uid: str) -> Any:
    return jsonify(services().enrolment.create(sid, uid, actor=g.grant.name)), 201


@blueprint.get("/servers/<sid>/enrolments/<eid>")
@requires("users")
def get_enrolment(sid: VirtualServer, eid: str) -> Any:
    return jsonify(services().enrolment.get(sid, eid))


@blueprint.post("/servers/<sid>/enrolments/<eid>/confirm")
@requires("users")
def confirm_enrolment(sid: VirtualServer, eid: str) -> Any:
    return jsonify(services().enrolment.confirm(sid, eid, body().get("code"), actor=g.grant.name))
