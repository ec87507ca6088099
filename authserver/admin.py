"""The admin port (9613): Prometheus metrics, liveness and readiness, for orchestrators and monitoring.

Liveness says the process answers; readiness says it can serve, i.e. every check (database, store)
answers True. A check that raises or returns anything but True counts as not ready, so a broken check
takes the instance out of rotation instead of crashing the probe. A check may raise ``NotReady`` with a
short reason of its own words, which the 503 answer shows; any other exception's text stays in no answer.
Plain WSGI: nothing here needs a framework, and the port has no authentication, so it answers nothing
but these three read-only paths.
"""

import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.exposition import choose_encoder

log = logging.getLogger("nextauth.admin")

ALLOWED_METHODS = ("GET", "HEAD")  # HEAD for probes that only look at the status
PATHS = ("/metrics", "/livez", "/readyz")


def _respond(
    environ: WSGIEnvironment,
    start_response: StartResponse,
    status: str,
    body: bytes,
    content_type: str,
    extra_headers: Iterable[tuple[str, str]] = (),
) -> list[bytes]:
    start_response(
        status,
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            ("X-Content-Type-Options", "nosniff"),
            *extra_headers,
        ],
    )
    return [] if environ.get("REQUEST_METHOD") == "HEAD" else [body]


def _json(
    environ: WSGIEnvironment,
    start_response: StartResponse,
    status: str,
    payload: Mapping[str, Any],
    extra_headers: Iterable[tuple[str, str]] = (),
) -> list[bytes]:
    body = json.dumps(payload).encode()
    return _respond(environ, start_response, status, body, "application/json", extra_headers)


class NotReady(Exception):
    """A readiness check's refusal with a reason fit for an unauthenticated probe (no secrets, no URIs)."""


def _run_checks(checks: Mapping[str, Callable[[], bool]]) -> tuple[dict[str, bool], dict[str, str]]:
    results, reasons = {}, {}
    for name, check in checks.items():
        try:
            results[name] = check() is True  # a truthy non-bool (a response object...) is a bug, not "ok"
        except NotReady as exc:
            log.warning("readiness check %s: %s", name, exc)
            results[name], reasons[name] = False, str(exc)
        except Exception as exc:
            # The type only: an exception's text can carry a connection string with its password.
            log.warning("readiness check %s failed: %s", name, type(exc).__name__)
            results[name] = False
        if not results[name]:
            reasons.setdefault(name, "failed")
    return results, reasons


def _default_registry() -> CollectorRegistry:
    """The process's metrics; in a worker of several (``nextauth.supervisor`` sets PROMETHEUS_MULTIPROC_DIR),
    those of every worker summed, so that a scrape of the shared admin port counts the whole service."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def make_admin_app(
    component: str,
    readiness_checks: Mapping[str, Callable[[], bool]],
    registry: CollectorRegistry | None = None,
) -> WSGIApplication:
    """The admin WSGI app of ``component``; metrics come from ``registry`` (default: the global one)."""
    metrics_registry = _default_registry() if registry is None else registry

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        if path not in PATHS:
            return _json(environ, start_response, "404 Not Found", {"error": "not_found"})
        if environ.get("REQUEST_METHOD") not in ALLOWED_METHODS:
            return _json(
                environ,
                start_response,
                "405 Method Not Allowed",
                {"error": "method_not_allowed"},
                [("Allow", ", ".join(ALLOWED_METHODS))],
            )
        if path == "/metrics":
            # prometheus_client picks the text or OpenMetrics format from the scraper's Accept header.
            encoder, content_type = choose_encoder(environ.get("HTTP_ACCEPT", ""))
            return _respond(environ, start_response, "200 OK", encoder(metrics_registry), content_type)
        if path == "/livez":
            return _json(environ, start_response, "200 OK", {"status": "ok", "component": component})
        checks, reasons = _run_checks(readiness_checks)
        if all(checks.values()):
            payload = {"status": "ready", "component": component, "checks": checks}
            return _json(environ, start_response, "200 OK", payload)
        payload = {"status": "unready", "component": component, "checks": checks, "reasons": reasons}
        return _json(environ, start_response, "503 Service Unavailable", payload)

    return app
