"""What the services count for an operator: logins, PINs, enrolments, pushes and REST requests.

Every label takes its value from a fixed list (``bounded``) or from the code itself (a Flask route
template), never from what a caller sent: a label fed from a raw path, a user id or a device token would
make a new time series per value and let anyone on the network grow the scraper's memory without end.
The names, labels and meanings are listed in docs/configuration.md ("Admin port"); the Grafana
dashboard in docs/grafana-dashboard.json queries them and tests/test_metrics.py keeps the two in step.
"""

import time
from collections.abc import Iterable

from flask import Flask, Response, g, request
from prometheus_client import Counter, Histogram

OTHER = "other"

LOGIN_METHODS = ("qr", "push")
LOGIN_OUTCOMES = ("succeeded", "declined", "expired", "wrong_pin", "locked", "error")
ENROLMENT_STAGES = ("started", "done", "failed")
PUSH_PROVIDERS = ("fcm", "apns", "webpush")
PUSH_OUTCOMES = ("sent", "failed")
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
UNMATCHED_ROUTE = "unmatched"  # a path no route of the app matches (404, or 405 before routing)

# Seconds from the scan (or the push opened on the phone) to the login's end: a person reads the page,
# maybe types a PIN. Buckets from a quick biometric to the end of the QR's lifetime.
LOGIN_BUCKETS = (0.5, 1, 2, 3, 5, 8, 13, 20, 30, 60, 120, 300)

LOGINS = Counter(
    "nextauth_logins_total",
    "Logins at ns by method and how they ended",
    ["method", "outcome"],
)
LOGIN_SECONDS = Histogram(
    "nextauth_login_duration_seconds",
    "Seconds from the app opening a login request to the login's end at ns",
    ["method", "outcome"],
    buckets=LOGIN_BUCKETS,
)
WRONG_PINS = Counter("nextauth_sfs_wrong_pins_total", "PIN proofs the SFS refused as wrong")
LOCKOUTS = Counter("nextauth_sfs_lockouts_total", "App instances the SFS locked after too many wrong PINs")
ENROLMENTS = Counter("nextauth_enrolments_total", "Enrolments at ns by stage", ["stage"])
PUSHES = Counter(
    "nextauth_pushes_total", "Push wake-ups the MC handed to a provider", ["provider", "outcome"]
)
REST_REQUESTS = Counter(
    "nextauth_rest_requests_total",
    "REST requests by route template, method and status",
    ["component", "route", "method", "status"],
)
REST_SECONDS = Histogram(
    "nextauth_rest_request_seconds",
    "Time to answer a REST request, by route template",
    ["component", "route"],
)


def bounded(value: object, allowed: Iterable[str], other: str = OTHER) -> str:
    """``value`` if it is one of ``allowed``, else the fixed ``other``: a label never takes a new value."""
    return value if isinstance(value, str) and value in tuple(allowed) else other


def login_method(method: object) -> str:
    return bounded(method, LOGIN_METHODS)


def count_login(method: object, outcome: str, started: float | None = None) -> None:
    """One login's end; ``started`` is its ``time.monotonic()`` at the scan, when known."""
    labels = (login_method(method), bounded(outcome, LOGIN_OUTCOMES, "error"))
    LOGINS.labels(*labels).inc()
    if started is not None:
        LOGIN_SECONDS.labels(*labels).observe(max(time.monotonic() - started, 0.0))


def count_enrolment(stage: str) -> None:
    ENROLMENTS.labels(bounded(stage, ENROLMENT_STAGES)).inc()


def count_push(provider: object, delivered: bool) -> None:
    PUSHES.labels(bounded(provider, PUSH_PROVIDERS), "sent" if delivered else "failed").inc()


def status_label(status: int) -> str:
    return str(status) if 100 <= status <= 599 else OTHER


def route_label() -> str:
    """The matched route's template (``/v1/servers/<sid>/sessions/``), never the path that was asked."""
    rule = request.url_rule
    return rule.rule if rule is not None else UNMATCHED_ROUTE


def instrument_flask(app: Flask, component: str) -> Flask:
    """Count and time every request ``app`` answers, error answers included."""

    def started() -> None:
        g.nextauth_started = time.perf_counter()

    def finished(response: Response) -> Response:
        route = route_label()
        REST_REQUESTS.labels(
            component, route, bounded(request.method, HTTP_METHODS), status_label(response.status_code)
        ).inc()
        began = g.get("nextauth_started")
        if began is not None:
            REST_SECONDS.labels(component, route).observe(time.perf_counter() - began)
        return response

    # First of the app's hooks, so the time includes theirs (authentication, rate limits).
    app.before_request_funcs.setdefault(None, []).insert(0, started)
    app.after_request(finished)
    return app
