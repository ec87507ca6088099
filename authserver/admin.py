"""The admin port (9613): Prometheus metrics, liveness and readiness, for orchestrators and monitoring.

Liveness says the process answers; readiness says it can serve, i.e. its database and its store answer.
A check that raises counts as not ready. Plain WSGI: nothing here needs a framework.
"""

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

log = logging.getLogger("nextauth.admin")

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def make_admin_app(
    component: str,
    readiness_checks: Mapping[str, Callable[[], bool]],
    registry: CollectorRegistry | None = None,
) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    metrics_registry = registry or REGISTRY

    def respond(start: StartResponse, status: str, body: bytes, content_type: str) -> list[bytes]:
        start(
            status,
            [
                ("Content-Type", content_type),
                ("Content-Length", str(len(body))),
                ("Cache-Control", "no-store"),
            ],
        )
        return [body]

    def as_json(start: StartResponse, status: str, payload: dict[str, Any]) -> list[bytes]:
        return respond(start, status, json.dumps(payload).encode(), "application/json")

    def ready() -> dict[str, bool]:
        results = {}
        for name, check in readiness_checks.items():
            try:
                results[name] = bool(check())
            except Exception as exc:  # a broken check must read as "not ready", not crash the probe
                log.warning("readiness check %s raised %s", name, type(exc).__name__)
                results[name] = False
        return results

    def app(environ: dict[str, Any], start: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path not in ("/metrics", "/livez", "/readyz"):
            return as_json(start, "404 Not Found", {"error": "not_found", "message": "No such endpoint."})
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return as_json(
                start, "405 Method Not Allowed", {"error": "method_not_allowed", "message": "Use GET."}
            )
        if path == "/metrics":
            return respond(start, "200 OK", generate_latest(metrics_registry), CONTENT_TYPE_LATEST)
        if path == "/livez":
            return as_json(start, "200 OK", {"status": "ok", "component": component})
        checks = ready()
        if all(checks.values()):
            return as_json(start, "200 OK", {"status": "ready", "component": component, "checks": checks})
        return as_json(
            start, "503 Service Unavailable", {"status": "unready", "component": component, "checks": checks}
        )

    return app
