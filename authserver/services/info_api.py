"""The smallest piece of a component's REST API: who it is and which sigmai key it holds.

Integrators and deployment checks use it to see that they reach the right service; it reveals only
public facts (the public key and its hash). The full ns REST API grows around it.
"""

from flask import Flask, jsonify

from authserver.services.runtime import Component
from authserver.transport.json_bodies import bound_json


def add_info_route(app: Flask, component: Component) -> None:
    @app.get("/info")
    def info():  # type: ignore[no-untyped-def]
        return jsonify(
            component=component.name,
            sigmai_public_key=component.identity.public_raw.hex(),
            sigmai_key_hash=component.identity.key_hash.hex(),
            sigmai_uri=component.config.public_sigmai_uri or component.urls["sigmai"],
        )


def make_info_app(component: Component) -> Flask:
    app = bound_json(Flask(f"nextauth-{component.name}"))
    add_info_route(app, component)

    @app.errorhandler(404)
    def not_found(_error):  # type: ignore[no-untyped-def]
        return jsonify(error="not_found", message="No such endpoint."), 404

    @app.errorhandler(405)
    def not_allowed(_error):  # type: ignore[no-untyped-def]
        return jsonify(error="method_not_allowed", message="This endpoint does not take that method."), 405

    return app
