"""Flask apps read request bodies through ``nextauth_core.jsonlimits``: a body nested too deep, or holding
``NaN`` or ``1e400``, is a JSON error like any other (``get_json`` returns None or raises 400), never a
``RecursionError`` and a 500."""

from typing import Any

from flask import Flask
from flask.json.provider import DefaultJSONProvider

from nextauth_core import jsonlimits


class BoundedJSONProvider(DefaultJSONProvider):
    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return jsonlimits.loads(s)


def bound_json(app: Flask) -> Flask:
    app.json = BoundedJSONProvider(app)
    return app
