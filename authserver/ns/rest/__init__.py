"""The ns REST API (version 1), one module per concern; ``authserver.ns.api.make_api`` builds the app.

Each module holds a blueprint of module-level views; the services they call live on the app
(``context.services()``), so the views are the same functions for every app built.
"""

from flask import Blueprint

from authserver.ns.rest import (
    apikeys,
    attributes,
    audit,
    clientcerts,
    enrolments,
    evidence,
    invites,
    permissions,
    qr,
    servers,
    sessions,
    transactions,
    users,
)

v1 = Blueprint("v1", __name__, url_prefix="/v1")
PARTS = (
    servers,
    apikeys,
    sessions,
    qr,
    transactions,
    evidence,
    users,
    enrolments,
    invites,
    audit,
    permissions,
    attributes,
    clientcerts,
)
for part in PARTS:
    v1.register_blueprint(part.blueprint)

__all__ = ["v1"]
