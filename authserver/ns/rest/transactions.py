"""Transactions a logged-in session asks the account's app to sign."""

from typing import Any

from flask import Blueprint, jsonify

from authserver.ns.rest.context import services
from authserver.ns.rest.requests import body, nonce, requires
from authserver.ns.servers import VirtualServer

blueprint = Blueprint("transactions", __name__)


@blueprint.post("/servers/<sid>/sessions/transactions")
@requires("sessions")
def submit_transaction(sid: VirtualServer) -> Any:
    return jsonify(services().transactions.submit(sid, nonce(), body())), 201


@blueprint.get("/servers/<sid>/transactions/<tid>")
@requires("sessions")
def get_transaction(sid: VirtualServer, tid: str) -> Any:
    return jsonify(services().transactions.get(sid, tid))
