"""QR images: for any payload a server issued (login, enrolment, signing), for applications that would
rather not render QR codes themselves."""

import io
from typing import Any

import segno
from flask import Blueprint, Response, request

from authserver.ns.errors import ServiceError
from authserver.ns.rest.requests import requires
from authserver.ns.servers import VirtualServer
from nextauth_core.qr import QRError, QRPayload

blueprint = Blueprint("qr", __name__)


def qr_response(data: str, fmt: str) -> Response:
    qr = segno.make(data, error="m")
    out = io.BytesIO()
    if fmt == "svg":
        qr.save(out, kind="svg", scale=6, border=2)
        return Response(out.getvalue(), mimetype="image/svg+xml")
    qr.save(out, kind="png", scale=6, border=2)
    return Response(out.getvalue(), mimetype="image/png")


@blueprint.get("/servers/<sid>/qr")
@requires("sessions", "users")
def render_qr(sid: VirtualServer) -> Any:
    data = request.args.get("data", "")
    try:
        payload = QRPayload.decode(data)
    except QRError as exc:
        raise ServiceError(400, "bad_request", f"data: {exc}.") from exc
    if payload.server_id != sid.id:
        raise ServiceError(400, "bad_request", "data was issued by another server.")
    fmt = request.args.get("format", "svg")
    if fmt not in ("png", "svg"):
        raise ServiceError(400, "bad_request", "format must be png or svg.")
    return qr_response(data, fmt)
