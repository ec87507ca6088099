"""The admin port's WSGI app: liveness, readiness, metrics, and nothing else."""

import logging
from collections.abc import Callable

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, Counter
from werkzeug.test import Client

from authserver.admin import NotReady, make_admin_app

SECRET = "postgresql://nextauth:s3cr3t@db/nextauth"


def _client(
    checks: dict[str, Callable[[], bool]] | None = None, registry: CollectorRegistry | None = None
) -> Client:
    return Client(make_admin_app("ns", checks or {}, registry or CollectorRegistry()))


def _broken() -> bool:
    raise ConnectionError(f"could not connect to {SECRET}")


def test_liveness() -> None:
    response = _client({"database": lambda: False}).get("/livez")  # liveness ignores readiness
    assert response.status_code == 200
    assert response.json == {"status": "ok", "component": "ns"}
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Cache-Control"] == "no-store"


def test_ready_when_every_check_passes() -> None:
    response = _client({"database": lambda: True, "store": lambda: True}).get("/readyz")
    assert response.status_code == 200
    assert response.json == {
        "status": "ready",
        "component": "ns",
        "checks": {"database": True, "store": True},
    }


def test_unready_when_a_check_fails() -> None:
    response = _client({"database": lambda: True, "store": lambda: False}).get("/readyz")
    assert response.status_code == 503
    assert response.json["status"] == "unready"
    assert response.json["checks"] == {"database": True, "store": False}


def test_a_raising_check_counts_as_failed_and_is_logged_without_its_message(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="nextauth.admin"):
        response = _client({"database": _broken, "store": lambda: True}).get("/readyz")
    assert response.status_code == 503
    assert response.json["checks"] == {"database": False, "store": True}
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert "database" in caplog.text and "ConnectionError" in caplog.text
    assert "s3cr3t" not in caplog.text and "s3cr3t" not in response.get_data(as_text=True)


def test_only_true_is_ready() -> None:
    response = _client({"database": lambda: "yes"}).get("/readyz")  # type: ignore[dict-item, return-value]
    assert response.status_code == 503


def test_checks_run_on_every_readiness_call() -> None:
    answers = iter([True, False])
    client = _client({"database": lambda: next(answers)})
    assert client.get("/readyz").status_code == 200
    assert client.get("/readyz").status_code == 503


def test_metrics_come_from_the_given_registry() -> None:
    registry = CollectorRegistry()
    Counter("nextauth_test_logins", "Logins in this test.", registry=registry).inc(3)
    response = _client(registry=registry).get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    body = response.get_data(as_text=True)
    assert "nextauth_test_logins_total 3.0" in body
    assert "python_info" not in body  # the global registry's collectors are not mixed in


def test_metrics_speak_openmetrics_when_asked() -> None:
    registry = CollectorRegistry()
    Counter("nextauth_test_pushes", "Pushes in this test.", registry=registry).inc()
    response = _client(registry=registry).get("/metrics", headers={"Accept": "application/openmetrics-text"})
    assert response.headers["Content-Type"].startswith("application/openmetrics-text")
    assert response.get_data(as_text=True).endswith("# EOF\n")


def test_metrics_default_to_the_global_registry() -> None:
    counter = Counter("nextauth_test_admin_default", "A metric in the global registry.")
    try:
        response = Client(make_admin_app("sfs", {})).get("/metrics")
        assert "nextauth_test_admin_default_total 0.0" in response.get_data(as_text=True)
    finally:
        REGISTRY.unregister(counter)


@pytest.mark.parametrize("path", ["/", "/metrics/", "/healthz", "/readyz/../admin", "/livez.json"])
def test_other_paths_are_not_found(path: str) -> None:
    response = _client().get(path)
    assert response.status_code == 404
    assert response.json == {"error": "not_found"}


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_other_methods_are_not_allowed_and_run_no_check(method: str) -> None:
    calls: list[str] = []
    client = _client({"database": lambda: calls.append("database") is None})
    response = client.open("/readyz", method=method)
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD"
    assert response.json == {"error": "method_not_allowed"}
    assert calls == []


def test_head_answers_the_status_without_a_body() -> None:
    client = _client({"database": lambda: False})
    response = client.head("/readyz")
    assert response.status_code == 503
    assert response.get_data() == b""
    assert int(response.headers["Content-Length"]) > 0  # the length a GET would have


def test_a_not_ready_check_gives_its_reason_and_others_a_bare_one() -> None:
    def ns() -> bool:
        raise NotReady("ns: unreachable")

    response = _client({"database": _broken, "ns": ns, "store": lambda: True}).get("/readyz")
    assert response.status_code == 503
    assert response.json["checks"] == {"database": False, "ns": False, "store": True}
    # A check's own words are shown; another exception's text (a URI with its password) never is.
    assert response.json["reasons"] == {"database": "failed", "ns": "ns: unreachable"}
    assert "s3cr3t" not in response.get_data(as_text=True)
