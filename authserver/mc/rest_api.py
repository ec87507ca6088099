"""The MC's REST API for ns (port 8080): the same Send as gRPC, for deployments that prefer HTTP."""

from typing import Any

from flask import Flask, jsonify, request

from authserver.mc.mailboxes import MailboxService, SendError
from nextauth_core.encoding import unb64url


def add_routes(app: Flask, mailboxes: MailboxService) -> None:
    @app.get("/v1/webpush/vapid-public-key")
    def vapid_public_key() -> Any:
        # Public by nature: every browser that subscribes is given it.
        key = mailboxes.vapid_public_key()
        if key is None:
            return jsonify(error="not_found", message="This message center does not push by Web Push."), 404
        return jsonify(vapid_public_key=key)

    @app.post("/v1/mailboxes/<mailbox>/messages")
    def send(mailbox: str) -> Any:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return jsonify(
                error="unauthenticated", message="Send the app token as 'Authorization: Bearer'."
            ), 401
        data = request.get_json(silent=True)
        if not isinstance(data, dict) or not isinstance(data.get("envelope"), str):
            return jsonify(error="bad_request", message="Body must be JSON with a base64url 'envelope'."), 400
        try:
            envelope = unb64url(data["envelope"])
        except ValueError:
            return jsonify(error="bad_request", message="envelope is not base64url."), 400
        ttl = data.get("ttl_seconds", 120)
        if not isinstance(ttl, int):
            return jsonify(error="bad_request", message="ttl_seconds must be a whole number."), 400
        try:
            result = mailboxes.send(
                mailbox,
                auth[len("Bearer ") :],
                envelope,
                sender=str(data.get("sender", ""))[:64],
                collapse_id=str(data.get("collapse_id", ""))[:64],
                ttl=ttl,
            )
        except SendError as exc:
            return jsonify(error=exc.code, message=exc.message), exc.status
        return jsonify(message_id=result.message_id, pushed=result.pushed), 201
