"""The admin port's WSGI app: liveness, readiness (with failing and raising checks), metrics."""

from prometheus_client import CollectorRegistry, Counter
from werkzeug.test import Client

from authserver.admin import make_admin_app


def _client(checks: dict, registry: CollectorRegistry | None = None) -> Client:
    return Client(make_admin_app("sfs", checks, registry))


def test_liveness_and_readiness() -> None:
    client = _client({"database": lambda: True, "store": lambda: True})
    assert client.get("/livez").json == {"status": "ok", "component": "sfs"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json["checks"] == {"database": True, "store": True}


def test_unready_when_a_check_fails_or_raises() -> None:
    def broken() -> bool:
        raise ConnectionError("redis://:password@host")

    response = _client({"database": lambda: False, "store": broken}).get("/readyz")
    assert response.status_code == 503
    assert response.json == {
        "status": "unready",
        "component": "sfs",
        "checks": {"database": False, "store": False},
    }
    assert b"password" not in response.data


def test_metrics_exposes_the_registry() -> None:
    registry = CollectorRegistry()
    Counter("nextauth_test_things", "things", registry=registry).inc(3)
    response = _client({}, registry).get("/metrics")
    assert response.status_code == 200
    assert "nextauth_test_things_total 3.0" in response.get_data(as_text=True)


def test_unknown_paths_and_methods() -> None:
    client = _client({})
    assert client.get("/admin").status_code == 404
    assert client.post("/readyz").status_code == 405
